"""alembic's environment for the run index: migrate on the connection smartfab passes in.

smartfab runs alembic only programmatically (:func:`smartfab.runs.migrations.upgrade_to_head`),
inside one transaction it has already begun on the store's ``index.sqlite``; there is no
``alembic.ini`` and no offline (``--sql``) mode.
"""

from __future__ import annotations

from alembic import context

from smartfab.errors import RunStoreError

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RunStoreError(
        "the run index migrations run through smartfab (RunStore.open or "
        "`smartfab runs upgrade-store STORE`), not from the alembic command line"
    )
context.configure(connection=connection, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
