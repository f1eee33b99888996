"""Alembic migrations of klerk's store; `Store` applies them on start."""
