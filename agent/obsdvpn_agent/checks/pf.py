"""pf.*: pf is on, runs what pf.conf says, and passes and NATs the VPN."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..commands import PF_CONF, PFCTL, RCCTL
from ..parsers.pfctl import PfRuleset, rulesets_equal
from ..probes import PfConfigInvalid, failed
from . import PHASE_PF, Action, Result, Results, Status

if TYPE_CHECKING:
    from ..config import Config
    from ..probes import Facts


def vpn_rules_missing(rules: PfRuleset, cfg: Config) -> list[str]:
    """The VPN rules the ruleset lacks, as short descriptions (empty: all there).

    A nat-to rule whose source pfctl shows as a table or interface address is
    not counted as missing: whether it covers the VPN network cannot be read.
    """
    wanted = [
        ("pass proto esp", rules.passes(proto="esp")),
        ("pass udp port 500 (isakmp)", rules.passes(proto="udp", dst_port=500)),
        ("pass udp port 4500 (ipsec-nat-t)", rules.passes(proto="udp", dst_port=4500)),
        ("pass on enc0", rules.passes(interface="enc0")),
        (f"pass on {cfg.ppp_interface}", rules.passes(interface=cfg.ppp_interface)),
        (f"nat-to for {cfg.vpn_network}",
         rules.nat_rule_for(cfg.vpn_network) is not None or bool(rules.nat_unresolved())),
    ]
    return [what for what, present in wanted if not present]


def evaluate(facts: Facts, cfg: Config) -> Results:
    load = _load_pf_conf(facts, cfg)
    yield _enabled(facts)
    # An edited pf.conf the admin saved but has not loaded is theirs to load:
    # repair loads it only when the loaded ruleset is broken for the VPN, when
    # asked by name, or when the configuration says so.
    on_request = cfg.repair_load_pf_conf != "when-differs"
    yield _ruleset(facts, (tuple(replace(a, when_named=on_request) for a in load[0]), load[1]))
    yield _vpn_rules(facts, cfg, load)
    yield _states(facts, cfg)


def _load_pf_conf(facts: Facts, cfg: Config) -> tuple[tuple[Action, ...], str]:
    """What loading pf.conf takes: (actions, "") or ((), why repair will not)."""
    config = facts.pf.config
    if failed(config):
        return (), ""   # the check's own summary says what cannot be read
    if isinstance(config, PfConfigInvalid):
        # Planned all the same: its validation refuses it, and says why, at repair time.
        before = "loaded ruleset"
    else:
        lacking = vpn_rules_missing(config, cfg)
        if lacking:
            return (), (f"{PF_CONF} itself lacks {', '.join(lacking)}; repair will not load a "
                        "pf.conf that would cut the VPN off: fix the file first")
        before = "loaded ruleset differs"
    return (Action("", f"load {PF_CONF}", before,
                   PF_CONF if before == "loaded ruleset" else f"the rules of {PF_CONF}",
                   argv=(PFCTL, "-f", PF_CONF), validate=(PFCTL, "-nf", PF_CONF),
                   order=(PHASE_PF, 1)),), ""


def _for(cid: str, load: tuple[tuple[Action, ...], str]) -> tuple[tuple[Action, ...], str]:
    actions, note = load
    return tuple(replace(a, check=cid) for a in actions), note


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
    same, diff = rulesets_equal(loaded, config)
    values["matches_config"] = same
    if same:
        return Result(cid, Status.OK, f"the loaded ruleset is what {PF_CONF} loads "
                                      f"({len(loaded.rules)} rules)", values)
    shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
    return Result(cid, Status.WARNING,
                  f"the loaded ruleset differs from {PF_CONF} ({shown}): review with "
                  f"`pfctl -nvf {PF_CONF}` and load it with `pfctl -f {PF_CONF}`", values,
                  *_for(cid, load))


def _vpn_rules(facts: Facts, cfg: Config, load: tuple[tuple[Action, ...], str]) -> Result:
    cid = "pf.vpn_rules"
    loaded = facts.pf.rules
    if failed(loaded):
        return Result(cid, Status.UNKNOWN, f"cannot read the loaded ruleset: {loaded}",
                      {"present": None})
    missing = vpn_rules_missing(loaded, cfg)
    if missing:
        return Result(cid, Status.CRITICAL,
                      f"the loaded ruleset lacks {', '.join(missing)}, so VPN clients cannot "
                      f"connect or reach out: load the VPN rules with `pfctl -f {PF_CONF}`",
                      {"present": False}, *_for(cid, load))
    if loaded.nat_rule_for(cfg.vpn_network) is None:
        return Result(cid, Status.UNKNOWN,
                      f"VPN pass rules are loaded, but the nat-to rule's source is a table or "
                      f"interface address, so whether it covers {cfg.vpn_network} cannot be read",
                      {"present": True})
    return Result(cid, Status.OK, "ESP, UDP 500/4500, enc0, "
                                  f"{cfg.ppp_interface} and nat-to for {cfg.vpn_network} "
                                  "are loaded", {"present": True})


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
