{
  "location": {{ location | json }},
  "tags": { "managed-by": "tuna", "tuna-deployment": {{ deploymentId | json }} },
  "properties": {
    "workloadProfileName": {{ workloadProfileName | json }},
    "configuration": {
      "activeRevisionsMode": "Single",
      "ingress": { "external": true, "targetPort": {{ port | int }}, "transport": "auto", "allowInsecure": false },
      "secrets": {{ secretsJson | raw }}
    },
    "template": {
      "containers": [
        {
          "name": "engine",
          "image": {{ image | json }},
          "command": {{ command | json }},
          "args": {{ args | json }},
          "env": {{ envJson | raw }},
          "resources": { "cpu": {{ cpu | int }}, "memory": {{ memory | json }} },
          "probes": [
            {
              "type": "Startup",
              "httpGet": { "path": "/health", "port": {{ port | int }} },
              "initialDelaySeconds": {{ probeInitialDelayS | int }},
              "periodSeconds": {{ probePeriodS | int }},
              "failureThreshold": {{ probeFailureThreshold | int }},
              "timeoutSeconds": 5
            }
          ]
        }
      ],
      "scale": {
        "minReplicas": {{ minReplicas | int }},
        "maxReplicas": {{ maxReplicas | int }},
        "cooldownPeriod": {{ cooldownPeriodS | int }},
        "rules": [{ "name": "http-concurrency", "http": { "metadata": { "concurrentRequests": {{ concurrentRequests | json }} } } }]
      }
    }
  }
}
