# Truss config of one Tuna deployment, rendered by server/providers/baseten (variables: README.md).
# A custom-server Truss: Baseten runs the engine image and forwards HTTP to server_port. Secret values are
# never written here: `secrets:` only declares Baseten workspace secrets, mounted at /secrets/<name>.
model_name: {{ model_name | yaml }}
base_image:
  image: {{ base_image | yaml }}
  python_executable_path: /usr/bin/python3
docker_server:
  start_command: {{ start_command | yaml }}
  server_port: {{ port | int }}
  predict_endpoint: /v1/chat/completions
  readiness_endpoint: /health
  liveness_endpoint: /health
resources:
  accelerator: {{ accelerator | yaml }}
  use_gpu: true
runtime:
  predict_concurrency: {{ concurrency | int }}
{{ secrets_block | raw }}
