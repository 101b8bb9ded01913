"""Parsers of rcctl(8) output: enabled services, flags, daemon checks.

    $ rcctl ls on                 $ rcctl get isakmpd flags     $ rcctl check npppd
    isakmpd                       -K                            npppd(ok)
    npppd
    pf

Formats, as read in openbsd/src usr.sbin/rcctl/rcctl.sh rev 1.122
(2025/08/16) and etc/rc.d/rc.subr rev 1.166 (2025/08/16):

- `ls on|off|all|failed|...` (svc_ls L202-255) prints one name per line.
  `all` is ls_rcscripts (only `+([[:alnum:]_])` names, L57) plus the special
  services, sorted (L211-216); `on` is every name of `all` whose
  `svc_get NAME status` succeeds (L224-231).
- `get NAME VAR` prints the value alone, or nothing when it is empty
  (L327-328 `[ -z "${_val}" ] || print -r -- "${_val}"`).  The exit status
  is that of that test, so `get NAME flags` exits 0 even for a disabled
  daemon, which prints `NO` (rc.conf's `NAME_flags=NO`; a package script
  not in pkg_scripts gets `NO` at L268-272).  Only `get NAME` (no VAR) and
  `get NAME status` return 1 for a disabled service (L323, L326, L342).
- `get NAME` prints `NAME_class=` ... `NAME_user=` (L334-340; releases
  before execdir/logger print fewer lines), or `NAME=VALUE` for a special
  service (L331-332), whose value is the rc.conf variable itself (L266-267).
- `check|start|stop|restart|reload NAME` runs `/etc/rc.d/NAME ACTION` (L647-655)
  after refusing a special service on stderr with exit 1 (L649-650:
  `rcctl: "pf" is a special variable, no rc.d(8) script`).  rc.subr
  prints the name (_rc_printname L153-158, `echo -n`) then `(ok)`,
  `(failed)`, `(killed)` or `(timeout)` (_rc_exit L135-144): exit 0 for ok
  and killed, 1 otherwise.  With `-q` nothing is printed on success and
  `NAME(failed)` on failure (L139, L142).
- Root: rcctl's needs_root (L41-44) says `rcctl: "ACTION" needs root
  privileges` for enable/disable/order/set and `ls failed|rogue|started|stopped`
  (L632); rc.subr's rc_cmd (L219-221) says `/etc/rc.d/NAME: need root
  privileges` for every action but `check`, which a user may run unless the
  script sets rc_usercheck=NO (etc/rc.d/npppd and isakmpd do not).  Releases
  of 2014 said `rcctl enable: need root privileges`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ParseError, first_line, refuse_nul

# _special_svcs (rcctl.sh rev 1.122 L20-21), plus the 2014 names (rev 1.39)
# that library_aslr and multicast replaced.
SPECIAL_SERVICES = frozenset({"accounting", "check_quotas", "ipsec", "library_aslr",
                              "multicast", "pf", "spamd_black",
                              "multicast_host", "multicast_router"})
# The variables `rcctl get NAME` prints, NAME_<var>= (L334-340).
GET_VARIABLES = ("class", "execdir", "flags", "logger", "rtable", "timeout", "user")
_SERVICE = re.compile(r"[A-Za-z0-9_]+")
_RESULT = re.compile(r"\s*([A-Za-z0-9_]+)\((ok|failed|killed|timeout)\)")
_NEEDS_ROOT = re.compile(r"needs? root privileges")


@dataclass(frozen=True)
class DaemonFlags:
    """`rcctl get NAME flags`: whether the service is on, and its daemon flags.

    flags is what rc.d passes the daemon: '' when rcctl printed nothing,
    when the service is off (`NO`) and for a special service (`YES`/`NO`).
    """

    daemon: str
    enabled: bool
    flags: str


@dataclass(frozen=True)
class RcService:
    """`rcctl get NAME`: the rc.conf variables of a daemon or a special service."""

    name: str
    values: tuple[tuple[str, str], ...]   # ('flags', '-K'), ...; special: (('flags', 'YES'),)
    flags: str | None                     # daemon flags, '' when off; None for a special service
    enabled: bool
    unknown_lines: int = 0

    def get(self, variable: str) -> str | None:
        return dict(self.values).get(variable)


@dataclass(frozen=True)
class DaemonCheck:
    """`rcctl check NAME`: `npppd(ok)` (exit 0) or `npppd(failed)` (exit 1)."""

    daemon: str
    running: bool


@dataclass(frozen=True)
class DaemonAction:
    """One line of `rcctl start|stop|restart|reload NAME`: `sshd(ok)`."""

    daemon: str
    status: str                           # ok, failed, killed or timeout

    @property
    def succeeded(self) -> bool:
        # _rc_exit: only ok and killed exit 0.
        return self.status in ("ok", "killed")


def is_permission_error(stderr: str) -> bool:
    """Whether stderr is rcctl's or rc.subr's root-needed message."""
    return bool(_NEEDS_ROOT.search(stderr))


def _special_error(stderr: str, daemon: str) -> bool:
    return f'"{daemon}" is a special variable, no rc.d(8) script' in stderr


def special_enabled(ls_on: tuple[str, ...], name: str) -> bool:
    """Whether a special service (ipsec, pf, ...) is on, from `rcctl ls on`.

    `ls on` lists a special service when its rc.conf variable is not NO
    (svc_ls L224-231 over `all`, which includes _special_svcs; svc_get
    L266-267 and L323).  For ipsec that only means /etc/rc runs
    `ipsecctl -f /etc/ipsec.conf` at boot; the loaded flows are ipsecctl's.
    """
    if name not in SPECIAL_SERVICES:
        raise ValueError(f"{name!r} is not an rcctl special service")
    return name in ls_on


def parse_ls(stdout: str, command: str = "rcctl ls on") -> tuple[str, ...]:
    """Parse `rcctl ls on|off|all|failed|...`: one service name per line."""
    refuse_nul(stdout, command)
    names = []
    for lineno, line in enumerate(stdout.splitlines(), 1):
        if not _SERVICE.fullmatch(line):
            raise ParseError(command, "expected an rc.d service name", lineno, line)
        names.append(line)
    return tuple(names)


def parse_get_flags(stdout: str, returncode: int, daemon: str) -> DaemonFlags:
    """Parse `rcctl get NAME flags`: the flags, `NO`, or nothing for empty flags."""
    command = f"rcctl get {daemon} flags"
    refuse_nul(stdout, command)
    lines = stdout.splitlines()
    if len(lines) > 1:
        raise ParseError(command, f"expected at most one line, got {len(lines)}")
    value = lines[0] if lines else ""
    if value.startswith(("rcctl:", "usage:", "/etc/rc.d/")):
        raise ParseError(command, "rcctl's error message instead of flags", 1, value)
    if returncode not in (0, 1):
        raise ParseError(command, f"exit status {returncode} (2: no such service)")
    if returncode == 1 and value != "NO":
        # Only an error exits 1 here; its message went to stderr.
        raise ParseError(command, "exit status 1 without `NO`", 1 if lines else None,
                         value if lines else None)
    if daemon in SPECIAL_SERVICES:
        if value not in ("YES", "NO"):
            raise ParseError(command, "a special service is YES or NO", 1, value)
        return DaemonFlags(daemon, value == "YES", "")
    if value == "NO":
        return DaemonFlags(daemon, False, "")
    return DaemonFlags(daemon, True, value)


def parse_get(stdout: str, daemon: str) -> RcService:
    """Parse `rcctl get NAME`: `NAME_flags=...` lines, or `NAME=YES` for a special service."""
    command = f"rcctl get {daemon}"
    refuse_nul(stdout, command)
    lines = stdout.splitlines()
    if not lines:
        raise ParseError(command, "no output (a meta script, or an error on stderr)")
    if daemon in SPECIAL_SERVICES:
        if len(lines) != 1 or lines[0] not in (f"{daemon}=YES", f"{daemon}=NO"):
            raise ParseError(command, f"expected `{daemon}=YES` or `{daemon}=NO`", 1, lines[0])
        value = lines[0].split("=", 1)[1]
        return RcService(daemon, (("flags", value),), None, value != "NO")
    values: dict[str, str] = {}
    unknown = 0
    prefix = f"{daemon}_"
    for lineno, line in enumerate(lines, 1):
        variable, eq, value = line.partition("=")
        if not eq or not variable.startswith(prefix):
            raise ParseError(command, f"expected a `{prefix}VARIABLE=value` line", lineno, line)
        variable = variable[len(prefix):]
        if variable in GET_VARIABLES:
            values[variable] = value
        else:
            unknown += 1
    if "flags" not in values:
        raise ParseError(command, f"no `{prefix}flags=` line")
    enabled = values["flags"] != "NO"
    return RcService(daemon, tuple(values.items()), values["flags"] if enabled else "",
                     enabled, unknown)


def parse_check(stdout: str, stderr: str, returncode: int, daemon: str) -> DaemonCheck:
    """Parse `rcctl check NAME`: `npppd(ok)` exit 0, `npppd(failed)` exit 1."""
    command = f"rcctl check {daemon}"
    refuse_nul(stdout, command)
    if _special_error(stderr, daemon):
        raise ParseError(command, f"{daemon} is a special service, not a daemon: rcctl has "
                                  "no rc.d(8) script to check (see `rcctl ls on`)")
    if is_permission_error(stderr):
        raise ParseError(command, f"permission denied: {first_line(stderr)}")
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        if returncode == 0 and not stderr.strip():
            # `rcctl -q check` prints nothing when the daemon runs.
            return DaemonCheck(daemon, True)
        said = f": {first_line(stderr)}" if stderr.strip() else ""
        raise ParseError(command, f"no output, exit status {returncode}{said}")
    if len(lines) != 1:
        raise ParseError(command, f"expected one line, got {len(lines)}", 2, lines[1])
    m = _RESULT.fullmatch(lines[0])
    if not m or m.group(1) != daemon or m.group(2) not in ("ok", "failed"):
        raise ParseError(command, f"expected `{daemon}(ok)` or `{daemon}(failed)`", 1, lines[0])
    running = m.group(2) == "ok"
    if returncode != (0 if running else 1):
        raise ParseError(command, f"`{lines[0].strip()}` with exit status {returncode}")
    return DaemonCheck(daemon, running)


def parse_action(stdout: str, command: str = "rcctl start") -> tuple[DaemonAction, ...]:
    """Parse `rcctl start|stop|restart|reload NAME ...`: `NAME(ok)` per step.

    `restart` prints two lines (stop, then start); a step with nothing to do
    (start of a running daemon, stop of a stopped one) prints nothing.
    """
    refuse_nul(stdout, command)
    actions = []
    for lineno, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        m = _RESULT.fullmatch(line)
        if not m:
            raise ParseError(command, "expected `NAME(ok)`, `NAME(failed)`, `NAME(killed)` "
                                      "or `NAME(timeout)`", lineno, line)
        actions.append(DaemonAction(m.group(1), m.group(2)))
    return tuple(actions)
