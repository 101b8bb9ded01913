"""What can happen to the demo host besides admin commands: boot, crashes,
clients coming and going, and the common drifts (`demo break SCENARIO`).

Each function changes a state dict in place and returns one line telling what
happened; the CLI prints it.  fresh_state() documents the state's fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import daemons, services, syslog
from . import sessions as sess
from .ipsecconf import (
    CLIENTS,
    DEFAULT_CLIENT,
    DEFAULT_GROUP,
    GROUPS,
    IpsecConfError,
    client_can_negotiate,
    read_ipsecconf,
)
from .pfconf import CONNECTION_FLOWS, Compiled, Net, PfConfError, compile_pfconf
from .pfconf import path_blocked as pfconf_path_blocked
from .render import pf_counters
from .state import JsonObject, State

HOSTNAME = "vpn.example.org"
EGRESS_IF = "vio0"
EGRESS_ADDR = "192.0.2.1"        # RFC 5737 documentation address
UPTIME_AT_RESET = 3 * 86400 + 4 * 3600 + 17 * 60
PSK = "demo-psk-s3cret"
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")

SYSCTL_CONF = "/etc/sysctl.conf"
PF_CONF = "/etc/pf.conf"
IPSEC_CONF = "/etc/ipsec.conf"
NPPPD_USERS = "/etc/npppd/npppd-users"
NPPPD_CONF = "/etc/npppd/npppd.conf"

# The uid the demo gives a non-root caller (the agent's own user on a real host).
USER_UID = 1000

# Kernel values after boot, before /etc/sysctl.conf: (value, writable range or
# choices, writable).  pipex_enable = 0 (sys/net/pipex.c rev 1.161 L91).
_IntSysctl = tuple[int, tuple[int, int] | None, bool]
_StrSysctl = tuple[str, tuple[str, ...] | None, bool]
KERNEL: dict[str, _IntSysctl | _StrSysctl] = {
    "kern.ostype": ("OpenBSD", None, False),
    "kern.osrelease": ("7.6", None, False),
    "kern.hostname": (HOSTNAME, None, True),
    "kern.securelevel": (1, (-1, 2), True),
    "kern.timecounter.hardware": ("tsc", ("i8254", "acpihpet0", "acpitimer0", "tsc"), True),
    "hw.machine": ("amd64", None, False),
    "hw.ncpu": (2, None, False),
    "net.inet.ip.forwarding": (0, (0, 2), True),
    "net.inet.ip.mforwarding": (0, (0, 1), True),
    "net.inet.esp.enable": (1, (0, 1), True),
    "net.inet.esp.udpencap": (1, (0, 1), True),
    "net.inet.esp.udpencap_port": (4500, (0, 65535), True),
    "net.inet.ah.enable": (1, (0, 1), True),
    "net.inet.ipcomp.enable": (0, (0, 1), True),
    "net.inet.gre.allow": (0, (0, 1), True),
    "net.inet6.ip6.forwarding": (0, (0, 1), True),
    "net.pipex.enable": (0, (0, 1), True),
}

SYSCTL_CONF_TEXT = """\
net.inet.ip.forwarding=1	# 1=Permit forwarding (routing) of IPv4 packets
net.pipex.enable=1		# 1=Enable pipex(4) for npppd(8)
"""

PF_CONF_TEXT = f"""\
#	$OpenBSD: pf.conf,v 1.55 2017/12/03 20:40:04 sthen Exp $
#
# See pf.conf(5) and /etc/examples/pf.conf
# L2TP/IPsec VPN server (demo host)

ext_if = "{EGRESS_IF}"
vpn_net = "10.0.0.0/24"

set skip on lo

block return	# block stateless traffic
pass		# establish keep-state

# By default, do not permit remote connections to X11
block return in on ! lo0 proto tcp to port 6000:6010

# IKE, NAT-T and ESP from the VPN clients
pass in on $ext_if proto udp from any to any port {{ isakmp, ipsec-nat-t }}
pass in on $ext_if proto esp
pass on enc0 keep state (if-bound)
pass on pppx from $vpn_net to any
match out on $ext_if inet from $vpn_net to any nat-to ($ext_if)
"""

IPSEC_CONF_TEXT = f"""\
# L2TP/IPsec: isakmpd -K negotiates transport-mode ESP for npppd's L2TP
ike passive esp transport \\
	proto udp from egress to any port l2tp \\
	main auth "hmac-sha1" enc "aes" group modp1024 \\
	quick auth "hmac-sha1" enc "aes" \\
	psk "{PSK}"
"""

NPPPD_CONF_TEXT = """\
# npppd.conf(5): L2TP/IPsec with one pppx(4) interface per session (demo host)
authentication LOCAL type local {
	users-file "/etc/npppd/npppd-users"
}
tunnel L2TP protocol l2tp {
	listen on 0.0.0.0
}
ipcp IPCP {
	pool-address 10.0.0.2-10.0.0.254
	dns-servers 192.0.2.53
}
interface pppx0 address 10.0.0.1 ipcp IPCP
bind tunnel from L2TP authenticated by LOCAL to pppx0
"""

RC_CONF_LOCAL_TEXT = "ipsec=YES\nisakmpd_flags=-K\nnpppd_flags=\n"

# An abbreviated form of the ruleset /etc/rc loads before the network is up
# (ASSUMPTION: the exact /etc/rc RULES lines were not copied); pf keeps it
# when /etc/pf.conf does not load at boot.
BOOT_RULES_TEXT = """\
block all
pass on lo0
pass in proto tcp to port ssh
pass out proto { tcp, udp } to port domain
pass out inet proto udp from port bootpc to port bootps
pass in inet proto udp from port bootps to port bootpc
"""

PF_LIMITS = {"states": 100000, "src-nodes": 10000, "frags": 65536, "tables": 1000,
             "table-entries": 200000, "pktdelay-pkts": 10000, "anchors": 512}
# Per-second growth of the pf counters on the demo host while pf is enabled.
PF_RATES = {"searches": 331.6, "inserts": 2.4, "removals": 2.4, "match": 2.7,
            "short": 0.001, "state-mismatch": 0.0005}


def npppd_users_text(users: Iterable[str]) -> str:
    """npppd-users(5): getcap(3) records, one per user."""
    return "".join(f"{u}:\\\n\t:password={u}-demo-pw:\n" for u in users)


def users(state: State) -> list[str]:
    entry = state["files"].get(NPPPD_USERS)
    if entry is None:
        return []
    return [line.split(":", 1)[0] for line in entry["text"].splitlines()
            if line and not line[0].isspace() and not line.startswith("#")
            and ":" in line]


def user_password(npppd_users: str, user: str) -> str | None:
    """The :password=...: of USER's npppd-users(5) record (getcap(3) continuation lines)."""
    text = npppd_users.replace("\\\n", "")
    for record in text.splitlines():
        if record.split(":", 1)[0] == user:
            m = re.search(r":password=([^:]*):", record)
            return m.group(1) if m else None
    return None


def net(state: State) -> Net:
    """Interfaces pf.conf and ipsec.conf may name."""
    groups = {"egress": [state["egress"]["ifname"]], "lo": ["lo0"], "enc": ["enc0"]}
    units = [s["ifname"] for s in state["sessions"] if s["ifname"].startswith("pppx")]
    if units:
        groups["pppx"] = units
    addresses = {state["egress"]["ifname"]: [state["egress"]["address"]],
                 "lo0": ["127.0.0.1"], "enc0": [], "pflog0": []}
    for s in state["sessions"]:
        addresses.setdefault(s["ifname"], [state["npppd"]["address"]])
    return Net(addresses, groups)


def _file(text: str, mode: int) -> JsonObject:
    return {"text": text, "mode": mode, "uid": 0, "gid": 0}


def fresh_state(now: float, n_sessions: int = 3) -> State:
    """The healthy L2TP/IPsec host, booted UPTIME_AT_RESET ago, with clients.

    Fields: hostname; egress {ifname, address}; boot_time; sysctl (running
    values); files {path: {text, mode, uid, gid}}; procs (running rc.d
    daemons, see daemons.py); next_pid; pf {enabled, since, debug, rules,
    limits, counters, rates, t0}; ike_loaded and ike {auth, enc} (the policy
    ipsecctl gave the running isakmpd); npppd {iface, address, broadcast,
    pool, next_ppp_id, pppac_index, stale_socket}; sessions (see
    sessions.py); next_ifindex.
    """
    big = n_sessions > 200
    pool = "10.0.0.0/16" if big else "10.0.0.0/24"
    names = list(USERS) if n_sessions <= len(USERS) else [
        f"user{i:04d}" for i in range(1, n_sessions + 1)]
    pf_conf = PF_CONF_TEXT if not big else PF_CONF_TEXT.replace("10.0.0.0/24", pool)
    state: State = {
        "version": 1,
        "hostname": HOSTNAME,
        "egress": {"ifname": EGRESS_IF, "address": EGRESS_ADDR},
        "boot_time": now,
        "sysctl": {},
        "files": {
            SYSCTL_CONF: _file(SYSCTL_CONF_TEXT, 0o644),
            PF_CONF: _file(pf_conf, 0o600),
            IPSEC_CONF: _file(IPSEC_CONF_TEXT, 0o600),
            NPPPD_USERS: _file(npppd_users_text(names), 0o600),
            # mode 600 as on a real host: non-root users get "Permission denied"
            NPPPD_CONF: _file(NPPPD_CONF_TEXT if not big else NPPPD_CONF_TEXT.replace(
                "10.0.0.2-10.0.0.254", "10.0.0.2-10.0.255.254"), 0o600),
            # syslogd.conf(5) of a stock install sends daemon.info here; newsyslog keeps it 640
            syslog.DAEMON_LOG: _file("", 0o640),
            services.RC_CONF_LOCAL: _file(RC_CONF_LOCAL_TEXT, 0o644),
        },
        "procs": {},
        "next_pid": 31337,
        "pf": {"enabled": False, "since": now, "debug": "err", "rules": [],
               "limits": dict(PF_LIMITS), "counters": {}, "rates": dict(PF_RATES),
               "t0": now},
        "ike_loaded": False,
        "ike": {"auth": "hmac-sha1", "enc": "aes"},
        "npppd": {"iface": "pppx", "address": "10.0.0.1", "broadcast": "10.0.0.255",
                  "pool": pool, "next_ppp_id": 0, "next_ctrl_id": 1, "pppac_index": 6,
                  "stale_socket": False},
        "sessions": [],
        "next_ifindex": 7,
    }
    boot(state, now - UPTIME_AT_RESET)
    connect_many(state, names[:n_sessions], now)
    # pf keeps a few states per client (IKE, NAT-T, the NATed traffic) plus
    # the host's own (ssh, ntp, dns).
    state["pf"]["counters"]["states"] = 14 + 5 * n_sessions
    state["pf"]["counters"]["half-open tcp"] = 0
    return state


def connect_many(state: State, names: list[str], now: float) -> None:
    """Clients that connected over the last hour, oldest first.  A small host's log
    holds their logins too (`why alice` says connected); a benchmark-sized one's does
    not, so that a collection reads the sessions, not a log of ten thousand logins."""
    cache = sess.Allocations.of(state)
    count = len(names)
    for i, name in enumerate(names):
        started = now - 3600 + (3600 * i) // max(count, 1) + 7
        s = sess.new_session(state, name, started, cache)
        if count <= 200:
            syslog.connected(state, started, s)


# --- boot and the pieces /etc/rc runs ---------------------------------------------

def boot(state: State, now: float) -> str:
    """/etc/rc: sysctl.conf, pf, early daemons, ipsec.conf; sessions are gone."""
    state["boot_time"] = now
    state["sessions"] = []
    state["procs"] = {}
    state["ike_loaded"] = False
    state["npppd"]["stale_socket"] = False
    state["sysctl"] = {name: spec[0] for name, spec in KERNEL.items()}
    state["sysctl"]["kern.securelevel"] = 0
    for line in state["files"].get(SYSCTL_CONF, {"text": ""})["text"].splitlines():
        words = line.split("#", 1)[0].split()
        if words and "=" in words[0]:
            name, _, value = words[0].partition("=")
            set_sysctl(state, name, value, boot=True)
    state["sysctl"]["kern.securelevel"] = 1
    rc = rc_text(state)
    pf = state["pf"]
    pf.update(enabled=False, since=now, t0=now, counters={}, rules=[], debug="err",
              limits=dict(PF_LIMITS))
    if services.enabled(rc, "pf"):
        pf["rules"] = list(compile_pfconf(BOOT_RULES_TEXT, "stdin", net(state)).rules)
        pf.update(enabled=True, since=now)
        try:
            load_pfconf(state, state["files"].get(PF_CONF, {"text": ""})["text"])
        except PfConfError:
            pass  # /etc/rc's `pfctl -f /etc/pf.conf` failed: the boot rules stay
    early = ("isakmpd", "npppd")
    for name in services.RCD_SCRIPTS:
        if name not in early and services.enabled(rc, name):
            daemons.start(state, name, now, services.value(rc, name))
    for name in early:
        if services.enabled(rc, name):
            daemons.start(state, name, now, services.value(rc, name))
    if services.enabled(rc, "ipsec") and IPSEC_CONF in state["files"]:
        load_ipsecconf(state, as_root=True)
    return f"rebooted {state['hostname']}: VPN sessions dropped"


def rc_text(state: State) -> str:
    entry = state["files"].get(services.RC_CONF_LOCAL)
    return entry["text"] if entry else ""


def set_sysctl(state: State, name: str, value: str, boot: bool = False) -> str | None:
    """Set a running value; returns an errno name ("EINVAL", "EPERM") on failure."""
    if name not in KERNEL:
        return "ENOENT"
    spec = KERNEL[name]
    if not spec[2]:                 # writable
        return "EPERM"
    if isinstance(spec[0], int):
        allowed = spec[1]
        try:
            number = int(value, 0)
        except ValueError:
            return "NOTINT"
        if name == "kern.securelevel" and number < state["sysctl"][name] and not boot:
            return "EPERM"
        if allowed and not allowed[0] <= number <= allowed[1]:
            return "EINVAL"
        state["sysctl"][name] = number
    else:
        choices = spec[1]
        if choices and value not in choices:
            return "EINVAL"
        state["sysctl"][name] = value
    return None


def load_pfconf(state: State, text: str, filename: str = PF_CONF) -> Compiled:
    """Compile and load; raises PfConfError and keeps the old ruleset on errors."""
    compiled = compile_pfconf(text, filename, net(state))
    pf = state["pf"]
    pf["rules"] = list(compiled.rules)
    pf["limits"].update(compiled.limits)
    if compiled.debug:
        pf["debug"] = compiled.debug
    return compiled


def readable(entry: JsonObject, as_root: bool) -> bool:
    """Whether the caller may open the file for reading."""
    if as_root:
        return True
    if entry["uid"] == USER_UID:
        return bool(entry["mode"] & 0o400)
    return bool(entry["mode"] & 0o004)


def secrecy_error(path: str, entry: JsonObject, as_root: bool) -> str | None:
    """check_file_secrecy() of sbin/ipsecctl/parse.y."""
    if entry["uid"] != 0 and (as_root or entry["uid"] != USER_UID):
        return f"{path}: owner not root or current user"
    if entry["mode"] & 0o077:
        return f"{path}: group/world readable/writeable"
    return None


def load_ipsecconf(state: State, as_root: bool, path: str = IPSEC_CONF,
                   noaction: bool = False,
                   verbose: list[str] | None = None) -> tuple[list[str], int]:
    """`ipsecctl [-n] [-v] -f PATH`: (stderr lines, code); code 2 = err(3) exit 1 at once.

    Order of ipsecctl_rules(): parse_rules() (fopen, check_file_secrecy, the
    grammar), then ipsecctl_commit(): pfkey_init(), then the isakmpd FIFO for
    ike rules.  VERBOSE, when given, gets the `C set ...` lines -v prints for the
    ike rules (ike.c rev 1.85): the demo prints them only for a file that parses;
    the real ipsecctl prints the rules read before a syntax error too.
    """
    failed = "ipsecctl: Syntax error in config file: ipsec rules not loaded"
    entry = state["files"].get(path)
    if entry is None or not readable(entry, as_root):
        why = "No such file or directory" if entry is None else "Permission denied"
        return [f"ipsecctl: cannot open the main config file!: {why}", failed], 1
    secrecy = secrecy_error(path, entry, as_root)
    if secrecy:
        # warn() after the failed check reports a stale errno (UNVERIFIED: 0 assumed).
        return [f"ipsecctl: {secrecy}",
                "ipsecctl: cannot open the main config file!: Undefined error: 0",
                failed], 1
    psks: dict[str, str] = {}
    interfaces = net(state)
    try:
        conf = read_ipsecconf(entry["text"], path, interfaces.exists, interfaces.lookup, psks)
    except IpsecConfError as exc:
        return [*exc.errors, failed], 1
    if verbose is not None:
        verbose.extend(conf.nvf_lines(psks))
    if noaction:
        return [], 0
    if not as_root:
        return ["ipsecctl: pfkey_init: failed to open PF_KEY socket: Permission denied"], 2
    if conf.rules and not daemons.running(state, "isakmpd"):
        return ["ipsecctl: ike_ipsec_establish: open(/var/run/isakmpd.fifo): "
                "No such file or directory"], 2
    if conf.rules:
        # What isakmpd holds: the names and transforms ipsecctl adds to it.
        state["ike"] = conf.policy_state(state["ike"] if state["ike_loaded"] else None)
        state["ike_loaded"] = True
    return [], 0


# --- events ------------------------------------------------------------------------

class EventError(Exception):
    """The event cannot happen on this host now: one line for the user."""


def reboot(state: State, now: float) -> str:
    return boot(state, now)


def crash(state: State, name: str, now: float) -> str:
    if not services.exists(name) or services.is_special(name):
        raise EventError(f"no daemon called {name!r} on this host")
    if not daemons.running(state, name):
        raise EventError(f"{name} is not running")
    dropped = len(state["sessions"]) if name in ("isakmpd", "npppd") else 0
    daemons.stop(state, name)
    if name == "npppd":
        state["npppd"]["stale_socket"] = True  # a killed npppd leaves its socket
    return f"{name} crashed" + (f"; {dropped} VPN session(s) dropped" if dropped else "")


class LoggedFailure(EventError):
    """The client failed and isakmpd or npppd logged why: keep the state (its log)."""


def connect(state: State, user: str, now: float, password: str | None = None,
            psk: str | None = None, proposal: str | None = None,
            path_blocked: bool = False, client: str = DEFAULT_CLIENT) -> str:
    """An L2TP/IPsec client logs in: IKE with isakmpd, then L2TP/PPP with npppd.

    The client's packets go through the simulated pf (pfconf.path_blocked: the
    loaded rules, as the kernel would decide), then isakmpd must hold the IKE
    policy (`ipsecctl -f` done) with a phase-1 proposal CLIENT offers
    (ipsecconf.client_can_negotiate) and the same PSK; then npppd must know the
    user and its password and have a free address.  Each failure is logged the
    way the daemons log it (host/demo/syslog.py).  `path_blocked` forces a path
    that drops NAT-T; `proposal` makes the client offer only that group.
    """
    if not daemons.running(state, "isakmpd"):
        if user not in users(state):
            raise EventError(f"no user {user!r} in {NPPPD_USERS}")
        raise EventError(f"{user} cannot connect: isakmpd is not running (no IKE)")
    ppp_id = state["npppd"]["next_ppp_id"]
    peer, port = f"203.0.113.{1 + (7 * ppp_id + len(user)) % 254}", 1701
    logged = f"(logged to {syslog.DAEMON_LOG})"
    blocked = ("nat-t", "the path drops UDP 4500") if path_blocked else _pf_blocks(state)
    if blocked:
        flow, why = blocked
        # isakmpd sees nothing of what pf drops before it; a NAT-T path that breaks
        # after main mode began is the one it logs (giving up on the exchange).
        if flow in ("nat-t", "esp"):
            syslog.no_response(state, now, peer, 4500)
            raise LoggedFailure(f"{user} cannot connect: {why} {logged}")
        raise EventError(f"{user} cannot connect: {why}")
    # isakmpd compares the offer with the phase 1 it holds (ipsecctl -f loaded it).
    loaded = state["ike"].get("phase1", []) if state["ike_loaded"] else []
    expected = next((p["group"] for p in loaded if p["peer"] is None), DEFAULT_GROUP)
    if proposal is not None and GROUPS.get(proposal, proposal) != GROUPS.get(expected, expected):
        syslog.no_proposal(state, now, peer, 500, proposal, expected)
        raise LoggedFailure(f"{user} cannot connect: ipsec.conf accepts no proposal of the "
                            f"client ({proposal}; expects {expected}) {logged}")
    ike = client_can_negotiate(state, client, psk if psk is not None else PSK)
    if ike == "no-policy":
        raise EventError(f"{user} cannot connect: isakmpd has no IKE policy "
                         "(ipsec.conf not loaded with ipsecctl -f)")
    if ike == "no-proposal":
        # isakmpd names the group of the client's first (preferred) offer.
        syslog.no_proposal(state, now, peer, 500, CLIENTS[client][0][3], expected)
        raise LoggedFailure(f"{user} cannot connect: ipsec.conf accepts no phase-1 proposal "
                            f"a {client} client offers (expects {expected}) {logged}")
    if ike == "psk-mismatch":
        syslog.psk_mismatch(state, now, peer, 4500)
        raise LoggedFailure(f"{user} cannot connect: wrong pre-shared key {logged}")
    if not daemons.running(state, "npppd"):
        raise EventError(f"{user} cannot connect: npppd is not running")
    if user not in users(state):
        state["npppd"]["next_ppp_id"] = ppp_id + 1
        syslog.failed_login(state, now, user, peer, port, ppp_id, "unknown")
        raise LoggedFailure(f"no user {user!r} in {NPPPD_USERS}")
    npppd_users = state["files"].get(NPPPD_USERS, {"text": ""})["text"]
    if password is not None and password != user_password(npppd_users, user):
        state["npppd"]["next_ppp_id"] = ppp_id + 1
        syslog.failed_login(state, now, user, peer, port, ppp_id, "mismatch")
        raise LoggedFailure(f"{user} cannot connect: wrong password {logged}")
    try:
        s = sess.new_session(state, user, now)
    except ValueError as exc:
        state["npppd"]["next_ppp_id"] = ppp_id + 1
        syslog.pool_exhausted(state, now, user, peer, port, ppp_id)
        raise LoggedFailure(f"{user} cannot connect: {exc} {logged}") from None
    syslog.connected(state, now, s)
    return (f"{user} connected from {s['peer']}:{s['peer_port']} as {s['ip']} "
            f"on {s['ifname']} (ppp id {s['ppp_id']})")


def _pf_blocks(state: State) -> tuple[str, str] | None:
    """(the flow, why) the simulated pf drops a packet a client needs to connect, or
    None.  pf disabled filters nothing."""
    pf = state["pf"]
    if not pf["enabled"]:
        return None
    egress, npppd = state["egress"], state["npppd"]
    ppp = "pppac0" if npppd["iface"] == "pppac" else f"pppx{len(state['sessions'])}"
    return pfconf_path_blocked(pf["rules"], net(state), egress["ifname"], egress["address"],
                               npppd["pool"], ppp, CONNECTION_FLOWS)


def disconnect(state: State, user: str, now: float) -> str:
    mine = [s for s in state["sessions"] if s["user"] == user]
    if not mine:
        raise EventError(f"{user} has no session")
    state["sessions"] = [s for s in state["sessions"] if s["user"] != user]
    for s in mine:
        syslog.disconnected(state, now, s, sess.counters(s, now), sess.elapsed(s, now))
    return f"{user} disconnected ({len(mine)} session(s))"


def reset(now: float, n_sessions: int = 3) -> State:
    if n_sessions < 0 or n_sessions > 60000:
        raise EventError("--sessions must be between 0 and 60000")
    return fresh_state(now, n_sessions)


# --- demo break SCENARIO ------------------------------------------------------------

def _reboot_drift(state: State, now: float) -> str:
    entry = state["files"][SYSCTL_CONF]
    entry["text"] = "".join(line + "\n" for line in entry["text"].splitlines()
                            if not line.startswith("net.inet.ip.forwarding"))
    boot(state, now)
    return ("net.inet.ip.forwarding was set by hand but never written to "
            f"{SYSCTL_CONF}; after the reboot it is 0")


def _isakmpd_down(state: State, now: float) -> str:
    if daemons.running(state, "isakmpd"):
        daemons.stop(state, "isakmpd")
    return "isakmpd stopped: no IKE, every VPN session dropped"


def _flags_lost(state: State, now: float) -> str:
    entry = state["files"].setdefault(services.RC_CONF_LOCAL, _file("", 0o644))
    entry["text"] = services.set_flags(entry["text"], "isakmpd", "") or ""
    return ("isakmpd_flags lost its -K in rc.conf.local; the running isakmpd keeps it "
            "until the next restart")


def _ipsec_disabled(state: State, now: float) -> str:
    entry = state["files"].setdefault(services.RC_CONF_LOCAL, _file("", 0o644))
    entry["text"] = services.disable(entry["text"], "ipsec") or ""
    return "ipsec=NO in rc.conf.local: ipsec.conf will not be loaded at the next boot"


def _pf_disabled(state: State, now: float) -> str:
    pf = state["pf"]
    fold_pf_counters(pf, now)
    pf.update(enabled=False, since=now)
    return "pf disabled (pfctl -d): no filtering and no NAT for the VPN clients"


def _ruleset_flushed(state: State, now: float) -> str:
    state["pf"]["rules"] = []
    return "pf ruleset flushed (pfctl -F rules): pf is enabled with no rules"


def _pfconf_unloaded(state: State, now: float) -> str:
    entry = state["files"][PF_CONF]
    entry["text"] += ("\n# added by hand, never loaded\n"
                      "pass in on egress proto tcp to port { 80, 443 }\n")
    return f"{PF_CONF} edited but not loaded: pfctl -nvf and pfctl -sr now differ"


def _ipsec_conf_mode(state: State, now: float) -> str:
    state["files"][IPSEC_CONF]["mode"] = 0o644
    return f"{IPSEC_CONF} made world-readable (644): ipsecctl will refuse to load it"


SCENARIOS = {
    "reboot-drift": ("a sysctl set by hand but never persisted, then a reboot",
                     _reboot_drift),
    "isakmpd-down": ("isakmpd stopped: no IKE, sessions drop", _isakmpd_down),
    "flags-lost": ("isakmpd_flags lost -K in rc.conf.local (running daemon unchanged)",
                   _flags_lost),
    "ipsec-disabled": ("ipsec=NO in rc.conf.local: ipsec.conf not loaded at boot",
                       _ipsec_disabled),
    "pf-disabled": ("pf disabled with pfctl -d", _pf_disabled),
    "ruleset-flushed": ("pf rules flushed with pfctl -F rules", _ruleset_flushed),
    "pfconf-unloaded": ("pf.conf edited but not loaded", _pfconf_unloaded),
    "ipsec-conf-mode": ("ipsec.conf made world-readable (mode 644)", _ipsec_conf_mode),
}


def break_host(state: State, scenario: str, now: float) -> str:
    if scenario not in SCENARIOS:
        raise EventError(f"unknown scenario {scenario!r}; see `demo break --list`")
    return SCENARIOS[scenario][1](state, now)


def fold_pf_counters(pf: JsonObject, now: float) -> None:
    """Freeze the counters' growth so far into their base (pf stops or starts)."""
    pf["counters"] = pf_counters(pf, now)
    pf["t0"] = now
