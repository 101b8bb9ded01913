"""IKE: established SAs, ipsecctl -nvf proposals (PSK never kept), policy and client
judgments, isakmpd's FIFO on the local, snapshot and demo hosts."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path

import pytest

from conftest import fixture, sample
from obsdvpn_agent.checks.ike import (
    LEGACY,
    MODERN,
    client_compatibility,
    ike_policy_verdict,
)
from obsdvpn_agent.commands import IPSECCTL_NVF, isakmpd_query_line
from obsdvpn_agent.host.base import CommandResult, HostError
from obsdvpn_agent.host.demo import DemoHost
from obsdvpn_agent.host.demo.ipsecconf import client_can_negotiate
from obsdvpn_agent.host.local import query_isakmpd_fifo
from obsdvpn_agent.host.snapshot import RecordingHost, SnapshotHost, write_snapshot
from obsdvpn_agent.parsers import ParseError
from obsdvpn_agent.parsers.ipsecctl import (
    drop_psk_lines,
    parse_ike_nvf,
    parse_sa,
    parse_sas,
)
from obsdvpn_agent.parsers.isakmpd import parse_flags, parse_passive_connections

PSKS = ("fixture-psk-9Zq!x", "fixture psk with blanks", "fixture-psk-2nd")
PASSIVE = "[Phase 2]:Passive-Connections"


# --- established SAs -----------------------------------------------------------------

def test_three_clients_all_protected() -> None:
    state = parse_sa(sample("derived2/ipsecctl/derived-sa-l2tp-server-3clients-natt-rekey.txt"))
    assert all(sa.established for sa in state.sas)
    assert state.protected_peers() == {"198.51.100.7", "192.0.2.44"}
    assert {"198.51.100.7", "192.0.2.44"} - state.protected_peers() == set()


def test_larval_sa_protects_nothing() -> None:
    state = parse_sa(fixture("ipsecctl/derived-sa-l2tp-larval.txt"))
    larval = [sa for sa in state.sas if sa.auth is None and sa.enc is None]
    assert len(larval) == 2 and not any(sa.established for sa in larval)
    # 192.0.2.44 has flows and an SA, but the SA is larval; the old check passed it.
    assert "192.0.2.44" in state.remote_peers()
    assert state.protected_peers() == {"198.51.100.7"}
    # 192.0.2.99 has a larval SA and no flow at all.
    assert {"198.51.100.7", "192.0.2.44", "192.0.2.99"} - state.protected_peers() == \
        {"192.0.2.44", "192.0.2.99"}


def test_verbose_state_larval_is_not_established() -> None:
    state = parse_sas(fixture("ipsecctl/derived-ss-v-larval.txt"))
    larval, mature = state.sas
    assert (larval.state, larval.established) == ("larval", False)
    assert (mature.state, mature.established) == ("mature", True)


def test_aead_sa_is_established_and_other_types_are_not_protection() -> None:
    gcm = parse_sa(sample("derived2/ipsecctl/derived-sa-ipv6-l2tp-gcm.txt"))
    assert all(sa.established for sa in gcm.sas)
    assert gcm.protected_peers() == {"2001:db8:100::7"}
    md5 = parse_sa(sample("derived2/ipsecctl/derived-sa-tcpmd5-ipip.txt"))
    assert not any(sa.established for sa in md5.sas)


def test_one_direction_is_not_enough() -> None:
    text = sample("derived2/ipsecctl/derived-sa-l2tp-server-3clients-natt-rekey.txt")
    text = "\n".join(line for line in text.splitlines() if "to 192.0.2.44 spi" not in line)
    assert "192.0.2.44" not in parse_sa(text).protected_peers()


# --- ipsecctl -nvf ----------------------------------------------------------------------

def test_regress_ike1_rsa_rule_with_peer() -> None:
    (rule,) = parse_ike_nvf(fixture("ipsecctl/regress-ike1-nvf.txt"))
    assert (rule.peer, rule.section, rule.auth_method, rule.hash, rule.enc, rule.group) == \
        ("131.188.33.29", "peer-131.188.33.29", "RSA_SIG", "SHA", "AES", "MODP_1024")
    assert rule.key_bits() == (128, 256)
    assert not rule.passive and rule.connection == "from-131.188.33.51-to-131.188.33.29"


def test_default_rule_gets_modp3072() -> None:
    (rule,) = parse_ike_nvf(fixture("ipsecctl/derived-nvf-l2tp-default.txt"))
    assert (rule.peer, rule.auth_method, rule.enc, rule.group, rule.passive) == \
        (None, "PRE_SHARED", "AES", "MODP_3072", True)
    assert rule.connection == "from-203.0.113.1=17-to-0.0.0.0/0=17:1701"


def test_vv_two_rules() -> None:
    passive, active = parse_ike_nvf(fixture("ipsecctl/derived-nvf-l2tp-modp2048-vv.txt"))
    assert (passive.peer, passive.group, passive.passive) == (None, "MODP_2048", True)
    assert (active.peer, active.hash, active.key_bits(), active.group, active.passive) == \
        ("198.51.100.20", "SHA2_256", (256, 256), "ECP_384", False)


def _everything_said(text: str) -> list[str]:
    """Every string a parse of TEXT can hand anyone: records, reprs, errors."""
    said: list[str] = []
    try:
        rules = parse_ike_nvf(text)
    except ParseError as exc:
        said += [str(exc), repr(exc), repr(exc.args)]
        return said
    said.append(repr(rules))
    said += [json.dumps(dataclasses.asdict(r)) for r in rules]
    return said


@pytest.mark.parametrize("name", ["derived-nvf-l2tp-default.txt",
                                  "derived-nvf-l2tp-modp2048-vv.txt"])
def test_psk_never_survives(name: str) -> None:
    text = fixture(f"ipsecctl/{name}")
    assert any(psk in text for psk in PSKS)      # the fixture does carry one
    lines = text.splitlines()
    variants = [text, drop_psk_lines(text),
                # truncated right after the PSK line, and with the PSK line broken
                "\n".join(lines[:4]) + "\n",
                text.replace(" force\nC set [peer-default]:Configuration",
                             "\nforce\nC set [peer-default]:Configuration", 1),
                text.replace("Authentication=", "Authentication=\n", 1),
                text.replace("C set [Phase 1]", "garbage [Phase 1]", 1)]
    for variant in variants:
        for said in _everything_said(variant):
            for psk in PSKS:
                for piece in (psk, psk.split()[0]) if " " in psk else (psk,):
                    assert piece not in said, (piece, said[:200])
    assert drop_psk_lines(text).count("\n") == text.count("\n") - text.count("Authentication=")
    assert parse_ike_nvf(drop_psk_lines(text)) == parse_ike_nvf(text)


@pytest.mark.parametrize("mangle, reason", [
    (lambda t: t.rsplit("C add [Phase 2]", 1)[0], "truncated"),
    (lambda t: t.replace("GROUP_DESCRIPTION=MODP_3072 force\nC set [phase1", "X=Y force\n"
                         "C set [phase1", 1), "lacks its phase-1 group"),
    (lambda t: "what is this\n" + t, "neither"),
    (lambda t: t.replace("C set [peer-default]:Phase=1 force", "C set peer-default", 1),
     "not a `C set"),
])
def test_nvf_damage_raises(mangle, reason: str) -> None:
    text = mangle(fixture("ipsecctl/derived-nvf-l2tp-default.txt"))
    with pytest.raises(ParseError) as exc:
        parse_ike_nvf(text)
    assert reason in str(exc.value)


def test_nvf_empty_and_flow_lines() -> None:
    assert parse_ike_nvf("") == ()
    flow = "flow esp from 10.0.0.0/24 to 10.1.0.0/24 peer 192.0.2.2 type require\n"
    assert parse_ike_nvf(flow + fixture("ipsecctl/derived-nvf-l2tp-default.txt"))[0].group == "MODP_3072"


# --- judgments ----------------------------------------------------------------------------

def test_policy_verdicts() -> None:
    k = parse_flags("-K")
    lost = ike_policy_verdict(True, k, ())
    assert lost.status == "CRITICAL" and lost.repair
    assert "ipsecctl -f /etc/ipsec.conf" in lost.summary and "-K" in lost.summary
    assert lost.passive_connections == 0
    ok = ike_policy_verdict(True, k, ("from-a=17-to-0.0.0.0/0=17:1701",))
    assert (ok.status, ok.passive_connections, ok.repair) == ("OK", 1, False)
    assert ike_policy_verdict(True, k, None).status == "UNKNOWN"
    failed = ike_policy_verdict(None, None, "isakmpd's FIFO has no reader")
    assert failed.status == "UNKNOWN" and "no reader" in failed.summary
    assert ike_policy_verdict(False, k, None).status == "CRITICAL"
    stale = ike_policy_verdict(True, k, ("a",), expected=("a", "b"))
    assert (stale.status, stale.missing) == ("WARNING", ("b",))


def test_default_modp3072_locks_out_every_client() -> None:
    verdict = client_compatibility(parse_ike_nvf(fixture("ipsecctl/derived-nvf-l2tp-default.txt")))
    assert verdict.status == "CRITICAL"
    assert verdict.can_connect == () and set(verdict.locked_out) == {MODERN, LEGACY}
    assert "main auth hmac-sha1 enc aes group modp2048" in verdict.summary
    assert "MODP_3072" in verdict.summary and "Android" in verdict.not_judged


def test_modp2048_lets_modern_clients_in() -> None:
    verdict = client_compatibility(parse_ike_nvf(fixture("ipsecctl/derived-nvf-l2tp-modp2048-vv.txt")))
    assert verdict.status == "OK" and verdict.can_connect == (MODERN,)
    assert verdict.locked_out == (LEGACY,) and "3des" in verdict.summary
    # Only the passive rule for any peer counts: the active ECP_384 rule has a peer.
    assert verdict.proposals == 1


def test_3des_modp1024_lets_everyone_in_and_rsa_nobody() -> None:
    (rule,) = parse_ike_nvf(fixture("ipsecctl/derived-nvf-l2tp-default.txt"))
    both = dataclasses.replace(rule, enc="3DES", key_length=None, group="MODP_1024")
    assert client_compatibility((both,)).locked_out == ()
    rsa = dataclasses.replace(both, auth_method="RSA_SIG")
    assert client_compatibility((rsa,)).status == "CRITICAL"
    aes128_only = dataclasses.replace(rule, key_length="128,128:128", group="MODP_1024")
    assert MODERN in client_compatibility((aes128_only,)).can_connect
    aes256_only = dataclasses.replace(rule, key_length="256,256:256", group="ECP_256")
    assert client_compatibility((aes256_only,)).status == "CRITICAL"   # AES128-SHA-ECP_256


def test_no_passive_rule_is_critical() -> None:
    active = parse_ike_nvf(fixture("ipsecctl/regress-ike1-nvf.txt"))
    assert client_compatibility(active).status == "CRITICAL"
    assert client_compatibility(()).status == "CRITICAL"


# --- the FIFO on a local host (a fake isakmpd on a real FIFO) ------------------------------

class FakeIsakmpd:
    """Reads the FIFO like ui.c (opened O_RDWR|O_NONBLOCK) and answers `C get`."""

    def __init__(self, tmp: Path, answers: dict[str, str | None]) -> None:
        self.fifo, self.result = tmp / "isakmpd.fifo", tmp / "isakmpd.result"
        os.mkfifo(self.fifo, 0o600)
        self.answers = answers
        self.seen: list[str] = []
        self.fd = os.open(self.fifo, os.O_RDWR)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.fd, 256)
            except OSError:
                return
            if not chunk or chunk == b"QUIT\n":
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.seen.append(line.decode())
                tag = line.decode()[len("C get "):]
                answer = self.answers.get(tag, "")
                if answer is not None:            # None: isakmpd never writes
                    with open(self.result, "w") as f:
                        f.write(answer)

    def stop(self) -> None:
        os.write(self.fd, b"QUIT\n")
        self.thread.join(5)
        os.close(self.fd)


def test_local_fifo_query(tmp_path: Path) -> None:
    names = "from-192.0.2.1=17-to-0.0.0.0/0=17:1701\n"
    fake = FakeIsakmpd(tmp_path, {PASSIVE: names, "[Phase 1]:Default": ""})
    try:
        paths = {"fifo": str(fake.fifo), "result": str(fake.result),
                 "lock": str(tmp_path / "lock")}
        first = query_isakmpd_fifo(isakmpd_query_line(PASSIVE), 5, **paths)
        assert first == names
        # Same answer again: the file is rewritten in place; still seen as new.
        assert query_isakmpd_fifo(isakmpd_query_line(PASSIVE), 5, **paths) == names
        assert query_isakmpd_fifo(isakmpd_query_line("[Phase 1]:Default"), 5, **paths) == ""
        assert fake.seen == ["C get " + PASSIVE] * 2 + ["C get [Phase 1]:Default"]
        assert parse_passive_connections(first) == (names.strip(),)
    finally:
        fake.stop()


def test_local_fifo_no_answer_is_none(tmp_path: Path) -> None:
    fake = FakeIsakmpd(tmp_path, {PASSIVE: None})
    try:
        assert query_isakmpd_fifo(isakmpd_query_line(PASSIVE), 0.2, fifo=str(fake.fifo),
                                  result=str(fake.result), lock=str(tmp_path / "l")) is None
    finally:
        fake.stop()


def test_local_fifo_without_reader_or_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo", 0o600)
    kw = {"result": str(tmp_path / "r"), "lock": str(tmp_path / "l")}
    with pytest.raises(HostError, match="no reader"):
        query_isakmpd_fifo("C get x\n", 1, fifo=str(tmp_path / "fifo"), **kw)
    with pytest.raises(HostError, match="no such FIFO"):
        query_isakmpd_fifo("C get x\n", 1, fifo=str(tmp_path / "none"), **kw)
    (tmp_path / "file").write_text("")
    with pytest.raises(HostError, match="not a FIFO"):
        query_isakmpd_fifo("C get x\n", 1, fifo=str(tmp_path / "file"), **kw)


def test_lock_held_elsewhere_gives_none(tmp_path: Path) -> None:
    import fcntl

    fake = FakeIsakmpd(tmp_path, {PASSIVE: "x\n"})
    lock = tmp_path / "lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert query_isakmpd_fifo(isakmpd_query_line(PASSIVE), 0.2, fifo=str(fake.fifo),
                                  result=str(fake.result), lock=str(lock)) is None
        assert fake.seen == []          # nothing was sent while another query ran
    finally:
        os.close(fd)
        fake.stop()


@pytest.mark.parametrize("tag", ["r", "S", "[Phase 1]:Default=x", "[peer-default]:Authentication",
                                 "[Phase 2]:Passive-Connections\nr"])
def test_only_allowed_tags(tag: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        isakmpd_query_line(tag)
    with pytest.raises(ValueError):
        DemoHost(tmp_path / "s.json").query_isakmpd(tag, 1)


# --- snapshots: record and replay, no PSK ---------------------------------------------

def test_snapshot_records_answers_and_drops_psk(tmp_path: Path) -> None:
    demo = DemoHost(tmp_path / "s.json")
    rec = RecordingHost(demo)
    nvf = rec.run(IPSECCTL_NVF, 5)
    assert "demo-psk-s3cret" in nvf.stdout           # the real output carries it
    answer = rec.query_isakmpd(PASSIVE, 5)
    demo.run(("/usr/sbin/rcctl", "stop", "isakmpd"), 5)
    with pytest.raises(HostError):
        rec.query_isakmpd("[Phase 1]:Default", 5)
    doc = rec.document("now", "test")
    text = json.dumps(doc)
    assert "demo-psk-s3cret" not in text and "s3cret" not in text
    path = write_snapshot(str(tmp_path / "snap"), doc)
    replay = SnapshotHost(path)
    assert replay.query_isakmpd(PASSIVE, 1) == answer
    with pytest.raises(HostError, match="no reader"):
        replay.query_isakmpd("[Phase 1]:Default", 1)
    assert parse_ike_nvf(replay.run(IPSECCTL_NVF, 1).stdout) == parse_ike_nvf(nvf.stdout)


def test_old_snapshot_without_answers(tmp_path: Path) -> None:
    doc = RecordingHost(DemoHost(tmp_path / "s.json")).document("now", "test")
    del doc["isakmpd"]
    replay = SnapshotHost(write_snapshot(str(tmp_path / "snap"), doc))
    with pytest.raises(HostError, match="not in"):
        replay.query_isakmpd(PASSIVE, 1)


# --- the demo's isakmpd -----------------------------------------------------------------

def run(host: DemoHost, *argv: str) -> CommandResult:
    return host.run(argv, 5)


def test_demo_restart_loses_policy_and_ipsecctl_restores_it(tmp_path: Path) -> None:
    host = DemoHost(tmp_path / "s.json")
    loaded = host.query_isakmpd(PASSIVE, 1)
    assert loaded == "from-192.0.2.1=17-to-0.0.0.0/0=17:1701\n"
    assert host.query_isakmpd("[Phase 1]:Default", 1) == "peer-default\n"
    assert client_can_negotiate(host.store.read()) is None
    assert run(host, "/usr/sbin/rcctl", "restart", "isakmpd").returncode == 0
    assert host.query_isakmpd(PASSIVE, 1) == ""
    assert host.query_isakmpd("[Phase 1]:Default", 1) == "Default-phase-1\n"
    lost = ike_policy_verdict(True, parse_flags("-K"),
                              parse_passive_connections(host.query_isakmpd(PASSIVE, 1) or ""))
    assert lost.status == "CRITICAL"
    assert client_can_negotiate(host.store.read()) == "no-policy"
    assert run(host, "/sbin/ipsecctl", "-f", "/etc/ipsec.conf").returncode == 0
    assert host.query_isakmpd(PASSIVE, 1) == loaded
    run(host, "/usr/sbin/rcctl", "stop", "isakmpd")
    with pytest.raises(HostError, match="no reader"):
        host.query_isakmpd(PASSIVE, 1)
    assert client_can_negotiate(host.store.read()) == "isakmpd-down"


def test_demo_reboot_loads_policy_only_with_ipsec_yes(tmp_path: Path) -> None:
    from obsdvpn_agent.host.demo import events

    host = DemoHost(tmp_path / "s.json")
    with host.store.change() as state:
        events.reboot(state, 0)
    assert host.query_isakmpd(PASSIVE, 1) != ""
    run(host, "/usr/sbin/rcctl", "disable", "ipsec")
    with host.store.change() as state:
        events.reboot(state, 0)
    assert host.query_isakmpd(PASSIVE, 1) == ""
    with host.store.change() as state:
        events.crash(state, "isakmpd", 0)
    with pytest.raises(HostError):
        host.query_isakmpd(PASSIVE, 1)


def test_demo_unprivileged_cannot_ask(tmp_path: Path) -> None:
    DemoHost(tmp_path / "s.json").store.read()
    with pytest.raises(HostError, match="root"):
        DemoHost(tmp_path / "s.json", as_root=False).query_isakmpd(PASSIVE, 1)


def test_demo_nvf_agrees_with_parser_and_clients(tmp_path: Path) -> None:
    host = DemoHost(tmp_path / "s.json")
    stock = parse_ike_nvf(run(host, "/sbin/ipsecctl", "-nvf", "/etc/ipsec.conf").stdout)
    assert [(r.enc, r.hash, r.group) for r in stock] == [("AES", "SHA", "MODP_1024")]
    assert client_compatibility(stock).can_connect[0] == MODERN
    default = ('ike passive esp transport proto udp from egress to any port l2tp '
               'psk "demo-psk-s3cret"\n')
    host.write_simulated("/etc/ipsec.conf", default)
    printed = run(host, "/sbin/ipsecctl", "-nvf", "/etc/ipsec.conf").stdout
    assert printed.replace("192.0.2.1", "203.0.113.1") == fixture("ipsecctl/derived-nvf-l2tp-default.txt") \
        .replace("fixture-psk-9Zq!x", "demo-psk-s3cret")
    assert client_compatibility(parse_ike_nvf(printed)).status == "CRITICAL"
    # Written but not loaded: isakmpd still holds the old proposal, clients still connect.
    assert client_can_negotiate(host.store.read()) is None
    run(host, "/usr/sbin/rcctl", "restart", "isakmpd")
    run(host, "/sbin/ipsecctl", "-f", "/etc/ipsec.conf")
    for client in ("windows", "macos", "legacy-windows"):
        assert client_can_negotiate(host.store.read(), client) == "no-proposal"
    host.write_simulated("/etc/ipsec.conf", default.replace(
        'psk "demo-psk-s3cret"',
        'main auth hmac-sha1 enc aes group modp2048 psk "demo-psk-other"'))
    run(host, "/usr/sbin/rcctl", "restart", "isakmpd")
    run(host, "/sbin/ipsecctl", "-f", "/etc/ipsec.conf")
    assert client_can_negotiate(host.store.read(), "windows") == "psk-mismatch"
    assert client_can_negotiate(host.store.read(), "windows", "demo-psk-other") is None
    assert client_can_negotiate(host.store.read(), "legacy-windows") == "no-proposal"


def test_demo_isakmpd_flags_vfK_does_not_start(tmp_path: Path) -> None:
    host = DemoHost(tmp_path / "s.json")
    run(host, "/usr/sbin/rcctl", "set", "isakmpd", "flags", "-vfK")
    run(host, "/usr/sbin/rcctl", "restart", "isakmpd")
    assert "isakmpd" not in host.store.read()["procs"]
    run(host, "/usr/sbin/rcctl", "set", "isakmpd", "flags", "-Kv")
    run(host, "/usr/sbin/rcctl", "start", "isakmpd")
    assert "isakmpd" in host.store.read()["procs"]
