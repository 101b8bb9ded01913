"""pf.*: pf is on, runs what pf.conf says, and passes and NATs the VPN."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..commands import PF_CONF, PFCTL, RCCTL
from ..probes import PfConfigInvalid, ProbeFailure, failed
from . import PHASE_PF, Action, Result, Results, Status, Value
from .pfdiff import rulesets_equal
from .pfpath import PacketVerdict, egress_interfaces, evaluate_path
from .sessions import vpn_network

if TYPE_CHECKING:
    from ..config import Config
    from ..parsers.ifconfig import Interface
    from ..parsers.pfctl import PfRuleTree
    from ..probes import Facts


# Check ids of the packet classes (pfpath.PACKETS): what a client's connection needs.
PATH_CHECKS = {"ike": "pf.path.ike", "nat-t": "pf.path.nat_t", "esp": "pf.path.esp",
               "l2tp": "pf.path.l2tp", "ppp-in": "pf.path.ppp_in", "nat-out": "pf.path.nat_out"}


def evaluate(facts: Facts, cfg: Config) -> Results:
    path = _path(facts, cfg)
    config_path = _config_path(facts, cfg)
    load = _load_pf_conf(facts, config_path, path)
    yield _enabled(facts)
    # An edited pf.conf the admin saved but has not loaded is theirs to load:
    # repair loads it only when the loaded ruleset is broken for the VPN, when
    # asked by name, or when the configuration says so.
    on_request = cfg.repair_load_pf_conf != "when-differs"
    yield _ruleset(facts, (tuple(replace(a, when_named=on_request) for a in load[0]), load[1]))
    for packet, cid in PATH_CHECKS.items():
        yield _path_check(facts, cid, packet, path, load)
    yield _states(facts, cfg)


def _path(facts: Facts, cfg: Config) -> dict[str, PacketVerdict] | ProbeFailure:
    """pf's verdict on each packet a client needs, from the loaded ruleset."""
    tree, interfaces, egress = facts.pf.tree, facts.pf.interfaces, facts.pf.egress
    if failed(tree):
        return tree
    if failed(interfaces):
        return interfaces
    if failed(egress):
        return egress
    return _verdicts(tree, frozenset(interfaces.skipped), egress, facts, cfg)


def _config_path(facts: Facts, cfg: Config) -> dict[str, PacketVerdict] | str:
    """The same verdicts for the ruleset pf.conf would load, or why there are none."""
    config, egress = facts.pf.config, facts.pf.egress
    if failed(config) or isinstance(config, PfConfigInvalid):
        return ""
    if failed(config.tree):
        return f"its rules cannot be judged ({config.tree})"
    if failed(egress):
        return f"the egress interface is not known ({egress})"
    return _verdicts(config.tree, config.skip, egress, facts, cfg)


def _verdicts(tree: PfRuleTree, skip: frozenset[str], egress: tuple[Interface, ...],
              facts: Facts, cfg: Config) -> dict[str, PacketVerdict]:
    first = egress_interfaces(egress)
    verdicts = evaluate_path(tree, skip, first[0] if first else None,
                             vpn_network(facts, cfg), cfg.ppp_interface)
    return {v.packet: v for v in verdicts}


def _load_pf_conf(facts: Facts, config_path: dict[str, PacketVerdict] | str,
                  path: dict[str, PacketVerdict] | ProbeFailure
                  ) -> tuple[tuple[Action, ...], str]:
    """What loading pf.conf takes: (actions, "") or ((), why repair will not)."""
    config = facts.pf.config
    if failed(config):
        return (), ""   # the check's own summary says what cannot be read
    if isinstance(config, PfConfigInvalid):
        # Planned all the same: its validation refuses it, and says why, at repair time.
        before = "loaded ruleset"
    else:
        if isinstance(config_path, str):
            return (), (f"{PF_CONF} would load rules whose effect on the VPN cannot be judged: "
                        f"{config_path}; load it yourself after `pfctl -nvf {PF_CONF}`")
        # Never load what blocks a client's packet, nor what cannot be judged where
        # the loaded rules pass it: the VPN must not end up worse than it is.
        blocked = [PATH_CHECKS[p] for p, v in config_path.items() if v.decision == "block" or (
            v.decision == "unknown" and (failed(path) or path[p].decision == "pass"))]
        if blocked:
            return (), (f"{PF_CONF} itself does not pass {', '.join(blocked)}; repair will not "
                        "load a pf.conf that would cut the VPN off: fix the file first")
        before = "loaded ruleset differs"
    return (Action("", f"load {PF_CONF}", before,
                   PF_CONF if before == "loaded ruleset" else f"the rules of {PF_CONF}",
                   argv=(PFCTL, "-f", PF_CONF), validate=(PFCTL, "-nf", PF_CONF),
                   order=(PHASE_PF, 1)),), ""


def _for(cid: str, load: tuple[tuple[Action, ...], str]) -> tuple[tuple[Action, ...], str]:
    actions, note = load
    return tuple(replace(a, check=cid) for a in actions), note


def _path_check(facts: Facts, cid: str, packet: str,
                path: dict[str, PacketVerdict] | ProbeFailure,
                load: tuple[tuple[Action, ...], str]) -> Result:
    info = facts.pf.info
    if not failed(info) and not info.enabled:
        # A disabled pf filters nothing, and translates nothing either.
        if packet == "nat-out":
            return Result(cid, Status.CRITICAL, "pf is disabled, so the VPN network gets no "
                                                "nat-to and clients cannot reach out: run "
                                                "`pfctl -e`", {"packet": packet, "pass": False})
        return Result(cid, Status.OK, "pf is disabled, so it does not filter this",
                      {"packet": packet, "pass": True})
    if failed(path):
        return Result(cid, Status.UNKNOWN, f"cannot tell what pf does with a client's "
                                           f"{packet} packets: {path}",
                      {"packet": packet, "pass": None})
    v = path[packet]
    values: dict[str, Value] = {"packet": packet, "pass": _passes(v), "rule": v.rule or None}
    if v.decision == "pass":
        return Result(cid, Status.OK, v.reason, values)
    if v.decision == "unknown":
        return Result(cid, Status.UNKNOWN, v.reason, values)
    return Result(cid, Status.CRITICAL, f"{v.reason}, so VPN clients cannot connect: fix the "
                                        f"rules and load them with `pfctl -f {PF_CONF}`",
                  values, *_for(cid, load))


def _passes(v: PacketVerdict) -> bool | None:
    return None if v.decision == "unknown" else v.decision == "pass"


def _enabled(facts: Facts) -> Result:
    cid = "pf.enabled"
    info, rc_on = facts.pf.info, facts.rcctl.on
    if failed(info):
        return Result(cid, Status.UNKNOWN, f"cannot tell whether pf is enabled: {info}",
                      {"enabled": None})
    values = {"enabled": info.enabled}
    actions = []
    if not info.enabled:
        actions.append(Action(cid, "enable pf", "disabled", "enabled", argv=(PFCTL, "-e"),
                              order=(PHASE_PF, 0)))
    if not failed(rc_on) and "pf" not in rc_on:
        actions.append(Action(cid, "enable pf at boot", "pf=NO", "pf=YES",
                              argv=(RCCTL, "enable", "pf"), order=(PHASE_PF, 0)))
    if not info.enabled:
        return Result(cid, Status.CRITICAL, "pf is disabled, so VPN clients get no NAT: run "
                                            "`pfctl -e`", values, tuple(actions))
    if actions:
        return Result(cid, Status.WARNING, "pf is enabled now but pf=NO in rc.conf.local, so the "
                                           "next boot starts without it: run `rcctl enable pf`",
                      values, tuple(actions))
    return Result(cid, Status.OK, "pf is enabled", values)


def _ruleset(facts: Facts, load: tuple[tuple[Action, ...], str]) -> Result:
    cid = "pf.ruleset"
    loaded, config = facts.pf.rules, facts.pf.config
    values: dict[str, bool | int | None] = {
        "config_valid": None if failed(config) else not isinstance(config, PfConfigInvalid),
        "matches_config": None, "rules": None if failed(loaded) else len(loaded.rules)}
    if failed(config):
        return Result(cid, Status.UNKNOWN, f"cannot read what {PF_CONF} would load: {config}",
                      values)
    if isinstance(config, PfConfigInvalid):
        return Result(cid, Status.WARNING,
                      f"{PF_CONF} does not load ({config.message}), so the next boot or reload "
                      f"falls back to pf's default rules: fix it until `pfctl -nf {PF_CONF}` "
                      "passes", values, *_for(cid, load))
    if failed(loaded):
        return Result(cid, Status.UNKNOWN, f"cannot read the loaded ruleset: {loaded}", values)
    same, diff = rulesets_equal(loaded, config.rules)
    values["matches_config"] = same
    if same:
        return Result(cid, Status.OK, f"the loaded ruleset is what {PF_CONF} loads "
                                      f"({len(loaded.rules)} rules)", values)
    shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
    return Result(cid, Status.WARNING,
                  f"the loaded ruleset differs from {PF_CONF} ({shown}): review with "
                  f"`pfctl -nvf {PF_CONF}` and load it with `pfctl -f {PF_CONF}`", values,
                  *_for(cid, load))


def _states(facts: Facts, cfg: Config) -> Result:
    cid = "pf.states"
    info, limits = facts.pf.info, facts.pf.limits
    if failed(info) or failed(limits):
        why = info if failed(info) else limits
        return Result(cid, Status.UNKNOWN, f"cannot compare states with their limit: {why}")
    limit = limits.states_hard_limit
    used = info.states_current / limit if limit else 1.0
    text = f"{info.states_current} of {limit} states ({used:.0%})"
    values = {"states": info.states_current, "limit": limit, "used": used}
    if used >= cfg.state_limit_critical:
        return Result(cid, Status.CRITICAL, f"pf's state table is nearly full, {text}: raise "
                                            f"`set limit states` in {PF_CONF} and reload", values)
    if used >= cfg.state_limit_warning:
        return Result(cid, Status.WARNING, f"pf's state table is filling, {text}: raise "
                                           f"`set limit states` in {PF_CONF} and reload", values)
    return Result(cid, Status.OK, text, values)
