"""Thin adapters from each compute platform's events to the domain service."""
