"""SHA-256 of files, computed once per process for as long as a file's size, mtime and inode stay the same."""
import hashlib
import os
from pathlib import Path

_KNOWN: dict[tuple, str] = {}


def file_digest(path: Path) -> str:
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _KNOWN:
        with open(path, "rb") as handle:
            _KNOWN[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _KNOWN[key]
