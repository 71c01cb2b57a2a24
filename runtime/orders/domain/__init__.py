"""Business rules of the order pipeline. No AWS SDK, no framework: only ports."""
