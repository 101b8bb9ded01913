"""pf.*: pf is on, runs what pf.conf says, and passes and NATs the VPN."""

from __future__ import annotations

from ..commands import PF_CONF
from ..parsers.pfctl import PfRuleset, rulesets_equal
from ..probes import PfConfigInvalid, failed
from . import Result, Status


def vpn_rules_missing(rules: PfRuleset, cfg) -> list[str]:
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


def evaluate(facts, cfg):
    yield _enabled(facts)
    yield _ruleset(facts)
    yield _vpn_rules(facts, cfg)
    yield _states(facts, cfg)


def _enabled(facts) -> Result:
    cid = "pf.enabled"
    info = facts.pf_info
    if failed(info):
        return Result(cid, Status.UNKNOWN, f"cannot tell whether pf is enabled: {info}")
    if not info.enabled:
        return Result(cid, Status.CRITICAL, "pf is disabled, so VPN clients get no NAT: run "
                                            "`pfctl -e`")
    if not failed(facts.rc_on) and "pf" not in facts.rc_on:
        return Result(cid, Status.WARNING, "pf is enabled now but pf=NO in rc.conf.local, so the "
                                           "next boot starts without it: run `rcctl enable pf`")
    return Result(cid, Status.OK, "pf is enabled")


def _ruleset(facts) -> Result:
    cid = "pf.ruleset"
    loaded, config = facts.pf_rules, facts.pf_config
    if failed(config):
        return Result(cid, Status.UNKNOWN, f"cannot read what {PF_CONF} would load: {config}")
    if isinstance(config, PfConfigInvalid):
        return Result(cid, Status.WARNING,
                      f"{PF_CONF} does not load ({config.message}), so the next boot or reload "
                      f"falls back to pf's default rules: fix it until `pfctl -nf {PF_CONF}` "
                      "passes")
    if failed(loaded):
        return Result(cid, Status.UNKNOWN, f"cannot read the loaded ruleset: {loaded}")
    same, diff = rulesets_equal(loaded, config)
    if same:
        return Result(cid, Status.OK, f"the loaded ruleset is what {PF_CONF} loads "
                                      f"({len(loaded.rules)} rules)")
    shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
    return Result(cid, Status.WARNING,
                  f"the loaded ruleset differs from {PF_CONF} ({shown}): review with "
                  f"`pfctl -nvf {PF_CONF}` and load it with `pfctl -f {PF_CONF}`")


def _vpn_rules(facts, cfg) -> Result:
    cid = "pf.vpn_rules"
    loaded = facts.pf_rules
    if failed(loaded):
        return Result(cid, Status.UNKNOWN, f"cannot read the loaded ruleset: {loaded}")
    missing = vpn_rules_missing(loaded, cfg)
    if missing:
        return Result(cid, Status.CRITICAL,
                      f"the loaded ruleset lacks {', '.join(missing)}, so VPN clients cannot "
                      f"connect or reach out: load the VPN rules with `pfctl -f {PF_CONF}`")
    if loaded.nat_rule_for(cfg.vpn_network) is None:
        return Result(cid, Status.UNKNOWN,
                      f"VPN pass rules are loaded, but the nat-to rule's source is a table or "
                      f"interface address, so whether it covers {cfg.vpn_network} cannot be read")
    return Result(cid, Status.OK, "ESP, UDP 500/4500, enc0, "
                                  f"{cfg.ppp_interface} and nat-to for {cfg.vpn_network} "
                                  "are loaded")


def _states(facts, cfg) -> Result:
    cid = "pf.states"
    info, limits = facts.pf_info, facts.pf_limits
    if failed(info) or failed(limits):
        why = info if failed(info) else limits
        return Result(cid, Status.UNKNOWN, f"cannot compare states with their limit: {why}")
    limit = limits.states_hard_limit
    used = info.states_current / limit if limit else 1.0
    text = f"{info.states_current} of {limit} states ({used:.0%})"
    if used >= cfg.state_limit_critical:
        return Result(cid, Status.CRITICAL, f"pf's state table is nearly full, {text}: raise "
                                            f"`set limit states` in {PF_CONF} and reload")
    if used >= cfg.state_limit_warning:
        return Result(cid, Status.WARNING, f"pf's state table is filling, {text}: raise "
                                           f"`set limit states` in {PF_CONF} and reload")
    return Result(cid, Status.OK, text)
