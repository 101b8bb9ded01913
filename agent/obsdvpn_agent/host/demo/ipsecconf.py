"""A small ipsec.conf(5) reader: the `ike` rules an L2TP/IPsec server uses.

It checks what sbin/ipsecctl/parse.y would reject for that subset (unknown
words, unknown ports/protocols/transforms, undefined macros) and reports it
the way its yyerror() does: `FILE: LINE: message` (with blanks, unlike
pfctl).  It returns the quick-mode transforms so the demo's SAs show them,
and each rule's phase-1 proposal and connection name, so that the demo's
isakmpd holds what ipsecctl would send it (`policy_state()`), and
`ipsecctl -nvf` prints what sbin/ipsecctl/ike.c rev 1.85 prints (`nvf_lines()`).
`flow`, `esp ... spi` and `tcpmd5` rules (manual keying) are outside the
subset and reported as syntax errors; a real ipsecctl would load them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


# ike.c rev 1.85 ike_section_p1()/ike_section_p2(): ipsec.conf words -> isakmpd names.
P1_AUTH = {"hmac-md5": "MD5", "hmac-sha1": "SHA", "hmac-sha2-256": "SHA2_256",
           "hmac-sha2-384": "SHA2_384", "hmac-sha2-512": "SHA2_512"}
P2_AUTH = {**P1_AUTH, "hmac-ripemd160": "RIPEMD"}
# (cipher, KEY_LENGTH); 3des and cast128 have no KEY_LENGTH line.
P1_ENC = {"3des": ("3DES", None), "3des-cbc": ("3DES", None),
          "aes": ("AES", "128,128:256"), "aes-128": ("AES", "128,128:128"),
          "aes-192": ("AES", "192,192:192"), "aes-256": ("AES", "256,256:256"),
          "blowfish": ("BLOWFISH", "128,96:192"), "cast128": ("CAST", None)}
P2_ENC = {**P1_ENC, "aesctr": ("AES_CTR", "128,128:128"),
          "aes-128-ctr": ("AES_CTR", "128,128:128"), "aes-192-ctr": ("AES_CTR", "192,192:192"),
          "aes-256-ctr": ("AES_CTR", "256,256:256"),
          "aes-128-gcm": ("AES_GCM_16", "128,128:128"),
          "aes-192-gcm": ("AES_GCM_16", "192,192:192"),
          "aes-256-gcm": ("AES_GCM_16", "256,256:256"),
          "aes-128-gmac": ("AES_GMAC", "128,128:128"),
          "aes-192-gmac": ("AES_GMAC", "192,192:192"),
          "aes-256-gmac": ("AES_GMAC", "256,256:256"), "null": ("NULL", None)}
GROUPS = {"modp768": "MODP_768", "grp1": "MODP_768", "modp1024": "MODP_1024",
          "grp2": "MODP_1024", "modp1536": "MODP_1536", "grp5": "MODP_1536",
          "modp2048": "MODP_2048", "grp14": "MODP_2048", "modp3072": "MODP_3072",
          "grp15": "MODP_3072", "modp4096": "MODP_4096", "grp16": "MODP_4096",
          "modp6144": "MODP_6144", "grp17": "MODP_6144", "modp8192": "MODP_8192",
          "grp18": "MODP_8192", "ecp256": "ECP_256", "grp19": "ECP_256",
          "ecp384": "ECP_384", "grp20": "ECP_384", "ecp521": "ECP_521", "grp21": "ECP_521"}
DEFAULT_GROUP = "MODP_3072"      # ike.c: group_desc = "MODP_3072" in both phases


@dataclass(frozen=True)
class IkeRule:
    """One ike rule after ipsecctl's expansion of host lists and `egress`."""

    mode: str                     # passive | active | dynamic
    satype: str                   # esp | ah
    tmode: str                    # transport | tunnel
    proto: int                    # 0: any
    src: str                      # ike_setup_ids() names: `192.0.2.1`, `0.0.0.0/0`
    sport: int
    dst: str
    dport: int
    peer: str | None
    main_auth: str                # isakmpd names: SHA, AES, MODP_3072
    main_enc: str
    main_key_length: str | None
    main_group: str
    quick_auth: str | None
    quick_enc: str
    quick_key_length: str | None
    quick_group: str | None
    psk_sha256: str | None        # a digest: the state file keeps no PSK of its own

    @property
    def auth_method(self) -> str:
        """Phase 1's AUTHENTICATION_METHOD: a psk, else ipsecctl's default, rsa."""
        return "PRE_SHARED" if self.psk_sha256 else "RSA_SIG"

    @property
    def p1name(self) -> str:
        return f"peer-{self.peer}" if self.peer else "peer-default"

    @property
    def p2lid(self) -> str:
        proto = f"={self.proto}" if self.proto else ""
        return f"from-{self.src}{proto}" + (f":{self.sport}" if self.sport else "")

    @property
    def p2rid(self) -> str:
        proto = f"={self.proto}" if self.proto else ""
        return f"to-{self.dst}{proto}" + (f":{self.dport}" if self.dport else "")

    @property
    def p2name(self) -> str:
        return f"{self.p2lid}-{self.p2rid}"


@dataclass(frozen=True)
class IkeConfig:
    rules: int
    quick_auth: str     # what the SAs will show ("" for AEAD ciphers)
    quick_enc: str
    policies: tuple[IkeRule, ...] = field(default=())

    def policy_state(self, loaded: dict[str, Any] | None) -> dict[str, Any]:
        """state["ike"] after `ipsecctl -f`: what isakmpd holds afterwards.

        ipsecctl sends `C add` for the connection names and the phase-1
        transforms (appended to what isakmpd has, duplicates skipped:
        ui.c ui_config()) and `C set ... force` for the rest (replaced).
        LOADED is the old state["ike"] when isakmpd still holds a policy.
        """
        old = loaded or {}
        passive = list(old.get("passive", []))
        phase1 = list(old.get("phase1", []))
        psk_sha256 = old.get("psk_sha256")
        for rule in self.policies:
            if rule.mode == "passive" and rule.p2name not in passive:
                passive.append(rule.p2name)
            proposal = {"peer": rule.peer, "exchange": "ID_PROT",
                        "auth_method": rule.auth_method,
                        "hash": rule.main_auth, "enc": rule.main_enc,
                        "key_length": rule.main_key_length, "group": rule.main_group}
            if proposal not in phase1:
                phase1.append(proposal)
            if rule.peer is None and rule.psk_sha256:
                psk_sha256 = rule.psk_sha256
        return {"auth": self.quick_auth, "enc": self.quick_enc, "passive": passive,
                "phase1": phase1, "psk_sha256": psk_sha256}

    def nvf_lines(self, psks: dict[str, str]) -> list[str]:
        """`ipsecctl -nvf` output: ike_gen_config() of each rule (ike.c rev 1.85).

        psks maps a rule's psk_sha256 back to the PSK the file holds: the
        real ipsecctl prints it in clear, and so does the demo.
        """
        return [line for rule in self.policies for line in _gen_config(rule, psks)]


def psk_digest(psk: str) -> str:
    return hashlib.sha256(psk.encode("utf-8", "surrogateescape")).hexdigest()


def _gen_config(r: IkeRule, psks: dict[str, str]) -> list[str]:
    out: list[str] = []

    def set_(section: str, tag: str, value: str) -> None:
        out.append(f"C set [{section}]:{tag}={value} force")

    if r.mode == "dynamic":                                   # ike_section_general()
        set_("General", "Check-interval", "30")
        set_("General", "DPD-check-interval", "5")
    p1 = r.p1name                                              # ike_section_peer()
    set_("Phase 1", r.peer or "Default", p1)
    set_(p1, "Phase", "1")
    if r.peer:
        set_(p1, "Address", r.peer)
    if r.psk_sha256:
        set_(p1, "Authentication", psks.get(r.psk_sha256, ""))
    set_(p1, "Configuration", f"phase1-{p1}")                 # ike_section_p1()
    set_(f"phase1-{p1}", "EXCHANGE_TYPE", "ID_PROT")
    method = r.auth_method
    bits = r.main_key_length.split(",")[0] if r.main_key_length else ""
    t1 = f"phase1-transform-{p1}-{method}-{r.main_auth}-{r.main_enc}{bits}-{r.main_group}"
    out.append(f"C add [phase1-{p1}]:Transforms={t1} force")
    set_(t1, "AUTHENTICATION_METHOD", method)
    set_(t1, "HASH_ALGORITHM", r.main_auth)
    set_(t1, "ENCRYPTION_ALGORITHM", f"{r.main_enc}_CBC")
    if r.main_key_length:
        set_(t1, "KEY_LENGTH", r.main_key_length)
    set_(t1, "GROUP_DESCRIPTION", r.main_group)
    set_(t1, "Life", "LIFE_MAIN_MODE")
    p2 = r.p2name                                              # ike_section_ipsec()
    set_(p2, "Phase", "2")
    set_(p2, "ISAKMP-peer", p1)
    set_(p2, "Configuration", f"phase2-{p2}")
    set_(p2, "Local-ID", r.p2lid)
    set_(p2, "Remote-ID", r.p2rid)
    set_(f"phase2-{p2}", "EXCHANGE_TYPE", "QUICK_MODE")       # ike_section_p2()
    set_(f"phase2-{p2}", "Suites", f"phase2-suite-{p2}")
    set_(f"phase2-suite-{p2}", "Protocols", f"phase2-protocol-{p2}")
    set_(f"phase2-protocol-{p2}", "PROTOCOL_ID", "IPSEC_ESP" if r.satype == "esp"
         else "IPSEC_AH")
    encap = r.tmode.upper()
    qbits = r.quick_key_length.split(",")[0] if r.quick_key_length else ""
    enc = r.quick_enc if r.satype == "esp" else None
    t2 = (f"phase2-transform-{p2}-{enc or 'NONE'}{qbits}-{r.quick_auth or 'NONE'}-"
          f"{r.quick_group or 'NONE'}-{encap}")
    set_(f"phase2-protocol-{p2}", "Transforms", t2)
    set_(t2, "TRANSFORM_ID", (enc or "") if r.satype == "esp" else (r.quick_auth or ""))
    if r.quick_key_length:
        set_(t2, "KEY_LENGTH", r.quick_key_length)
    set_(t2, "ENCAPSULATION_MODE", encap)
    if r.quick_auth:
        set_(t2, "AUTHENTICATION_ALGORITHM", f"HMAC_{r.quick_auth}")
    if r.quick_group:
        set_(t2, "GROUP_DESCRIPTION", r.quick_group)
    set_(t2, "Life", "LIFE_QUICK_MODE")
    for xid, host in ((r.p2lid, r.src), (r.p2rid, r.dst)):    # ike_section_p2ids()
        if "/" in host:
            net = ipaddress.ip_network(host, strict=False)
            set_(xid, "ID-type", f"IPV{net.version}_ADDR_SUBNET")
            set_(xid, "Network", str(net.network_address))
            set_(xid, "Netmask", str(net.netmask))
        else:
            set_(xid, "ID-type", f"IPV{ipaddress.ip_address(host).version}_ADDR")
            set_(xid, "Address", host)
    if r.proto:
        set_(r.p2lid, "Protocol", str(r.proto))
        set_(r.p2rid, "Protocol", str(r.proto))
    if r.sport:
        set_(r.p2lid, "Port", str(r.sport))
    if r.dport:
        set_(r.p2rid, "Port", str(r.dport))
    kind = "Passive-Connections" if r.mode == "passive" else "Connections"   # ike_connect()
    out.append(f"C add [Phase 2]:{kind}={p2}")
    return out


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


def _host(toks: list[str], egress_ok: Callable[[str], bool],
          lookup: Callable[[str], list[str]] | None) -> list[str]:
    """Host names as ike_setup_ids() names them: `any` is 0.0.0.0/0, an interface
    or group its addresses (parse.y ifa_lookup())."""
    tok = toks.pop(0) if toks else ""
    if tok == "{":
        hosts: list[str] = []
        while toks and toks[0] != "}":
            if toks[0] != ",":
                hosts.extend(_host(toks, egress_ok, lookup))
            else:
                toks.pop(0)
        if not toks:
            raise _Error()
        toks.pop(0)
        return hosts
    if tok == "any":
        return ["0.0.0.0/0"]
    if egress_ok(tok):
        return list(lookup(tok)) if lookup else [tok]
    if toks[:1] == ["/"]:
        toks.pop(0)
        tok += "/" + (toks.pop(0) if toks else "")
    try:
        ipaddress.ip_network(tok, strict=False)
    except ValueError:
        raise _Error("could not parse host specification") from None
    return [tok]


def _port(toks: list[str]) -> int:
    if toks[:1] == ["port"]:
        toks.pop(0)
        name = toks.pop(0) if toks else ""
        if not name.isdigit() and name not in SERVICES:
            raise _Error(f"unknown port: {name}")
        return int(name) if name.isdigit() else SERVICES[name]
    return 0


def _ike(toks: list[str], egress_ok: Callable[[str], bool],
         lookup: Callable[[str], list[str]] | None = None,
         psks: dict[str, str] | None = None) -> tuple[str, str, list[IkeRule]]:
    toks.pop(0)  # "ike"
    words = {"mode": "active", "satype": "esp", "tmode": "tunnel"}
    for key, optional in (("mode", ("active", "passive", "dynamic")),
                          ("satype", ("esp", "ah")), ("tmode", ("transport", "tunnel"))):
        if toks[:1] and toks[0] in optional:
            words[key] = toks.pop(0)
    proto = 0
    if toks[:1] == ["proto"]:
        toks.pop(0)
        name = toks.pop(0) if toks else ""
        if not name.isdigit() and name not in PROTOCOLS:
            raise _Error(f"unknown protocol: {name}")
        proto = int(name) if name.isdigit() else PROTOCOLS[name]
    first = toks.pop(0) if toks else ""
    if first not in ("from", "to"):
        raise _Error()
    ends = {}
    hosts = _host(toks, egress_ok, lookup)
    ends[first] = (hosts, _port(toks))
    second = "to" if first == "from" else "from"
    if (toks.pop(0) if toks else "") != second:
        raise _Error()
    hosts = _host(toks, egress_ok, lookup)
    ends[second] = (hosts, _port(toks))
    chosen: dict[tuple[str, str], str] = {}
    peer: list[str] = []
    psk: str | None = None
    while toks:
        word = toks.pop(0)
        if word in ("local", "peer"):
            hosts = _host(toks, egress_ok, lookup)
            if word == "peer":
                peer = list(hosts)
        elif word in ("main", "aggressive", "quick"):
            while toks and toks[0] in ("auth", "enc", "group", "lifetime"):
                key = toks.pop(0)
                value = toks.pop(0) if toks else ""
                table = {"auth": AUTH_XF, "enc": ENC_XF, "group": GROUP_XF}.get(key)
                if table is not None and value not in table:
                    raise _Error(f"{value} not a valid transform")
                chosen[("quick" if word == "quick" else "main", key)] = value
        elif word in ("srcid", "dstid", "tag"):
            if not toks:
                raise _Error()
            toks.pop(0)
        elif word == "psk":
            if not toks:
                raise _Error()
            psk = toks.pop(0)
        elif word == "rsa":
            pass
        else:
            raise _Error()
    # ipsec.conf(5) quick mode defaults
    auth = chosen.get(("quick", "auth"), "hmac-sha2-256")
    enc = chosen.get(("quick", "enc"), "aes")
    if enc.endswith(("-gcm", "-gmac")) or enc == "chacha20-poly1305":
        auth = ""  # AEAD SAs print no auth part (FORMATS.md 1.3)
    digest = None
    if psk is not None:
        digest = psk_digest(psk)
        if psks is not None:
            psks[digest] = psk
    main_enc, main_bits = P1_ENC.get(chosen.get(("main", "enc"), "aes"), ("AES", "128,128:256"))
    quick_enc, quick_bits = P2_ENC.get(chosen.get(("quick", "enc"), "aes"),
                                       ("AES", "128,128:256"))
    aead = quick_enc in ("AES_GCM_16", "AES_GMAC", "NULL")
    quick_auth = P2_AUTH.get(chosen.get(("quick", "auth"), ""),
                             None if aead else "SHA2_256")
    quick_group = chosen.get(("quick", "group"))
    peers: list[str | None] = list(peer) if peer else [None]
    rules = [IkeRule(words["mode"], words["satype"], words["tmode"], proto, src,
                     ends["from"][1], dst, ends["to"][1], p,
                     P1_AUTH.get(chosen.get(("main", "auth"), "hmac-sha1"), "SHA"),
                     main_enc, main_bits,
                     GROUPS.get(chosen.get(("main", "group"), ""), DEFAULT_GROUP),
                     quick_auth, quick_enc, quick_bits,
                     None if quick_group == "none" else GROUPS.get(quick_group or "",
                                                                   DEFAULT_GROUP),
                     digest)
             for src in ends["from"][0] for dst in ends["to"][0] for p in peers]
    return auth, enc, rules


def read_ipsecconf(text: str, filename: str, egress_ok: Callable[[str], bool],
                   lookup: Callable[[str], list[str]] | None = None,
                   psks: dict[str, str] | None = None) -> IkeConfig:
    """Validate the file; `egress_ok(name)` says whether an interface name exists,
    `lookup(name)` gives its addresses.  PSKS, when given, collects digest -> PSK
    (only `ipsecctl -nvf` needs them back)."""
    macros: dict[str, str] = {}
    errors: list[str] = []
    rules = 0
    policies: list[IkeRule] = []
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
            auth, enc, expanded = _ike(toks, egress_ok, lookup, psks)
            policies.extend(expanded)
            rules += 1
        except _Error as exc:
            errors.append(f"{filename}: {lineno}: {exc.message}")
    if errors:
        raise IpsecConfError(errors)
    return IkeConfig(rules, auth, enc, tuple(policies))


# --- Which simulated clients can negotiate -----------------------------------------

# What the demo's clients propose in phase 1 (isakmpd names: enc, key bits,
# hash, group), from FACTS.md section 5: the nm-l2tp README's merge of the
# Windows 10 and macOS/iOS offers, and Microsoft KB 325158 for the legacy
# client.  The demo's own copy: a simulated client is part of the world the
# checks judge, not of their judgment.
_MERGED = (("AES", 256, "SHA2_256", "MODP_2048"), ("AES", 256, "SHA2_256", "MODP_1536"),
           ("AES", 256, "SHA2_256", "MODP_1024"), ("AES", 256, "SHA", "MODP_2048"),
           ("AES", 256, "SHA", "MODP_1536"), ("AES", 256, "SHA", "MODP_1024"),
           ("AES", 256, "SHA", "ECP_384"), ("AES", 128, "SHA", "MODP_1024"),
           ("AES", 128, "SHA", "ECP_256"), ("3DES", None, "SHA", "MODP_2048"),
           ("3DES", None, "SHA", "MODP_1024"))
CLIENTS: dict[str, tuple[tuple[str, int | None, str, str], ...]] = {
    "windows": _MERGED, "macos": _MERGED, "ios": _MERGED,
    "legacy-windows": (("3DES", None, "SHA", "MODP_1024"),),
}
# Every demo client uses the PSK of the demo host's stock ipsec.conf.
DEFAULT_CLIENT = "windows"


def _accepts(proposal: dict[str, Any], offer: tuple[str, int | None, str, str]) -> bool:
    enc, bits, hash_, group = offer
    if (proposal.get("auth_method"), proposal.get("exchange")) != ("PRE_SHARED", "ID_PROT"):
        return False
    if (proposal.get("enc"), proposal.get("hash"), proposal.get("group")) != (enc, hash_, group):
        return False
    if bits is None:
        return True
    span = re.fullmatch(r"[0-9]+,([0-9]+):([0-9]+)", proposal.get("key_length") or "")
    return span is not None and int(span.group(1)) <= bits <= int(span.group(2))


def client_can_negotiate(state: dict[str, Any], client: str = DEFAULT_CLIENT,
                         client_psk: str | None = None) -> str | None:
    """None when CLIENT's IKE exchange with the demo's isakmpd succeeds, else why not.

    Reasons: "isakmpd-down", "no-policy" (isakmpd holds no passive
    connection: restarted without `ipsecctl -f`), "no-proposal" (phase 1:
    NO_PROPOSAL_CHOSEN), "psk-mismatch" (phase 1 authentication fails).
    Phase 2 is not judged: under -K isakmpd accepts any supported transform
    (FACTS.md section 5).  CLIENT_PSK defaults to the stock demo PSK.
    """
    if client not in CLIENTS:
        raise ValueError(f"no demo client {client!r} (one of {', '.join(CLIENTS)})")
    if "isakmpd" not in state["procs"]:
        return "isakmpd-down"
    ike = state.get("ike", {})
    if not state.get("ike_loaded") or not ike.get("passive"):
        return "no-policy"
    anyone = [p for p in ike.get("phase1", []) if p.get("peer") is None]
    if not any(_accepts(p, offer) for p in anyone for offer in CLIENTS[client]):
        return "no-proposal"
    if client_psk is None:
        from .events import PSK

        client_psk = PSK
    if ike.get("psk_sha256") != psk_digest(client_psk):
        return "psk-mismatch"
    return None
