"""L2TP/IPsec client sessions of the demo host: who is connected and their traffic.

A session is one npppd PPP session carried over one isakmpd-negotiated ESP
transport SA pair.  Everything about it is derived deterministically from
its ppp id and the clock, so two processes render the same numbers:

- `start` is the wall clock at connect (npppctl's "Start Time") and
  `mono_start` the value npppd's elapsed time counts from; both are the
  connect time unless someone set them apart (a clock step does that).
- byte and packet counters are `base + rate * (now - t0)`, so traffic grows
  with time and a test can freeze it by setting the rates to zero.

Session dict keys: ppp_id, user, ifname, ifindex, ip, mru, peer, peer_port,
client_id (the IKE identity: the client's own address, private when behind
NAT), realm, proto, start, mono_start, t0, base [ibytes, ipackets, ierrors,
obytes, opackets, oerrors], rate [ibytes/s, ipackets/s, obytes/s, opackets/s],
spi_in, spi_out, sa (SAs present), described (pppx description set).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from .state import State

# One session as the state file keeps it: the keys the module doc lists.
Session = dict[str, Any]

# Documentation address blocks (RFC 5737) for the clients' public NAT addresses.
_PUBLIC_NETS = ("198.51.100.", "203.0.113.")


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def _free_ip(pool: str, server_ip: str, used: set[int], start: int) -> int | None:
    """First pool address at or after `start` in use by nobody: not network,
    broadcast or npppd's own address."""
    net = ipaddress.ip_network(pool)
    server = int(ipaddress.ip_address(server_ip))
    for i in range(max(start, int(net.network_address) + 1), int(net.broadcast_address)):
        if i not in used and i != server:
            return i
    return None


@dataclass
class Allocations:
    """The pppx units and pool addresses in use, and where the next search starts.

    Kept between new_session() calls, so that creating thousands of sessions
    stays linear.
    """

    units: set[int]
    ips: set[int]
    next_unit: int = 0
    ip_from: int = 0

    @classmethod
    def of(cls, state: State) -> Allocations:
        """What the sessions of `state` use now."""
        return cls({s["unit"] for s in state["sessions"]},
                   {int(ipaddress.ip_address(s["ip"])) for s in state["sessions"]})


def new_session(state: State, user: str, now: float,
                cache: Allocations | None = None) -> Session:
    """Connect `user`: next ppp id, first free pppx unit and pool address.

    `cache` carries the allocations from one call to the next (see Allocations);
    without it they are read from the state.
    """
    npppd = state["npppd"]
    if cache is None:
        cache = Allocations.of(state)
    unit = cache.next_unit
    while unit in cache.units:
        unit += 1
    ip_number = _free_ip(npppd["pool"], npppd["address"], cache.ips, cache.ip_from)
    if ip_number is None:
        raise ValueError(f"address pool {npppd['pool']} exhausted")
    cache.units.add(unit)
    cache.next_unit = unit + 1
    cache.ips.add(ip_number)
    cache.ip_from = ip_number + 1
    ip = str(ipaddress.ip_address(ip_number))
    ppp_id = npppd["next_ppp_id"]
    npppd["next_ppp_id"] = ppp_id + 1
    seed = ppp_id
    net_index = _h("net", seed) % len(_PUBLIC_NETS)
    peer = f"{_PUBLIC_NETS[net_index]}{1 + _h('host', seed) % 254}"
    behind_nat = _h("nat", seed) % 4 != 0
    # Most clients keep 1701 as their L2TP source port; some pick a random one.
    peer_port = 1701 if _h("port", seed) % 3 else 49152 + _h("p", seed) % 16000
    client_id = (f"192.168.{_h('lan', seed) % 250 + 1}.{_h('lh', seed) % 250 + 2}"
                 if behind_nat else peer)
    ifname = "pppac0" if npppd["iface"] == "pppac" else f"pppx{unit}"
    ifindex = state["next_ifindex"]
    state["next_ifindex"] = ifindex + 1
    ibps = 2000 + _h("ib", seed) % 60000
    obps = 4000 + _h("ob", seed) % 200000
    session: Session = {
        "ppp_id": ppp_id, "user": user, "unit": unit, "ifname": ifname,
        "ifindex": ifindex, "ip": ip, "mru": 1360 if behind_nat else 1400,
        "peer": peer, "peer_port": peer_port, "client_id": client_id,
        "realm": "LOCAL", "proto": "L2TP",
        "start": now, "mono_start": now, "t0": now,
        "base": [0, 0, 0, 0, 0, 0],
        "rate": [ibps, ibps / 420.0, obps, obps / 900.0],
        "spi_in": _spi("in", seed, now), "spi_out": _spi("out", seed, now),
        "sa": True, "described": state["sysctl"].get("net.pipex.enable", 0) == 1,
    }
    state["sessions"].append(session)
    return session


def _spi(direction: str, seed: int, now: float) -> int:
    # SPIs below 256 are reserved (RFC 4303); isakmpd asks the kernel for random ones.
    return 0x100 + _h("spi", direction, seed, int(now)) % (0xFFFFFFFF - 0x100)


def counters(session: Session, now: float) -> tuple[int, int, int, int, int, int]:
    """(ibytes, ipackets, ierrors, obytes, opackets, oerrors) at `now`."""
    dt = max(0.0, now - session["t0"])
    b = session["base"]
    r = session["rate"]
    return (b[0] + int(r[0] * dt), b[1] + int(r[1] * dt), b[2],
            b[3] + int(r[2] * dt), b[4] + int(r[3] * dt), b[5])


def elapsed(session: Session, now: float) -> int:
    return max(0, int(now - session["mono_start"]))


def drop_all(state: State) -> int:
    """All sessions end (npppd or isakmpd went away, or a reboot)."""
    count = len(state["sessions"])
    state["sessions"] = []
    return count
