"""The demo host's command output, in the exact layouts of OpenBSD's printf calls.

Each function cites the source it copies.  They take plain values (the state
dicts) and return text; they never read the state file or the clock.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence

from ...parsers import npppctl
from ...parsers.npppctl import humanize_duration
from . import sessions as sess
from .pfconf import Entry, Net, groups_of, skipped
from .sessions import Session
from .state import JsonObject

# --- pfctl -si: print_status(), sbin/pfctl/pfctl_parser.c rev 1.352 ------------

FCNT_NAMES = ("searches", "inserts", "removals")
# PFRES_NAMES, sys/net/pfvar.h: the 17 reasons of 7.x.
PFRES_NAMES = ("match", "bad-offset", "fragment", "short", "normalize", "memory",
               "bad-timestamp", "congestion", "ip-option", "proto-cksum",
               "state-mismatch", "state-insert", "state-limit", "src-limit", "synproxy",
               "translate", "no-route")


def pf_info(pf: JsonObject, now: float) -> str:
    """`pfctl -si`: runtime = now - since; pf sets `since` on enable and on disable."""
    runtime = max(0, int(now) - int(pf["since"]))
    running = "Enabled" if pf["enabled"] else "Disabled"
    if runtime:
        day, sec = divmod(runtime, 60)
        day, mins = divmod(day, 60)
        day, hrs = divmod(day, 24)
        statline = f"Status: {running} for {day} days {hrs:02d}:{mins:02d}:{sec:02d}"
    else:
        statline = f"Status: {running}"
    out = [f"{statline:<44}{'Debug: ' + pf['debug']:>15}\n\n"]
    out.append(f"{'State Table':<27} {'Total':>14} {'Rate':>16}\n")
    values = pf_counters(pf, now)
    out.append(f"  {'current entries':<25} {values['states']:>14} {'':>14}\n")
    out.append(f"  {'half-open tcp':<25} {values['half-open tcp']:>14} {'':>14}\n")

    def row(name: str) -> str:
        v = values[name]
        rate = f"{v / runtime:>14.1f}/s" if runtime > 0 else f"{'':>14}"
        return f"  {name:<25} {v:>14} {rate}\n"

    out.extend(row(name) for name in FCNT_NAMES)
    out.append("Counters\n")
    out.extend(row(name) for name in PFRES_NAMES)
    return "".join(out)


def pf_counters(pf: JsonObject, now: float) -> dict[str, int]:
    """Counters grow at fixed rates from t0 while pf is enabled."""
    dt = max(0.0, now - pf["t0"]) if pf["enabled"] else 0.0
    return {name: int(pf["counters"].get(name, 0) + pf["rates"].get(name, 0) * dt)
            for name in ("states", "half-open tcp", *FCNT_NAMES, *PFRES_NAMES)}


# --- pfctl -sm: pfctl_show_limits(), sbin/pfctl/pfctl.c rev 1.397 ----------------

LIMITS = ("states", "src-nodes", "frags", "tables", "table-entries", "pktdelay-pkts",
          "anchors")
UINT_MAX = 0xFFFFFFFF


def pf_limits(limits: dict[str, int]) -> str:
    out = []
    for name in LIMITS:
        value = limits[name]
        shown = "unlimited" if value == UINT_MAX else f"hard limit {value:>8}"
        out.append(f"{name:<13} {shown}\n")
    return "".join(out)


# --- ipsecctl -s: ipsecctl_show()/print_flow()/print_sa(), ipsecctl.c rev 1.88 ----

def ipsec_flows(sessions: Sequence[Session], server: str) -> list[str]:
    """One flow pair per L2TP client, as isakmpd installs them on the server."""
    out = []
    for s in sessions:
        ids = f"srcid {server}/32 dstid {s['client_id']}/32"
        out.append(f"flow esp in proto udp from {s['peer']} to {server} port l2tp "
                   f"peer {s['peer']} {ids} type use\n")
        out.append(f"flow esp out proto udp from {server} port l2tp to {s['peer']} "
                   f"peer {s['peer']} {ids} type require\n")
    return out


def ipsec_sas(sessions: Sequence[Session], server: str, auth: str, enc: str) -> list[str]:
    """Two transport SAs per client, sorted by SPI as ipsecctl does since 7.5."""
    sas = []
    xf = (f" auth {auth}" if auth else "") + f" enc {enc}"
    for s in sessions:
        if not s["sa"]:
            continue
        sas.append((s["spi_in"], f"esp transport from {s['peer']} to {server} "
                                 f"spi 0x{s['spi_in']:08x}{xf}\n"))
        sas.append((s["spi_out"], f"esp transport from {server} to {s['peer']} "
                                  f"spi 0x{s['spi_out']:08x}{xf}\n"))
    sas.sort(key=lambda item: item[0])
    return [line for _, line in sas]


def ipsec_show(flows: list[str] | None, sas: list[str] | None) -> str:
    """`-sa` (flows and sas given), `-sf` (sas None) or `-ss` (flows None)."""
    show_all = flows is not None and sas is not None
    out = []
    if flows is not None:
        if show_all:
            out.append("FLOWS:\n")
        out.extend(flows if flows or not show_all else ["No flows\n"])
    if sas is not None:
        if show_all:
            out.append("\nSAD:\n")
        out.extend(sas if sas or not show_all else ["No entries\n"])
    return "".join(out)


# --- ifconfig: status()/in_status(), sbin/ifconfig/ifconfig.c rev 1.476 ----------

def ifconfig_pppx(s: Session, local: str) -> str:
    """One pppx(4) interface; npppd sets the description only with pipex on."""
    out = [f"{s['ifname']}: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu {s['mru']}\n"]
    if s["described"]:
        out.append(f"\tdescription: {s['user']}\n")
    out.append(f"\tindex {s['ifindex']} priority 0 llprio 3\n")
    out.append("\tgroups: pppx\n")
    out.append(f"\tinet {local} --> {s['ip']} netmask 0xffffffff\n")
    return "".join(out)


def ifconfig_egress(egress: JsonObject) -> str:
    """The egress vio(4) interface, as sbin/ifconfig/ifconfig.c status() prints an
    Ethernet one: flags and mtu, lladdr, index/priority/llprio, groups, media,
    status, then in_status()'s `inet A netmask 0x%08x broadcast B`.  vio(4) is
    not a cloned interface, so its only group is the one the default route
    gives it, egress (netinet/in.c / if.c if_addgroup "egress")."""
    net = ipaddress.ip_network(f"{egress['address']}/24", strict=False)
    return (f"{egress['ifname']}: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> mtu 1500\n"
            "\tlladdr fe:e1:ba:d0:4a:01\n"
            "\tindex 1 priority 0 llprio 3\n"
            "\tgroups: egress\n"
            "\tmedia: Ethernet autoselect\n"
            "\tstatus: active\n"
            f"\tinet {egress['address']} netmask 0x{int(net.netmask):08x} broadcast "
            f"{net.broadcast_address}\n")


def ifconfig_pppac(npppd: JsonObject) -> str:
    """pppac0 (derived/ifconfig/pppac0-concentrator.txt; its inet line is ASSUMED)."""
    return ("pppac0: flags=843<UP,BROADCAST,RUNNING,SIMPLEX> mtu 65532\n"
            f"\tindex {npppd['pppac_index']} priority 0 llprio 3\n"
            f"\tinet {npppd['address']} netmask 0xffffff00 broadcast "
            f"{npppd['broadcast']}\n")


# --- npppctl: usr.sbin/npppd/npppctl/npppctl.c rev 1.10 ---------------------------

def _peer(s: Session) -> str:
    return f"{s['peer']}:{s['peer_port']}"


def npppctl_brief(sessions: Sequence[Session]) -> str:
    if not sessions:
        return ""
    out = ["Ppp Id     Assigned IPv4   Username             Proto Tunnel From\n"
           "---------- --------------- -------------------- ----- "
           "-------------------------\n"]
    out.extend(f"{s['ppp_id']:>10} {s['ip']:<15} {s['user']:<20} {s['proto']:<5} "
               f"{_peer(s)}\n" for s in sessions)
    return "".join(out)


def npppctl_packets(sessions: Sequence[Session], now: float) -> str:
    if not sessions:
        return ""
    out = ["Ppd Id     Username             In(Kbytes/pkts/errs)    Out(Kbytes/pkts/errs)\n"
           "---------- -------------------- ----------------------- "
           "-----------------------\n"]
    for s in sessions:
        ib, ip, ie, ob, op, oe = sess.counters(s, now)
        out.append(f"{s['ppp_id']:>10} {s['user']:<20} {ib / 1024:>9.1f} {ip:>7} {ie:>5} "
                   f"{ob / 1024:>9.1f} {op:>7} {oe:>5}\n")
    return "".join(out)


def humanize_bytes(val: int) -> str:
    """npppctl.c humanize_bytes(): ` (%.1f KB|MB|GB)` from 1000 bytes on."""
    human = npppctl.humanize_bytes(val)
    return "" if human is None else f" ({human[0]:.1f} {human[1]})"


def _percent(errors: int, packets: int) -> float:
    return 0.0 if packets + errors <= 0 else 100.0 * errors / (errors + packets)


def npppctl_all(sessions: Sequence[Session], now: float) -> str:
    out = []
    for i, s in enumerate(sessions):
        ib, ip, ie, ob, op, oe = sess.counters(s, now)
        dur = sess.elapsed(s, now)
        start = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(s["start"]))
        out.append(
            ("\n" if i else "")
            + f"Ppp Id = {s['ppp_id']}\n"
            f"          Ppp Id                  : {s['ppp_id']}\n"
            f"          Username                : {s['user']}\n"
            f"          Realm Name              : {s['realm']}\n"
            f"          Concentrated Interface  : {s['ifname']}\n"
            f"          Assigned IPv4 Address   : {s['ip']}\n"
            f"          MRU                     : {s['mru']}\n"
            f"          Tunnel Protocol         : {s['proto']}\n"
            f"          Tunnel From             : {_peer(s)}\n"
            f"          Start Time              : {start}\n"
            f"          Elapsed Time            : {dur} sec {humanize_duration(dur)}\n"
            f"          Input Bytes             : {ib}{humanize_bytes(ib)}\n"
            f"          Input Packets           : {ip}\n"
            f"          Input Errors            : {ie} ({_percent(ie, ip):.1f}%)\n"
            f"          Output Bytes            : {ob}{humanize_bytes(ob)}\n"
            f"          Output Packets          : {op}\n"
            f"          Output Errors           : {oe} ({_percent(oe, op):.1f}%)\n")
    return "".join(out)


def npppctl_clear(count: int) -> str:
    """clear_session(): every session the demo asks to drop goes."""
    if count > 0:
        return f"Successfully disconnected {count} session{'s' if count > 1 else ''}.\n"
    return "No session to disconnect.\n"


# --- pfctl -sI [-v]: pfctl_show_ifaces()/print_iface(), sbin/pfctl/pfctl_table.c rev 1.91 ---

def pf_interfaces(entries: Sequence[Entry], net: Net, verbose: bool) -> str:
    """Every kif pf has, sorted as pf_if.c rev 1.112 keeps them (pfi_if_compare: strncmp).

    pf has a kif for `all` (pfi_initialize()), each interface
    (pfi_attach_ifnet()) and group (pfi_attach_ifgroup()), each interface
    name a rule uses (pfi_kif_get() when the rule is loaded) and each
    `set skip` name (pfi_set_flags() creates it).  print_iface() prints the
    name and, with -v, ` (skip)` when PFI_IFLAG_SKIP is set: on the name
    itself, or on an interface one of whose groups is skipped (pfi_xcommit()).
    """
    skip = set(skipped(entries))
    groups = {i: groups_of(net, i) for i in net.addresses}   # interface -> its groups
    names = {"all", *groups, *net.groups, *skip}
    names |= {g for of in groups.values() for g in of}

    def referenced(items: Sequence[Entry]) -> None:
        for e in items:
            if "skip" in e:
                continue
            m = e["m"]
            if m["ifname"] is not None:
                names.add(m["ifname"])
            for side in ("src", "dst"):
                if m[side]["kind"] == "dyn":
                    names.add(m[side]["value"])
            referenced(e.get("children") or [])

    referenced(entries)
    out = []
    for name in sorted(names):
        flagged = name in skip or (name in groups and bool(groups[name] & skip))
        out.append(f"{name}{' (skip)' if verbose and flagged else ''}\n")
    return "".join(out)
