"""What a run tells its user: summaries, progress and events, Prometheus metrics, HTML pages."""
