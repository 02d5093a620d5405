"""Alembic migrations; they build the schema on SQLite and PostgreSQL alike."""
