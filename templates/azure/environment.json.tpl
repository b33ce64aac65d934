{
  "location": {{ location | json }},
  "tags": { "managed-by": "tuna" },
  "properties": {
    "workloadProfiles": [
      { "name": "Consumption", "workloadProfileType": "Consumption" },
      { "name": "gpu-t4", "workloadProfileType": "Consumption-GPU-NC8as-T4" },
      { "name": "gpu-a100", "workloadProfileType": "Consumption-GPU-NC24-A100" }
    ]
  }
}
