"""The storage layer: one engine factory for SQLite (default) and Postgres."""
