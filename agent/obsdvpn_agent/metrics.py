"""Facts and check results as Prometheus metric families.

families(facts, results, cfg) builds fresh families each time (the
client_python custom-collector pattern); render() turns them into exposition
bytes once per collection, so a scrape only copies bytes.  Naming: prefix
obsdvpn_, base units, _total only on counters, 1 = healthy for booleans, and
no label that grows without bound (no SPI, ppp id, port, rule text, time).
"""

from __future__ import annotations

from typing import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from . import __version__
from .checks import Result, worst
from .probes import Facts, PfConfigInvalid, failed

P = "obsdvpn_"


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, labels=list(labels))


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def families(facts: Facts, results: tuple[Result, ...], cfg,
             repair_state: dict | None = None) -> Iterator:
    from .checks.daemons import missing_flags, running, running_flags

    info = InfoMetricFamily(P + "build", "obsdvpn-agent version.", labels=["version"])
    info.add_metric([__version__], {})
    yield info

    st = _gauge("status", "Worst check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.")
    st.add_metric([], int(worst(r.status for r in results)))
    yield st
    cs = _gauge("check_status", "Check status as a Nagios code: 0 OK, 1 WARNING, 2 CRITICAL, "
                                "3 UNKNOWN.", ["check"])
    for r in results:
        cs.add_metric([r.check], int(r.status))
    yield cs

    ok = _gauge("collector_success", "1 when every command of the collector ran and parsed.",
                ["collector"])
    dur = _gauge("collector_duration_seconds", "Time the collector took.", ["collector"])
    for run in facts.collectors:
        ok.add_metric([run.name], 1 if run.success else 0)
        dur.add_metric([run.name], run.duration_s)
    yield ok
    yield dur
    ts = _gauge("last_collection_timestamp_seconds", "When the facts were collected.")
    ts.add_metric([], facts.collected_at)
    yield ts

    yield from _sysctl(facts, cfg)

    en = _gauge("daemon_enabled", "1 when rc.conf.local enables the daemon.", ["daemon"])
    rn = _gauge("daemon_running", "1 when the daemon runs.", ["daemon"])
    fl = _gauge("daemon_flags_ok", "1 when the configured and running flags contain the "
                                   "required ones.", ["daemon"])
    for d in cfg.daemons:
        flags = facts.daemon_flags.get(d)
        if flags is not None and not failed(flags):
            en.add_metric([d], 1 if flags.enabled else 0)
        state = running(facts, d)
        if state is not None:
            rn.add_metric([d], 1 if state else 0)
        if d == "isakmpd" and flags is not None and not failed(flags):
            live = running_flags(facts, d)
            good = flags.enabled and not missing_flags(cfg.isakmpd_flags, flags.flags)
            if live is not None and state:
                good = good and not missing_flags(cfg.isakmpd_flags, " ".join(live))
            fl.add_metric([d], 1 if good else 0)
    yield en
    yield rn
    yield fl
    if not failed(facts.rc_on):
        ie = _gauge("ipsec_enabled", "1 when ipsec=YES, so /etc/rc loads /etc/ipsec.conf.")
        ie.add_metric([], 1 if "ipsec" in facts.rc_on else 0)
        yield ie

    yield from _pf(facts, cfg)
    yield from _ipsec(facts)
    yield from _sessions(facts)

    fm = _gauge("file_mode", "Permission bits of the VPN's files (e.g. 384 = 0600).", ["path"])
    fo = _gauge("file_owner_uid", "Owner uid of the VPN's files.", ["path"])
    for path, fi in sorted(facts.files.items()):
        if not failed(fi) and fi.exists:
            fm.add_metric([path], fi.mode)
            fo.add_metric([path], fi.uid)
    yield fm
    yield fo

    if repair_state:
        yield from _repair(repair_state)


def _sysctl(facts: Facts, cfg) -> Iterator:
    val = _gauge("sysctl_value", "Running value of each expected sysctl.", ["name"])
    exp = _gauge("sysctl_expected_value", "The value the configuration expects.", ["name"])
    okv = _gauge("sysctl_ok", "1 when the running value is the expected one.", ["name"])
    per = _gauge("sysctl_persisted", "1 when /etc/sysctl.conf sets the expected value.", ["name"])
    for want in cfg.sysctls:
        if _num(want.value) is not None:
            exp.add_metric([want.name], _num(want.value))
        if not failed(facts.sysctl):
            have = facts.sysctl.get(want.name)
            if _num(have) is not None:
                val.add_metric([want.name], _num(have))
            if have is not None:
                okv.add_metric([want.name], 1 if have == want.value else 0)
        if not failed(facts.sysctl_conf):
            per.add_metric([want.name], 1 if facts.sysctl_conf.get(want.name) == want.value else 0)
    yield from (val, exp, okv, per)


def _pf(facts: Facts, cfg) -> Iterator:
    from .checks.pf import vpn_rules_missing
    from .parsers.pfctl import rulesets_equal

    i = facts.pf_info
    if not failed(i):
        g = _gauge("pf_enabled", "1 when pf is enabled.")
        g.add_metric([], 1 if i.enabled else 0)
        yield g
        g = _gauge("pf_states", "Current entries in pf's state table.")
        g.add_metric([], i.states_current)
        yield g
        for name in ("searches", "inserts", "removals"):
            v = i.state_counter(name)
            if v is not None:
                c = _counter(f"pf_state_{name}", f"State table {name} since pf was enabled.")
                c.add_metric([], v)
                yield c
        c = _counter("pf_reason", "Packets counted by pf per reason (pfctl -si Counters).",
                     ["reason"])
        for reason, v in i.counters:
            c.add_metric([reason], v)
        yield c
    if not failed(facts.pf_limits):
        g = _gauge("pf_state_limit", "Hard limit of pf's state table (set limit states).")
        g.add_metric([], facts.pf_limits.states_hard_limit)
        yield g
    if not failed(facts.pf_rules):
        g = _gauge("pf_rules", "Rules in the loaded main ruleset.")
        g.add_metric([], len(facts.pf_rules.rules))
        yield g
        g = _gauge("pf_vpn_rules_present", "1 when the loaded ruleset has every VPN rule.")
        g.add_metric([], 0 if vpn_rules_missing(facts.pf_rules, cfg) else 1)
        yield g
    pc = facts.pf_config
    if not failed(pc):
        g = _gauge("pf_config_valid", "1 when pfctl -nf /etc/pf.conf accepts the file.")
        g.add_metric([], 0 if isinstance(pc, PfConfigInvalid) else 1)
        yield g
        if not isinstance(pc, PfConfigInvalid) and not failed(facts.pf_rules):
            g = _gauge("pf_ruleset_matches_config",
                       "1 when the loaded ruleset equals what /etc/pf.conf loads.")
            g.add_metric([], 1 if rulesets_equal(facts.pf_rules, pc)[0] else 0)
            yield g


def _ipsec(facts: Facts) -> Iterator:
    s = facts.ipsec
    if failed(s):
        return
    for name, value, doc in (("ipsec_flows", len(s.flows), "IPsec flows loaded in the kernel."),
                             ("ipsec_sas", len(s.sas), "IPsec SAs in the kernel's SAD."),
                             ("ipsec_peers", len(s.remote_peers()),
                              "Remote addresses with at least one SA.")):
        g = _gauge(name, doc)
        g.add_metric([], value)
        yield g


def _sessions(facts: Facts) -> Iterator:
    sessions = facts.sessions
    if failed(sessions):
        return
    g = _gauge("ppp_sessions", "Connected PPP sessions (npppctl session all).")
    g.add_metric([], len(sessions))
    yield g
    info = _gauge("ppp_session_info", "One per session: who is connected on which interface.",
                  ["interface", "user", "tunnel", "address", "peer"])
    start = _gauge("ppp_session_start_time_seconds", "When the session started (Unix time).",
                   ["interface", "user"])
    series = {name: _counter(f"ppp_session_{name}", doc, ["interface", "user"])
              for name, doc in (("receive_bytes", "Bytes received from the client."),
                                ("transmit_bytes", "Bytes sent to the client."),
                                ("receive_packets", "Packets received from the client."),
                                ("transmit_packets", "Packets sent to the client."))}
    # pppac(4) puts every session on one interface: a user connected twice
    # would give duplicate series, so sessions are summed per (interface, user).
    merged: dict[tuple[str, str], list] = {}
    for s in sessions:
        key = (s.interface, s.username)
        m = merged.setdefault(key, [0, 0, 0, 0, facts.collected_at - s.elapsed_s, s])
        m[0] += s.bytes_in
        m[1] += s.bytes_out
        m[2] += s.packets_in
        m[3] += s.packets_out
        m[4] = min(m[4], facts.collected_at - s.elapsed_s)
    for (iface, user), (bi, bo, pi, po, t0, s) in merged.items():
        info.add_metric([iface, user, s.tunnel_protocol, s.assigned_ipv4, s.peer_host], 1)
        start.add_metric([iface, user], round(t0))
        series["receive_bytes"].add_metric([iface, user], bi)
        series["transmit_bytes"].add_metric([iface, user], bo)
        series["receive_packets"].add_metric([iface, user], pi)
        series["transmit_packets"].add_metric([iface, user], po)
    yield info
    yield start
    yield from series.values()


def _repair(state: dict) -> Iterator:
    g = _gauge("repair_last_run_timestamp_seconds", "When `obsdvpn-agent repair` last ran.")
    g.add_metric([], state.get("time", 0))
    yield g
    g = _gauge("repair_last_exit_code", "Exit code of the last repair: 0 nothing to do, 1 "
                                        "fixed, 2 still failing, 3 could not run.")
    g.add_metric([], state.get("exit_code", 3))
    yield g
    g = _gauge("repair_last_actions", "Actions of the last repair by result.", ["result"])
    for result in ("applied", "failed", "refused", "skipped"):
        g.add_metric([result], state.get("actions", {}).get(result, 0))
    yield g


class _Families(Collector):
    def __init__(self, fams: list) -> None:
        self._fams = fams

    def collect(self):
        return iter(self._fams)


def render(facts: Facts, results: tuple[Result, ...], cfg, repair_state: dict | None = None,
           openmetrics: bool = False) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(families(facts, results, cfg, repair_state))))
    return (generate_openmetrics if openmetrics else generate_latest)(registry)


def write_textfile(path: str, facts: Facts, results: tuple[Result, ...], cfg,
                   repair_state: dict | None = None) -> None:
    """Write the exposition for node_exporter's textfile collector, atomically
    (node_exporter must never read half a file)."""
    from .host.atomic import replace_file

    replace_file(path, render(facts, results, cfg, repair_state), 0o644)
