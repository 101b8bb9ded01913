"""daemon.*, ipsec.enabled: rc.conf.local says the right things and the daemons run."""

from __future__ import annotations

from ..probes import failed
from . import Result, Status


def running(facts, daemon: str) -> bool | None:
    """Whether the daemon runs: `rcctl check`, else the process list, else None."""
    check = facts.daemon_check.get(daemon)
    if check is not None and not failed(check):
        return check.running
    if not failed(facts.processes):
        # When rcctl cannot answer, ps still shows every process to anyone.
        return any(p.name == daemon for p in facts.processes)
    return None


def running_flags(facts, daemon: str) -> tuple[str, ...] | None:
    """The arguments the running daemon was started with, from its command line."""
    if failed(facts.processes):
        return None
    # Privilege-separated daemons retitle some of their processes
    # (`isakmpd: monitor [priv]`); only one that kept its argv shows the flags.
    for p in facts.processes:
        if p.name == daemon and p.cmdline and p.cmdline[0].rsplit("/", 1)[-1] == daemon:
            return tuple(p.cmdline[1:])
    return None


def evaluate(facts, cfg):
    for daemon in cfg.daemons:
        yield _enabled(facts, daemon)
        yield _running(facts, daemon)
        if daemon == "isakmpd":
            yield _isakmpd_flags(facts, cfg)
    yield _ipsec_enabled(facts)


def _enabled(facts, daemon: str) -> Result:
    cid = f"daemon.{daemon}.enabled"
    flags = facts.daemon_flags.get(daemon)
    if flags is None or failed(flags):
        return Result(cid, Status.UNKNOWN, f"cannot tell whether {daemon} is enabled: {flags}")
    if flags.enabled:
        return Result(cid, Status.OK, f"{daemon} is enabled in rc.conf.local")
    return Result(cid, Status.WARNING, f"{daemon} is not enabled, so it will not start at boot: "
                                       f"run `rcctl enable {daemon}`")


def _running(facts, daemon: str) -> Result:
    cid = f"daemon.{daemon}.running"
    state = running(facts, daemon)
    if state is None:
        return Result(cid, Status.UNKNOWN, f"cannot tell whether {daemon} runs: "
                                           f"{facts.daemon_check.get(daemon)}")
    if state:
        return Result(cid, Status.OK, f"{daemon} is running")
    then = " then `ipsecctl -f /etc/ipsec.conf`" if daemon == "isakmpd" else ""
    return Result(cid, Status.CRITICAL, f"{daemon} is not running: run `rcctl start {daemon}`"
                                        f"{then}")


def missing_flags(wanted: str, have: str) -> list[str]:
    """The wanted flags that `have` lacks; `-vK` counts as having -K (getopt clusters)."""
    tokens = have.split()
    letters = {ch for t in tokens if t.startswith("-") and not t.startswith("--")
               and t[1:].isalpha() for ch in t[1:]}
    return [w for w in wanted.split() if w not in tokens
            and not (len(w) == 2 and w[0] == "-" and w[1] in letters)]


def _isakmpd_flags(facts, cfg) -> Result:
    cid = "daemon.isakmpd.flags"
    flags = facts.daemon_flags.get("isakmpd")
    live = running_flags(facts, "isakmpd")
    if live is not None and running(facts, "isakmpd"):
        lacking = missing_flags(cfg.isakmpd_flags, " ".join(live))
        if lacking:
            return Result(cid, Status.CRITICAL,
                          f"the running isakmpd lacks {' '.join(lacking)} (started as "
                          f"`isakmpd {' '.join(live)}`), so it ignores the policy ipsecctl "
                          f"loads: run `rcctl set isakmpd flags {cfg.isakmpd_flags}`, "
                          "`rcctl restart isakmpd` and `ipsecctl -f /etc/ipsec.conf`")
    if flags is None or failed(flags):
        return Result(cid, Status.UNKNOWN, f"cannot read isakmpd's configured flags: {flags}")
    if not flags.enabled:
        return Result(cid, Status.WARNING, "isakmpd is not enabled, so it has no flags: run "
                                           f"`rcctl enable isakmpd` and `rcctl set isakmpd flags "
                                           f"{cfg.isakmpd_flags}`")
    lacking = missing_flags(cfg.isakmpd_flags, flags.flags)
    if lacking:
        shown = flags.flags or "(empty)"
        return Result(cid, Status.WARNING,
                      f"isakmpd's configured flags are {shown}, without {' '.join(lacking)}, so "
                      f"its next start ignores ipsec.conf: run `rcctl set isakmpd flags "
                      f"{' '.join([flags.flags, *lacking]).strip()}`")
    return Result(cid, Status.OK, f"isakmpd flags contain {cfg.isakmpd_flags}")


def _ipsec_enabled(facts) -> Result:
    cid = "ipsec.enabled"
    if failed(facts.rc_on):
        return Result(cid, Status.UNKNOWN, f"cannot tell whether ipsec is enabled: {facts.rc_on}")
    # ipsec is an rcctl special service: `rcctl ls on` lists it when ipsec=YES,
    # which makes /etc/rc load /etc/ipsec.conf at boot.
    if "ipsec" in facts.rc_on:
        return Result(cid, Status.OK, "ipsec is enabled: /etc/rc loads /etc/ipsec.conf at boot")
    return Result(cid, Status.WARNING, "ipsec is not enabled, so the next boot does not load "
                                       "/etc/ipsec.conf: run `rcctl enable ipsec`")
