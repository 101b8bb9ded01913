"""flock(2) on a lock file beside what it guards: the one way the agent serialises
processes (repair against repair, collections against each other on the daemon
log's position, readers and writers of the demo host's state)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def locked(path: str, how: int = fcntl.LOCK_EX) -> Iterator[int]:
    """Hold flock(how) on `path` (created 0600, never through a symlink); yields its
    descriptor.  OSError when it cannot be opened, BlockingIOError for LOCK_NB."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, how)
        yield fd
    finally:
        os.close(fd)   # closing drops the flock
