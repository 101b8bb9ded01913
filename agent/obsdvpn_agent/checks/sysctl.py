"""sysctl.NAME: each expected sysctl has its value now and in /etc/sysctl.conf."""

from __future__ import annotations

from ..commands import SYSCTL_CONF
from ..probes import failed
from . import Result, Status


def evaluate(facts, cfg):
    for want in cfg.sysctls:
        yield _one(facts, want)


def _one(facts, want) -> Result:
    cid = f"sysctl.{want.name}"
    bad = Status.CRITICAL if want.required else Status.WARNING
    if failed(facts.sysctl):
        return Result(cid, Status.UNKNOWN, f"cannot read {want.name}: {facts.sysctl}")
    if want.name in facts.sysctl.unknown:
        return Result(cid, bad, f"{want.name} does not exist on this kernel; "
                                "remove it from the agent's configuration or fix the name")
    running = facts.sysctl.get(want.name)
    if running is None:
        return Result(cid, Status.UNKNOWN, f"sysctl printed no value for {want.name}")
    persisted = None if failed(facts.sysctl_conf) else facts.sysctl_conf.get(want.name)
    fix_persist = f"add the line {want.name}={want.value} to {SYSCTL_CONF}"
    if running != want.value:
        also = "" if persisted == want.value else f", and {fix_persist}"
        return Result(cid, bad, f"{want.name} is {running}, expected {want.value}: "
                                f"run `sysctl {want.name}={want.value}`{also}")
    if failed(facts.sysctl_conf):
        return Result(cid, Status.UNKNOWN, f"{want.name} is {want.value} now, but whether it "
                                           f"survives a reboot is unknown: {facts.sysctl_conf}")
    if persisted != want.value:
        found = "missing" if persisted is None else f"set to {persisted}"
        return Result(cid, Status.WARNING,
                      f"{want.name} is {want.value} now but {found} in {SYSCTL_CONF}, so the "
                      f"next reboot loses it: {fix_persist}")
    return Result(cid, Status.OK, f"{want.name}={want.value}, persisted in {SYSCTL_CONF}")
