"""Replacing a file so that a crash at any moment leaves the old or the new one.

Every file the agent writes goes through replace_file(): /etc/sysctl.conf in
repair (with a backup), the node_exporter textfile, snapshots, the repair
outcome and the demo host's state.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile

_NOT_REGULAR = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"))


def _refuse_unsafe_target(path: str, directory: str) -> os.stat_result | None:
    """The stat of the regular file at path (None when nothing is there).

    rename(2) replaces whatever name it is given, so without this a
    `--textfile /dev/null` run as root would put a regular file in place of
    the device, and a symlink would be replaced instead of followed.  A
    directory owned by another user is refused too: its owner can rename
    and swap files in it between our steps.  Raises OSError(EPERM) whose
    strerror is the one line to print.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a file")
        raise OSError(errno.EPERM, f"{kind}, not a regular file: left alone")
    owner = os.stat(directory).st_uid
    if owner not in (0, os.geteuid()):
        raise OSError(errno.EPERM, f"its directory {directory} belongs to uid {owner}, neither "
                                   "this user nor root: nothing written")
    return st


def replace_file(path: str, data: bytes, mode: int, backup: bool = False) -> str | None:
    """Write data to a hidden temp file beside path, fsync it, rename it over path.

    The new file gets `mode` and, when root writes it, the old file's owner.
    With backup, the old file is first copied to PATH.obsdvpn-agent.bak, whose
    name is returned (None when there was no old file or no backup).  Readers
    such as node_exporter never see half a file: they see the old or the new.
    Anything but a regular file (or nothing) at path is refused, as is a
    directory owned by someone else (OSError, see _refuse_unsafe_target).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    old = _refuse_unsafe_target(path, directory)
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
