{
  "labels": { "managed-by": "tuna", "tuna-deployment": {{ deploymentLabel | json }} },
  "ingress": "INGRESS_TRAFFIC_ALL",
  "invokerIamDisabled": false,
  "template": {
    "nodeSelector": { "accelerator": {{ accelerator | json }} },
    "gpuZonalRedundancyDisabled": {{ gpuZonalRedundancyDisabled | json }},
    "scaling": { "minInstanceCount": {{ minInstances | int }}, "maxInstanceCount": {{ maxInstances | int }} },
    "maxInstanceRequestConcurrency": {{ concurrency | int }},
    "timeout": {{ requestTimeout | json }},
    "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
    "containers": [
      {
        "name": "engine",
        "image": {{ image | json }},
        "command": {{ command | json }},
        "args": {{ args | json }},
        "ports": [{ "containerPort": {{ port | int }}, "name": "http1" }],
        "env": {{ envJson | raw }},
        "resources": {
          "limits": { "cpu": {{ cpu | json }}, "memory": {{ memory | json }}, "nvidia.com/gpu": "1" },
          "cpuIdle": false,
          "startupCpuBoost": true
        },
        "startupProbe": {
          "httpGet": { "path": "/health", "port": {{ port | int }} },
          "initialDelaySeconds": 0,
          "periodSeconds": {{ probePeriodS | int }},
          "timeoutSeconds": 5,
          "failureThreshold": {{ probeFailureThreshold | int }}
        }
      }
    ]
  }
}
