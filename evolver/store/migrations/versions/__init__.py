"""Alembic revision scripts, one schema change each, applied in order by `upgrade head`."""
