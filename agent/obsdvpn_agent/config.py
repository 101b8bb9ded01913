"""The agent's configuration: one TOML file, defaults for the standard setup.

With no file at all the defaults describe the L2TP/IPsec host the README
builds: isakmpd -K, ipsec.conf loaded by the ipsec rc service, npppd with one
pppx(4) interface per session, forwarding and pipex on, VPN net 10.0.0.0/24.

    # /etc/obsdvpn-agent.conf
    [sysctl.required]
    "net.inet.ip.forwarding" = "1"
    "net.pipex.enable" = "1"
    [sysctl.optional]
    "net.inet6.ip6.forwarding" = "1"
    [vpn]
    network = "10.0.0.0/24"
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .commands import ISAKMPD_FLAGS, SYSCTL_NAME, SYSCTL_VALUE
from .parsers import ParseError
from .parsers.isakmpd import parse_flags

DEFAULT_PATH = "/etc/obsdvpn-agent.conf"
DEFAULT_LISTEN = "127.0.0.1:8469"
# A probe command that needs more than five minutes is hung; and serve's child
# collection is given 6 timeouts plus 10 s, which must stay a sane number.
MAX_TIMEOUT_S = 300.0


class ConfigError(Exception):
    """Bad configuration: the message names the file, the key and what was expected."""


@dataclass(frozen=True)
class ExpectedSysctl:
    name: str
    value: str
    required: bool  # a required one that drifts is CRITICAL, an optional one WARNING


@dataclass(frozen=True)
class Config:
    sysctls: tuple[ExpectedSysctl, ...] = (
        ExpectedSysctl("net.inet.ip.forwarding", "1", True),
        ExpectedSysctl("net.pipex.enable", "1", True),
    )
    isakmpd_flags: str = "-K"
    vpn_network: str = "10.0.0.0/24"
    ppp_interface: str = "pppx"        # "pppx" (one per session) or e.g. "pppac0"
    command_timeout_s: float = 5.0
    use_doas: bool = False             # prefix root-only commands with doas -n when not root
    listen: str = DEFAULT_LISTEN
    tls_cert: str = ""
    tls_key: str = ""
    allow_remote: bool = False         # bind a non-loopback address without TLS
    textfile: str = ""
    state_limit_warning: float = 0.80
    state_limit_critical: float = 0.95
    daemon_log: str = "/var/log/daemon"       # isakmpd's and npppd's syslog lines
    repair_skip: tuple[str, ...] = ()          # check ids repair leaves alone
    # When repair loads /etc/pf.conf: "when-broken" only when the loaded ruleset
    # no longer lets clients connect; "when-differs" whenever it differs.
    repair_load_pf_conf: str = "when-broken"
    source: str = field(default="(built-in defaults)", compare=False)

    @property
    def daemons(self) -> tuple[str, ...]:
        return ("isakmpd", "npppd")

    @property
    def sysctl_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sysctls)


# key -> (expected type(s), description for the error message)
_SCALARS: dict[tuple[str, ...], tuple[type | tuple[type, ...], str]] = {
    ("isakmpd", "flags"): (str, "a string of isakmpd flags, e.g. \"-K\""),
    ("vpn", "network"): (str, "an IPv4 or IPv6 network, e.g. \"10.0.0.0/24\""),
    ("vpn", "ppp_interface"): (str, "\"pppx\" or a pppac interface such as \"pppac0\""),
    ("commands", "timeout"): ((int, float), f"a number of seconds > 0 and <= {MAX_TIMEOUT_S:g}"),
    ("commands", "doas"): (bool, "true or false"),
    ("serve", "listen"): (str, "ADDRESS:PORT, e.g. \"127.0.0.1:8469\""),
    ("serve", "tls_cert"): (str, "a path to a PEM certificate"),
    ("serve", "tls_key"): (str, "a path to a PEM private key"),
    ("serve", "allow_remote"): (bool, "true or false"),
    ("check", "textfile"): (str, "a path for node_exporter's textfile collector"),
    ("pf", "state_limit_warning"): ((int, float), "a fraction between 0 and 1"),
    ("pf", "state_limit_critical"): ((int, float), "a fraction between 0 and 1"),
    ("logs", "file"): (str, "the file syslogd writes isakmpd's and npppd's lines to"),
    ("repair", "skip"): (list, "a list of check ids, e.g. [\"pf.ruleset\"]"),
    ("repair", "load_pf_conf"): (str, "\"when-broken\" or \"when-differs\""),
}
_TABLES = {"sysctl", "isakmpd", "vpn", "commands", "serve", "check", "pf", "logs", "repair"}
LOAD_PF_CONF = ("when-broken", "when-differs")


def load(path: str | None) -> Config:
    """Read the config file.  path None: the default file if it exists, else defaults."""
    explicit = path is not None
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: no such file") from None
        return Config()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except ValueError as e:  # TOMLDecodeError, or an integer of over 4300 digits
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return from_dict(data, path)


def from_dict(data: dict[str, Any], path: str) -> Config:
    for key, value in data.items():
        if key not in _TABLES:
            raise ConfigError(f"{path}: unknown key '{key}' (known: {', '.join(sorted(_TABLES))})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: key '{key}' must be a table ([{key}])")

    values: dict[str, Any] = {}   # each checked against _SCALARS' type just above
    for table, body in data.items():
        if table == "sysctl":
            continue
        for key, value in body.items():
            spec = _SCALARS.get((table, key))
            if spec is None:
                known = sorted(k for t, k in _SCALARS if t == table)
                raise ConfigError(f"{path}: unknown key '{table}.{key}' (known: {', '.join(known)})")
            types, expected = spec
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in
                                                 (types if isinstance(types, tuple) else (types,))):
                raise ConfigError(f"{path}: key '{table}.{key}': expected {expected}, "
                                  f"got {type(value).__name__} {value!r}")
            if isinstance(value, int) and not isinstance(value, bool):
                # TOML integers have no size limit here; float() of a huge one overflows.
                if abs(value) > 2**53:
                    raise ConfigError(f"{path}: key '{table}.{key}': expected {expected}, "
                                      "got a huge integer")
                value = float(value)
            values[f"{table}.{key}"] = value

    d = Config()
    cfg = Config(
        sysctls=_sysctls(data.get("sysctl"), path),
        isakmpd_flags=values.get("isakmpd.flags", d.isakmpd_flags),
        vpn_network=values.get("vpn.network", d.vpn_network),
        ppp_interface=values.get("vpn.ppp_interface", d.ppp_interface),
        command_timeout_s=float(values.get("commands.timeout", d.command_timeout_s)),
        use_doas=values.get("commands.doas", d.use_doas),
        listen=values.get("serve.listen", d.listen),
        tls_cert=values.get("serve.tls_cert", d.tls_cert),
        tls_key=values.get("serve.tls_key", d.tls_key),
        allow_remote=values.get("serve.allow_remote", d.allow_remote),
        textfile=values.get("check.textfile", d.textfile),
        state_limit_warning=float(values.get("pf.state_limit_warning", d.state_limit_warning)),
        state_limit_critical=float(values.get("pf.state_limit_critical",
                                              d.state_limit_critical)),
        daemon_log=values.get("logs.file", d.daemon_log),
        repair_skip=tuple(values.get("repair.skip", d.repair_skip)),
        repair_load_pf_conf=values.get("repair.load_pf_conf", d.repair_load_pf_conf),
        source=path,
    )
    _validate(cfg, path)
    return cfg


def _sysctls(table: dict[str, Any] | None, path: str) -> tuple[ExpectedSysctl, ...]:
    """[sysctl.required] and [sysctl.optional] each replace their own defaults."""
    table = table or {}
    kinds = {"required": [s for s in Config().sysctls if s.required],
             "optional": [s for s in Config().sysctls if not s.required]}
    for kind, body in table.items():
        if kind not in ("required", "optional"):
            raise ConfigError(f"{path}: unknown key 'sysctl.{kind}' (known: optional, required)")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: key 'sysctl.{kind}' must be a table of \"name\" = \"value\"")
        kinds[kind] = []
        for name, value in body.items():
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ConfigError(f"{path}: key 'sysctl.{kind}.\"{name}\"': expected a string or "
                                  f"integer value, got {type(value).__name__}")
            if not SYSCTL_NAME.fullmatch(name):
                raise ConfigError(f"{path}: key 'sysctl.{kind}.{name!r}': not a sysctl name "
                                  "(lowercase ASCII words joined by dots, e.g. "
                                  "\"net.inet.ip.forwarding\")")
            if not SYSCTL_VALUE.fullmatch(str(value)):
                raise ConfigError(f"{path}: key 'sysctl.{kind}.\"{name}\"': expected a plain "
                                  f"value such as 1 (letters, digits, . _ -), got {value!r}")
            kinds[kind].append(ExpectedSysctl(name, str(value), kind == "required"))
    out = tuple(kinds["required"] + kinds["optional"])
    if not out:
        # `sysctl` with no name would dump every sysctl: there must be one to check.
        raise ConfigError(f"{path}: key 'sysctl': expected at least one sysctl to check")
    return out


# The sysctl names, values and isakmpd flags accepted are those repair may pass
# to `sysctl name=value` and `rcctl set isakmpd flags` (commands.SYSCTL_NAME and
# its siblings; repair.allowed() checks the same shapes).  A sysctl name is
# lowercase ASCII components joined by dots, as every OpenBSD MIB name is
# spelled (sys/sysctl.h CTL_*_NAMES).
# pppx(4) (one interface per session; "pppx" is its interface group) or
# pppac(4); an interface name is at most IFNAMSIZ - 1 = 15 bytes.
_PPP_INTERFACE = re.compile(r"(?:pppx|pppac)[0-9]{0,10}")


def parse_listen(listen: str) -> tuple[str, int]:
    """ADDRESS:PORT (an IPv6 address may be in brackets) as (address, port).

    The one reader of listen addresses, for --listen and serve.listen alike.
    Port 0 is allowed: the kernel picks a free port (tests use it).  Raises
    ValueError saying what is wrong.
    """
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isascii() or not port.isdigit():
        raise ValueError(f"expected ADDRESS:PORT such as 127.0.0.1:8469, got {listen!r}")
    if len(port) > 5 or int(port) > 65535:
        raise ValueError(f"port {port} is out of range (0 to 65535) in {listen!r}")
    return host, int(port)


def _validate(cfg: Config, path: str) -> None:
    try:
        ipaddress.ip_network(cfg.vpn_network, strict=False)
    except ValueError:
        raise ConfigError(f"{path}: key 'vpn.network': expected an IP network such as "
                          f"\"10.0.0.0/24\", got {cfg.vpn_network!r}") from None
    if not ISAKMPD_FLAGS.fullmatch(cfg.isakmpd_flags):
        raise ConfigError(f"{path}: key 'isakmpd.flags': expected flags such as \"-K\" "
                          f"(letters, digits, blanks, . _ / = -), got {cfg.isakmpd_flags!r}")
    try:
        # Flags isakmpd would refuse are flags repair must never set.
        parse_flags(cfg.isakmpd_flags, "")
    except ParseError as e:
        raise ConfigError(f"{path}: key 'isakmpd.flags': isakmpd would refuse "
                          f"{cfg.isakmpd_flags!r}: {e.reason}") from None
    # nan passes every `<=` test and inf or 1e308 overflow the timeouts built on it.
    if not (math.isfinite(cfg.command_timeout_s) and 0 < cfg.command_timeout_s <= MAX_TIMEOUT_S):
        raise ConfigError(f"{path}: key 'commands.timeout': expected a number of seconds > 0 "
                          f"and <= {MAX_TIMEOUT_S:g}, got {cfg.command_timeout_s!r}")
    for key, frac in (("pf.state_limit_warning", cfg.state_limit_warning),
                      ("pf.state_limit_critical", cfg.state_limit_critical)):
        if not (math.isfinite(frac) and 0 < frac <= 1):
            raise ConfigError(f"{path}: key '{key}': expected a fraction > 0 and <= 1, "
                              f"got {frac!r}")
    if cfg.state_limit_warning > cfg.state_limit_critical:
        raise ConfigError(f"{path}: key 'pf.state_limit_warning': {cfg.state_limit_warning:g} is "
                          f"above pf.state_limit_critical {cfg.state_limit_critical:g}")
    if not _PPP_INTERFACE.fullmatch(cfg.ppp_interface):
        raise ConfigError(f"{path}: key 'vpn.ppp_interface': expected \"pppx\", \"pppxN\" or "
                          f"\"pppacN\", got {cfg.ppp_interface!r}")
    try:
        parse_listen(cfg.listen)
    except ValueError as e:
        raise ConfigError(f"{path}: key 'serve.listen': {e}") from None
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ConfigError(f"{path}: keys 'serve.tls_cert' and 'serve.tls_key' go together")
    if cfg.repair_load_pf_conf not in LOAD_PF_CONF:
        raise ConfigError(f"{path}: key 'repair.load_pf_conf': expected \"when-broken\" or "
                          f"\"when-differs\", got {cfg.repair_load_pf_conf!r}")
    if cfg.repair_skip:
        from .checks import check_ids  # the checks import this module: only at need
        known = check_ids(cfg)
        for cid in cfg.repair_skip:
            if not isinstance(cid, str) or cid not in known:
                raise ConfigError(f"{path}: key 'repair.skip': {cid!r} is not a check id "
                                  "(see `obsdvpn-agent check --json`)")


def to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The effective configuration as the tables from_dict() reads back."""
    return {
        "sysctl": {kind: {s.name: s.value for s in cfg.sysctls if s.required == required}
                   for kind, required in (("required", True), ("optional", False))},
        "isakmpd": {"flags": cfg.isakmpd_flags},
        "vpn": {"network": cfg.vpn_network, "ppp_interface": cfg.ppp_interface},
        "commands": {"timeout": cfg.command_timeout_s, "doas": cfg.use_doas},
        "serve": {"listen": cfg.listen, "tls_cert": cfg.tls_cert, "tls_key": cfg.tls_key,
                  "allow_remote": cfg.allow_remote},
        "check": {"textfile": cfg.textfile},
        "pf": {"state_limit_warning": cfg.state_limit_warning,
               "state_limit_critical": cfg.state_limit_critical},
        "logs": {"file": cfg.daemon_log},
        "repair": {"skip": list(cfg.repair_skip), "load_pf_conf": cfg.repair_load_pf_conf},
    }


def to_toml(cfg: Config) -> str:
    """The effective configuration, as a file that load() reads back."""
    def value(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v)

    lines = [f"# effective configuration (from {cfg.source})"]
    for table, body in to_dict(cfg).items():
        nested = all(isinstance(v, dict) for v in body.values())
        for name, keys in (body.items() if nested else [("", body)]):
            lines.append(f"\n[{table}.{name}]" if name else f"\n[{table}]")
            lines += [f"{value(k) if nested else k} = {value(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"
