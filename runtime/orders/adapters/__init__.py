"""Implementations of the domain ports: AWS services, the payment simulator, in-memory fakes."""
