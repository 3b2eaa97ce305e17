"""`amber watch`: continuous protection of a job's files (inotify, design §12c)."""
