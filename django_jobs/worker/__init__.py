"""The worker: claim loop, executor pools, job runner, heartbeats."""
