"""Benchmarks against named baselines, run from the project root: python -m bench.<name>."""
