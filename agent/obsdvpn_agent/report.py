"""Presentation for people and cron: the plugin line, the detail lines, JSON.

Pure functions from results and facts to text or plain data; only the CLI
prints them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from .checks import Action, Result, Status, by_id, worst
from .config import Config
from .probes import Facts, ProbeFailure, failed

T = TypeVar("T")

PLUGIN = "OBSDVPN"


def ordered(results: tuple[Result, ...]) -> list[Result]:
    """Non-OK results, worst first, in check order within a status."""
    bad = [r for r in results if r.status is not Status.OK]
    return sorted(bad, key=lambda r: -r.status.severity)


def summary_line(results: tuple[Result, ...]) -> str:
    """`OBSDVPN CRITICAL - daemon.isakmpd.running: isakmpd is not running (+1 warning)`."""
    status = worst(r.status for r in results)
    bad = ordered(results)
    if not bad:
        return f"{PLUGIN} OK - {len(results)} checks OK"
    first, rest = bad[0], bad[1:]
    counts = []
    for s in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN):
        n = sum(1 for r in rest if r.status is s)
        if n:
            word = s.name.lower()
            counts.append(f"{n} {word}{'s' if n > 1 and s is Status.WARNING else ''}")
    more = f" (+{', '.join(counts)})" if counts else ""
    return f"{PLUGIN} {status.name} - {first.check}: {first.summary}{more}"


def detail_lines(results: tuple[Result, ...]) -> list[str]:
    """The other non-OK checks, one a line: the first is the summary line's already."""
    return [f"{r.status.name} {r.check}: {r.summary}" for r in ordered(results)[1:]]


@dataclass(frozen=True)
class SessionView:
    """One connected user, joined from npppctl and ifconfig."""

    user: str
    interface: str
    address: str
    peer: str
    peer_port: int | None
    tunnel: str
    since: str              # as npppctl printed it: the host's local time, no zone
    since_unix: int         # the same moment, from the collection time and the elapsed time
    elapsed_s: int
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    ppp_id: int


def sessions(facts: Facts, limit: int | None = None) -> tuple[SessionView, ...] | None:
    """Who is connected (the first `limit` sessions), None when npppctl was not read."""
    found = facts.npppctl.sessions
    if failed(found):
        return None
    return tuple(SessionView(s.username, s.interface, s.assigned_ipv4, s.peer_host, s.peer_port,
                             s.tunnel_protocol, s.start_time,
                             round(facts.collected_at - s.elapsed_s), s.elapsed_s, s.bytes_in,
                             s.bytes_out, s.packets_in, s.packets_out, s.ppp_id)
                 for s in found[:limit])


def local_time(unix: float) -> str:
    """`2026-11-29 13:02 CET`: a moment in this machine's zone, with the zone named."""
    return datetime.fromtimestamp(unix).astimezone().strftime("%Y-%m-%d %H:%M %Z")


def duration(seconds: float) -> str:
    """`3d04h`, `2h05m`, `4m10s`, `42s`: the two largest units."""
    s = max(0, int(seconds))
    for unit, size, sub, subsize in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                     ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit}{(s % size) // subsize:02d}{sub}"
    return f"{s}s"


def human_bytes(n: int) -> str:
    """`1.2 GiB`, `340 KiB`, `512 B`: powers of 1024, as people read traffic."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def sessions_table(views: tuple[SessionView, ...]) -> list[str]:
    rows = [("USER", "INTERFACE", "ADDRESS", "PEER", "SINCE", "DURATION", "BYTES IN",
             "BYTES OUT")]
    for v in views:
        peer = f"{v.peer}:{v.peer_port}" if v.peer_port is not None else v.peer
        rows.append((v.user, v.interface, v.address, peer, local_time(v.since_unix),
                     duration(v.elapsed_s), str(v.bytes_in), str(v.bytes_out)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _or_error(value: T | ProbeFailure, render: Callable[[T], object]) -> object:
    return {"error": str(value)} if failed(value) else render(value)


def _action_json(a: Action) -> dict[str, object]:
    return {"what": a.what, "before": a.before, "after": a.after, "command": a.shown,
            "validate": " ".join(a.validate) or None}


def facts_json(facts: Facts, results: tuple[Result, ...], cfg: Config) -> dict[str, object]:
    judged = by_id(results)
    daemons = {}
    for d in cfg.daemons:
        enabled = judged[f"daemon.{d}.enabled"].values
        running = judged[f"daemon.{d}.running"].values
        daemons[d] = {"enabled": enabled.get("enabled"), "flags": enabled.get("flags"),
                      "running": running.get("running"),
                      "running_flags": running.get("running_flags")}
    views = sessions(facts)
    pf = facts.pf
    return {
        "collected_at": facts.collected_at,
        "sysctl": _or_error(facts.sysctl.running,
                            lambda r: {n: r.get(n) for n in cfg.sysctl_names}),
        "sysctl_conf": _or_error(facts.sysctl.conf,
                                 lambda c: {n: c.get(n) for n in cfg.sysctl_names}),
        "daemons": daemons,
        "rc_on": _or_error(facts.rcctl.on, list),
        "pf": {
            "enabled": _or_error(pf.info, lambda i: i.enabled),
            "states": _or_error(pf.info, lambda i: i.states_current),
            "state_limit": _or_error(pf.limits, lambda m: m.states_hard_limit),
            "rules_loaded": _or_error(pf.rules, lambda r: len(r.rules)),
        },
        "ipsec": _or_error(facts.ipsec.sa, lambda s: {"flows": len(s.flows), "sas": len(s.sas),
                                                      "peers": sorted(s.remote_peers())}),
        "sessions": ({"error": str(facts.npppctl.sessions)} if views is None
                     else [dict(vars(v)) for v in views]),
        "interfaces": _or_error(facts.ifconfig.pppx, lambda ifs: [
            {"name": i.name, "description": i.description,
             "local": i.inet[0].address if i.inet else None,
             "peer": i.inet[0].peer if i.inet else None} for i in ifs]),
        "failures": [{"source": f.source, "kind": f.kind, "reason": f.reason}
                     for f in facts.failures()],
    }


def json_report(facts: Facts, results: tuple[Result, ...], cfg: Config) -> dict[str, object]:
    status = worst(r.status for r in results)
    return {
        "status": status.name,
        "exit_code": int(status),
        "summary": summary_line(results),
        "checks": [{"id": r.check, "status": r.status.name, "summary": r.summary,
                    "values": dict(r.values),
                    "repair": [_action_json(a) for a in r.actions],
                    "repair_note": r.repair_note or None}
                   for r in results],
        "facts": facts_json(facts, results, cfg),
    }
