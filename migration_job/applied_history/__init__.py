"""The applied-history table and what it proves: a row per revision applied, the checksums of
applied files, and whether the database is ahead of this image."""
