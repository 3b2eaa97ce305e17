"""Storage backends: bytes in, bytes out. Nothing here knows about encryption."""

from amber.storage.base import Backend, FileInfo, FileType, Handle
from amber.storage.url import open_backend

__all__ = ["Backend", "FileInfo", "FileType", "Handle", "open_backend"]
