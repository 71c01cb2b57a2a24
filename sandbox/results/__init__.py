"""What a run measured: metrics, summaries (pure functions), reports, charts and tables."""
