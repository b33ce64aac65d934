{
  "name": {{ name | json }},
  "type": "QUEUE",
  "image": {{ image | json }},
  "gpu": {
    "pools": {{ gpuPools | json }},
    "excludedTypes": {{ gpuExcludedTypes | json }},
    "count": {{ gpuCount | int }}
  },
  "workers": { "min": {{ workersMin | int }}, "max": {{ workersMax | int }}, "idleTimeout": {{ idleTimeoutS | int }} },
  "scaling": { "type": "QUEUE_DELAY", "queueDelay": {{ queueDelayS | int }} },
  "dataCenterIds": {{ dataCenterIds | json }},
  "disk": {{ diskGb | int }},
  "flashboot": "FLASHBOOT",
  "timeout": {{ timeoutMs | int }},
  "env": {{ envJson | raw }}
}
