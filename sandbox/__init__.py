"""Local sandbox: the real stacks deployed onto moto server, run by a local control plane."""
