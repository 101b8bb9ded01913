"""Run one OpenBSD admin command on the demo host: answer it and change the state.

Every argv of obsdvpn_agent/commands.py (the probes' table and repair's
allow-list) is answered, and the admin commands of the `demo run` tour:
sysctl, rcctl, pfctl, ipsecctl, ifconfig, npppctl, chmod, chown.  Messages
and exit codes follow the OpenBSD source (cited per handler); a command or
option outside the model returns 127 with a `demo:` line on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ... import commands as table
from ...parsers import GetoptError, getopt
from . import daemons, events, render, services
from . import sessions as sess
from .pfconf import PfConfError, compile_pfconf, rule_lines
from .state import State

NOT_MODELLED = 127
# Who is who on the demo host: root, and the non-root user the agent may run as.
PASSWD = {"root": 0, "daemon": 1, "_obsdvpn": events.USER_UID}
GROUPS = {"wheel": 0, "daemon": 1, "_obsdvpn": events.USER_UID}
USER_NAMES = {v: k for k, v in PASSWD.items()}
GROUP_NAMES = {v: k for k, v in GROUPS.items()}


@dataclass
class Ctx:
    state: State
    now: float
    as_root: bool
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.out.append(text)

    def warn(self, line: str) -> None:
        self.err.append(line + "\n")


# A command of the demo host: its Ctx and arguments -> exit status, None when
# the arguments are outside what the demo models.
Handler = Callable[[Ctx, list[str]], int | None]


class _Exit(Exception):
    """err(3)/errx(3): the program stops here with this status."""

    def __init__(self, code: int) -> None:
        self.code = code


def not_modelled(argv: Sequence[str]) -> tuple[int, str, str]:
    return (NOT_MODELLED, "",
            f"demo: command not modelled by the demo host: {' '.join(argv)}\n")


def run_command(state: State, argv: Sequence[str], now: float,
                as_root: bool) -> tuple[int, str, str]:
    """(returncode, stdout, stderr) of argv on the host `state` (changed in place)."""
    handler = _handler(argv)
    if handler is None:
        return not_modelled(argv)
    ctx = Ctx(state, now, as_root)
    try:
        code = handler(ctx, list(argv[1:]))
    except _Exit as exc:
        code = exc.code
    if code is None:
        return not_modelled(argv)
    return code, "".join(ctx.out), "".join(ctx.err)


def mutates(argv: Sequence[str]) -> bool:
    """Whether argv may change the host (the caller then takes the write lock)."""
    name = _name(argv)
    args = list(argv[1:])
    if name == "sysctl":
        return any("=" in a for a in args)
    if name == "rcctl":
        words = [a for a in args if not a.startswith("-")]
        return bool(words) and words[0] not in ("get", "getdef", "ls", "check")
    if name in ("pfctl", "ipsecctl"):
        spec = "a:dD:eqf:F:ghi:k:K:L:Nno:Pp:R:rS:s:t:T:vV:x:z" if name == "pfctl" \
            else "cD:df:Fi:kmnvs:"
        parsed = _getopt(args, spec)
        letters = {o for o, _ in parsed[0]} if parsed else set()
        changing = set("deFxkKzL") if name == "pfctl" else set("dF")
        return bool(letters & changing) or ("f" in letters and "n" not in letters)
    if name == "npppctl":
        return "clear" in args
    return name in ("chmod", "chown")


_PATHS = {table.SYSCTL: "sysctl", table.RCCTL: "rcctl", table.PFCTL: "pfctl",
          table.IPSECCTL: "ipsecctl", table.IFCONFIG: "ifconfig", table.NPPPCTL: "npppctl",
          "/bin/chmod": "chmod", "/sbin/chown": "chown"}


def _name(argv: Sequence[str]) -> str | None:
    if not argv:
        return None
    if argv[0] in _PATHS:
        return _PATHS[argv[0]]
    return argv[0] if argv[0] in _PATHS.values() else None


def _handler(argv: Sequence[str]) -> Handler | None:
    name = _name(argv)
    return None if name is None else _HANDLERS[name]


def _getopt(args: list[str], spec: str) -> tuple[list[tuple[str, str]], list[str]] | None:
    """getopt(3) as the tools use it; None on an option the spec lacks."""
    try:
        return getopt(args, spec)
    except GetoptError:
        return None


# --- sysctl(8): sbin/sysctl/sysctl.c rev 1.268 --------------------------------------

_LEVELS = ("top", "second", "third", "fourth", "fifth", "sixth")


def _sysctl(ctx: Ctx, args: list[str]) -> int | None:
    parsed = _getopt(args, "nqw")
    if parsed is None or not parsed[1]:
        return None
    flags = {o for o, _ in parsed[0]}
    for arg in parsed[1]:
        name, eq, value = arg.partition("=")
        known = ctx.state["sysctl"]
        if name not in known:
            children = sorted(n for n in known if n.startswith(name + "."))
            if children and not eq:
                for child in children:
                    ctx.say(_sysctl_line(child, known[child], "n" in flags))
                continue
            # findname() only warns and parse() returns; main() still exits 0
            # (sbin/sysctl/sysctl.c).
            ctx.warn(f"sysctl: {_unknown_level(name, known)}")
            continue
        if not eq:
            ctx.say(_sysctl_line(name, known[name], "n" in flags))
            continue
        old = known[name]
        problem = "EPERM" if not ctx.as_root else events.set_sysctl(ctx.state, name, value)
        if problem == "EPERM":
            ctx.warn(f"sysctl: {name}: Operation not permitted")
        elif problem == "EINVAL":
            ctx.warn(f"sysctl: {name}: Invalid argument")
        elif problem == "NOTINT":
            # parse(): warnx("%s: value is %s: %s", string, errstr, newval), strtonum's errstr.
            ctx.warn(f"sysctl: {name}: value is invalid: {value}")
        # Errors are warnings only: main() returns 0 whatever parse() hit
        # (sbin/sysctl/sysctl.c rev 1.268).
        if not problem and "q" not in flags:
            ctx.say(f"{name}: {old} -> {known[name]}\n")
    return 0


def _sysctl_line(name: str, value: int | str, numeric_only: bool) -> str:
    return f"{value}\n" if numeric_only else f"{name}={value}\n"


def _unknown_level(name: str, known: dict[str, int | str]) -> str:
    """findname(): `LEVEL level name PART in NAME is invalid` for the first bad part."""
    parts = name.split(".")
    prefixes = {".".join(n.split(".")[:k]) for n in known for k in range(1, 7)}
    for depth, part in enumerate(parts):
        if ".".join(parts[:depth + 1]) not in prefixes or \
                (depth < len(parts) - 1 and ".".join(parts[:depth + 1]) in known):
            level = _LEVELS[min(depth, len(_LEVELS) - 1)]
            return f"{level} level name {part} in {name} is invalid"
    return f"{name}: specification is incomplete"


# --- rcctl(8): usr.sbin/rcctl/rcctl.sh rev 1.122 + etc/rc.d/rc.subr rev 1.129 ----------

_RC_ACTIONS = ("start", "stop", "restart", "reload", "check", "configtest")
_RCCTL_USAGE = ("usage:\trcctl get|getdef|set daemon|service [variable [argument ...]]\n"
                "\trcctl [-d | -q] [-f] " + "|".join(_RC_ACTIONS) + " daemon ...\n"
                "\trcctl disable|enable|order [daemon ...]\n"
                "\trcctl ls all|failed|off|on|rogue|started|stopped\n")
_VARS = ("class", "execdir", "flags", "logger", "rtable", "status", "timeout", "user")


def _rcctl(ctx: Ctx, args: list[str]) -> int | None:
    parsed = _getopt(args, "dfq")
    if parsed is None:
        return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
    opts = {o for o, _ in parsed[0]}
    if "d" in opts:
        return None  # rc.subr's debug trace is not modelled
    args = parsed[1]
    if not args:
        return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
    action, rest = args[0], args[1:]
    rc = events.rc_text(ctx.state)
    if action == "ls":
        if len(rest) != 1 or rest[0] not in ("all", "failed", "off", "on", "rogue",
                                             "started", "stopped"):
            return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
        if rest[0] in ("started", "stopped", "failed", "rogue") and not ctx.as_root:
            return _rc_err(ctx, f'rcctl: "ls {rest[0]}" needs root privileges')
        return _rcctl_ls(ctx, rest[0], rc)
    if action in ("enable", "disable", *_RC_ACTIONS):
        if not rest:
            return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
        for svc in rest:
            if not services.exists(svc) and not (action == "disable"
                                                 and re.fullmatch(r"[A-Za-z_]\w*", svc)):
                return _rc_err(ctx, f"rcctl: service {svc} does not exist", 2)
        if action in ("enable", "disable"):
            if not ctx.as_root:
                return _rc_err(ctx, f'rcctl: "{action}" needs root privileges')
            for svc in rest:
                _edit_rc(ctx, (services.enable if action == "enable"
                               else services.disable)(rc, svc))
                rc = events.rc_text(ctx.state)
            return 0
        if action == "configtest":
            return None
        code = 0
        for svc in rest:
            if services.is_special(svc):
                return _rc_err(ctx, f'rcctl: "{svc}" is a special variable, no rc.d(8) '
                                    "script")
            code = _rc_d(ctx, svc, action, "f" in opts, "q" in opts) or code
        return code
    if action in ("get", "getdef"):
        if not rest:
            return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
        svc, var = rest[0], (rest[1] if len(rest) > 1 else "")
        if svc == "all":
            return None
        if not services.exists(svc):
            return _rc_err(ctx, f"rcctl: service {svc} does not exist", 2)
        if var and var not in _VARS:
            return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
        if var and services.is_special(svc) and var not in ("flags", "status"):
            return _rc_err(ctx, f'rcctl: "{svc}" is a special variable, cannot '
                                f'"{action} {var}"')
        return _rcctl_get(ctx, svc, var, rc if action == "get" else "")
    if action == "set":
        return _rcctl_set(ctx, rest, rc)
    if action == "order":
        return None
    return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))


def _rc_err(ctx: Ctx, message: str, code: int = 1) -> int:
    ctx.warn(message)
    return code


def _edit_rc(ctx: Ctx, text: str | None) -> None:
    files = ctx.state["files"]
    if text is None:
        files.pop(services.RC_CONF_LOCAL, None)
    elif services.RC_CONF_LOCAL in files:
        files[services.RC_CONF_LOCAL]["text"] = text
    else:  # rcconf_edit_end: install -m0644 -o0 -g0
        files[services.RC_CONF_LOCAL] = {"text": text, "mode": 0o644, "uid": 0, "gid": 0}


def _rcctl_ls(ctx: Ctx, what: str, rc: str) -> int:
    allsvc = sorted(set(services.RCD_SCRIPTS) | set(services.SPECIAL))
    code = 0
    if what == "all":
        shown = allsvc
    elif what in ("on", "off"):
        shown = [s for s in allsvc if services.enabled(rc, s) == (what == "on")]
    elif what in ("started", "stopped"):
        shown = [s for s in services.RCD_SCRIPTS
                 if daemons.running(ctx.state, s) == (what == "started")]
    else:  # failed: on but not running; rogue: off but running
        want_on = what == "failed"
        shown = [s for s in allsvc if not services.is_special(s)
                 and services.enabled(rc, s) == want_on
                 and daemons.running(ctx.state, s) != want_on]
        code = 1 if shown else 0
    ctx.say("".join(f"{s}\n" for s in shown))
    return code


def _rcctl_get(ctx: Ctx, svc: str, var: str, rc: str) -> int:
    """svc_get (rc = rc.conf.local text) or svc_getdef (rc = "")."""
    flags = services.value(rc, svc)
    status = 1 if flags == "NO" else 0
    if services.is_special(svc):
        if var == "status":
            return status
        ctx.say(f"{flags}\n" if var else f"{svc}={flags}\n")
        return 0 if var else status
    values = {"class": "daemon", "execdir": "", "flags": flags, "logger": "",
              "rtable": "0", "timeout": "30", "user": "root"}
    if var == "status":
        return status
    if var:
        if values[var]:
            ctx.say(values[var] + "\n")
        return 0
    ctx.say("".join(f"{svc}_{k}={values[k]}\n" for k in
                    ("class", "execdir", "flags", "logger", "rtable", "timeout", "user")))
    return status


def _rcctl_set(ctx: Ctx, rest: list[str], rc: str) -> int | None:
    if len(rest) < 2:
        return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
    svc, var, value = rest[0], rest[1], " ".join(rest[2:])
    if not services.exists(svc):
        return _rc_err(ctx, f"rcctl: service {svc} does not exist", 2)
    if var not in _VARS:
        return _rc_err(ctx, _RCCTL_USAGE.rstrip("\n"))
    if var == "flags" and value == "NO":
        return _rc_err(ctx, 'rcctl: "flags NO" contradicts "set"')
    if services.is_special(svc) and var != "status":
        return _rc_err(ctx, f'rcctl: "{svc}" is a special variable, cannot "set {var}"')
    if var == "class":
        return _rc_err(ctx, f'rcctl: "{svc}_class" is a read-only variable set in '
                            "login.conf(5)")
    if not ctx.as_root:
        return _rc_err(ctx, 'rcctl: "set" needs root privileges')
    if var == "status":
        if value not in ("on", "off"):
            return _rc_err(ctx, f'rcctl: invalid status "{value}"')
        _edit_rc(ctx, (services.enable if value == "on" else services.disable)(rc, svc))
        return 0
    if var != "flags":
        return None
    if not services.enabled(rc, svc):
        return _rc_err(ctx, f"rcctl: {svc} is not enabled")
    _edit_rc(ctx, services.set_flags(rc, svc, value))
    return 0


def _rc_d(ctx: Ctx, svc: str, action: str, force: bool, quiet: bool) -> int:
    """/etc/rc.d/SVC ACTION: rc.subr's rc_cmd and _rc_exit."""
    script = f"/etc/rc.d/{svc}"
    if not ctx.as_root and action != "check":
        return _rc_err(ctx, f"{script}: need root privileges")
    state = ctx.state

    def done(ok: bool) -> int:
        if not quiet:
            ctx.say(f"{svc}({'ok' if ok else 'failed'})\n")
        return 0 if ok else 1

    if action == "check":
        return done(daemons.running(state, svc))
    if action in ("stop", "restart"):
        if daemons.running(state, svc):
            daemons.stop(state, svc)
            if svc == "npppd":
                state["npppd"]["stale_socket"] = False
            done(True)
        if action == "stop":
            return 0
    if action == "reload":
        return done(daemons.running(state, svc))
    # start
    flags = daemons.configured_flags(state, svc, force)
    if flags is None:
        return _rc_err(ctx, f"{script}: need -f to force start since {svc}_flags=NO")
    if daemons.running(state, svc):
        return 0
    daemons.start(state, svc, ctx.now, flags)
    if svc == "npppd":
        state["npppd"]["stale_socket"] = False
    return done(True)


# --- pfctl(8): sbin/pfctl/pfctl.c rev 1.397 ---------------------------------------------

_PFCTL_USAGE = ("usage: pfctl [-deghNnPqrvz] [-a anchor] [-D macro=value] [-F modifier]"
                " [-f file]\n"
                "\t[-i interface] [-K key] [-k key] [-L statefile] [-o level]\n"
                "\t[-p device] [-S statefile] [-s modifier [-R id]]\n"
                "\t[-t table -T command [address ...]] [-V rdomain] [-x level]\n")
_PF_SHOW = ("queue", "rules", "Anchors", "Sources", "states", "info", "Interfaces",
            "labels", "timeouts", "memory", "Tables", "osfp", "all")
_PF_CLEAR = ("rules", "Sources", "states", "info", "Tables", "osfp", "Reset", "all")


def _lookup(cmd: str, options: Sequence[str]) -> str | None:
    hits = [o for o in options if o.startswith(cmd)] if cmd else []
    return hits[0] if hits else None


def _pfctl(ctx: Ctx, args: list[str]) -> int | None:
    parsed = _getopt(args, "a:dD:eqf:F:ghi:k:K:L:Nno:Pp:R:rS:s:t:T:vV:x:z")
    if parsed is None:
        ctx.err.append(_PFCTL_USAGE)
        return 1
    opts, rest = parsed
    if rest:
        ctx.warn(f"pfctl: unknown command line argument: {rest[0]} ...")
        ctx.err.append(_PFCTL_USAGE)
        return 1
    letters = [o for o, _ in opts]
    if set(letters) - set("adefFnqsv"):
        return None
    get = {o: v for o, v in opts}
    verbose = letters.count("v")
    noaction = "n" in letters
    show = _lookup(get.get("s", ""), _PF_SHOW) if "s" in get else None
    clear = _lookup(get.get("F", ""), _PF_CLEAR) if "F" in get else None
    if "s" in get and show is None:
        ctx.warn(f"pfctl: Unknown show modifier '{get['s']}'")
        ctx.err.append(_PFCTL_USAGE)
        return 1
    if "F" in get and clear is None:
        ctx.warn(f"pfctl: Unknown flush modifier '{get['F']}'")
        ctx.err.append(_PFCTL_USAGE)
        return 1
    # -a: only `-a '*' -sr` (main ruleset, every anchor recursed) is modelled.
    recurse = False
    if "a" in get:
        if get["a"] == "":
            ctx.warn("pfctl: anchor name must not be empty")
            raise _Exit(1)
        if get["a"] != "*" or show != "rules" or clear or "f" in get or "e" in letters \
                or "d" in letters:
            return None
        recurse = True
    if (show and show not in ("rules", "info", "memory", "Interfaces")) or \
            (clear and clear not in ("rules", "states", "info")) or \
            (verbose and show and show != "Interfaces") or verbose > 1:
        return None
    pf = ctx.state["pf"]
    if not noaction:
        if not ctx.as_root:  # /dev/pf is crw------- root
            ctx.warn("pfctl: /dev/pf: Permission denied")
            return 1
    else:
        show = clear = None
        letters = [o for o in letters if o not in "de"]
    code = 0
    if "d" in letters:
        if not pf["enabled"]:
            ctx.warn("pfctl: pf not enabled")
            raise _Exit(1)
        events.fold_pf_counters(pf, ctx.now)
        pf.update(enabled=False, since=ctx.now)
        _quiet(ctx, letters, "pf disabled")
    if show == "rules":
        ctx.say("".join(f"{line}\n" for line in rule_lines(pf["rules"], recurse)))
    elif show == "Interfaces":
        ctx.say(render.pf_interfaces(pf["rules"], events.net(ctx.state), bool(verbose)))
    elif show == "info":
        ctx.say(render.pf_info(pf, ctx.now))
    elif show == "memory":
        ctx.say(render.pf_limits(pf["limits"]))
    if clear == "rules":
        pf["rules"] = []
        _quiet(ctx, letters, "rules cleared")
    elif clear == "states":
        events.fold_pf_counters(pf, ctx.now)
        killed = pf["counters"].get("states", 0)
        pf["counters"]["states"] = 0
        _quiet(ctx, letters, f"{killed} states cleared")
    elif clear == "info":
        pf["counters"] = {}
        pf["t0"] = ctx.now
        _quiet(ctx, letters, "pf: statistics cleared")
    if "f" in get:
        code = _pfctl_load(ctx, get["f"], noaction, verbose) or code
    if "e" in letters:
        if pf["enabled"]:
            ctx.warn("pfctl: pf already enabled")
            raise _Exit(1)
        events.fold_pf_counters(pf, ctx.now)
        pf.update(enabled=True, since=ctx.now)
        _quiet(ctx, letters, "pf enabled")
    return code


def _quiet(ctx: Ctx, letters: list[str], message: str) -> None:
    if "q" not in letters:
        ctx.warn(message)


def _pfctl_load(ctx: Ctx, path: str, noaction: bool, verbose: int) -> int:
    """pfctl_rules(): parse_config(), then load (or only print with -n)."""
    entry = ctx.state["files"].get(path)
    failed = "pfctl: Syntax error in config file: pf rules not loaded"
    problem = None
    if entry is None:
        problem = "No such file or directory"
    elif not events.readable(entry, ctx.as_root):
        problem = "Permission denied"
    if problem:  # pushfile() warns, then parse_config()
        ctx.warn(f"pfctl: {path}: {problem}")
        ctx.warn(f"pfctl: cannot open the main config file!: {problem}")
        if not noaction:
            ctx.warn(failed)
        raise _Exit(1)
    try:
        compiled = compile_pfconf(entry["text"], path, events.net(ctx.state))
    except PfConfError as exc:
        if verbose:
            ctx.say("".join(f"{line}\n" for line in exc.printed))
        ctx.err.extend(f"{line}\n" for line in exc.errors)
        if not noaction:
            ctx.warn(failed)
        raise _Exit(1) from None
    if verbose:
        lines = (*compiled.printed, *rule_lines(compiled.rules, True, nvf=True))
        ctx.say("".join(f"{line}\n" for line in lines))
    if not noaction:
        events.load_pfconf(ctx.state, entry["text"], path)
    return 0


# --- ipsecctl(8): sbin/ipsecctl/ipsecctl.c rev 1.88 ---------------------------------------

def _ipsecctl(ctx: Ctx, args: list[str]) -> int | None:
    parsed = _getopt(args, "cD:df:Fi:kmnvs:")
    if parsed is None or parsed[1]:
        if parsed is not None:
            ctx.warn(f"ipsecctl: unknown command line argument: {parsed[1][0]} ...")
        ctx.warn("usage: ipsecctl [-cdFkmnv] [-D macro=value] [-f file] [-i fifo] "
                 "[-s modifier]")
        return 1
    opts = dict(parsed[0])
    if set(opts) - set("fFnsv") or ("v" in opts and "s" in opts):
        return None  # -v with -s prints PF_KEY extensions: not modelled
    show = None
    if "s" in opts:
        show = _lookup(opts["s"], ("flow", "sa", "all"))
        if show is None:
            ctx.warn(f"ipsecctl: Unknown show modifier '{opts['s']}'")
            ctx.warn("usage: ipsecctl [-cdFkmnv] [-D macro=value] [-f file] "
                     "[-i fifo] [-s modifier]")
            return 1
    state = ctx.state
    code = 0
    if "F" in opts and "n" not in opts:
        if not ctx.as_root:
            ctx.warn("ipsecctl: pfkey_init: failed to open PF_KEY socket: "
                     "Permission denied")
            raise _Exit(1)
        sess.drop_all(state)
    if "f" in opts:
        code = _ipsecctl_load(ctx, opts["f"], "n" in opts, "v" in opts) or code
    if show:
        if show in ("sa", "all") and not ctx.as_root:
            ctx.warn("ipsecctl: ipsecctl_show: sysctl: Operation not permitted")
            raise _Exit(1)
        server = state["egress"]["address"]
        flows = render.ipsec_flows(state["sessions"], server) if show != "sa" else None
        sas = (render.ipsec_sas(state["sessions"], server, state["ike"]["auth"],
                                state["ike"]["enc"]) if show != "flow" else None)
        ctx.say(render.ipsec_show(flows, sas))
    return code


def _ipsecctl_load(ctx: Ctx, path: str, noaction: bool, verbose: bool) -> int:
    rules: list[str] | None = [] if verbose else None
    lines, code = events.load_ipsecconf(ctx.state, ctx.as_root, path, noaction, rules)
    if rules is not None:
        # ipsecctl_add_rule() prints each rule as parse.y reads it, before
        # anything is loaded (ipsecctl.c rev 1.88).
        ctx.say("".join(f"{line}\n" for line in rules))
    ctx.err.extend(f"{line}\n" for line in lines)
    if code == 2:  # err(3) from pfkey_init() or the FIFO: ipsecctl stops there
        raise _Exit(1)
    return code


# --- ifconfig(8): sbin/ifconfig/ifconfig.c rev 1.476 printif()/printgroup() --------------

def _ifconfig(ctx: Ctx, args: list[str]) -> int | None:
    if len(args) != 1 or args[0].startswith("-"):
        return None
    name = args[0]
    state = ctx.state
    npppd = state["npppd"]
    local = npppd["address"]
    if name.startswith("pppx"):
        members = [s for s in state["sessions"] if s["ifname"].startswith("pppx")]
        if name != "pppx":
            members = [s for s in members if s["ifname"] == name]
        if members:
            ctx.say("".join(render.ifconfig_pppx(s, local) for s in members))
            return 0
    elif name in ("pppac", "pppac0"):
        if npppd["iface"] == "pppac" and daemons.running(state, "npppd"):
            ctx.say(render.ifconfig_pppac(npppd))
            return 0
    elif name in ("egress", state["egress"]["ifname"]):
        ctx.say(render.ifconfig_egress(state["egress"]))
        return 0
    else:
        return None
    ctx.warn(f"{name}: no such interface")
    return 1


# --- npppctl(8): usr.sbin/npppd/npppctl/npppctl.c rev 1.10 -------------------------------

_FILTERS = {"ppp-id": "ppp_id", "address": "ip", "interface": "ifname",
            "protocol": "proto", "realm": "realm", "username": "user"}


def _npppctl(ctx: Ctx, args: list[str]) -> int | None:
    parsed = _getopt(args, "ns:")
    if parsed is None:
        return None
    opts, words = parsed
    if any(o == "s" for o, _ in opts):
        return None
    if words[:2] in (["session", "brief"], ["session", "packets"]) and len(words) == 2:
        action = words[1]
        filters: list[str] = []
    elif words[:2] == ["session", "all"]:
        action, filters = "all", words[2:]
    elif words[:1] == ["clear"] and len(words) > 1:
        action = "clear"
        filters = [] if words[1:] == ["all"] else words[1:]
    else:
        return None
    if len(filters) % 2 or any(f not in _FILTERS for f in filters[::2]):
        return None
    state = ctx.state
    # connect(2) to /var/run/npppd_ctl (srw-rw---- root), err(EXIT_FAILURE, "connect")
    if not daemons.running(state, "npppd"):
        gone = "Connection refused" if state["npppd"]["stale_socket"] else \
            "No such file or directory"
        ctx.warn(f"npppctl: connect: {gone}")
        return 1
    if not ctx.as_root:
        ctx.warn("npppctl: connect: Permission denied")
        return 1
    chosen = [s for s in state["sessions"] if all(
        str(s[_FILTERS[k]]) == v for k, v in zip(filters[::2], filters[1::2]))]
    if action == "brief":
        ctx.say(render.npppctl_brief(state["sessions"]))
    elif action == "packets":
        ctx.say(render.npppctl_packets(state["sessions"], ctx.now))
    elif action == "all":
        ctx.say(render.npppctl_all(chosen, ctx.now))
    else:
        ids = {id(s) for s in chosen}
        state["sessions"] = [s for s in state["sessions"] if id(s) not in ids]
        ctx.say(render.npppctl_clear(len(chosen)))
    return 0


# --- chmod(1), chown(8) ----------------------------------------------------------------

def _chmod(ctx: Ctx, args: list[str]) -> int | None:
    if len(args) < 2 or not re.fullmatch(r"[0-7]{1,4}", args[0]):
        return None  # options and symbolic modes are not modelled
    code = 0
    for path in args[1:]:
        entry = ctx.state["files"].get(path)
        if entry is None:
            ctx.warn(f"chmod: {path}: No such file or directory")
            code = 1
        elif not ctx.as_root and entry["uid"] != events.USER_UID:
            ctx.warn(f"chmod: {path}: Operation not permitted")
            code = 1
        else:
            entry["mode"] = int(args[0], 8) & 0o7777
    return code


def _chown(ctx: Ctx, args: list[str]) -> int | None:
    if len(args) < 2 or args[0].startswith("-"):
        return None
    user, _, group = args[0].partition(":")
    if (user and user not in PASSWD and not user.isdigit()) or \
            (group and group not in GROUPS and not group.isdigit()):
        return None  # unknown names: chown's message was not checked
    code = 0
    for path in args[1:]:
        entry = ctx.state["files"].get(path)
        if entry is None:
            ctx.warn(f"chown: {path}: No such file or directory")
            code = 1
        elif not ctx.as_root:
            ctx.warn(f"chown: {path}: Operation not permitted")
            code = 1
        else:
            if user:
                entry["uid"] = int(user) if user.isdigit() else PASSWD[user]
            if group:
                entry["gid"] = int(group) if group.isdigit() else GROUPS[group]
    return code


# The handler of each command _PATHS names.
_HANDLERS: dict[str, Handler] = {
    "sysctl": _sysctl, "rcctl": _rcctl, "pfctl": _pfctl, "ipsecctl": _ipsecctl,
    "ifconfig": _ifconfig, "npppctl": _npppctl, "chmod": _chmod, "chown": _chown}
