# Cerebrium app of one Tuna deployment, rendered by server/providers/cerebrium (variables: README.md).
# The engine runs as a custom web server. No secret value is written here: Cerebrium injects project
# secrets (e.g. HF_TOKEN) as environment variables.

[cerebrium.deployment]
name = {{ app_name | toml }}
python_version = "3.12"
docker_base_image_url = {{ base_image | toml }}
disable_auth = false
include = ["main.py", "cerebrium.toml"]
exclude = [".*"]

[cerebrium.runtime.custom]
port = {{ port | int }}
entrypoint = {{ entrypoint | raw }}
healthcheck_endpoint = "/health"
readycheck_endpoint = "/v1/models"

[cerebrium.hardware]
cpu = {{ cpu | int }}
memory = {{ memory_gb | int }}.0
compute = {{ compute | toml }}
gpu_count = {{ gpu_count | int }}
provider = "aws"
region = {{ region | toml }}

[cerebrium.scaling]
min_replicas = {{ min_replicas | int }}
max_replicas = {{ max_replicas | int }}
cooldown = {{ cooldown_s | int }}
replica_concurrency = {{ concurrency | int }}

[cerebrium.dependencies.pip]
{{ pip_block | raw }}
