"""One run on one database: the worker thread, signals, waiting for the server, the lock, the fast
path's steps, retries after a DDL lock timeout, the watches while revisions run, and the
report."""
