"""MySQL and MariaDB: PyMySQL sessions, named locks, the unfinished-revision log (DDL commits per
statement), blockers and progress from the process list."""
