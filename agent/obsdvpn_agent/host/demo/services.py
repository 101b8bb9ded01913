"""rc.conf(8) and rc.conf.local as rcctl(8) and rc.subr(8) read and write them.

Sources: usr.sbin/rcctl/rcctl.sh rev 1.122 (svc_get, svc_set, svc_rm,
rcconf_edit_end's `sort -u`) and etc/rc.d/rc.subr rev 1.129 (_rc_parse_conf,
_rc_quirks).  /etc/rc.conf is not modelled as a file: its defaults are the
table below.  The demo's truth is the text of /etc/rc.conf.local.
"""

from __future__ import annotations

import re

RC_CONF_LOCAL = "/etc/rc.conf.local"

# rcctl.sh L20-21.
SPECIAL = ("accounting", "check_quotas", "ipsec", "library_aslr", "multicast", "pf",
           "spamd_black")
SPECIAL_DEFAULTS = {"accounting": "NO", "check_quotas": "YES", "ipsec": "NO",
                    "library_aslr": "YES", "multicast": "NO", "pf": "YES",
                    "spamd_black": "NO"}

# /etc/rc.d scripts of a 7.x amd64 install.  ASSUMPTION: the list was taken from
# the openbsd/src etc/rc.d directory and trimmed of retired scripts; it only
# matters for `rcctl ls all|off|stopped`.
RCD_SCRIPTS: tuple[str, ...] = (
    "amd", "apmd", "bgpd", "bootparamd", "cron", "dhcp6leased", "dhcpd", "dhcpleased",
    "dhcrelay", "dhcrelay6", "dvmrpd", "eigrpd", "ftpd", "ftpproxy", "ftpproxy6",
    "hostapd", "hotplugd", "httpd", "identd", "ifstated", "iked", "inetd", "isakmpd",
    "iscsid", "ldapd", "ldattach", "ldpd", "lockd", "lpd", "mopd", "mountd", "mrouted",
    "nfsd", "npppd", "nsd", "ntpd", "ospf6d", "ospfd", "pflogd", "portmap", "rad",
    "radiusd", "rarpd", "rbootd", "relayd", "ripd", "route6d", "sasyncd", "sensorsd",
    "slaacd", "slowcgi", "smtpd", "sndiod", "snmpd", "spamd", "spamlogd", "sshd",
    "statd", "switchd", "syslogd", "tftpd", "tftpproxy", "unbound", "unwind", "vmd",
    "watchdogd", "wsmoused", "xenodm", "ypbind", "ypldap", "yppasswdd", "ypserv",
)
# Base daemons /etc/rc.conf enables (flags "" instead of NO).  With the
# specials that default to YES this gives derived/rcctl/ls-on-vpn-host-7x.txt
# minus the VPN daemons the admin enabled.
BASE_ON = ("cron", "dhcpleased", "ntpd", "pflogd", "resolvd", "slaacd", "smtpd", "sndiod",
           "sshd", "syslogd")
RCD_SCRIPTS = tuple(sorted(set(RCD_SCRIPTS) | set(BASE_ON)))

DAEMON_PATHS = {
    "isakmpd": "/sbin/isakmpd", "npppd": "/usr/sbin/npppd", "iked": "/sbin/iked",
    "sshd": "/usr/sbin/sshd", "ntpd": "/usr/sbin/ntpd", "cron": "/usr/sbin/cron",
    "syslogd": "/usr/sbin/syslogd", "pflogd": "/sbin/pflogd", "smtpd": "/usr/sbin/smtpd",
    "sndiod": "/usr/bin/sndiod", "slaacd": "/sbin/slaacd", "dhcpleased": "/sbin/dhcpleased",
    "resolvd": "/sbin/resolvd",
}

# rc.subr rev 1.129 _rc_parse_conf: which keys it takes from the files.
_ALLOWED = {"accounting", "amd_master", "check_quotas", "ipsec", "library_aslr",
            "multicast", "nfs_server", "pexp", "pf", "pkg_scripts", "shlib_dirs",
            "spamd_black"}
_KEY_RE = re.compile(r".*_(flags|rtable|user|timeout|execdir|logger)$")


def exists(name: str) -> bool:
    return name in SPECIAL or name in RCD_SCRIPTS


def is_special(name: str) -> bool:
    return name in SPECIAL


def parse(text: str) -> dict[str, str]:
    """Variables as rc.subr's _rc_parse_conf sets them from rc.conf.local."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip(" \t")
        if not re.match(r"[^#=].*=", line):
            continue
        key = line.split("=", 1)[0].rstrip(" \t").lower()
        if not (_KEY_RE.match(key) or key in _ALLOWED) or not key:
            continue
        val = line.split("=", 1)[1].lstrip(" \t")
        val = val.split("#", 1)[0].rstrip(" \t")
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        values[key] = val
    return values


def default_value(name: str) -> str:
    """The /etc/rc.conf value: YES/NO for specials, flags ("" or NO) for daemons."""
    if name in SPECIAL:
        return SPECIAL_DEFAULTS[name]
    return "" if name in BASE_ON else "NO"


def value(text: str, name: str) -> str:
    """Effective value after rc.conf, rc.conf.local and _rc_quirks."""
    conf = parse(text)
    if name in SPECIAL:
        return conf.get(name, default_value(name))
    if name == "pflogd" and conf.get("pf", default_value("pf")) == "NO":
        return "NO"
    return conf.get(f"{name}_flags", default_value(name))


def enabled(text: str, name: str) -> bool:
    return value(text, name) != "NO"


def edit(text: str | None, drop_key: str, add_line: str | None) -> str | None:
    """rcconf_edit_begin/end: drop `key *=` lines, append one, `sort -u`.

    Returns None when the file ends up empty (rcctl removes it then).
    """
    lines = (text or "").splitlines()
    pattern = re.compile(rf"^{re.escape(drop_key)} *=")
    kept = [line for line in lines if not pattern.match(line)]
    if add_line is not None:
        kept.append(add_line)
    kept = sorted(set(kept))
    if not kept:
        return None
    return "\n".join(kept) + "\n"


def enable(text: str | None, name: str) -> str | None:
    """`rcctl enable NAME` (svc_set NAME status on)."""
    if name in SPECIAL:
        add = None if default_value(name) != "NO" else f"{name}=YES"
        return edit(text, name, add)
    flags = parse(text or "").get(f"{name}_flags")
    if flags == "NO" or flags is None:
        flags = ""
    # An empty value is written only for base daemons that default to off.
    add = f"{name}_flags={_quote(flags)}" if (flags or default_value(name) == "NO") else None
    return edit(text, f"{name}_flags", add)


def disable(text: str | None, name: str) -> str | None:
    """`rcctl disable NAME` (svc_rm)."""
    if name in SPECIAL:
        add = f"{name}=NO" if default_value(name) != "NO" else None
        return edit(text, name, add)
    add = f"{name}_flags=NO" if default_value(name) != "NO" else None
    text = text or ""
    pattern = re.compile(rf"^{re.escape(name)}_(execdir|flags|logger|rtable|timeout|user).*=")
    kept = "".join(line + "\n" for line in text.splitlines() if not pattern.match(line))
    return edit(kept, f"{name}_flags", add)


def set_flags(text: str | None, name: str, flags: str) -> str | None:
    """`rcctl set NAME flags ...` for an enabled base daemon (svc_set)."""
    if flags == "":  # "unset flags if they match the default enabled ones"
        add = f"{name}_flags=" if default_value(name) == "NO" else None
    else:
        add = f"{name}_flags={_quote(flags)}"
    return edit(text, f"{name}_flags", add)


def _quote(args: str) -> str:
    # rcctl.sh: protect leading whitespace
    return args if args == args.lstrip(" ") else f'"{args}"'
