"""Alembic environment: migrations run on the connection handed over in ``config.attributes``."""

from alembic import context

from automl_meta.store.schema import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
