"""Operating a deployed stack: the preflight before ``cdk deploy`` and the smoke test after it."""
