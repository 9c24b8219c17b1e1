"""The label job on Ray: checks before Ray starts, the driver and its pool of Labeler actors, the
engine turn, retries, progress, Prometheus telemetry and per-stage CPU accounting."""
