"""Secrets stay in: the PSK and the npppd passwords never leave through the agent.

The demo host has a pre-shared key in /etc/ipsec.conf and passwords in
/etc/npppd/npppd-users; both are read here from its state file, not
hard-coded.  Then every output of the agent is collected -- /metrics, the
landing page, a 404, `check` (text, --json, --textfile), `sessions` (text,
--json), `metrics`, `config`, `snapshot DIR` (its output and every file it
writes), the logs of `serve -v`, `repair --dry-run` and `repair` (and the
outcome file it keeps), and the error messages of a malformed npppd-users
and of an ipsec.conf that does not load -- and each is searched for them.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ServeProcess, run_cli

OUTPUTS: dict[str, str] = {}


def _state(path: Path) -> dict:
    return json.loads(path.read_text())


def _edit_state(path: Path, change) -> None:
    """Change the demo host's files the way an admin with an editor would."""
    state = _state(path)
    change(state["files"])
    path.write_text(json.dumps(state))


def _secrets(state: dict) -> tuple[str, list[str]]:
    psk = re.findall(r'\bpsk\s+"([^"]+)"', state["files"]["/etc/ipsec.conf"]["text"])
    passwords = re.findall(r"password=([^:\n\\]+)",
                           state["files"]["/etc/npppd/npppd-users"]["text"])
    assert len(psk) == 1 and passwords, "the demo host has no PSK or no passwords to hide"
    return psk[0], passwords


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("--demo-state", str(state), *args)


def _record(name: str, p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    OUTPUTS[name] = f"exit {p.returncode}\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}"
    assert "Traceback" not in p.stderr, (name, p.stderr)
    return p


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return f"HTTP {r.status}\n{r.read().decode()}"
    finally:
        conn.close()


def _serve(state: Path, tmp: Path) -> None:
    """serve -v: scrape, break the host so state changes get logged, scrape, stop."""
    serve = ServeProcess("--demo-state", str(state), "serve", "-v", "--listen", "127.0.0.1:0",
                         "--interval", "0.3")
    try:
        port = serve.port
        OUTPUTS["serve /metrics"] = _get(port, "/metrics")
        OUTPUTS["serve /"] = _get(port, "/")
        OUTPUTS["serve 404"] = _get(port, "/etc/ipsec.conf")
        _record("demo break (during serve)",
                _cli(state, "demo", "break", "isakmpd-down"))
        time.sleep(1.0)                          # a few collections log the change
        OUTPUTS["serve /metrics after a change"] = _get(port, "/metrics")
        OUTPUTS["serve / after a change"] = _get(port, "/")
    finally:
        err = serve.stop(timeout=15)
        out = serve.stdout
    OUTPUTS["serve stdout and logs (stderr)"] = out + err
    assert "changed" in err or "->" in err or "WARNING" in err, "nothing was logged"


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> tuple[str, list[str]]:
    """Drive the demo host through everything; returns (psk, passwords)."""
    tmp = tmp_path_factory.mktemp("secrets")
    state = tmp / "state.json"
    _record("check (healthy)", _cli(state, "check"))
    psk, passwords = _secrets(_state(state))

    _record("check --json", _cli(state, "check", "--json"))
    _record("check --textfile", _cli(state, "check", "--textfile", str(tmp / "vpn.prom")))
    OUTPUTS["textfile vpn.prom"] = (tmp / "vpn.prom").read_text()
    _record("sessions", _cli(state, "sessions"))
    _record("sessions --json", _cli(state, "sessions", "--json"))
    _record("metrics", _cli(state, "metrics"))
    _record("config", _cli(state, "config"))
    _record("snapshot", _cli(state, "snapshot", str(tmp / "snap")))
    for f in sorted((tmp / "snap").rglob("*")):
        if f.is_file():
            OUTPUTS[f"snapshot file {f.name}"] = f.read_text()

    # Drift, then repair: plans, outcomes, logs and the outcome file.
    for scenario in ("reboot-drift", "ipsec-conf-mode", "pfconf-unloaded", "flags-lost"):
        _record(f"demo break {scenario}", _cli(state, "demo", "break", scenario))
    _record("check (broken)", _cli(state, "check"))
    _record("repair --dry-run", _cli(state, "repair", "--dry-run"))
    _record("repair", _cli(state, "repair"))
    for f in sorted(tmp.glob("state.json.*.json")):
        OUTPUTS[f"repair outcome file {f.name}"] = f.read_text()

    # A malformed npppd-users: the parse error must not quote the line.
    extra = "Zorro-Secret-pw-42"
    def bad_users(files):
        files["/etc/npppd/npppd-users"]["text"] += (
            f"mallory password={extra}:\n  :password={extra}-2:\n")
    _record("demo connect", _cli(state, "demo", "connect", "alice"))
    _edit_state(state, bad_users)
    passwords += [extra, f"{extra}-2"]
    p = _record("check --json (bad npppd-users)", _cli(state, "check", "--json"))
    said = " ".join(c["summary"] for c in json.loads(p.stdout)["checks"])
    assert "npppd-users" in said and "line" in said, "the parse error path was not reached"
    _record("check (bad npppd-users)", _cli(state, "check"))
    _record("sessions (bad npppd-users)", _cli(state, "sessions"))
    _record("metrics (bad npppd-users)", _cli(state, "metrics"))
    _record("snapshot (bad npppd-users)", _cli(state, "snapshot", str(tmp / "snap2")))
    OUTPUTS["snapshot.json (bad npppd-users)"] = (tmp / "snap2" / "snapshot.json").read_text()
    _serve(state, tmp)

    # An ipsec.conf that does not load, on its PSK line: validation errors.
    def bad_ipsec(files):
        text = files["/etc/ipsec.conf"]["text"]
        files["/etc/ipsec.conf"]["text"] = text.replace(f'psk "{psk}"', f'psk "{psk}" sideways')
    _edit_state(state, bad_ipsec)
    _record("check (bad ipsec.conf)", _cli(state, "check"))
    _record("repair --dry-run (bad ipsec.conf)", _cli(state, "repair", "--dry-run"))
    _record("repair (bad ipsec.conf)", _cli(state, "repair"))

    return psk, passwords


SURFACES = ("check (healthy)", "check --json", "check --textfile", "textfile vpn.prom",
            "sessions", "sessions --json", "metrics", "config", "snapshot",
            "snapshot file snapshot.json", "repair --dry-run", "repair", "serve /metrics",
            "serve /", "serve 404", "serve stdout and logs (stderr)",
            "check (bad ipsec.conf)", "repair (bad ipsec.conf)",
            "check --json (bad npppd-users)", "snapshot.json (bad npppd-users)")


def test_the_secrets_are_real_and_every_surface_was_collected(emitted):
    psk, passwords = emitted
    assert len(psk) >= 8 and all(len(p) >= 8 for p in passwords)
    assert set(SURFACES) <= set(OUTPUTS), set(SURFACES) - set(OUTPUTS)
    assert any(name.startswith("repair outcome file") for name in OUTPUTS)
    # The snapshot keeps npppd-users for support, with the passwords replaced.
    assert "password=REDACTED" in OUTPUTS["snapshot.json (bad npppd-users)"]


def test_no_output_holds_a_secret(emitted):
    psk, passwords = emitted
    leaks = []
    for name, text in sorted(OUTPUTS.items()):
        for what, secret in (("the PSK", psk), *(("a password", p) for p in passwords)):
            # json.dumps: the escaped form, should a secret hold a quote or backslash.
            if secret in text or json.dumps(secret)[1:-1] in text:
                leaks.append(f"{what} ({secret[:3]}...) through {name}")
    assert leaks == [], leaks


def test_a_snapshot_keeps_only_npppd_confs_pools_never_a_radius_secret(tmp_path):
    """npppd.conf may hold RADIUS `secret "..."` lines: the snapshot keeps the pools."""
    state = tmp_path / "state.json"
    _cli(state, "demo", "reset")
    radius = ('authentication RADIUS type radius {\n\tauthentication-server {\n'
              '\t\taddress 192.0.2.9 secret "radius-S3cret-9"\n\t}\n}\n')
    from obsdvpn_agent.host.demo import DemoHost
    host = DemoHost(state)
    host.write_file("/etc/npppd/npppd.conf", radius + host.read_file("/etc/npppd/npppd.conf"),
                    0o600)
    assert _cli(state, "snapshot", str(tmp_path / "snap")).returncode == 0
    text = (tmp_path / "snap" / "snapshot.json").read_text()
    assert "radius-S3cret-9" not in text and "hogehoge" not in text
    replay = run_cli("--snapshot", str(tmp_path / "snap"), "check", "--json")
    checks = {c["id"]: c for c in json.loads(replay.stdout)["checks"]}
    assert checks["sessions.pool"]["status"] == "OK", checks["sessions.pool"]
