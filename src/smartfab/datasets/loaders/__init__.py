"""Readers of public machine datasets from local copies in their upstream formats."""
