# SkyServe service of one Tuna deployment, rendered by server/providers/skyserve (variables: README.md).
# Secret values are never written here: `secrets:` lists names with null values and the provider fills them
# in only in the request it sends to the SkyPilot API server. VLLM_API_KEY is the endpoint's upstream key: the
# engine answers /v1/* only with it, so the readiness probe uses the open health path.
name: {{ service_name | yaml }}

service:
  readiness_probe:
    path: {{ readiness_path | yaml }}
    initial_delay_seconds: {{ readiness_initial_delay_s | int }}
    timeout_seconds: 15
  replica_policy:
    min_replicas: {{ min_replicas | int }}
    max_replicas: {{ max_replicas | int }}
    target_qps_per_replica: {{ target_qps_per_replica | json }}
    upscale_delay_seconds: {{ upscale_delay_s | int }}
    downscale_delay_seconds: {{ downscale_delay_s | int }}

resources:
  accelerators: {{ accelerators | yaml }}
  use_spot: true
  ports: {{ port | int }}
  disk_size: {{ disk_size_gb | int }}
  image_id: {{ image_id | yaml }}
  any_of:
{{ any_of | raw }}

{{ envs_block | raw }}{{ secrets_block | raw }}run: {{ run | yaml }}
