# Modal app of one Tuna deployment, rendered by server/providers/modal (variables: README.md).
# Deployed with `modal deploy app.py`. Secret values never appear here: they live in the Modal Secret
# named below, which the provider creates from the team's vault before deploying. That secret also holds the
# endpoint's upstream key (UPSTREAM_KEY_ENV): the engine refuses /v1/* requests without it.
import os
import subprocess

import modal

APP_NAME = {{ app_name | py }}
PORT = {{ port | int }}
# argv of the engine server; started without a shell, so no argument is ever interpreted.
ENGINE_ARGV = {{ engine_argv | json }}
SECRET_NAMES = {{ secret_names | json }}
# vLLM reads this variable itself; an engine that does not (SGLang) gets ENGINE_KEY_FLAG and its value at start.
UPSTREAM_KEY_ENV = {{ upstream_key_env | py }}
ENGINE_KEY_FLAG = {{ engine_key_flag | py }}

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
    if not os.environ.get(UPSTREAM_KEY_ENV):
        raise RuntimeError(f"{UPSTREAM_KEY_ENV} is not set: refusing to serve without the upstream key")
    argv = ENGINE_ARGV + ([ENGINE_KEY_FLAG, os.environ[UPSTREAM_KEY_ENV]] if ENGINE_KEY_FLAG else [])
    subprocess.Popen(argv)
