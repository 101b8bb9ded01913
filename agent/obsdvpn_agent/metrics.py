"""Facts and check results as Prometheus metric families.

families(facts, results, cfg) builds fresh families each time (the
client_python custom-collector pattern); render() turns them into exposition
bytes once per collection, so a scrape only copies bytes.  Naming: prefix
obsdvpn_, base units, _total only on counters, 1 = healthy for booleans, and
no label that grows without bound (no SPI, ppp id, port, rule text, time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as _untyped_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from . import __version__
from .checks import Result, Value, by_id, worst
from .config import Config
from .exposition import Family, render_session_families
from .logcounts import IKE_REASONS, PPP_AUTH_REASONS, LogCounts
from .probes import Facts, failed
from .repair import Pause

P = "obsdvpn_"
# The library leaves its OpenMetrics renderer untyped.
generate_openmetrics: Callable[[CollectorRegistry], bytes] = _untyped_openmetrics


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=list(labels))


def _single(name: str, doc: str, value: float) -> GaugeMetricFamily:
    """A gauge of one sample without labels."""
    g = _gauge(name, doc)
    g.add_metric([], value)
    return g


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(P + name, doc, labels=list(labels))


def _num(value: Value) -> float | None:
    """A judged value as a sample value: booleans 1/0, numbers and numeric text as is."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        return float(value)
    except ValueError:
        return None


def _add(family: GaugeMetricFamily, labels: list[str], value: Value) -> None:
    """Add a sample only for a value that was read: None is never exported as a number."""
    number = _num(value)
    if number is not None:
        family.add_metric(labels, number)


def families(facts: Facts, results: tuple[Result, ...], cfg: Config,
             repair_record: Mapping[str, Any] | None = None,
             pause: Pause | None = None) -> Iterator[Metric | tuple[Family, ...]]:
    """Every family in exposition order: prometheus_client's, and (a tuple) the
    per-session ones exposition.py writes."""
    judged = by_id(results)

    def value(check: str, key: str) -> Value:
        r = judged.get(check)
        return None if r is None else r.values.get(key)

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
    dur = _gauge("collector_duration_seconds", "Time the collector's own work took: its "
                                               "thread's CPU time plus the time its commands "
                                               "ran.", ["collector"])
    for run in facts.collectors:
        ok.add_metric([run.name], 1 if run.success else 0)
        dur.add_metric([run.name], run.duration_s)
    yield ok
    yield dur
    ts = _gauge("last_collection_timestamp_seconds", "When the facts were collected.")
    ts.add_metric([], facts.collected_at)
    yield ts

    val = _gauge("sysctl_value", "Running value of each expected sysctl.", ["name"])
    exp = _gauge("sysctl_expected_value", "The value the configuration expects.", ["name"])
    okv = _gauge("sysctl_ok", "1 when the running value is the expected one.", ["name"])
    per = _gauge("sysctl_persisted", "1 when /etc/sysctl.conf sets the expected value.", ["name"])
    for want in cfg.sysctls:
        cid = f"sysctl.{want.name}"
        _add(exp, [want.name], value(cid, "expected"))
        _add(val, [want.name], value(cid, "running"))
        _add(okv, [want.name], value(cid, "ok"))
        _add(per, [want.name], value(cid, "persisted"))
    yield from (val, exp, okv, per)

    en = _gauge("daemon_enabled", "1 when rc.conf.local enables the daemon.", ["daemon"])
    rn = _gauge("daemon_running", "1 when the daemon runs.", ["daemon"])
    fl = _gauge("daemon_flags_ok", "1 when the configured and running flags contain the "
                                   "required ones.", ["daemon"])
    for d in cfg.daemons:
        _add(en, [d], value(f"daemon.{d}.enabled", "enabled"))
        _add(rn, [d], value(f"daemon.{d}.running", "running"))
        _add(fl, [d], value(f"daemon.{d}.flags", "flags_ok"))
    yield en
    yield rn
    yield fl
    if value("ipsec.enabled", "enabled") is not None:
        ie = _gauge("ipsec_enabled", "1 when ipsec=YES, so /etc/rc loads /etc/ipsec.conf.")
        _add(ie, [], value("ipsec.enabled", "enabled"))
        yield ie

    yield from _pf(facts, judged, value)
    yield from _ipsec(facts)
    yield _sessions(facts)

    fm = _gauge("file_mode", "Permission bits of the VPN's files (e.g. 384 = 0600).", ["path"])
    fo = _gauge("file_owner_uid", "Owner uid of the VPN's files.", ["path"])
    for path, fi in sorted(facts.files.stat.items()):
        if not failed(fi) and fi.exists:
            fm.add_metric([path], fi.mode)
            fo.add_metric([path], fi.uid)
    yield fm
    yield fo

    if not failed(facts.logs.counts):
        users = () if failed(facts.files.npppd_users) else facts.files.npppd_users
        yield from log_families(facts.logs.counts, True, users)
    elif facts.logs.counts.kind != "skipped":
        yield _single("log_read_success", "1 when the daemon log could be read.", 0)

    if repair_record:
        yield from _repair(repair_record)
    yield _single("repair_paused", "1 while `obsdvpn-agent pause` keeps repair from changing "
                  "anything.", 0 if pause is None else 1)
    if pause is not None and pause.until is not None:
        yield _single("repair_paused_until_timestamp_seconds", "When the repair pause ends.",
                      pause.until)


def _pf(facts: Facts, judged: Mapping[str, Result],
        value: Callable[[str, str], Value]) -> Iterator[Metric]:
    i = facts.pf.info
    if not failed(i):
        yield _single("pf_enabled", "1 when pf is enabled.", 1 if i.enabled else 0)
        yield _single("pf_states", "Current entries in pf's state table.", i.states_current)
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
    limits = facts.pf.limits
    if not failed(limits):
        yield _single("pf_state_limit", "Hard limit of pf's state table (set limit states).",
                      limits.states_hard_limit)
    rules = facts.pf.rules
    if not failed(rules):
        yield _single("pf_rules", "Rules in the loaded main ruleset.", len(rules.rules))
    g = _gauge("pf_path_pass", "1 when pf passes the packets of a client's connection of this "
                               "class (check pf.path.PACKET), 0 when it blocks them; absent "
                               "when it cannot be told.", ["packet"])
    for r in judged.values():
        if r.check.startswith("pf.path."):
            _add(g, [r.check.removeprefix("pf.path.")], r.values.get("pass"))
    yield g
    for name, check, key, doc in (
            ("pf_config_valid", "pf.ruleset", "config_valid",
             "1 when pfctl -nf /etc/pf.conf accepts the file."),
            ("pf_ruleset_matches_config", "pf.ruleset", "matches_config",
             "1 when the loaded ruleset equals what /etc/pf.conf loads.")):
        if value(check, key) is not None:
            g = _gauge(name, doc)
            _add(g, [], value(check, key))
            yield g


def _ipsec(facts: Facts) -> Iterator[Metric]:
    s = facts.ipsec.sa
    if failed(s):
        return
    for name, count, doc in (("ipsec_flows", len(s.flows), "IPsec flows loaded in the kernel."),
                             ("ipsec_sas", len(s.sas), "IPsec SAs in the kernel's SAD."),
                             ("ipsec_peers", len(s.remote_peers()),
                              "Remote addresses with at least one SA.")):
        yield _single(name, doc, count)


def _sessions(facts: Facts) -> tuple[Family, ...]:
    """The per-session families: one series per session, so rendered without
    prometheus_client (exposition.py; byte-identical, tests/test_exposition.py)."""
    sessions = facts.npppctl.sessions
    if failed(sessions):
        return ()
    # pppac(4) puts every session on one interface: a user connected twice
    # would give duplicate series, so sessions are summed per (interface, user).
    merged: dict[tuple[str, str], list[Any]] = {}
    for s in sessions:
        key = (s.interface, s.username)
        m = merged.get(key)
        if m is None:
            merged[key] = [s.bytes_in, s.bytes_out, s.packets_in, s.packets_out,
                           facts.collected_at - s.elapsed_s, s]
            continue
        m[0] += s.bytes_in
        m[1] += s.bytes_out
        m[2] += s.packets_in
        m[3] += s.packets_out
        m[4] = min(m[4], facts.collected_at - s.elapsed_s)
    keys = [[iface, user] for iface, user in merged]
    rows = list(merged.values())
    pair = ("interface", "user")

    def counter(name: str, doc: str, column: int) -> Family:
        return Family(P + f"ppp_session_{name}", "counter", doc, pair,
                      [(k, r[column]) for k, r in zip(keys, rows)])

    return (
        Family(P + "ppp_sessions", "gauge", "Connected PPP sessions (npppctl session all).", (),
               [((), float(len(sessions)))]),
        Family(P + "ppp_session_info", "gauge",
               "One per session: who is connected on which interface.",
               ("interface", "user", "tunnel", "address", "peer"),
               [((*k, r[5].tunnel_protocol, r[5].assigned_ipv4, r[5].peer_host), 1.0)
                for k, r in zip(keys, rows)]),
        Family(P + "ppp_session_start_time_seconds", "gauge",
               "When the session started (Unix time).", pair,
               [(k, round(r[4])) for k, r in zip(keys, rows)]),
        counter("receive_bytes", "Bytes received from the client.", 0),
        counter("transmit_bytes", "Bytes sent to the client.", 1),
        counter("receive_packets", "Packets received from the client.", 2),
        counter("transmit_packets", "Packets sent to the client.", 3),
    )


def _repair(record: Mapping[str, Any]) -> Iterator[Metric]:
    yield _single("repair_last_run_timestamp_seconds", "When `obsdvpn-agent repair` last ran.",
                  record.get("time", 0))
    yield _single("repair_last_exit_code", "Exit code of the last repair: 0 nothing to do, 1 "
                  "fixed, 2 still failing, 3 could not run.", record.get("exit_code", 3))
    g = _gauge("repair_last_actions", "Actions of the last repair by result.", ["result"])
    for result in ("applied", "failed", "refused", "skipped"):
        g.add_metric([result], record.get("actions", {}).get(result, 0))
    yield g
    # A no-op repair from cron every few minutes must not erase the one that
    # changed something: that one is kept beside the latest run.
    change = record.get("last_change")
    if isinstance(change, Mapping):
        yield _single("repair_last_change_timestamp_seconds",
                      "When the last repair that acted on something ran.", change.get("time", 0))
        yield _single("repair_last_change_exit_code", "Exit code of the last repair that acted: "
                      "1 fixed, 2 still failing, 3 refused.", change.get("exit_code", 3))


def log_families(counts: LogCounts, read_success: bool = True,
                 users: Iterable[str] = ()) -> Iterator[Metric]:
    """`users`: the names of npppd-users; each gets its byte counters from 0 on, so
    increase() sees a user's first ended session too."""
    auth = CounterMetricFamily(
        P + "ppp_auth_failures", "PPP logins npppd refused, by reason (auth-failed: PAP or "
        "MD5-CHAP, which do not tell a wrong password from an unknown user).", labels=["reason"])
    for reason in PPP_AUTH_REASONS:
        auth.add_metric([reason], counts.ppp_auth_failures.get(reason, 0))
    yield auth
    ike = CounterMetricFamily(
        P + "ike_failures", "IKE exchanges isakmpd dropped or gave up, by reason.",
        labels=["reason"])
    for reason in IKE_REASONS:
        ike.add_metric([reason], counts.ike_failures.get(reason, 0))
    yield ike
    started = CounterMetricFamily(P + "ppp_sessions_started", "PPP sessions npppd opened "
                                  "(TUNNELSTART lines).")
    started.add_metric([], counts.sessions_started)
    yield started
    closed = CounterMetricFamily(P + "ppp_sessions_closed", "Logged-in PPP sessions npppd "
                                 "closed (TUNNELUSAGE lines).")
    closed.add_metric([], counts.sessions_closed)
    yield closed
    rx = CounterMetricFamily(P + "ppp_user_receive_bytes", "Bytes received from the user's "
                             "ended sessions (TUNNELUSAGE data_in), users of npppd-users only.",
                             labels=["user"])
    tx = CounterMetricFamily(P + "ppp_user_transmit_bytes", "Bytes sent to the user in ended "
                             "sessions (TUNNELUSAGE data_out), users of npppd-users only.",
                             labels=["user"])
    names = sorted(set(counts.user_bytes_in) | set(counts.user_bytes_out) | set(users))
    for user in names:
        rx.add_metric([user], counts.user_bytes_in.get(user, 0))
        tx.add_metric([user], counts.user_bytes_out.get(user, 0))
    yield rx
    yield tx
    lines = CounterMetricFamily(P + "log_lines", "Log lines read: isakmpd/npppd lines understood "
                                "(matched) or not (unmatched), other programs' lines (other).",
                                labels=["result"])
    lines.add_metric(["matched"], counts.lines_matched)
    lines.add_metric(["unmatched"], counts.lines_unmatched)
    lines.add_metric(["other"], counts.lines_other)
    yield lines
    ok = GaugeMetricFamily(P + "log_read_success", "1 when the daemon log could be read.")
    ok.add_metric([], 1 if read_success else 0)
    yield ok


class _Families(Collector):
    def __init__(self, fams: list[Metric]) -> None:
        self._fams = fams

    def collect(self) -> Iterator[Metric]:
        return iter(self._fams)


def render(facts: Facts, results: tuple[Result, ...], cfg: Config,
           repair_record: Mapping[str, Any] | None = None, pause: Pause | None = None,
           openmetrics: bool = False) -> bytes:
    """The exposition in the text format 0.0.4, or OpenMetrics."""
    return b"".join(_render(facts, results, cfg, repair_record, pause, (openmetrics,))[0])


def render_pieces(facts: Facts, results: tuple[Result, ...], cfg: Config,
                  repair_record: Mapping[str, Any] | None = None,
                  pause: Pause | None = None) -> tuple[list[bytes], list[bytes]]:
    """The text-format and OpenMetrics expositions as pieces to write one after
    another: serve's child keeps both, and their session lines (megabytes at
    10,000 sessions) are one set of pieces shared by the two, never joined."""
    text, openmetrics = _render(facts, results, cfg, repair_record, pause, (False, True))
    return text, openmetrics


def _render(facts: Facts, results: tuple[Result, ...], cfg: Config,
            repair_record: Mapping[str, Any] | None, pause: Pause | None,
            formats: tuple[bool, ...]) -> list[list[bytes]]:
    """The pieces of one exposition per format, True meaning OpenMetrics."""
    parts: list[list[bytes]] = [[] for _ in formats]
    pending: list[Metric] = []

    def flush() -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(pending))
        for part, openmetrics in zip(parts, formats):
            if openmetrics:
                # OpenMetrics ends with `# EOF` once, after the very last family.
                part.append(generate_openmetrics(registry).removesuffix(b"# EOF\n"))
            else:
                part.append(generate_latest(registry))

    for item in families(facts, results, cfg, repair_record, pause):
        if isinstance(item, tuple):
            flush()
            pending = []
            sessions = render_session_families(item)
            for part, openmetrics in zip(parts, formats):
                part += sessions.openmetrics if openmetrics else sessions.text
        else:
            pending.append(item)
    flush()
    for part, openmetrics in zip(parts, formats):
        if openmetrics:
            part.append(b"# EOF\n")
    return parts
