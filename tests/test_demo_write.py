"""`obsdvpn-agent demo write PATH`: replace a simulated file, load nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import run_cli
from obsdvpn_agent.host.demo import DemoHost


def agent(state: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return run_cli("--demo-state", str(state), *args, input=stdin)


NEW_PF = b"""\
ext_if = "vio0"
set skip on { lo enc0 pppx }
block return
pass out on $ext_if
pass in on $ext_if proto udp to port { 500, 4500 }
pass in on $ext_if proto esp
"""


def test_write_keeps_owner_and_mode_and_loads_nothing(tmp_path: Path) -> None:
    state = tmp_path / "demo.json"
    host = DemoHost(state)
    host.run(("/sbin/chown", "root:daemon", "/etc/pf.conf"), 5)
    before = host.store.read()
    rules_before = before["pf"]["rules"]
    result = agent(state, "demo", "write", "/etc/pf.conf", stdin=NEW_PF)
    assert result.returncode == 0, result.stderr
    assert "nothing loaded" in result.stdout and "pfctl -f /etc/pf.conf" in result.stdout
    after = host.store.read()
    entry = after["files"]["/etc/pf.conf"]
    assert entry["text"] == NEW_PF.decode()
    assert (entry["mode"], entry["uid"], entry["gid"]) == (0o600, 0, 1)
    assert after["pf"]["rules"] == rules_before          # not loaded yet
    assert "/etc/pf.conf.obsdvpn-agent.bak" not in after["files"]
    loaded = agent(state, "demo", "run", "--", "pfctl", "-f", "/etc/pf.conf")
    assert loaded.returncode == 0, loaded.stderr
    assert host.store.read()["pf"]["rules"] != rules_before


def test_write_ipsec_conf_then_load_it(tmp_path: Path) -> None:
    state = tmp_path / "demo.json"
    host = DemoHost(state)
    conf = (b'ike passive esp transport proto udp from egress to any port l2tp '
            b'main auth hmac-sha1 enc 3des group modp1024 psk "demo-psk-s3cret"\n')
    assert agent(state, "demo", "write", "/etc/ipsec.conf", stdin=conf).returncode == 0
    assert host.store.read()["ike"]["phase1"][0]["enc"] == "AES"      # still the old policy
    assert agent(state, "demo", "run", "--", "ipsecctl", "-f", "/etc/ipsec.conf").returncode == 0
    groups = {p["group"] for p in host.store.read()["ike"]["phase1"]}
    assert "MODP_1024" in groups and len(host.store.read()["ike"]["phase1"]) == 2


def test_write_new_log_file_and_refusals(tmp_path: Path) -> None:
    state = tmp_path / "demo.json"
    log = b"Nov 29 12:00:00 vpn npppd[1]: ppp id=1 layer=base logtype=Started\n"
    assert agent(state, "demo", "write", "/var/log/daemon", stdin=log).returncode == 0
    entry = DemoHost(state).store.read()["files"]["/var/log/daemon"]
    assert (entry["mode"], entry["uid"]) == (0o640, 0)
    for path in ("/etc/passwd", "/etc/pf.conf.obsdvpn-agent.bak", "etc/pf.conf"):
        refused = agent(state, "demo", "write", path, stdin=b"x\n")
        assert refused.returncode == 3
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and path in lines[0] and "Traceback" not in refused.stderr
    binary = agent(state, "demo", "write", "/etc/pf.conf", stdin=b"pass \xff\n")
    assert binary.returncode == 3 and "not UTF-8" in binary.stderr
    assert "\xff" not in DemoHost(state).store.read()["files"]["/etc/pf.conf"]["text"]
