"""The demo host's /var/log/daemon: the lines isakmpd and npppd write for its events.

Each template is an OpenBSD printf format (file:line from
tests/fixtures/logs/formats_catalog.tsv, OpenBSD 6.9; checked against openbsd/src
in the index, see parsers/syslog.py) behind syslogd's `Mmm dd hh:mm:ss host
prog[pid]: ` (syslogd.c fprintlog).  The file lives in the state's "files" like
any other, so `obsdvpn-agent --demo why USER` reads it through the Host.
"""

from __future__ import annotations

import time
from typing import Any

from .ipsecconf import GROUPS  # isakmpd's constant names for ipsec.conf's groups

DAEMON_LOG = "/var/log/daemon"
MAX_LOG_BYTES = 512 * 1024     # then "newsyslog" renames it to daemon.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def stamp(now: float) -> str:
    """ctime(3) + 4, what syslogd writes: `Nov  9 13:02:11` (day padded with a space)."""
    t = time.localtime(now)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def _append(state: dict[str, Any], now: float, prog: str, messages: list[str]) -> None:
    host = state["sysctl"].get("kern.hostname", state["hostname"]).split(".")[0]
    pid = state["procs"].get(prog, {}).get("pid", 0)
    text = "".join(f"{stamp(now)} {host} {prog}[{pid}]: {m}\n" for m in messages)
    files = state["files"]
    entry = files.get(DAEMON_LOG)
    if entry is None:
        entry = files[DAEMON_LOG] = {"text": "", "mode": 0o640, "uid": 0, "gid": 0}
    if len(entry["text"]) + len(text) > MAX_LOG_BYTES:
        files[DAEMON_LOG + ".0"] = dict(entry)
        entry["text"] = ""
    entry["text"] += text


def _next(state: dict[str, Any], key: str, first: int) -> int:
    value = state["npppd"].get(key, first)
    state["npppd"][key] = value + 1
    return int(value)


def _l2tp(state: dict[str, Any], now: float, peer: str, port: int, ppp_id: int, vendor: str) -> int:
    ctrl = _next(state, "next_ctrl_id", 1)
    hostname, firm = ("DEMO-LAPTOP", "0A00") if vendor == "Microsoft" else ("demo", "0690")
    _append(state, now, "npppd", [
        # l2tp_ctrl.c:1338, :1610, :1048; l2tp_call.c:379, :425, :1028; ppp.c:239
        f"l2tpd ctrl={ctrl} logtype=Started RecvSCCRQ from={peer}:{port}/udp tunnel_id={ctrl}/1 "
        f"protocol=1.0 winsize=8 hostname={hostname} vendor={vendor} firm={firm}",
        f"l2tpd ctrl={ctrl} SendSCCRP",
        f"l2tpd ctrl={ctrl} RecvSCCN",
        f"l2tpd ctrl={ctrl} call=1 RecvICRQ session_id=1",
        f"l2tpd ctrl={ctrl} call=1 SendICRP session_id=1",
        f"l2tpd ctrl={ctrl} call=1 logtype=PPPBind ppp={ppp_id}",
        f"ppp id={ppp_id} layer=base logtype=Started tunnel=L2TP({peer}:{port})",
    ])
    return ctrl


def _usage(ppp_id: int, user: str, peer: str, port: int, secs: int, counters: tuple[int, ...],
           iface: str) -> str:
    ib, ip, ie, ob, op, oe = counters
    auth = "none" if user == "<unknown>" else "MS-CHAP-V2"
    # ppp.c:388 ppp_stop0
    return (f'ppp id={ppp_id} layer=base logtype=TUNNELUSAGE user="{user}" duration={secs}sec '
            f"layer2=L2TP layer2from={peer}:{port} auth={auth} data_in={ib}bytes,{ip}packets "
            f"data_out={ob}bytes,{op}packets error_in={ie} error_out={oe} mppe=no iface={iface}")


def _finish(state: dict[str, Any], now: float, ctrl: int | None) -> None:
    if ctrl is not None:
        # l2tp_call.c:979, l2tp_ctrl.c:338
        _append(state, now, "npppd", [f"l2tpd ctrl={ctrl} call=1 logtype=PPPUnbind",
                                      f"l2tpd ctrl={ctrl} logtype=Finished"])


def connected(state: dict[str, Any], now: float, s: dict[str, Any]) -> None:
    """A client logged in: L2TP, MS-CHAPv2 success (chap.c:453), TUNNELSTART (ppp.c:668)."""
    s["ctrl_id"] = _l2tp(state, now, s["peer"], s["peer_port"], s["ppp_id"], "Microsoft")
    p = s["ppp_id"]
    _append(state, now, "npppd", [
        f'ppp id={p} layer=chap proto=mschap_v2 logtype=Success username="{s["user"]}" '
        f"realm={s['realm']}",
        f'ppp id={p} layer=base logtype=TUNNELSTART user="{s["user"]}" duration=1sec '
        f"layer2=L2TP layer2from={s['peer']}:{s['peer_port']} auth=MS-CHAP-V2  ip={s['ip']} "
        f"iface={s['ifname']}",
    ])


def disconnected(state: dict[str, Any], now: float, s: dict[str, Any], counters: tuple[int, ...],
                 elapsed_s: int) -> None:
    """The client hung up: TUNNELUSAGE with the session's bytes, then the L2TP teardown."""
    _append(state, now, "npppd", [_usage(s["ppp_id"], s["user"], s["peer"], s["peer_port"],
                                         elapsed_s, counters, s["ifname"])])
    _finish(state, now, s.get("ctrl_id"))


def failed_login(state: dict[str, Any], now: float, user: str, peer: str, port: int, ppp_id: int,
                 reason: str) -> None:
    """reason "unknown" (chap.c:651) or "mismatch" (chap.c:673), then chap.c:442 and the
    TUNNELUSAGE of a session that never logged in (user <unknown>, auth none)."""
    ctrl = _l2tp(state, now, peer, port, ppp_id, "Microsoft")
    detail = "user unknown" if reason == "unknown" else "password mismatch."
    _append(state, now, "npppd", [
        f'ppp id={ppp_id} layer=chap proto=mschap_v2 username="{user}" {detail}',
        f'ppp id={ppp_id} layer=chap proto=mschap_v2 logtype=Failure username="{user}" '
        "realm=LOCAL",
        _usage(ppp_id, "<unknown>", peer, port, 1, (0, 0, 0, 0, 0, 0), "(not binding)"),
    ])
    _finish(state, now, ctrl)


def pool_exhausted(state: dict[str, Any], now: float, user: str, peer: str, port: int,
                   ppp_id: int) -> None:
    """Logged in, no address: npppd.c:1677, ipcp.c:134, then TUNNELUSAGE with the user."""
    ctrl = _l2tp(state, now, peer, port, ppp_id, "Microsoft")
    _append(state, now, "npppd", [
        f'ppp id={ppp_id} layer=chap proto=mschap_v2 logtype=Success username="{user}" '
        "realm=LOCAL",
        f"ppp id={ppp_id} layer=base No free address in the pool.",
        f"ppp id={ppp_id} layer=ipcp failed to assign ip address.",
        _usage(ppp_id, user, peer, port, 1, (0, 0, 0, 0, 0, 0), "(not binding)"),
    ])
    _finish(state, now, ctrl)


def psk_mismatch(state: dict[str, Any], now: float, peer: str, port: int) -> None:
    """Main mode message 5 does not decrypt: message.c:1334, then message.c:1903."""
    _append(state, now, "isakmpd", [
        "message_recv: invalid payload type 241 in ISAKMP header (check passphrases, if "
        "applicable and in Phase 1)",
        f"dropped message from {peer} port {port} due to notification type INVALID_PAYLOAD_TYPE",
    ])


def no_proposal(state: dict[str, Any], now: float, peer: str, port: int, offered: str,
                expected: str) -> None:
    """ike_phase_1.c:1309 for the offered group, message.c:2259, message.c:1903."""
    _append(state, now, "isakmpd", [
        f"attribute_unacceptable: GROUP_DESCRIPTION: got {GROUPS.get(offered, offered)}, "
        f"expected {GROUPS.get(expected, expected)}",
        "message_negotiate_sa: no compatible proposal found",
        f"dropped message from {peer} port {port} due to notification type NO_PROPOSAL_CHOSEN",
    ])


def no_response(state: dict[str, Any], now: float, peer: str, port: int) -> None:
    """A path that drops the client's UDP 4500 after main mode began: transport.c:325."""
    _append(state, now, "isakmpd", [
        f"transport_send_messages: giving up on exchange <unnamed>, no response from peer "
        f"{peer}:{port}",
    ])

