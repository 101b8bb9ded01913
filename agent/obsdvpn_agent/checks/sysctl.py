"""sysctl.NAME: each expected sysctl has its value now and in /etc/sysctl.conf."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import SYSCTL, SYSCTL_CONF
from ..probes import failed
from . import PHASE_SYSCTL, Action, Result, Results, Status

if TYPE_CHECKING:
    from ..config import Config, ExpectedSysctl
    from ..probes import Facts


def evaluate(facts: Facts, cfg: Config) -> Results:
    for want in cfg.sysctls:
        yield _one(facts, want)


def _one(facts: Facts, want: ExpectedSysctl) -> Result:
    cid = f"sysctl.{want.name}"
    bad = Status.CRITICAL if want.required else Status.WARNING
    reading, conf = facts.sysctl.running, facts.sysctl.conf
    persisted = None if failed(conf) else conf.get(want.name)
    running = None if failed(reading) else reading.get(want.name)
    values = {"name": want.name, "expected": want.value, "running": running,
              "ok": None if running is None else running == want.value,
              "persisted": None if failed(conf) else persisted == want.value}
    if failed(reading):
        return Result(cid, Status.UNKNOWN, f"cannot read {want.name}: {reading}", values)
    if want.name in reading.unknown:
        return Result(cid, bad, f"{want.name} does not exist on this kernel; "
                                "remove it from the agent's configuration or fix the name",
                      values, repair_note=f"{want.name} does not exist here; not repairable")
    if running is None:
        return Result(cid, Status.UNKNOWN, f"sysctl printed no value for {want.name}", values)
    actions = []
    if running != want.value:
        actions.append(Action(cid, f"set {want.name} at runtime", running, want.value,
                              argv=(SYSCTL, f"{want.name}={want.value}"), order=(PHASE_SYSCTL,)))
    if not failed(conf) and persisted != want.value:
        actions.append(Action(cid, f"persist {want.name}={want.value}", persisted or "(missing)",
                              want.value, path=SYSCTL_CONF, sysctl=(want.name, want.value),
                              order=(PHASE_SYSCTL,)))
    fix_persist = f"add the line {want.name}={want.value} to {SYSCTL_CONF}"
    if running != want.value:
        also = "" if persisted == want.value else f", and {fix_persist}"
        return Result(cid, bad, f"{want.name} is {running}, expected {want.value}: "
                                f"run `sysctl {want.name}={want.value}`{also}",
                      values, tuple(actions))
    if failed(conf):
        return Result(cid, Status.UNKNOWN, f"{want.name} is {want.value} now, but whether it "
                                           f"survives a reboot is unknown: {conf}", values)
    if persisted != want.value:
        found = "missing" if persisted is None else f"set to {persisted}"
        return Result(cid, Status.WARNING,
                      f"{want.name} is {want.value} now but {found} in {SYSCTL_CONF}, so the "
                      f"next reboot loses it: {fix_persist}", values, tuple(actions))
    return Result(cid, Status.OK, f"{want.name}={want.value}, persisted in {SYSCTL_CONF}",
                  values)
