"""A small ipsec.conf(5) reader: the `ike` rules an L2TP/IPsec server uses.

It checks what sbin/ipsecctl/parse.y would reject for that subset (unknown
words, unknown ports/protocols/transforms, undefined macros) and reports it
the way its yyerror() does: `FILE: LINE: message` (with blanks, unlike
pfctl).  It returns the quick-mode transforms so the demo's SAs show them.
`flow`, `esp ... spi` and `tcpmd5` rules (manual keying) are outside the
subset and reported as syntax errors; a real ipsecctl would load them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .pfconf import PROTOCOLS, SERVICES

# Transform names of ipsecctl's parse.y tables (authxfs, encxfs, groupxfs).
AUTH_XF = ("hmac-md5", "hmac-ripemd160", "hmac-sha1", "hmac-sha2-256", "hmac-sha2-384",
           "hmac-sha2-512")
ENC_XF = ("3des", "3des-cbc", "des", "des-cbc", "aes", "aes-128", "aes-192", "aes-256",
          "aesctr", "aes-128-ctr", "aes-192-ctr", "aes-256-ctr", "aes-128-gcm",
          "aes-192-gcm", "aes-256-gcm", "aes-128-gmac", "aes-192-gmac", "aes-256-gmac",
          "blowfish", "cast128", "chacha20-poly1305", "null")
GROUP_XF = ("none", "modp768", "grp1", "modp1024", "grp2", "modp1536", "grp5",
            "modp2048", "grp14", "modp3072", "grp15", "modp4096", "grp16", "modp6144",
            "grp17", "modp8192", "grp18", "ecp256", "grp19", "ecp384", "grp20",
            "ecp521", "grp21", "curve25519", "grp31")


class IpsecConfError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class IkeConfig:
    rules: int
    quick_auth: str     # what the SAs will show ("" for AEAD ciphers)
    quick_enc: str


class _Error(Exception):
    def __init__(self, message: str = "syntax error") -> None:
        self.message = message


def _tokens(text: str, macros: dict[str, str]) -> list[str]:
    toks: list[str] = []
    for m in re.finditer(r'"([^"]*)"|([{},/])|([^\s{},/"#]+)|(#.*)', text):
        quoted, punct, word, comment = m.groups()
        if comment is not None:
            break
        if word is not None and word.startswith("$"):
            name = word[1:]
            if name not in macros:
                raise _Error(f"macro '{name}' not defined")
            toks.extend(_tokens(macros[name], macros))
        else:
            toks.append(quoted if quoted is not None else punct or word)
    return toks


def _host(toks: list[str], egress_ok) -> None:
    tok = toks.pop(0) if toks else ""
    if tok == "{":
        while toks and toks[0] != "}":
            if toks[0] != ",":
                _host(toks, egress_ok)
            else:
                toks.pop(0)
        if not toks:
            raise _Error()
        toks.pop(0)
        return
    if tok == "any" or egress_ok(tok):
        return
    if toks[:1] == ["/"]:
        toks.pop(0)
        tok += "/" + (toks.pop(0) if toks else "")
    try:
        ipaddress.ip_network(tok, strict=False)
    except ValueError:
        raise _Error("could not parse host specification")


def _port(toks: list[str]) -> None:
    if toks[:1] == ["port"]:
        toks.pop(0)
        name = toks.pop(0) if toks else ""
        if not name.isdigit() and name not in SERVICES:
            raise _Error(f"unknown port: {name}")


def _ike(toks: list[str], egress_ok) -> tuple[str, str]:
    toks.pop(0)  # "ike"
    for optional in (("active", "passive", "dynamic"), ("esp", "ah"),
                     ("transport", "tunnel")):
        if toks[:1] and toks[0] in optional:
            toks.pop(0)
    if toks[:1] == ["proto"]:
        toks.pop(0)
        proto = toks.pop(0) if toks else ""
        if not proto.isdigit() and proto not in PROTOCOLS:
            raise _Error(f"unknown protocol: {proto}")
    first = toks.pop(0) if toks else ""
    if first not in ("from", "to"):
        raise _Error()
    _host(toks, egress_ok)
    _port(toks)
    if (toks.pop(0) if toks else "") != ("to" if first == "from" else "from"):
        raise _Error()
    _host(toks, egress_ok)
    _port(toks)
    auth, enc = "hmac-sha2-256", "aes"  # ipsec.conf(5) quick mode defaults
    while toks:
        word = toks.pop(0)
        if word in ("local", "peer"):
            _host(toks, egress_ok)
        elif word in ("main", "aggressive", "quick"):
            while toks and toks[0] in ("auth", "enc", "group", "lifetime"):
                key = toks.pop(0)
                value = toks.pop(0) if toks else ""
                table = {"auth": AUTH_XF, "enc": ENC_XF, "group": GROUP_XF}.get(key)
                if table is not None and value not in table:
                    raise _Error(f"{value} not a valid transform")
                if word == "quick" and key == "auth":
                    auth = value
                if word == "quick" and key == "enc":
                    enc = value
        elif word in ("srcid", "dstid", "tag"):
            if not toks:
                raise _Error()
            toks.pop(0)
        elif word == "psk":
            if not toks:
                raise _Error()
            toks.pop(0)
        elif word == "rsa":
            pass
        else:
            raise _Error()
    if enc.endswith(("-gcm", "-gmac")) or enc == "chacha20-poly1305":
        auth = ""  # AEAD SAs print no auth part (FORMATS.md 1.3)
    return auth, enc


def read_ipsecconf(text: str, filename: str, egress_ok) -> IkeConfig:
    """Validate the file; `egress_ok(name)` says whether an interface name exists."""
    macros: dict[str, str] = {}
    errors: list[str] = []
    rules = 0
    auth, enc = "hmac-sha2-256", "aes"
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        lineno = i + 1
        stmt = lines[i]
        while stmt.endswith("\\") and i + 1 < len(lines):
            i += 1
            stmt = stmt[:-1] + " " + lines[i]
        i += 1
        try:
            macro = re.match(r'\s*([A-Za-z0-9_]+)\s*=\s*(.*)$', stmt)
            if macro and not stmt.lstrip().startswith("#"):
                value = _tokens(macro.group(2), macros)
                macros[macro.group(1)] = " ".join(value)
                continue
            toks = _tokens(stmt, macros)
            if not toks:
                continue
            if toks[0] != "ike":
                raise _Error()
            auth, enc = _ike(toks, egress_ok)
            rules += 1
        except _Error as exc:
            errors.append(f"{filename}: {lineno}: {exc.message}")
    if errors:
        raise IpsecConfError(errors)
    return IkeConfig(rules, auth, enc)
