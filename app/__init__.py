"""The example application whose tables the migrations in migrations/ create."""
