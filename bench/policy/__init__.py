"""Policy benchmark: decisions per second (uncached vs cached) and ingest throughput with the real residency
policy vs an allow-all policy, measured in one run on one workload. ``python -m bench.policy --help``."""
