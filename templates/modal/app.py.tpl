# Modal app of one Tuna deployment, rendered by server/providers/modal (variables: README.md).
# Deployed with `modal deploy app.py`. Secret values never appear here: they live in the Modal Secret
# named below, which the provider creates from the team's vault before deploying.
import subprocess

import modal

APP_NAME = {{ app_name | py }}
PORT = {{ port | int }}
# argv of the engine server; started without a shell, so no argument is ever interpreted.
ENGINE_ARGV = {{ engine_argv | json }}
SECRET_NAMES = {{ secret_names | json }}

image = (
    modal.Image.debian_slim(python_version="3.12")
    .pip_install({{ engine_pip | py }}, "huggingface_hub[hf_transfer]")
    .env({"HF_HUB_ENABLE_HF_TRANSFER": "1", "HF_HUB_CACHE": "/root/.cache/huggingface"})
)

app = modal.App(APP_NAME)

hf_cache = modal.Volume.from_name({{ hf_cache_volume | py }}, create_if_missing=True)
engine_cache = modal.Volume.from_name({{ engine_cache_volume | py }}, create_if_missing=True)


@app.function(
    image=image,
    gpu={{ gpu | py }},
    timeout={{ timeout_s | int }},
    scaledown_window={{ scaledown_window_s | int }},
    min_containers={{ min_containers | int }},
    max_containers={{ max_containers | int }},
    secrets=[modal.Secret.from_name(name) for name in SECRET_NAMES],
    volumes={"/root/.cache/huggingface": hf_cache, "/root/.cache/vllm": engine_cache},
{{ region_line | raw }})
@modal.concurrent(max_inputs={{ concurrency | int }})
@modal.web_server(port=PORT, startup_timeout={{ startup_timeout_s | int }})
def serve():
    subprocess.Popen(ENGINE_ARGV)
