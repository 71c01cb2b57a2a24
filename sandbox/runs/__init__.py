"""What a user runs: one flash sale, the live stack, the comparison, chaos."""
