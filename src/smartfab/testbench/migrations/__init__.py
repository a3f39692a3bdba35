"""Alembic migrations of the test bench's queue (``alembic_version`` in the queue database)."""
