"""Repair: plan(results, facts, config) -> actions; apply(plan, host).

Each action names the check it fixes, what it changes (before -> after) and
the exact argv it runs, built only from commands.REPAIR_ARGV_TEMPLATES.  The
plan is ordered sysctls and files, then daemons (isakmpd before ipsec.conf is
loaded, then npppd), then pf.  Safety rules kept here, not in callers:
never load a config that fails validation, never disable pf, never restart a
daemon that runs, never widen a file's permissions.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass, field

from . import commands as C
from .checks import Result, Status
from .checks.daemons import missing_flags, running
from .checks.pf import vpn_rules_missing
from .host.base import Host, HostError
from .parsers import first_line
from .parsers.sysctl import set_conf_value
from .probes import PfConfigInvalid, failed

log = logging.getLogger("obsdvpn-agent")


@dataclass(frozen=True)
class Action:
    check: str                       # the check it fixes
    what: str                        # one line for people
    before: str
    after: str
    argv: tuple[str, ...] = ()       # the command it runs (empty for file edits)
    validate: tuple[str, ...] = ()   # run first; a non-zero exit refuses the action
    path: str = ""                   # file edits: the file
    mode: int | None = None          # chmod target
    sysctl: tuple[str, str] | None = None   # persist name=value in sysctl.conf
    owner_root: bool = False         # chown root (narrows who can touch it)
    needs_isakmpd: bool = False

    @property
    def shown(self) -> str:
        if self.argv:
            return " ".join(self.argv)
        if self.mode is not None:
            return f"chmod {self.mode:o} {self.path}"
        if self.owner_root:
            return f"chown root {self.path}"
        if self.sysctl:
            return f"edit {self.path}: {self.sysctl[0]}={self.sysctl[1]}"
        return self.what


@dataclass(frozen=True)
class Outcome:
    action: Action
    result: str        # applied, failed, refused, skipped
    message: str = ""


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()      # failing checks repair will not touch, and why


_PLACEHOLDERS = {
    "{name}={value}": re.compile(r"[a-z][a-z0-9_.]*=[A-Za-z0-9_.-]+"),
    "{daemon}": re.compile(r"isakmpd|npppd|ipsec|pf"),
    "{flags}": re.compile(r"[A-Za-z0-9 _./=-]*"),
}


def allowed(argv: tuple[str, ...]) -> bool:
    """True when argv has the shape of one of commands.REPAIR_ARGV_TEMPLATES."""
    def match(template: str, arg: str) -> bool:
        pattern = _PLACEHOLDERS.get(template)
        return pattern.fullmatch(arg) is not None if pattern else template == arg

    return any(len(t) == len(argv) and all(match(x, a) for x, a in zip(t, argv))
               for t in C.REPAIR_ARGV_TEMPLATES)


def plan(results: tuple[Result, ...], facts, cfg, only: tuple[str, ...] = ()) -> Plan:
    bad = {r.check: r for r in results if r.status is not Status.OK
           and (not only or r.check in only)}
    actions: list[Action] = []
    notes: list[str] = []

    # 1. sysctls, running and persisted
    for want in cfg.sysctls:
        r = bad.pop(f"sysctl.{want.name}", None)
        if r is None or r.status is Status.UNKNOWN or failed(facts.sysctl):
            if r is not None:
                notes.append(f"{r.check}: {r.summary}")
            continue
        if want.name in facts.sysctl.unknown:
            notes.append(f"{r.check}: {want.name} does not exist here; not repairable")
            continue
        now = facts.sysctl.get(want.name)
        if now != want.value:
            actions.append(Action(r.check, f"set {want.name} at runtime", now or "?", want.value,
                                  argv=(C.SYSCTL, f"{want.name}={want.value}")))
        if not failed(facts.sysctl_conf) and facts.sysctl_conf.get(want.name) != want.value:
            actions.append(Action(r.check, f"persist {want.name}={want.value}",
                                  facts.sysctl_conf.get(want.name) or "(missing)", want.value,
                                  path=C.SYSCTL_CONF, sysctl=(want.name, want.value)))

    # 2. files: tighten only (clear group/other bits), never widen
    for cid, path in (("files.ipsec_conf", C.IPSEC_CONF), ("files.npppd_users", C.NPPPD_USERS)):
        r = bad.pop(cid, None)
        if r is None:
            continue
        info = facts.files.get(path)
        if info is None or failed(info) or not info.exists:
            notes.append(f"{cid}: {r.summary}")
            continue
        # At most rw for the owner, and only bits it had: never widens.
        tight = info.mode & 0o600
        if tight != info.mode:
            actions.append(Action(cid, f"make {path} private to its owner", f"{info.mode:04o}",
                                  f"{tight:04o}", path=path, mode=tight))
        if info.uid != 0:
            actions.append(Action(cid, f"give {path} to root", info.owner or str(info.uid),
                                  "root", path=path, owner_root=True))

    # 3. daemons: isakmpd (then ipsec.conf), npppd
    start_isakmpd = False
    for daemon in cfg.daemons:
        r = bad.pop(f"daemon.{daemon}.enabled", None)
        if r is not None and r.status is not Status.UNKNOWN:
            actions.append(Action(r.check, f"enable {daemon} at boot", "disabled", "enabled",
                                  argv=(C.RCCTL, "enable", daemon)))
        if daemon == "isakmpd":
            r = bad.pop("daemon.isakmpd.flags", None)
            flags = facts.daemon_flags.get("isakmpd")
            if r is not None and flags is not None and not failed(flags):
                lacking = missing_flags(cfg.isakmpd_flags, flags.flags)
                if lacking:
                    new = " ".join([flags.flags, *lacking]).strip()
                    actions.append(Action(r.check, "add the required isakmpd flags",
                                          flags.flags or "(empty)", new,
                                          argv=(C.RCCTL, "set", "isakmpd", "flags", new)))
                if r.status is Status.CRITICAL:
                    notes.append("daemon.isakmpd.flags: the running isakmpd lacks "
                                 f"{cfg.isakmpd_flags}; restarting it drops every connected "
                                 "user, so repair leaves that to you: `rcctl restart isakmpd` "
                                 "then `ipsecctl -f /etc/ipsec.conf`")
            elif r is not None:
                notes.append(f"{r.check}: {r.summary}")
        r = bad.pop(f"daemon.{daemon}.running", None)
        if r is not None and running(facts, daemon) is False:
            actions.append(Action(r.check, f"start {daemon}", "stopped", "running",
                                  argv=(C.RCCTL, "start", daemon)))
            start_isakmpd = start_isakmpd or daemon == "isakmpd"
        elif r is not None:
            notes.append(f"{r.check}: {r.summary}")
        if daemon == "isakmpd":
            ike = bad.pop("ipsec.ike_rules", None)
            if start_isakmpd:
                # isakmpd -K starts with no policy: load ipsec.conf once it runs.
                actions.append(Action(ike.check if ike else "daemon.isakmpd.running",
                                      "load /etc/ipsec.conf into isakmpd", "not loaded", "loaded",
                                      argv=(C.IPSECCTL, "-f", C.IPSEC_CONF),
                                      validate=(C.IPSECCTL, "-nf", C.IPSEC_CONF),
                                      needs_isakmpd=True))
            elif ike is not None:
                notes.append(f"{ike.check}: {ike.summary}")
    r = bad.pop("ipsec.enabled", None)
    if r is not None and r.status is not Status.UNKNOWN:
        actions.append(Action(r.check, "load ipsec.conf at boot (ipsec=YES)", "ipsec=NO",
                              "ipsec=YES", argv=(C.RCCTL, "enable", "ipsec")))

    # 4. pf: enable, then load pf.conf if it validates and has the VPN rules
    r = bad.pop("pf.enabled", None)
    if r is not None and not failed(facts.pf_info):
        if not facts.pf_info.enabled:
            actions.append(Action(r.check, "enable pf", "disabled", "enabled",
                                  argv=(C.PFCTL, "-e")))
        if not failed(facts.rc_on) and "pf" not in facts.rc_on:
            actions.append(Action(r.check, "enable pf at boot", "pf=NO", "pf=YES",
                                  argv=(C.RCCTL, "enable", "pf")))
    elif r is not None:
        notes.append(f"{r.check}: {r.summary}")
    pf_checks = [r for r in (bad.pop("pf.vpn_rules", None), bad.pop("pf.ruleset", None)) if r]
    known = [r for r in pf_checks if r.status is not Status.UNKNOWN]
    notes += [f"{r.check}: {r.summary}" for r in pf_checks if r.status is Status.UNKNOWN]
    target = known[0] if known else None
    if target is not None:
        config = facts.pf_config
        if failed(config):
            notes.append(f"{target.check}: {target.summary}")
        elif isinstance(config, PfConfigInvalid):
            actions.append(Action(target.check, f"load {C.PF_CONF}", "loaded ruleset",
                                  C.PF_CONF, argv=(C.PFCTL, "-f", C.PF_CONF),
                                  validate=(C.PFCTL, "-nf", C.PF_CONF)))
        elif vpn_rules_missing(config, cfg):
            notes.append(f"{target.check}: {C.PF_CONF} itself lacks "
                         f"{', '.join(vpn_rules_missing(config, cfg))}; repair will not load a "
                         "pf.conf that would cut the VPN off: fix the file first")
        else:
            actions.append(Action(target.check, f"load {C.PF_CONF}", "loaded ruleset differs",
                                  f"the rules of {C.PF_CONF}", argv=(C.PFCTL, "-f", C.PF_CONF),
                                  validate=(C.PFCTL, "-nf", C.PF_CONF)))
    for r in bad.values():
        notes.append(f"{r.check}: {r.summary}")
    for a in actions:
        for argv in (a.argv, a.validate):
            if argv and not allowed(argv):
                raise AssertionError(f"repair planned an argv outside its allow-list: {argv}")
    return Plan(tuple(actions), tuple(notes))


def apply(p: Plan, host: Host, timeout_s: float) -> tuple[Outcome, ...]:
    outcomes: list[Outcome] = []
    for a in p.actions:
        o = _apply_one(a, host, timeout_s)
        outcomes.append(o)
        level = logging.INFO if o.result == "applied" else logging.WARNING
        log.log(level, "repair %s: %s (%s -> %s): %s%s", a.check, a.shown, a.before, a.after,
                o.result, f": {o.message}" if o.message else "")
    return tuple(outcomes)


def _apply_one(a: Action, host: Host, timeout_s: float) -> Outcome:
    try:
        if a.needs_isakmpd:
            r = host.run((C.RCCTL, "check", "isakmpd"), timeout_s)
            if r.returncode != 0:
                return Outcome(a, "skipped", "isakmpd is not running")
        if a.validate:
            r = host.run(a.validate, timeout_s)
            if r.returncode != 0:
                return Outcome(a, "refused", f"`{' '.join(a.validate)}` failed: "
                                             f"{first_line(r.stderr) or first_line(r.stdout)}")
        if a.argv:
            r = host.run(a.argv, timeout_s)
            if r.returncode != 0:
                return Outcome(a, "failed", first_line(r.stderr) or f"exit {r.returncode}")
            return Outcome(a, "applied")
        if a.mode is not None:
            now = host.stat_file(a.path)
            if not now.exists:
                return Outcome(a, "failed", f"{a.path} is gone")
            if a.mode & ~now.mode:  # would add a bit: never widen
                return Outcome(a, "refused", f"{a.path} changed to {now.mode:04o} meanwhile")
            host.chmod(a.path, a.mode)
            return Outcome(a, "applied")
        if a.owner_root:
            now = host.stat_file(a.path)
            if not now.exists:
                return Outcome(a, "failed", f"{a.path} is gone")
            host.chown(a.path, 0, now.gid)
            return Outcome(a, "applied")
        if a.sysctl:
            name, value = a.sysctl
            try:
                text = host.read_file(a.path)
                mode = host.stat_file(a.path).mode
            except FileNotFoundError:
                text, mode = "", 0o644
            backup = host.write_file(a.path, set_conf_value(text, name, value), mode)
            return Outcome(a, "applied", f"backup in {backup}" if backup else "")
    except (HostError, OSError) as e:
        return Outcome(a, "failed", str(e))
    return Outcome(a, "skipped", "nothing to do")


def exit_code(p: Plan, outcomes: tuple[Outcome, ...], after: tuple[Result, ...]) -> int:
    """0 nothing to do, 1 fixed and verified, 2 still failing, 3 refused a config.

    Only what the plan acted on counts: a check repair cannot fix is printed as
    "not repaired" and left to `check` and the alerts, so cron does not report
    the same failed repair every run.
    """
    if not p.actions:
        return 0
    if any(o.result == "refused" for o in outcomes):
        return 3
    targeted = {a.check for a in p.actions}
    if any(o.result == "failed" for o in outcomes) or any(
            r.check in targeted and r.status is not Status.OK for r in after):
        return 2
    return 1


class LockHeld(Exception):
    pass


@dataclass
class RepairLock:
    """An exclusive, non-blocking flock: cron, boot and an admin never repair at once."""

    path: str
    _fd: int | None = field(default=None, repr=False)

    def __enter__(self) -> "RepairLock":
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise LockHeld(f"another repair holds the lock {self.path} (pid {holder})")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
