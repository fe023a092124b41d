"""Many databases in one run: the targets and their catalog query, forked workers within
MIGRATE_CONCURRENCY, and the fleet's report."""
