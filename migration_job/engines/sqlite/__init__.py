"""SQLite: one file, a file lock beside it, BEGIN IMMEDIATE transactions, and the path decoded
exactly as SQLAlchemy does."""
