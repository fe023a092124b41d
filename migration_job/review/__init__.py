"""Reviewing pending revisions before they run: plan (what each would do, and the locks it takes)
and lint (squawk and the job's own rules)."""
