"""Benchmarks that measure the platform against baselines taken in the same run."""
