"""The hash-chained audit log and its repository replica."""
