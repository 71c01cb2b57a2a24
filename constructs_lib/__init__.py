"""Reusable constructs, one logical unit each, secure by default, no business logic."""
