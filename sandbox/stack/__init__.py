"""The deployed stacks as the runs see them: deploy, stack outputs, the topology read once, the
workers each variant starts, and the probes that read queue depth."""
