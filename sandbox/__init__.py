"""Local sandbox: the real stacks deployed onto moto server, run by a local control plane.

Layers, lowest first: ``emulator`` (AWS on loopback), ``stack`` (the deployment as the runs see it),
``runs`` (what a user runs), ``results`` (what a run measured).
"""
