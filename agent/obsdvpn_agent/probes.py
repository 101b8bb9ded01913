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

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from . import commands as C
from .config import Config
from .host.base import (
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    FileInfo,
    Host,
    HostError,
    IsakmpdNotRunning,
    Process,
)
from .host.identity import effective_user
from .parsers import (
    ParseError,
    first_line,
    ifconfig,
    ipsecctl,
    isakmpd,
    npppctl,
    npppd_conf,
    npppd_users,
    pfctl,
    rcctl,
    sysctl,
)
from .parsers.ifconfig import Interface
from .parsers.ipsecctl import IkePhase1, IpsecState
from .parsers.npppctl import PppSession
from .parsers.npppd_conf import NpppdPools
from .parsers.pfctl import PfInfo, PfInterfaces, PfLimits, PfRuleset, PfRuleTree
from .parsers.rcctl import DaemonCheck, DaemonFlags
from .parsers.sysctl import SysctlConf, SysctlReading

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from .logcounts import LogCounts

T = TypeVar("T")


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


def failed(value: object) -> TypeIs[ProbeFailure]:
    return isinstance(value, ProbeFailure)


@dataclass(frozen=True)
class SysctlFacts:
    """`sysctl NAME...` and /etc/sysctl.conf."""

    running: SysctlReading | ProbeFailure
    conf: SysctlConf | ProbeFailure


@dataclass(frozen=True)
class RcFacts:
    """rc.conf.local through rcctl, and the process list."""

    on: tuple[str, ...] | ProbeFailure                       # `rcctl ls on`
    flags: Mapping[str, DaemonFlags | ProbeFailure]         # daemon -> `rcctl get D flags`
    check: Mapping[str, DaemonCheck | ProbeFailure]         # daemon -> `rcctl check D`
    processes: tuple[Process, ...] | ProbeFailure


@dataclass(frozen=True)
class PfConfig:
    """What `pfctl -nvf /etc/pf.conf` says the file would load."""

    rules: PfRuleset                                         # flat, for the comparison
    tree: PfRuleTree | ProbeFailure                          # nested, for the path
    skip: frozenset[str]                                     # its `set skip on` names


@dataclass(frozen=True)
class PfFacts:
    info: PfInfo | ProbeFailure                              # pfctl -si
    limits: PfLimits | ProbeFailure                          # pfctl -sm
    rules: PfRuleset | ProbeFailure                          # pfctl -sr
    config: PfConfig | PfConfigInvalid | ProbeFailure        # pfctl -nvf /etc/pf.conf
    tree: PfRuleTree | ProbeFailure                          # pfctl -a '*' -sr
    interfaces: PfInterfaces | ProbeFailure                  # pfctl -sI -v
    egress: tuple[Interface, ...] | ProbeFailure             # ifconfig egress


@dataclass(frozen=True)
class IpsecFacts:
    sa: IpsecState | ProbeFailure                            # ipsecctl -sa


@dataclass(frozen=True)
class IsakmpdFacts:
    """What the running isakmpd holds: asked by root through its FIFO, read-only.

    The unprivileged `serve` cannot ask (the FIFO and ipsec.conf are root's):
    it gets root's last answers from the observation record `check` leaves,
    with their time in observed_at, or a skipped failure when there is none.
    """

    passive: tuple[str, ...] | ProbeFailure        # C get [Phase 2]:Passive-Connections
    proposals: tuple[IkePhase1, ...] | ProbeFailure  # ipsecctl -nvf /etc/ipsec.conf
    observed_at: float | None = None               # from root's check at that time


@dataclass(frozen=True)
class LogFacts:
    """What isakmpd and npppd logged: running totals, kept with the read position."""

    counts: LogCounts | ProbeFailure


@dataclass(frozen=True)
class IfconfigFacts:
    pppx: tuple[Interface, ...] | ProbeFailure               # ifconfig pppx


@dataclass(frozen=True)
class NpppctlFacts:
    sessions: tuple[PppSession, ...] | ProbeFailure          # npppctl -n session all


@dataclass(frozen=True)
class FilesFacts:
    stat: Mapping[str, FileInfo | ProbeFailure]              # path -> stat(2)
    npppd_users: tuple[str, ...] | ProbeFailure              # user names of npppd-users
    npppd_pools: NpppdPools | ProbeFailure = ProbeFailure(   # npppd.conf's pool-address
        C.NPPPD_CONF, "skipped", "not read")
    # For the unprivileged serve, from root's last check: SHA-256 digests of the
    # npppd-users names (a name is never written down), and when root saw them.
    npppd_user_digests: frozenset[str] | None = None
    observed_at: float | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the checks judge, as gathered at one moment: one field per collector."""

    collected_at: float
    sysctl: SysctlFacts
    rcctl: RcFacts
    pf: PfFacts
    ipsec: IpsecFacts
    isakmpd: IsakmpdFacts
    ifconfig: IfconfigFacts
    npppctl: NpppctlFacts
    files: FilesFacts
    logs: LogFacts
    collectors: tuple[CollectorRun, ...] = field(default=())
    hostname: str = ""
    as_root: bool = False            # collected with root's privileges

    def failures(self) -> tuple[ProbeFailure, ...]:
        return tuple(f for run in self.collectors for f in run.failures)


def unknown_facts(cfg: Config, reason: ProbeFailure, collected_at: float = 0.0,
                  runs: tuple[CollectorRun, ...] = ()) -> Facts:
    """Facts of which nothing is known: every collector failed for `reason`."""
    return _facts(collected_at, {name: _all_failed(name, cfg, reason) for name in COLLECTORS},
                  runs)


def _all_failed(name: str, cfg: Config, f: ProbeFailure) -> Any:
    """The facts of collector `name` when it could not run at all."""
    per_daemon = {d: f for d in cfg.daemons}
    if name == "sysctl":
        return SysctlFacts(f, f)
    if name == "rcctl":
        return RcFacts(f, per_daemon, per_daemon, f)
    if name == "pf":
        return PfFacts(f, f, f, f, f, f, f)
    if name == "ipsec":
        return IpsecFacts(f)
    if name == "isakmpd":
        return IsakmpdFacts(f, f)
    if name == "ifconfig":
        return IfconfigFacts(f)
    if name == "logs":
        return LogFacts(f)
    if name == "npppctl":
        return NpppctlFacts(f)
    return FilesFacts({}, f, f)


def _facts(collected_at: float, by_collector: Mapping[str, Any],
           runs: tuple[CollectorRun, ...]) -> Facts:
    v = by_collector
    return Facts(collected_at, v["sysctl"], v["rcctl"], v["pf"], v["ipsec"], v["isakmpd"],
                 v["ifconfig"], v["npppctl"], v["files"], v["logs"], runs)


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

    def __init__(self, host: Host, cfg: Config, name: str, is_root: bool,
                 observed: Mapping[str, Any] | None, log_state: str | None) -> None:
        self.host, self.cfg, self.name = host, cfg, name
        self.is_root, self.observed, self.log_state = is_root, observed, log_state
        self.failures: list[ProbeFailure] = []
        self.waited_s = 0.0   # wall time its commands ran beyond this thread's CPU time

    def fail(self, source: str, kind: str, reason: str) -> ProbeFailure:
        f = ProbeFailure(source, kind, reason)
        self.failures.append(f)
        return f

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Count the wall time a command or isakmpd takes beyond this thread's CPU time."""
        wall0, cpu0 = time.monotonic(), time.thread_time()
        try:
            yield
        finally:
            self.waited_s += max(0.0, (time.monotonic() - wall0) - (time.thread_time() - cpu0))

    def run(self, cmd: C.Command) -> CommandResult | ProbeFailure:
        try:
            with self.waiting():
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
                hint = (f" (run as root, or add `{doas_rule(cmd.argv, effective_user())}` to "
                        "/etc/doas.conf" + ("" if self.cfg.use_doas else
                                            " and set `doas = true` under [commands]") + ")")
            return self.fail(cmd.display, "permission",
                             f"`{cmd.display}`: permission denied: {said}{hint}")
        return self.fail(cmd.display, "error",
                         f"`{cmd.display}` exited {r.returncode}: {said}")

    def parse(self, cmd: C.Command, fn: Callable[..., T], *args: Any) -> T | ProbeFailure:
        return self.parse_file(cmd.display, fn, *args)

    def parse_file(self, source: str, fn: Callable[..., T], *args: Any) -> T | ProbeFailure:
        """fn(*args), or the failure of `source` (a command or a file) it raised."""
        try:
            return fn(*args)
        except ParseError as e:
            return self.fail(source, "parse", str(e))
        except Exception as e:  # a parser bug: this fact is lost, not the collection
            return self.fail(source, "parse", f"`{source}` output: not understood "
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


def _collect_sysctl(c: _Collect) -> SysctlFacts:
    cmd = C.sysctl_command(c.cfg.sysctl_names)
    r = c.run(cmd)
    reading = r if failed(r) else c.parse(cmd, sysctl.parse_get, r.stdout, r.stderr)
    text = c.read(C.SYSCTL_CONF)
    conf: SysctlConf | ProbeFailure
    if failed(text):
        conf = text
    else:
        conf = c.parse_file(C.SYSCTL_CONF, sysctl.parse_conf, text or "", C.SYSCTL_CONF)
    return SysctlFacts(reading, conf)


def _collect_rcctl(c: _Collect) -> RcFacts:
    r = c.run(C.RCCTL_LS_ON)
    rc_on = r if failed(r) else c.parse(C.RCCTL_LS_ON, rcctl.parse_ls, r.stdout, "rcctl ls on")
    flags: dict[str, DaemonFlags | ProbeFailure] = {}
    checks: dict[str, DaemonCheck | ProbeFailure] = {}
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
    procs: tuple[Process, ...] | ProbeFailure
    try:
        procs = c.host.processes()
    except (OSError, HostError) as e:
        procs = c.fail("process list", "error", f"process list: {e}")
    return RcFacts(rc_on, flags, checks, procs)


def _collect_pf(c: _Collect) -> PfFacts:
    r = c.run(C.PFCTL_INFO)
    info = r if failed(r) else c.parse(C.PFCTL_INFO, pfctl.parse_info, r.stdout)
    r = c.run(C.PFCTL_LIMITS)
    limits = r if failed(r) else c.parse(C.PFCTL_LIMITS, pfctl.parse_limits, r.stdout)
    r = c.run(C.PFCTL_RULES)
    rules = r if failed(r) else c.parse(C.PFCTL_RULES, pfctl.parse_rules, r.stdout, "pfctl -sr")
    r = c.run(C.PFCTL_RULES_TREE)
    tree = r if failed(r) else c.parse(C.PFCTL_RULES_TREE, pfctl.parse_rule_tree, r.stdout)
    r = c.run(C.PFCTL_INTERFACES)
    ifaces = r if failed(r) else c.parse(C.PFCTL_INTERFACES, pfctl.parse_interfaces, r.stdout)
    # `ifconfig: egress: no such interface`: no default route, so no egress at all.
    egress = _interfaces(c, C.IFCONFIG_EGRESS, "ifconfig egress")
    r = c.run(C.PFCTL_CONFIG)
    config: PfConfig | PfConfigInvalid | ProbeFailure
    if failed(r):
        config = r
    elif r.returncode != 0:
        # Exit 1 from -n means pf.conf does not load: a finding, not a probe failure,
        # unless pfctl could not even read the file.
        config = (c.failed_result(C.PFCTL_CONFIG, r) if permission_problem(r.stderr)
                  else PfConfigInvalid(first_line(r.stderr) or "pfctl -n failed"))
    else:
        flat = c.parse(C.PFCTL_CONFIG, pfctl.parse_rules, r.stdout, "pfctl -nvf " + C.PF_CONF)
        # -nvf also prints option lines (`set skip on ...`): nested from the one parse.
        config = flat if failed(flat) else PfConfig(
            flat, c.parse(C.PFCTL_CONFIG, pfctl.rule_tree, flat, "pfctl -nvf " + C.PF_CONF),
            frozenset(pfctl.parse_skip(r.stdout)))
    return PfFacts(info, limits, rules, config, tree, ifaces, egress)


def _collect_ipsec(c: _Collect) -> IpsecFacts:
    r = c.run(C.IPSECCTL_SA)
    return IpsecFacts(r if failed(r) else c.parse(C.IPSECCTL_SA, ipsecctl.parse_sa, r.stdout))


# Root's answers are used by the unprivileged serve for this long; older ones
# are not evidence of what isakmpd holds now.
OBSERVATION_MAX_AGE_S = 15 * 60


def _collect_isakmpd(c: _Collect) -> IsakmpdFacts:
    if not c.is_root:
        return _observed(c)
    passive: tuple[str, ...] | ProbeFailure
    tag = "[Phase 2]:Passive-Connections"
    source = f"isakmpd FIFO: C get {tag}"
    answer: str | None | ProbeFailure
    try:
        with c.waiting():
            answer = c.host.query_isakmpd(tag, c.cfg.command_timeout_s)
    except IsakmpdNotRunning as e:
        # Nobody to ask: daemon.isakmpd.running says so; not a failure to collect.
        answer = ProbeFailure(source, "skipped", str(e))
    except HostError as e:
        answer = c.fail(source, "error", f"cannot ask isakmpd for its policy: {e}")
    if answer is None:
        passive = c.fail(source, "timeout", f"isakmpd wrote no answer to `C get {tag}` within "
                                            f"{c.cfg.command_timeout_s:g} s")
    elif failed(answer):
        passive = answer
    else:
        passive = c.parse_file(source, isakmpd.parse_passive_connections, answer)
    r = c.run(C.IPSECCTL_IKE)
    proposals: tuple[IkePhase1, ...] | ProbeFailure
    if failed(r):
        proposals = r
    elif r.returncode != 0:
        # A syntax error still prints the rules read before it: not data.
        proposals = c.failed_result(C.IPSECCTL_IKE, r)
    else:
        proposals = c.parse(C.IPSECCTL_IKE, ipsecctl.parse_ike_nvf, r.stdout)
    return IsakmpdFacts(passive, proposals)


def _fresh(c: _Collect, what: str) -> tuple[Mapping[str, Any] | None, str]:
    """Root's last observation record if it is recent enough, else (None, why not)."""
    record = c.observed or {}
    at = record.get("time")
    why = f"{what} root's alone: root's `obsdvpn-agent check` (cron) reports it"
    if not isinstance(at, (int, float)):
        return None, f"{why}, and it has left no record yet"
    age = time.time() - at
    if age > OBSERVATION_MAX_AGE_S:
        return None, f"{why}; its last record is {age / 60:.0f} minutes old"
    return record, ""


def _observed(c: _Collect) -> IsakmpdFacts:
    """Root's last answers, for the unprivileged serve (no secret is in them)."""
    record, why = _fresh(c, "isakmpd's FIFO and ipsec.conf are")
    if record is None:
        skipped = ProbeFailure("isakmpd", "skipped", why)
        return IsakmpdFacts(skipped, skipped)
    try:
        passive = record["passive"]
        passive_value: tuple[str, ...] | ProbeFailure = (
            tuple(str(x) for x in passive) if isinstance(passive, list)
            else ProbeFailure("isakmpd", "skipped", f"root's check could not tell: {passive}"))
        proposals_value: tuple[IkePhase1, ...] | ProbeFailure = (
            tuple(IkePhase1(**p) for p in record["proposals"])
            if isinstance(record["proposals"], list)
            else ProbeFailure("isakmpd", "skipped",
                              f"root's check could not tell: {record['proposals']}"))
    except (KeyError, TypeError) as e:
        bad = c.fail("isakmpd", "error", f"root's observation record is not understood: {e}")
        return IsakmpdFacts(bad, bad)
    return IsakmpdFacts(passive_value, proposals_value, float(record["time"]))


def user_digest(name: str) -> str:
    """How root's record names a user of npppd-users: never the name itself."""
    return hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()


def observation(facts: Facts) -> dict[str, Any] | None:
    """What root saw that the unprivileged serve cannot read, none of it secret:
    isakmpd's passive connections, ipsec.conf's phase-1 proposals, npppd.conf's
    pools, and digests of the npppd-users names.  None unless root collected."""
    if not facts.as_root:
        return None
    ike, files = facts.isakmpd, facts.files
    record: dict[str, Any] = {
        "time": facts.collected_at,
        "passive": str(ike.passive) if failed(ike.passive) else list(ike.passive),
        "proposals": (str(ike.proposals) if failed(ike.proposals)
                      else [dataclasses.asdict(p) for p in ike.proposals])}
    if not failed(files.npppd_pools):
        record["pools"] = list(files.npppd_pools.ranges)
    if not failed(files.npppd_users):
        record["users_sha256"] = sorted(user_digest(u) for u in files.npppd_users)
    return record


def _interfaces(c: _Collect, cmd: C.Command, label: str
                ) -> tuple[Interface, ...] | ProbeFailure:
    """`ifconfig NAME` of an interface group: its members, none when ifconfig
    says there is no such interface (the group exists only while it has one)."""
    r = c.run(cmd)
    if failed(r):
        return r
    if r.returncode != 0:
        return (() if ifconfig.parse_ifconfig_error(r.stderr) is not None
                else c.failed_result(cmd, r))
    return c.parse(cmd, ifconfig.parse_ifconfig, r.stdout, label)


def _collect_ifconfig(c: _Collect) -> IfconfigFacts:
    # No pppx interface at all means no session, the group is gone.
    return IfconfigFacts(_interfaces(c, C.IFCONFIG_PPPX, "ifconfig pppx"))


def _collect_npppctl(c: _Collect) -> NpppctlFacts:
    cmd = C.NPPPCTL_SESSIONS
    r = c.run(cmd)
    if failed(r):
        return NpppctlFacts(r)
    if r.returncode != 0:
        # `npppctl: connect: Connection refused`: npppd is down, so nobody is
        # connected; daemon.npppd.running says the rest.  Not a probe failure.
        if npppctl.is_not_running_error(r.stderr) and not permission_problem(r.stderr):
            return NpppctlFacts(())
        return NpppctlFacts(c.failed_result(cmd, r))
    return NpppctlFacts(c.parse(cmd, npppctl.parse_session_all, r.stdout,
                                "npppctl -n session all"))


def _collect_files(c: _Collect) -> FilesFacts:
    stat = {p: c.stat(p) for p in (C.IPSEC_CONF, C.NPPPD_USERS, C.PF_CONF, C.SYSCTL_CONF)}
    users = _root_file(c, C.NPPPD_USERS, "compares the user names",
                       lambda text: npppd_users.parse_usernames(text, C.NPPPD_USERS))
    pools = _root_file(c, C.NPPPD_CONF, "compares the address pool",
                       lambda text: npppd_conf.parse_pools(text, C.NPPPD_CONF))
    digests, observed_at = None, None
    if failed(users) and users.kind == "skipped" or failed(pools) and pools.kind == "skipped":
        record, _ = _fresh(c, "npppd-users and npppd.conf are")
        if record is not None:
            observed_at = float(record["time"])
            seen = record.get("users_sha256")
            if failed(users) and isinstance(seen, list):
                digests = frozenset(str(d) for d in seen)
            ranges = record.get("pools")
            if failed(pools) and isinstance(ranges, list):
                pools = c.parse_file(C.NPPPD_CONF, npppd_conf.pools_of,
                                     tuple(str(r) for r in ranges))
    return FilesFacts(stat, users, pools, digests, observed_at)


def _root_file(c: _Collect, path: str, why: str, parse: Callable[[str], T]) -> T | ProbeFailure:
    """A file that must be root's alone, parsed.  An unprivileged serve cannot read it:
    that is by design, not a collector failure (skipped); root's `check` judges it."""
    text = c.read(path)
    if failed(text) and text.kind == "permission":
        c.failures.remove(text)
        return ProbeFailure(path, "skipped", f"{path} is readable by root only, as it must "
                                             f"be; root's `obsdvpn-agent check` {why}")
    if failed(text):
        return text
    if text is None:
        return c.fail(path, "missing", f"{path}: no such file")
    return c.parse_file(path, parse, text)


def collect_log_counts(host: Host | None, log_path: str, state_path: str,
                       known_users: list[str] | tuple[str, ...] | None,
                       now: float | None = None) -> tuple[LogCounts, bool, tuple[str, ...]]:
    """(totals, read success, notes).  host None (or a local host): the file is read
    directly with its identity; a demo or snapshot host gives the file as text."""
    # Here, not at the top: `check` from cron reads no log and so never
    # compiles the hundred message patterns (bench/bench.py, cold check).
    from .host import logfile
    from .logcounts import LogCounts, update_counts
    from .parsers.syslog import parse_lines

    state = logfile.load_state(state_path)
    previous = LogCounts.from_dict(state.totals)
    reference = datetime.fromtimestamp(now if now is not None else time.time())
    try:
        if host is None or host.label == "local":
            result = logfile.read_new_lines(log_path, state.position)
            lines, position, notes = result.lines, result.position, result.notes
            if position is None:
                return previous, False, notes
        else:
            text, position = logfile.new_text(host.read_file(log_path), state.position)
            lines, notes = tuple(text.splitlines()), ()
    except (OSError, HostError) as e:
        return previous, False, (f"{log_path}: {getattr(e, 'strerror', None) or e}",)
    counts = update_counts(previous, parse_lines(lines, reference), known_users)
    try:
        logfile.save_state(state_path, logfile.LogState(position, counts.to_dict()))
    except OSError as e:
        # Not kept: the same lines are counted again next time, from the same totals.
        return counts, True, notes + (
            f"{state_path}: cannot keep the log position: {e.strerror}",)
    return counts, True, notes


def _collect_logs(c: _Collect) -> LogFacts:
    if c.log_state is None:
        return LogFacts(ProbeFailure("logs", "skipped", "the daemon log is counted only by "
                                                        "`serve`, `metrics` and `check --textfile`"))
    from .host import logfile

    with logfile.kept_state(c.log_state):
        counts, ok, notes = collect_log_counts(c.host, c.cfg.daemon_log, c.log_state, None)
    if not ok:
        return LogFacts(c.fail(c.cfg.daemon_log, "error", "; ".join(notes)
                               or f"{c.cfg.daemon_log}: cannot be read"))
    return LogFacts(counts)


COLLECTORS: dict[str, Callable[[_Collect], Any]] = {
    "sysctl": _collect_sysctl,
    "rcctl": _collect_rcctl,
    "pf": _collect_pf,
    "ipsec": _collect_ipsec,
    "isakmpd": _collect_isakmpd,
    "ifconfig": _collect_ifconfig,
    "npppctl": _collect_npppctl,
    "files": _collect_files,
    "logs": _collect_logs,
}


def _timed(host: Host, cfg: Config, name: str, is_root: bool,
           observed: Mapping[str, Any] | None, log_state: str | None
           ) -> tuple[Any, CollectorRun]:
    c = _Collect(host, cfg, name, is_root, observed, log_state)
    cpu0 = time.thread_time()
    value: Any
    try:
        value = COLLECTORS[name](c)
    except HostError as e:  # e.g. the demo state file went bad mid-collection
        value = _all_failed(name, cfg, c.fail(name, "error", str(e)))
    except Exception as e:  # a bug in one collector must not cost the others
        value = _all_failed(name, cfg, c.fail(
            name, "error", f"{name} collector failed: {type(e).__name__}: {e}"))
    # The collectors share one interpreter lock, so wall time would charge each
    # with the others' work: its own work is its thread's CPU time plus the time
    # its commands ran (a subprocess waits without the lock).
    own = time.thread_time() - cpu0 + c.waited_s
    return value, CollectorRun(name, not c.failures, own, tuple(c.failures))


def gather(host: Host, cfg: Config, parallel: bool = True,
           observed: Mapping[str, Any] | None = None, log_state: str | None = None) -> Facts:
    """Run every collector against host.  observed: root's last observation
    record (see observation()), for what only root can ask.  log_state: where the
    daemon log's read position and totals are kept (None: the log is not read)."""
    now = time.time()
    names = list(COLLECTORS)
    info = host.info()
    is_root = info.is_root
    if parallel:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            done = list(pool.map(lambda n: _timed(host, cfg, n, is_root, observed, log_state), names))
    else:
        done = [_timed(host, cfg, n, is_root, observed, log_state) for n in names]
    facts = _facts(now, {run.name: value for value, run in done}, tuple(run for _, run in done))
    return dataclasses.replace(facts, hostname=info.hostname, as_root=is_root)
