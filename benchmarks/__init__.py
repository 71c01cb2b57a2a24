"""Benchmarks run by `make bench`: every figure printed is measured in the run."""
