"""The emulated AWS: moto server with fidelity fixes, and the control plane that runs what moto only
stores (Lambda environments and event sources, the ECS service and its autoscaler, the API fronts)."""
