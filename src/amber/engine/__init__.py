"""Archiver, restorer, checker and tree browsing over a repository."""
