"""Alembic migrations of the experience store, shipped inside the package (run by ``automl-meta store upgrade``)."""
