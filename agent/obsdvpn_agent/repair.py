"""Repair: plan(results, facts, config) -> actions; apply(plan, host).

Each action names the check it fixes, what it changes (before -> after) and
the exact argv it runs, built only from commands.REPAIR_ARGV_TEMPLATES.  The
plan is ordered sysctls and files, then daemons (isakmpd before ipsec.conf is
loaded, then npppd), then pf.  Safety rules kept here, not in callers:
never load a config that fails validation, never disable pf, never restart a
daemon that runs, never widen a file's permissions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import commands as C
from .checks import Action, Result, Status
from .host.base import Host, HostError
from .parsers import first_line
from .parsers.sysctl import set_conf_value

log = logging.getLogger("obsdvpn-agent")


@dataclass(frozen=True)
class Outcome:
    action: Action
    result: str        # applied, failed, refused, skipped
    message: str = ""


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()      # failing checks repair will not touch, and why


@dataclass(frozen=True)
class Pause:
    """`obsdvpn-agent pause`: repair changes nothing until `resume` or `until`."""

    since: float
    until: float | None      # None: until `resume`
    reason: str

    @classmethod
    def in_force(cls, record: Mapping[str, Any], now: float) -> Pause | None:
        """The pause a record holds, if it still holds at `now` (a bad record: none)."""
        since, until, reason = record.get("since"), record.get("until"), record.get("reason", "")
        if not isinstance(since, (int, float)) or not isinstance(reason, str):
            return None
        if until is not None and (not isinstance(until, (int, float)) or until <= now):
            return None
        return cls(float(since), None if until is None else float(until), reason)

    def to_record(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "reason": self.reason}

    def describe(self) -> str:
        """`repair is paused since 2026-11-29 13:00 UTC until ...: reason`."""
        until = "until `obsdvpn-agent resume`" if self.until is None else \
            f"until {_when(self.until)}"
        why = f": {self.reason}" if self.reason else ""
        return f"repair is paused since {_when(self.since)} {until}{why}"


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")




def allowed(argv: tuple[str, ...]) -> bool:
    """True when argv has the shape of one of commands.REPAIR_ARGV_TEMPLATES."""
    def match(template: str, arg: str) -> bool:
        pattern = C.REPAIR_PLACEHOLDERS.get(template)
        return pattern.fullmatch(arg) is not None if pattern else template == arg

    return any(len(t) == len(argv) and all(match(x, a) for x, a in zip(t, argv))
               for t in C.REPAIR_ARGV_TEMPLATES)


def plan(results: tuple[Result, ...], only: tuple[str, ...] = (),
         skip: tuple[str, ...] = ()) -> Plan:
    """The actions the failing checks ask for, in repair's phase order, each once.

    A check with no action, or with a note on why repair stops short, becomes a
    "not repaired" note; so does an action outside the allow-list, without
    sinking the rest of the plan.  `skip` (the configuration's [repair] skip)
    keeps repair off those checks; an action marked when_named is planned only
    when `only` names its check.
    """
    chosen = [r for r in results if r.status is not Status.OK and (not only or r.check in only)]
    actions: dict[tuple[object, ...], Action] = {}
    notes: list[str] = []
    for r in chosen:
        if r.check in skip:
            notes.append(f"{r.check}: skipped ([repair] skip in the configuration)")
            continue
        wanted = tuple(a for a in r.actions if not a.when_named or r.check in only)
        if r.repair_note:
            notes.append(f"{r.check}: {r.repair_note}")
        elif r.actions and not wanted:
            notes.append(f"{r.check}: {r.summary}; repair does that only when asked by name: "
                         f"`obsdvpn-agent repair --only {r.check}`")
        elif not wanted:
            notes.append(f"{r.check}: {r.summary}")
        for a in wanted:
            outside = [argv for argv in (a.argv, a.validate) if argv and not allowed(argv)]
            if outside:
                notes.append(f"{r.check}: repair will not run `{' '.join(outside[0])}`: it is "
                             "not one of the commands repair may run; "
                             f"do it by hand if it is right: {a.what}")
            else:
                actions.setdefault(a.change, a)
    return Plan(tuple(sorted(actions.values(), key=lambda a: a.order)), tuple(notes))


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
