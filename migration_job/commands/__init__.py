"""One module per command family (upgrade and downgrade, stamp, mark-repaired, the read-only
inspections, history); the table of commands is settings.commands."""
