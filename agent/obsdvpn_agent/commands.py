"""The one table of OpenBSD commands the agent runs.

Every command the agent may run on a host is listed here with its argv
(absolute path, no shell), whether it needs root, and which exit codes are
data rather than failure.  The probes, the doas.conf rules, the snapshot
recorder and the demo simulator all read this table, so it is the only
place to change when a command changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config


SYSCTL = "/sbin/sysctl"
RCCTL = "/usr/sbin/rcctl"
PFCTL = "/sbin/pfctl"
IPSECCTL = "/sbin/ipsecctl"
IFCONFIG = "/sbin/ifconfig"
NPPPCTL = "/usr/sbin/npppctl"

PF_CONF = "/etc/pf.conf"
IPSEC_CONF = "/etc/ipsec.conf"
SYSCTL_CONF = "/etc/sysctl.conf"
NPPPD_USERS = "/etc/npppd/npppd-users"
NPPPD_CONF = "/etc/npppd/npppd.conf"


@dataclass(frozen=True)
class Command:
    """One read-only command the probes run."""

    key: str                      # stable name: snapshot entries, collector labels
    argv: tuple[str, ...]
    needs_root: bool
    # Exit codes that still carry a valid answer (e.g. `rcctl check` exits 1
    # for a stopped daemon, `rcctl ls failed` exits 1 when it lists something).
    data_returncodes: frozenset[int] = frozenset({0})
    # Whether the unprivileged `serve` may run it (through doas when it needs root).
    # False for a command whose output holds a secret: only root's `check` runs it.
    for_serve: bool = True

    @property
    def display(self) -> str:
        return " ".join(self.argv)


def sysctl_command(names: tuple[str, ...]) -> Command:
    # One call for all names: sysctl prints the known ones and warns about the
    # unknown ones on stderr (findname() in sysctl.c; the exit stays 0).
    # No root: sys_sysctl() (sys/kern/kern_sysctl.c) wants suser() only to set a value.
    return Command("sysctl", (SYSCTL, *names), False, frozenset({0, 1}))


def rcctl_flags_command(daemon: str) -> Command:
    # `rcctl get NAME flags` prints NO for a disabled daemon (rcctl.sh rev 1.122
    # L328); exit 1 is still accepted as data for older rcctl releases.
    # No root: rcctl.sh runs `get` without needs_root; it only reads rc.conf{,.local}.
    return Command(f"rcctl.flags.{daemon}", (RCCTL, "get", daemon, "flags"), False,
                   frozenset({0, 1}))


def rcctl_check_command(daemon: str) -> Command:
    # `rcctl check` exits 1 and prints NAME(failed) when the daemon is not running.
    # rcctl's dispatch never calls needs_root for check (rcctl.sh rev 1.122 L647-655).
    # rc.subr's rc_cmd() lets non-root "check" unless rc_usercheck=NO (isakmpd, npppd: unset).
    return Command(f"rcctl.check.{daemon}", (RCCTL, "check", daemon), False,
                   frozenset({0, 1}))


# No root: rcctl.sh (rev 1.122) needs_root()s `ls` only for started|stopped|failed|rogue.
RCCTL_LS_ON = Command("rcctl.ls_on", (RCCTL, "ls", "on"), False)
# Root: pfctl.c main() opens /dev/pf (O_RDONLY for -s); etc/MAKEDEV.common makes it mode 600.
PFCTL_INFO = Command("pfctl.info", (PFCTL, "-si"), True)
# Root: the same /dev/pf open as -si (sbin/pfctl/pfctl.c main()).
PFCTL_RULES = Command("pfctl.rules", (PFCTL, "-sr"), True)
# Root: the same /dev/pf open as -si (sbin/pfctl/pfctl.c main()).
PFCTL_LIMITS = Command("pfctl.limits", (PFCTL, "-sm"), True)
# Root: the same /dev/pf open (pfctl.c rev 1.397 main() opens pf_device O_RDONLY for -s).
# `-a '*'` sets PF_OPT_RECURSE with an empty anchor path: every anchor's rules
# are printed in place (pfctl_show_rules()); the argv holds the `*` itself, no shell.
PFCTL_RULES_TREE = Command("pfctl.rules_tree", (PFCTL, "-a", "*", "-sr"), True)
# Root: -sI reads the kifs with DIOCIGETIFACES on the same /dev/pf (pfctl_table.c rev 1.91
# pfctl_show_ifaces() -> pfi_get_ifaces()); -v adds ` (skip)` (print_iface()).
PFCTL_INTERFACES = Command("pfctl.interfaces", (PFCTL, "-sI", "-v"), True)
# Root: -n goes on without /dev/pf, but etc/Makefile installs /etc/pf.conf mode 600 root.
PFCTL_CONFIG = Command("pfctl.config", (PFCTL, "-nvf", PF_CONF), True, frozenset({0, 1}))
# Root: sysctl NET_KEY_SADB_DUMP (the SAs of -sa) is suser()-only in sys/net/pfkeyv2.c.
IPSECCTL_SA = Command("ipsecctl.sa", (IPSECCTL, "-sa"), True)
# `ifconfig pppx` shows every member of the pppx interface group; with no
# session there is no group and ifconfig exits 1, which means "no sessions".
# No root: SIOCGIFGMEMB and the SIOCGIF* reads have no suser() check in sys/net/if.c.
IFCONFIG_PPPX = Command("ifconfig.pppx", (IFCONFIG, "pppx"), False, frozenset({0, 1}))
# `ifconfig egress`: the interface(s) in group egress (the default route's) and
# their addresses, which pf rules `on egress` / `(egress)` stand for.  Exit 1
# with `egress: no such interface` when there is no default route.
# No root: the same SIOCGIFGMEMB/SIOCGIF* reads as `ifconfig pppx`.
IFCONFIG_EGRESS = Command("ifconfig.egress", (IFCONFIG, "egress"), False, frozenset({0, 1}))
# Root: npppd/control.c makes /var/run/npppd.sock mode 0660, owned root:wheel.
# npppctl exits 1 when npppd is down (err(1, "connect")): that means "no session".
NPPPCTL_SESSIONS = Command("npppctl.sessions", (NPPPCTL, "-n", "session", "all"), True,
                           frozenset({0, 1}))

# Root, and NOT for the unprivileged `serve`: ipsec.conf is mode 600 (parse.y
# check_file_secrecy()), and the output carries the PSK in clear (ike.c rev 1.85
# ike_section_peer(): `C set [peer-default]:Authentication=PSK force`).  A doas
# rule for it would hand the PSK to _obsdvpn; only root's `check` runs it, and
# parsers.ipsecctl.parse_ike_nvf() drops that line as it reads.  Exit 1 (a
# syntax error) still prints the rules read so far: not data.
IPSECCTL_NVF = (IPSECCTL, "-nvf", IPSEC_CONF)
IPSECCTL_IKE = Command("ipsecctl.ike", IPSECCTL_NVF, True, frozenset({0, 1}), for_serve=False)

# isakmpd's control FIFO and result file (sbin/isakmpd/ui.c rev 1.58, ui.h).
ISAKMPD_FIFO = "/var/run/isakmpd.fifo"
ISAKMPD_RESULT = "/var/run/isakmpd.result"
# One query at a time: the result file is shared by every FIFO client.  The
# lock lives in /var/run, root's: the only caller is root (the FIFO is mode
# 0600), and a lock in a directory _obsdvpn may write could be held or
# replaced by a symlink from the unprivileged side.  /var/run is emptied at boot.
ISAKMPD_QUERY_LOCK = "/var/run/obsdvpn-agent.isakmpd.lock"
# The only FIFO commands the agent sends: `C get` of these tags, which write
# a section name or a list of connection names, never a key.  Never `r`, `S`
# or SIGUSR1: `r` and SIGUSR1 dump the configuration with the PSK, and every
# other command changes isakmpd's state.
ISAKMPD_QUERY_TAGS = ("[Phase 2]:Passive-Connections", "[Phase 1]:Default")


def isakmpd_query_line(tag: str) -> str:
    """The FIFO line that asks isakmpd for TAG; ValueError for a tag not allowed."""
    if tag not in ISAKMPD_QUERY_TAGS:
        raise ValueError(f"the agent asks isakmpd only for {', '.join(ISAKMPD_QUERY_TAGS)}, "
                         f"not {tag[:60]!r}")
    return f"C get {tag}\n"


# The shapes of what repair may pass as arguments, and so of what the
# configuration may ask for: a config value repair could not apply is refused
# when the config is read, not when repair runs.
SYSCTL_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
SYSCTL_VALUE = re.compile(r"[A-Za-z0-9_.-]+")
ISAKMPD_FLAGS = re.compile(r"[A-Za-z0-9 _./=-]*")
REPAIR_PLACEHOLDERS = {
    "{name}={value}": re.compile(f"(?:{SYSCTL_NAME.pattern})=(?:{SYSCTL_VALUE.pattern})"),
    "{daemon}": re.compile(r"isakmpd|npppd|ipsec|pf"),
    "{flags}": ISAKMPD_FLAGS,
}

# Repair's allow-list: the only argvs that change anything.  Each is a
# template whose placeholders repair.py fills from the configuration.
REPAIR_ARGV_TEMPLATES: tuple[tuple[str, ...], ...] = (
    (SYSCTL, "{name}={value}"),
    (RCCTL, "enable", "{daemon}"),
    (RCCTL, "set", "isakmpd", "flags", "{flags}"),
    (RCCTL, "start", "{daemon}"),
    (PFCTL, "-e"),
    (PFCTL, "-nf", PF_CONF),
    (PFCTL, "-f", PF_CONF),
    (IPSECCTL, "-nf", IPSEC_CONF),
    (IPSECCTL, "-f", IPSEC_CONF),
)


def probe_commands(cfg: Config) -> tuple[Command, ...]:
    """Every read-only command a collection runs for this configuration."""
    return (sysctl_command(cfg.sysctl_names), RCCTL_LS_ON,
            *(c for d in cfg.daemons for c in (rcctl_flags_command(d), rcctl_check_command(d))),
            PFCTL_INFO, PFCTL_RULES, PFCTL_LIMITS, PFCTL_CONFIG, PFCTL_RULES_TREE,
            PFCTL_INTERFACES, IPSECCTL_SA, IPSECCTL_IKE, IFCONFIG_PPPX, IFCONFIG_EGRESS,
            NPPPCTL_SESSIONS)


def root_argvs(cfg: Config) -> frozenset[tuple[str, ...]]:
    """The argvs the unprivileged serve runs through doas: one doas.conf rule each."""
    return frozenset(c.argv for c in probe_commands(cfg) if c.needs_root and c.for_serve)
