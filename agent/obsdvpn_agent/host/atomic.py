"""Replacing a file so that a crash at any moment leaves the old or the new one.

Every file the agent writes goes through replace_file(): /etc/sysctl.conf in
repair (with a backup), the node_exporter textfile, snapshots, the repair
outcome and the demo host's state.
"""

from __future__ import annotations

import os
import shutil
import tempfile


def replace_file(path: str, data: bytes, mode: int, backup: bool = False) -> str | None:
    """Write data to a hidden temp file beside path, fsync it, rename it over path.

    The new file gets `mode` and, when root writes it, the old file's owner.
    With backup, the old file is first copied to PATH.obsdvpn-agent.bak, whose
    name is returned (None when there was no old file or no backup).  Readers
    such as node_exporter never see half a file: they see the old or the new.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    saved = None
    if old is not None and backup:
        saved = path + ".obsdvpn-agent.bak"
        shutil.copy2(path, saved)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if old is not None and os.geteuid() == 0:
            os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return saved
