"""Daemons of the demo host: what rc.d(8) start/stop/check do, and what runs.

state["procs"] maps a running rc.d service to {"pid", "flags", "since"}.
Side effects that matter for a VPN host:

- isakmpd keeps the IKE policy ipsecctl pushed through its FIFO only while it
  runs (state["ike_loaded"]).  When it goes, its SAs and flows go, and the
  L2TP sessions that ran over them drop (the demo drops them at once; a real
  npppd notices when the L2TP hellos time out).
- isakmpd started without -K reads the keynote policy file; a default install
  has no /etc/isakmpd/isakmpd.policy, so it exits in policy_init() right after
  daemonizing (sbin/isakmpd/isakmpd.c: daemon() comes before init()).  rc.subr
  rev 1.129 has already printed "isakmpd(ok)" by then.
- npppd going away drops every session.
"""

from __future__ import annotations

from ...parsers import ParseError
from ...parsers.isakmpd import has_option, parse_flags
from . import services
from . import sessions as sess
from .state import State

# rc.d scripts' pexp for daemons that retitle themselves (etc/rc.d/isakmpd,
# etc/rc.d/npppd): rc_check looks for these, and ps shows them.
TITLES = {"isakmpd": "isakmpd: monitor [priv]", "npppd": "npppd: main"}


def running(state: State, name: str) -> bool:
    return name in state["procs"]


def configured_flags(state: State, name: str, force: bool = False) -> str | None:
    """daemon_flags rc.subr would use; None when `start` refuses (flags NO, no -f)."""
    flags = services.value(_rc_text(state), name)
    if flags == "NO":
        return "" if force else None
    return flags


def start(state: State, name: str, now: float, flags: str) -> bool:
    """Run the daemon with `flags`; False if it died at once (see module doc)."""
    if name == "isakmpd":
        # A new isakmpd starts from its built-in defaults (conf.c
        # conf_load_defaults()): no policy until `ipsecctl -f`.
        state["ike_loaded"] = False
        try:
            if not has_option(parse_flags(flags), "K"):
                return False
        except ParseError:            # isakmpd prints its usage and exits
            return False
    state["procs"][name] = {"pid": _next_pid(state), "flags": flags, "since": now}
    return True


def stop(state: State, name: str) -> None:
    """The daemon exits (rcctl stop, crash, shutdown)."""
    state["procs"].pop(name, None)
    if name == "isakmpd":
        state["ike_loaded"] = False
        sess.drop_all(state)
    elif name == "npppd":
        sess.drop_all(state)


def processes(state: State) -> list[tuple[int, str, tuple[str, ...], str]]:
    """(pid, name, cmdline, user) of the running daemons, as ps/psutil show them."""
    out: list[tuple[int, str, tuple[str, ...], str]] = [(1, "init", ("/sbin/init",), "root")]
    for name, proc in sorted(state["procs"].items(), key=lambda kv: kv[1]["pid"]):
        path = services.DAEMON_PATHS.get(name, f"/usr/sbin/{name}")
        argv = (path, *proc["flags"].split())
        if name == "isakmpd":
            # The privileged monitor carries the title rc.d/isakmpd looks for;
            # the unprivileged child keeps its command line.
            # (sbin/isakmpd/monitor.c monitor_init(): setproctitle in the parent,
            # setresuid(_isakmpd) in the child.)
            out.append((proc["pid"], name, (TITLES[name],), "root"))
            out.append((proc["pid"] + 1, name, argv, "_isakmpd"))
        elif name in TITLES:
            out.append((proc["pid"], name, (TITLES[name],), "root"))
        else:
            out.append((proc["pid"], name, argv, "root"))
    return out


def _next_pid(state: State) -> int:
    pid: int = state["next_pid"]
    state["next_pid"] = pid + 2 + pid % 7  # leave room for children, look less regular
    return pid


def _rc_text(state: State) -> str:
    entry = state["files"].get(services.RC_CONF_LOCAL)
    return entry["text"] if entry else ""


# isakmpd's built-in `[Phase 1]:Default` (conf.c rev 1.108 conf_load_defaults(),
# FACTS.md section 1), and what ipsecctl sets for rules without `peer` (ike.c).
BUILTIN_PHASE1_DEFAULT = "Default-phase-1"


def isakmpd_get(state: State, tag: str) -> str:
    """The result file isakmpd writes for `C get TAG` (ui.c rev 1.58 ui_config()).

    `"%s\\n"` of the value, or an empty file when the tag is not set.  The
    caller checks that isakmpd runs.
    """
    ike = state.get("ike", {}) if state.get("ike_loaded") else {}
    if tag == "[Phase 2]:Passive-Connections":
        names = ike.get("passive", [])
        return ",".join(names) + "\n" if names else ""
    if tag == "[Phase 1]:Default":
        if any(p.get("peer") is None for p in ike.get("phase1", [])):
            return "peer-default\n"
        return BUILTIN_PHASE1_DEFAULT + "\n"
    return ""
