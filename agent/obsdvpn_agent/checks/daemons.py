"""daemon.*, ipsec.enabled: rc.conf.local says the right things and the daemons run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..commands import IPSEC_CONF, IPSECCTL, RCCTL
from ..parsers import ParseError
from ..parsers.isakmpd import IsakmpdOptions, parse_flags
from ..probes import failed
from . import PHASE_BOOT, PHASE_DAEMONS, Action, Result, Results, Status, Value

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def running(facts: Facts, daemon: str) -> bool | None:
    """Whether the daemon runs: `rcctl check`, else the process list, else None."""
    check = facts.rcctl.check.get(daemon)
    if check is not None and not failed(check):
        return check.running
    procs = facts.rcctl.processes
    if not failed(procs):
        # When rcctl cannot answer, ps still shows every process to anyone.
        return any(p.name == daemon for p in procs)
    return None


def running_flags(facts: Facts, daemon: str) -> tuple[str, ...] | None:
    """The arguments the running daemon was started with, from its command line."""
    procs = facts.rcctl.processes
    if failed(procs):
        return None
    # Privilege-separated daemons retitle some of their processes
    # (`isakmpd: monitor [priv]`); only one that kept its argv shows the flags.
    for p in procs:
        if p.name == daemon and p.cmdline and p.cmdline[0].rsplit("/", 1)[-1] == daemon:
            return tuple(p.cmdline[1:])
    return None


def start_actions(cid: str, daemon: str, index: int) -> tuple[Action, ...]:
    """Start a stopped daemon; isakmpd -K starts with no policy, so load ipsec.conf after."""
    start = Action(cid, f"start {daemon}", "stopped", "running", argv=(RCCTL, "start", daemon),
                   order=(PHASE_DAEMONS, index, 2))
    if daemon != "isakmpd":
        return (start,)
    return (start, load_policy_action(cid, index))


def load_policy_action(cid: str, index: int) -> Action:
    """Load ipsec.conf into a running isakmpd (`ipsecctl -f`, validated with -n first)."""
    return Action(cid, f"load {IPSEC_CONF} into isakmpd", "not loaded", "loaded",
                  argv=(IPSECCTL, "-f", IPSEC_CONF), validate=(IPSECCTL, "-nf", IPSEC_CONF),
                  needs_isakmpd=True, order=(PHASE_DAEMONS, index, 3))


def evaluate(facts: Facts, cfg: Config) -> Results:
    for index, daemon in enumerate(cfg.daemons):
        yield _enabled(facts, daemon, index)
        yield _running(facts, daemon, index)
        if daemon == "isakmpd":
            yield _isakmpd_flags(facts, cfg, index)
    yield _ipsec_enabled(facts)


def _enabled(facts: Facts, daemon: str, index: int) -> Result:
    cid = f"daemon.{daemon}.enabled"
    flags = facts.rcctl.flags.get(daemon)
    if flags is None or failed(flags):
        return Result(cid, Status.UNKNOWN, f"cannot tell whether {daemon} is enabled: {flags}",
                      {"daemon": daemon, "enabled": None, "flags": None})
    values: dict[str, Value] = {"daemon": daemon, "enabled": flags.enabled, "flags": flags.flags}
    if flags.enabled:
        return Result(cid, Status.OK, f"{daemon} is enabled in rc.conf.local", values)
    return Result(cid, Status.WARNING, f"{daemon} is not enabled, so it will not start at boot: "
                                       f"run `rcctl enable {daemon}`", values,
                  (Action(cid, f"enable {daemon} at boot", "disabled", "enabled",
                          argv=(RCCTL, "enable", daemon), order=(PHASE_DAEMONS, index, 0)),))


def _running(facts: Facts, daemon: str, index: int) -> Result:
    cid = f"daemon.{daemon}.running"
    state = running(facts, daemon)
    live = running_flags(facts, daemon)
    values: dict[str, Value] = {"daemon": daemon, "running": state,
              "running_flags": None if live is None else " ".join(live)}
    if state is None:
        return Result(cid, Status.UNKNOWN, f"cannot tell whether {daemon} runs: "
                                           f"{facts.rcctl.check.get(daemon)}", values)
    if state:
        return Result(cid, Status.OK, f"{daemon} is running", values)
    then = f" then `ipsecctl -f {IPSEC_CONF}`" if daemon == "isakmpd" else ""
    return Result(cid, Status.CRITICAL, f"{daemon} is not running: run `rcctl start {daemon}`"
                                        f"{then}", values, start_actions(cid, daemon, index))


def running_isakmpd(facts: Facts) -> tuple[tuple[str, ...], IsakmpdOptions] | None:
    """The running isakmpd's arguments and the options its getopt reads in them; None
    when no process shows them, or when isakmpd's getopt refuses them (an argv it
    refuses is not one it runs with)."""
    argv = running_flags(facts, "isakmpd")
    if argv is None:
        return None
    try:
        return argv, parse_flags(" ".join(argv), "isakmpd's argv")
    except ParseError:
        return None


def missing_options(wanted: str, present: IsakmpdOptions) -> list[str]:
    """The options of `wanted` that isakmpd started with `present` lacks, spelled as in
    `wanted`.  Both are read with isakmpd's own getopt string, so `-vK` has -K but
    `-vfK` does not (-f takes "K" as its FIFO path).  (config.load() refuses a
    `wanted` that getopt refuses.)"""
    required = parse_flags(wanted, "the agent's [isakmpd] flags")
    return [f"-{letter}" + (f" {arg}" if arg else "") for letter, arg in required.options
            if letter not in present.letters]


def _isakmpd_flags(facts: Facts, cfg: Config, index: int) -> Result:
    cid = "daemon.isakmpd.flags"
    flags = facts.rcctl.flags.get("isakmpd")
    live = running_isakmpd(facts)
    live_argv: tuple[str, ...] = ()
    live_lacking: list[str] = []
    if live is not None and running(facts, "isakmpd"):
        live_argv, options = live
        live_lacking = missing_options(cfg.isakmpd_flags, options)
    if flags is None or failed(flags):
        values: dict[str, Value] = {"flags_ok": False if live_lacking else None}
        if live_lacking:
            return Result(cid, Status.CRITICAL, _live_lacking(cfg, live_lacking, live_argv), values,
                          repair_note=_restart_note(cfg))
        return Result(cid, Status.UNKNOWN, f"cannot read isakmpd's configured flags: {flags}",
                      values)
    try:
        lacking = missing_options(cfg.isakmpd_flags,
                                  parse_flags(flags.flags, "rcctl get isakmpd flags"))
    except ParseError as e:
        return Result(cid, Status.CRITICAL if flags.enabled else Status.WARNING,
                      f"isakmpd's configured flags `{flags.flags}` are not options isakmpd "
                      f"accepts ({e.reason}), so its next start fails: run `rcctl set isakmpd "
                      f"flags {cfg.isakmpd_flags}`", {"flags_ok": False},
                      repair_note="repair will not guess which of the flags you meant")
    new = " ".join([flags.flags, *lacking]).strip()
    actions = (Action(cid, "add the required isakmpd flags", flags.flags or "(empty)", new,
                      argv=(RCCTL, "set", "isakmpd", "flags", new),
                      order=(PHASE_DAEMONS, index, 1)),) if lacking else ()
    values = {"flags_ok": flags.enabled and not lacking and not live_lacking}
    if live_lacking:
        return Result(cid, Status.CRITICAL, _live_lacking(cfg, live_lacking, live_argv), values,
                      actions, repair_note=_restart_note(cfg))
    if not flags.enabled:
        return Result(cid, Status.WARNING, "isakmpd is not enabled, so it has no flags: run "
                                           f"`rcctl enable isakmpd` and `rcctl set isakmpd flags "
                                           f"{cfg.isakmpd_flags}`", values, actions)
    if lacking:
        shown = flags.flags or "(empty)"
        return Result(cid, Status.WARNING,
                      f"isakmpd's configured flags are {shown}, without {' '.join(lacking)}, so "
                      f"its next start ignores ipsec.conf: run `rcctl set isakmpd flags "
                      f"{new}`", values, actions)
    return Result(cid, Status.OK, f"isakmpd flags contain {cfg.isakmpd_flags}", values)


def _live_lacking(cfg: Config, lacking: list[str], argv: tuple[str, ...]) -> str:
    return (f"the running isakmpd lacks {' '.join(lacking)} (started as "
            f"`isakmpd {' '.join(argv)}`), so it ignores the policy ipsecctl "
            f"loads: run `rcctl set isakmpd flags {cfg.isakmpd_flags}`, "
            f"`rcctl restart isakmpd` and `ipsecctl -f {IPSEC_CONF}`")


def _restart_note(cfg: Config) -> str:
    return (f"the running isakmpd lacks {cfg.isakmpd_flags}; restarting it drops every "
            "connected user, so repair leaves that to you: `rcctl restart isakmpd` then "
            f"`ipsecctl -f {IPSEC_CONF}`")


def _ipsec_enabled(facts: Facts) -> Result:
    cid = "ipsec.enabled"
    rc_on = facts.rcctl.on
    if failed(rc_on):
        return Result(cid, Status.UNKNOWN, f"cannot tell whether ipsec is enabled: {rc_on}",
                      {"enabled": None})
    # ipsec is an rcctl special service: `rcctl ls on` lists it when ipsec=YES,
    # which makes /etc/rc load /etc/ipsec.conf at boot.
    if "ipsec" in rc_on:
        return Result(cid, Status.OK, f"ipsec is enabled: /etc/rc loads {IPSEC_CONF} at boot",
                      {"enabled": True})
    return Result(cid, Status.WARNING, "ipsec is not enabled, so the next boot does not load "
                                       f"{IPSEC_CONF}: run `rcctl enable ipsec`",
                  {"enabled": False},
                  (Action(cid, "load ipsec.conf at boot (ipsec=YES)", "ipsec=NO", "ipsec=YES",
                          argv=(RCCTL, "enable", "ipsec"), order=(PHASE_BOOT,)),))
