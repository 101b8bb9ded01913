"""Least privilege on OpenBSD: the doas.conf(5) rules `serve` needs, and
pledge(2)/unveil(2) for `serve` itself.

`serve` runs as the unprivileged user _obsdvpn.  The few probe commands that
need root (see `needs_root` in commands.py, which cites why) go through
`doas -n`, each allowed by one exact rule, e.g.

    permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -si

`args` makes doas compare every argument; a bare `args` would mean "no
arguments at all" (doas.conf(5)), so no rule here lets _obsdvpn run anything
but the exact argv the command table holds.

harden_serve() then narrows the running exporter to the promises and paths it
uses.  It is a no-op (returning False) anywhere but OpenBSD.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
import sys
from collections.abc import Iterable

from . import commands as C
from .config import DEFAULT_PATH, Config
from .host.agentfiles import STATE_DIR

DEFAULT_USER = "_obsdvpn"

# Words doas.conf(5) reads as keywords; an argument spelled like one must be
# quoted ("If quotes or backslashes are used in a word, it is not considered
# a keyword").
_KEYWORDS = frozenset({"permit", "deny", "as", "cmd", "args", "nopass", "nolog", "persist",
                       "keepenv", "setenv"})
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:=+,%@-]+")
# doas.conf(5) rev 1.31 identity: "The username to match.  Groups may be
# specified by prepending a colon (':')."  A conservative user name (what
# adduser(8) accepts, at most 32 bytes), so it is one plain word in the rule.
_IDENTITY = re.compile(r":?[A-Za-z_][A-Za-z0-9_.-]{0,31}")


def check_identity(user: str) -> str:
    """USER (or :GROUP) when it can stand as a doas.conf identity, else ValueError."""
    if not _IDENTITY.fullmatch(user) or user.lstrip(":") in _KEYWORDS:
        raise ValueError(f"{user!r} is not a user name or :group (a letter or _, then "
                         "letters, digits, _ . -, at most 32)")
    return user


def _conf_word(word: str) -> str:
    if _PLAIN_WORD.fullmatch(word) and word not in _KEYWORDS:
        return word
    # Quoted text "is taken as is", so it can hold anything but a quote.
    if not word or any(c in word for c in '"\\\n#'):
        raise ValueError(f"{word!r} cannot be written as a doas.conf(5) argument")
    return f'"{word}"'


def doas_rule(argv: tuple[str, ...], user: str = DEFAULT_USER) -> str:
    """The doas.conf line that lets `user` run exactly `argv` as root, no password.

    >>> doas_rule(("/sbin/pfctl", "-si"))
    'permit nopass nolog _obsdvpn as root cmd /sbin/pfctl args -si'
    """
    if not argv or not argv[0].startswith("/"):
        raise ValueError(f"doas rules name commands by absolute path, not {argv[:1]!r}")
    # nolog: doas logs every success to /var/log/secure (doas.c: "%s ran command %s as %s
    # from %s"); the probes run every interval, so their success lines would be noise.
    words = ["permit", "nopass", "nolog", check_identity(user), "as", "root", "cmd",
             _conf_word(argv[0]),
             "args", *(_conf_word(a) for a in argv[1:])]
    return " ".join(words)


def doas_rules(cfg: Config, user: str = DEFAULT_USER) -> list[str]:
    """One rule per root-only probe command, in command-table order, no duplicates."""
    rules: list[str] = []
    for cmd in C.probe_commands(cfg):
        if cmd.needs_root and cmd.for_serve:
            rule = doas_rule(cmd.argv, user)
            if rule not in rules:
                rules.append(rule)
    return rules




def pledge_promises(writes: bool = False) -> str:
    """The pledge(2) promises of `serve`.

    stdio rpath: run, read the config and the repair state.  inet: accept
    scrapes.  unix: reconnect the syslog socket /dev/log.  proc exec: start
    the `obsdvpn-agent collect` child each interval (exec'd programs start
    unpledged and unveiled afresh, as execpromises is NULL; the child runs the
    probe commands, reads the process list and stats the files).  prot_exec:
    Python loads C extension modules on first import, long after start-up.
    wpath cpath flock only with a writable directory.
    """
    promises = "stdio rpath inet unix proc exec prot_exec"
    return promises + " wpath cpath flock" if writes else promises


def unveil_plan(cfg: Config, config_path: str | None = None, read_paths: Iterable[str] = (),
                write_dirs: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """(path, permissions) for unveil(2): everything `serve` may touch, nothing else.

    `serve` collects in a child `obsdvpn-agent collect` process, and execve(2)
    drops the unveil list, so the exporter itself only needs to execute Python
    and read the configuration (SIGHUP re-reads it), the repair state, Python
    and the shared libraries its lazy imports load.  The probe commands and
    the probed files are the child's business.
    """
    plan: dict[str, str] = {}

    def add(path: str, perms: str) -> None:
        path = os.path.abspath(path)
        plan[path] = "".join(sorted(set(plan.get(path, "") + perms), key="rwxc".index))

    # A venv's python is a symlink: unveil the interpreter it resolves to as well.
    add(sys.executable, "rx")
    add(os.path.realpath(sys.executable), "rx")
    add(config_path or DEFAULT_PATH, "r")
    # last-repair.json, written by root's `repair`, read by every collection.
    add(STATE_DIR, "r")
    for path in (p for p in sys.path if p):
        add(path, "r")
    for path in ("/usr/lib", "/usr/local/lib", "/var/run/ld.so.hints"):
        add(path, "r")
    # connect(2) to a unix socket needs "w" on its path.
    add("/dev/log", "w")
    for path in read_paths:
        add(path, "r")
    for path in write_dirs:
        add(path, "rwc")
    return tuple(plan.items())


def harden_serve(cfg: Config, config_path: str | None = None, read_paths: Iterable[str] = (),
                 write_dirs: Iterable[str] = ()) -> bool:
    """Apply unveil_plan() and pledge_promises() to this process; True when applied.

    Call it once the listening socket is bound and logging is set up.  On any
    system but OpenBSD it does nothing and returns False.  Raises OSError when
    the kernel refuses a promise or a path.
    """
    if platform.system() != "OpenBSD":
        return False
    write_dirs = tuple(write_dirs)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unveil.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.unveil.restype = ctypes.c_int
    libc.pledge.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.pledge.restype = ctypes.c_int
    # Without wpath, writing a .pyc would be a pledge violation, which kills.
    sys.dont_write_bytecode = True
    for path, perms in unveil_plan(cfg, config_path, read_paths, write_dirs):
        if libc.unveil(os.fsencode(path), perms.encode()) == -1:
            err = ctypes.get_errno()
            if err == errno.ENOENT:  # a directory on the way is missing: nothing to see
                continue
            raise OSError(err, f"unveil {path} {perms}: {os.strerror(err)}")
    if libc.unveil(None, None) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"unveil: {os.strerror(err)}")
    promises = pledge_promises(bool(write_dirs))
    if libc.pledge(promises.encode(), None) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"pledge {promises!r}: {os.strerror(err)}")
    return True
