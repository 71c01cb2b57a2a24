"""Deployment units: they assemble and wire constructs, nothing else."""
