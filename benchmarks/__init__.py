"""Side-by-side benchmarks of the migration job (issue 4): run them with benchmarks/run."""
