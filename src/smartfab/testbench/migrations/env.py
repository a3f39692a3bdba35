"""alembic's environment for the test bench's queue: migrate on the connection smartfab passes
in (:func:`smartfab.testbench.queue.upgrade_queue`); there is no ``alembic.ini`` and no offline
(``--sql``) mode."""

from __future__ import annotations

from alembic import context

from smartfab.errors import TestBenchError

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise TestBenchError(
        "the test bench queue migrates when the service opens it, not from the alembic command line"
    )
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
