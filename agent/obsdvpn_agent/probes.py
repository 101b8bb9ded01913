"""Acquisition: run the command table against a host and parse what it prints.

gather(host, config) -> Facts.  Each fact is the parsed record(s) or a
ProbeFailure saying, in one line, why that fact could not be had (command
missing, timed out, permission denied, output not understood).  A failure is
never turned into a value: the checks that need the fact become UNKNOWN.

Collectors are independent groups of commands (node_exporter style); they run
concurrently so a hanging command only delays its own collector, bounded by
the command timeout.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from . import commands as C
from .config import Config
from .host.base import CommandNotFound, CommandResult, CommandTimeout, FileInfo, Host, HostError
from .parsers import ParseError, first_line, ifconfig, ipsecctl, npppctl, npppd_users, pfctl, rcctl, sysctl


@dataclass(frozen=True)
class ProbeFailure:
    """Why a fact is missing.  kind: missing, timeout, permission, error, parse,
    or skipped (not collected by design, e.g. a root-only file in the exporter)."""

    source: str
    kind: str
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class PfConfigInvalid:
    """`pfctl -nvf /etc/pf.conf` refused the file: what it said on stderr."""

    message: str


@dataclass(frozen=True)
class CollectorRun:
    name: str
    success: bool
    duration_s: float
    failures: tuple[ProbeFailure, ...]


def failed(value: object) -> bool:
    return isinstance(value, ProbeFailure)


@dataclass(frozen=True)
class Facts:
    """Everything the checks judge, as gathered at one moment."""

    collected_at: float
    sysctl: Any                       # sysctl.SysctlReading | ProbeFailure
    sysctl_conf: Any                  # sysctl.SysctlConf | ProbeFailure
    rc_on: Any                        # tuple[str, ...] | ProbeFailure
    daemon_flags: dict[str, Any]      # daemon -> rcctl.DaemonFlags | ProbeFailure
    daemon_check: dict[str, Any]      # daemon -> rcctl.DaemonCheck | ProbeFailure
    processes: Any                    # tuple[Process, ...] | ProbeFailure
    pf_info: Any                      # pfctl.PfInfo | ProbeFailure
    pf_limits: Any                    # pfctl.PfLimits | ProbeFailure
    pf_rules: Any                     # pfctl.PfRuleset | ProbeFailure
    pf_config: Any                    # pfctl.PfRuleset | PfConfigInvalid | ProbeFailure
    ipsec: Any                        # ipsecctl.IpsecState | ProbeFailure
    interfaces: Any                   # tuple[ifconfig.Interface, ...] | ProbeFailure
    sessions: Any                     # tuple[npppctl.PppSession, ...] | ProbeFailure
    files: dict[str, Any]             # path -> FileInfo | ProbeFailure
    npppd_users: Any                  # tuple[str, ...] | ProbeFailure
    collectors: tuple[CollectorRun, ...] = field(default=())

    def failures(self) -> tuple[ProbeFailure, ...]:
        return tuple(f for run in self.collectors for f in run.failures)


# Words OpenBSD tools print when the caller lacks a privilege: pfctl
# `pfctl: /dev/pf: Permission denied`, rcctl `rcctl: "enable" needs root privileges`
# (rcctl.sh L43) and `/etc/rc.d/npppd: need root privileges` (rc.subr), npppctl
# `npppctl: connect: Permission denied`, OpenBSD doas -n `doas: Authentication
# required` (OpenDoas: `Authorization required`).
_PERMISSION_WORDS = ("Permission denied", "Operation not permitted", "root privileges",
                     "Authentication required", "Authorization required")


def permission_problem(stderr: str) -> bool:
    return any(w in stderr for w in _PERMISSION_WORDS)


class _Collect:
    """The failures and results of one collector, as it runs."""

    def __init__(self, host: Host, cfg: Config, name: str) -> None:
        self.host, self.cfg, self.name = host, cfg, name
        self.failures: list[ProbeFailure] = []

    def fail(self, source: str, kind: str, reason: str) -> ProbeFailure:
        f = ProbeFailure(source, kind, reason)
        self.failures.append(f)
        return f

    def run(self, cmd: C.Command) -> CommandResult | ProbeFailure:
        try:
            r = self.host.run(cmd.argv, self.cfg.command_timeout_s)
        except CommandTimeout as e:
            return self.fail(cmd.display, "timeout", str(e))
        except CommandNotFound as e:
            return self.fail(cmd.display, "missing", str(e))
        except HostError as e:
            return self.fail(cmd.display, "error", f"`{cmd.display}`: {e}")
        if r.returncode in cmd.data_returncodes:
            return r
        return self.failed_result(cmd, r)

    def failed_result(self, cmd: C.Command, r: CommandResult) -> ProbeFailure:
        said = first_line(r.stderr) or first_line(r.stdout) or "no output"
        if permission_problem(r.stderr):
            hint = ""
            if cmd.needs_root:
                from .privilege import doas_rule
                hint = (f" (run as root, or add `{doas_rule(cmd.argv, _user())}` to "
                        "/etc/doas.conf" + ("" if self.cfg.use_doas else
                                            " and set `doas = true` under [commands]") + ")")
            return self.fail(cmd.display, "permission",
                             f"`{cmd.display}`: permission denied: {said}{hint}")
        return self.fail(cmd.display, "error",
                         f"`{cmd.display}` exited {r.returncode}: {said}")

    def parse(self, cmd: C.Command, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except ParseError as e:
            return self.fail(cmd.display, "parse", str(e))
        except Exception as e:  # a parser bug: this fact is lost, not the collection
            return self.fail(cmd.display, "parse", f"`{cmd.display}` output: not understood "
                                                   f"({type(e).__name__}: {str(e)[:120]})")

    def stat(self, path: str) -> FileInfo | ProbeFailure:
        try:
            return self.host.stat_file(path)
        except PermissionError:
            return self.fail(path, "permission", f"{path}: permission denied")
        except (OSError, HostError) as e:
            return self.fail(path, "error", f"{path}: {e}")

    def read(self, path: str) -> str | None | ProbeFailure:
        """Text of a file, None when it does not exist."""
        try:
            return self.host.read_file(path)
        except FileNotFoundError:
            return None
        except PermissionError:
            return self.fail(path, "permission", f"{path}: permission denied")
        except (OSError, HostError) as e:
            return self.fail(path, "error", f"{path}: {e}")


def _user() -> str:
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _collect_sysctl(c: _Collect) -> dict[str, Any]:
    cmd = C.sysctl_command(c.cfg.sysctl_names)
    r = c.run(cmd)
    reading = r if failed(r) else c.parse(cmd, sysctl.parse_get, r.stdout, r.stderr)
    text = c.read(C.SYSCTL_CONF)
    if failed(text):
        conf = text
    else:
        try:
            conf = sysctl.parse_conf(text or "", C.SYSCTL_CONF)
        except ParseError as e:
            conf = c.fail(C.SYSCTL_CONF, "parse", str(e))
    return {"sysctl": reading, "sysctl_conf": conf}


def _collect_rcctl(c: _Collect) -> dict[str, Any]:
    r = c.run(C.RCCTL_LS_ON)
    rc_on = r if failed(r) else c.parse(C.RCCTL_LS_ON, rcctl.parse_ls, r.stdout, "rcctl ls on")
    flags, checks = {}, {}
    for daemon in c.cfg.daemons:
        cmd = C.rcctl_flags_command(daemon)
        r = c.run(cmd)
        flags[daemon] = r if failed(r) else c.parse(cmd, rcctl.parse_get_flags, r.stdout,
                                                    r.returncode, daemon)
        cmd = C.rcctl_check_command(daemon)
        r = c.run(cmd)
        if not failed(r) and r.returncode != 0 and permission_problem(r.stderr):
            r = c.failed_result(cmd, r)
        checks[daemon] = r if failed(r) else c.parse(cmd, rcctl.parse_check, r.stdout,
                                                     r.stderr, r.returncode, daemon)
    try:
        procs = c.host.processes()
    except (OSError, HostError) as e:
        procs = c.fail("process list", "error", f"process list: {e}")
    return {"rc_on": rc_on, "daemon_flags": flags, "daemon_check": checks, "processes": procs}


def _collect_pf(c: _Collect) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, cmd, fn in (("pf_info", C.PFCTL_INFO, pfctl.parse_info),
                         ("pf_limits", C.PFCTL_LIMITS, pfctl.parse_limits)):
        r = c.run(cmd)
        out[key] = r if failed(r) else c.parse(cmd, fn, r.stdout)
    r = c.run(C.PFCTL_RULES)
    out["pf_rules"] = r if failed(r) else c.parse(C.PFCTL_RULES, pfctl.parse_rules, r.stdout,
                                                  "pfctl -sr")
    r = c.run(C.PFCTL_CONFIG)
    if failed(r):
        out["pf_config"] = r
    elif r.returncode != 0:
        # Exit 1 from -n means pf.conf does not load: a finding, not a probe failure,
        # unless pfctl could not even read the file.
        out["pf_config"] = (c.failed_result(C.PFCTL_CONFIG, r) if permission_problem(r.stderr)
                            else PfConfigInvalid(first_line(r.stderr) or "pfctl -n failed"))
    else:
        out["pf_config"] = c.parse(C.PFCTL_CONFIG, pfctl.parse_rules, r.stdout,
                                   "pfctl -nvf " + C.PF_CONF)
    return out


def _collect_ipsec(c: _Collect) -> dict[str, Any]:
    r = c.run(C.IPSECCTL_SA)
    return {"ipsec": r if failed(r) else c.parse(C.IPSECCTL_SA, ipsecctl.parse_sa, r.stdout)}


def _collect_ifconfig(c: _Collect) -> dict[str, Any]:
    cmd = C.IFCONFIG_PPPX
    r = c.run(cmd)
    if failed(r):
        return {"interfaces": r}
    if r.returncode != 0:
        # No pppx interface at all means no session, the group is gone.
        if ifconfig.parse_ifconfig_error(r.stderr) is not None:
            return {"interfaces": ()}
        return {"interfaces": c.failed_result(cmd, r)}
    return {"interfaces": c.parse(cmd, ifconfig.parse_ifconfig, r.stdout, "ifconfig pppx")}


def _collect_npppctl(c: _Collect) -> dict[str, Any]:
    cmd = C.NPPPCTL_SESSIONS
    r = c.run(cmd)
    if failed(r):
        return {"sessions": r}
    if r.returncode != 0:
        # `npppctl: connect: Connection refused`: npppd is down, so nobody is
        # connected; daemon.npppd.running says the rest.  Not a probe failure.
        if npppctl.is_not_running_error(r.stderr) and not permission_problem(r.stderr):
            return {"sessions": ()}
        return {"sessions": c.failed_result(cmd, r)}
    return {"sessions": c.parse(cmd, npppctl.parse_session_all, r.stdout,
                                "npppctl -n session all")}


def _collect_files(c: _Collect) -> dict[str, Any]:
    files = {p: c.stat(p) for p in (C.IPSEC_CONF, C.NPPPD_USERS, C.PF_CONF, C.SYSCTL_CONF)}
    text = c.read(C.NPPPD_USERS)
    if failed(text) and text.kind == "permission":
        # The file must be root's alone, so an unprivileged serve cannot read it:
        # that is by design, not a collector failure.  Root's cron `check` judges it.
        c.failures.remove(text)
        users = ProbeFailure(C.NPPPD_USERS, "skipped",
                             f"{C.NPPPD_USERS} is readable by root only, as it must be; "
                             "root's `obsdvpn-agent check` compares the user names")
    elif failed(text):
        users = text
    elif text is None:
        users = c.fail(C.NPPPD_USERS, "missing", f"{C.NPPPD_USERS}: no such file")
    else:
        try:
            users = npppd_users.parse_usernames(text, C.NPPPD_USERS)
        except ParseError as e:
            users = c.fail(C.NPPPD_USERS, "parse", str(e))
    return {"files": files, "npppd_users": users}


COLLECTORS: dict[str, Callable[[_Collect], dict[str, Any]]] = {
    "sysctl": _collect_sysctl,
    "rcctl": _collect_rcctl,
    "pf": _collect_pf,
    "ipsec": _collect_ipsec,
    "ifconfig": _collect_ifconfig,
    "npppctl": _collect_npppctl,
    "files": _collect_files,
}


def _timed(host: Host, cfg: Config, name: str) -> tuple[dict[str, Any], CollectorRun]:
    c = _Collect(host, cfg, name)
    start = time.monotonic()
    try:
        values = COLLECTORS[name](c)
    except HostError as e:  # e.g. the demo state file went bad mid-collection
        f = c.fail(name, "error", str(e))
        values = {k: f for k in _KEYS[name]}
    except Exception as e:  # a bug in one collector must not cost the others
        f = c.fail(name, "error", f"{name} collector failed: {type(e).__name__}: {e}")
        values = {k: f for k in _KEYS[name]}
    run = CollectorRun(name, not c.failures, time.monotonic() - start, tuple(c.failures))
    return values, run


_KEYS = {"sysctl": ("sysctl", "sysctl_conf"),
         "rcctl": ("rc_on", "daemon_flags", "daemon_check", "processes"),
         "pf": ("pf_info", "pf_limits", "pf_rules", "pf_config"),
         "ipsec": ("ipsec",), "ifconfig": ("interfaces",), "npppctl": ("sessions",),
         "files": ("files", "npppd_users")}


def gather(host: Host, cfg: Config, parallel: bool = True) -> Facts:
    now = time.time()
    names = list(COLLECTORS)
    if parallel:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            done = list(pool.map(lambda n: _timed(host, cfg, n), names))
    else:
        done = [_timed(host, cfg, n) for n in names]
    values: dict[str, Any] = {}
    for v, _ in done:
        values.update(v)
    for key in ("daemon_flags", "daemon_check"):
        if failed(values[key]):
            values[key] = {d: values[key] for d in cfg.daemons}
    if failed(values["files"]):
        values["files"] = {}
    return Facts(collected_at=now, collectors=tuple(run for _, run in done), **values)
