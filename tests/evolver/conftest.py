"""Fixtures for evolver tests. The PostgreSQL fixtures (`postgres_server`, `postgres_url`) live in
tests/conftest.py, shared with tests/api."""
