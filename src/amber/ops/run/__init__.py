"""`amber run`: a job's steps, its events and the runs recorded by hand."""
