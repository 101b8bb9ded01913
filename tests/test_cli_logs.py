"""`why`, `history` and `offenders` as separate processes: on a log file, and on the
demo host whose `demo connect` failures write the daemons' lines; plus the metric
families of the log counters."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from conftest import run_cli
from obsdvpn_agent.logcounts import LogCounts, update_counts
from obsdvpn_agent.metrics import log_families
from obsdvpn_agent.parsers.syslog import parse_lines

LOG = str(Path(__file__).parent / "fixtures" / "logs" / "daemon-interleaved.log")


def test_why_on_a_log_file() -> None:
    r = run_cli("why", "bob", "--log", LOG)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "bob: wrong-password (reached auth)"
    assert lines[1] == "  bob from 203.0.113.20 sent a wrong password at Nov 28 09:01:00"
    assert any(line.startswith("  fix: The user exists but the password") for line in lines)
    assert 'username="bob" password mismatch.' in r.stdout


def test_why_json_on_a_log_file() -> None:
    r = run_cli("why", "203.0.113.50", "--json", "--log", LOG)
    data = json.loads(r.stdout)
    assert (data["query"], data["verdict"], data["stage"], data["peer"]) == (
        "203.0.113.50", "no-proposal", "ike", "203.0.113.50")
    assert data["offered"] == ["GROUP_DESCRIPTION MODP_2048", "GROUP_DESCRIPTION MODP_1024"]
    assert data["expected"] == "GROUP_DESCRIPTION MODP_3072"
    assert len(data["evidence"]) == 4 and data["advice"]


def test_history_and_offenders_on_a_log_file() -> None:
    r = run_cli("history", "carol", "--json", "--log", LOG)
    rows = json.loads(r.stdout)
    assert [(s["user"], s["duration_s"], s["bytes_in"], s["bytes_out"]) for s in rows] == [
        ("carol", 1800, 5123456, 40123456)]
    r = run_cli("history", "--log", LOG)
    assert r.stdout.splitlines()[0].startswith("USER") and len(r.stdout.splitlines()) == 6
    r = run_cli("offenders", "--addresses", "--log", LOG)
    assert r.stdout == "192.0.2.66\n"


def test_a_log_that_cannot_be_read_is_one_line_and_unknown(tmp_path: Path) -> None:
    r = run_cli("why", "bob", "--log", str(tmp_path / "nope"))
    assert r.returncode == 3 and r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "No such file or directory" in r.stderr
    r = run_cli("why", "bob", "--since", "soon", "--log", LOG)
    assert r.returncode == 3 and "not a duration" in r.stderr


@pytest.fixture()
def demo(tmp_path: Path):
    state = tmp_path / "demo.json"

    def cli(*args: str):
        return run_cli("--demo-state", str(state), *args)
    return cli, state


def _why(cli, query: str) -> dict:
    r = cli("why", query, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_demo_connect_and_disconnect_are_logged(demo) -> None:
    cli, _ = demo
    assert cli("demo", "connect", "erin").returncode == 0
    assert _why(cli, "erin")["verdict"] == "connected"
    assert cli("demo", "disconnect", "erin").returncode == 0
    assert _why(cli, "erin")["verdict"] == "disconnected"
    rows = json.loads(cli("history", "erin", "--json").stdout)
    assert [s["user"] for s in rows] == ["erin"] and rows[0]["vendor"] == "Microsoft"


@pytest.mark.parametrize(("args", "verdict", "stage"), [
    (("bob", "--password", "guess"), "wrong-password", "auth"),
    (("mallory",), "unknown-user", "auth"),
])
def test_demo_login_failures_are_logged(demo, args, verdict, stage) -> None:
    cli, _ = demo
    r = cli("demo", "connect", *args)
    assert r.returncode == 3 and r.stderr.startswith("obsdvpn-agent demo: ")
    w = _why(cli, args[0])
    assert (w["verdict"], w["stage"]) == (verdict, stage)


@pytest.mark.parametrize(("args", "verdict"), [
    (("--psk", "not-the-key"), "psk-mismatch"),
    (("--proposal", "modp2048"), "no-proposal"),
    (("--blocked",), "no-response"),
])
def test_demo_ike_failures_are_logged(demo, args, verdict) -> None:
    cli, _ = demo
    r = cli("demo", "connect", "frank", *args)
    assert r.returncode == 3
    # isakmpd names no user: the address is the key; offenders lists it.
    [offender] = json.loads(cli("offenders", "--min", "1", "--json").stdout)
    assert (offender["ike_failures"], offender["failed_logins"]) == (1, 0)
    w = _why(cli, offender["address"])
    assert w["verdict"] == verdict and w["stage"] == "ike"
    if verdict == "no-proposal":
        assert w["offered"] == ["GROUP_DESCRIPTION MODP_2048"]
        assert w["expected"] == "GROUP_DESCRIPTION MODP_1024"   # the demo's ipsec.conf


def test_demo_full_pool_is_logged(demo) -> None:
    cli, state = demo
    assert cli("demo", "reset").returncode == 0
    data = json.loads(state.read_text())
    data["npppd"]["pool"] = "10.0.0.0/29"      # .2-.6: three sessions plus two more
    state.write_text(json.dumps(data))
    assert cli("demo", "connect", "dave").returncode == 0
    assert cli("demo", "connect", "erin").returncode == 0
    r = cli("demo", "connect", "frank")
    assert r.returncode == 3 and "exhausted" in r.stderr
    assert _why(cli, "frank")["verdict"] == "pool-exhausted"


# --- metrics -------------------------------------------------------------------------------------

def test_log_families() -> None:
    records = list(parse_lines(Path(LOG).read_text().splitlines(),
                               datetime(2026, 11, 29)))
    counts = update_counts(LogCounts(), records, ("carol", "kim"))

    class C:
        def collect(self):
            return log_families(counts, read_success=True, users=("carol", "kim", "dave"))
    reg = CollectorRegistry()
    reg.register(C())
    v = reg.get_sample_value
    assert v("obsdvpn_ppp_auth_failures_total", {"reason": "unknown-user"}) == 13
    assert v("obsdvpn_ppp_auth_failures_total", {"reason": "auth-failed"}) == 1
    assert v("obsdvpn_ike_failures_total", {"reason": "psk-mismatch"}) == 3
    assert v("obsdvpn_ike_failures_total", {"reason": "other"}) == 0
    assert v("obsdvpn_ppp_sessions_started_total") == 6
    assert v("obsdvpn_ppp_sessions_closed_total") == 5
    assert v("obsdvpn_ppp_user_receive_bytes_total", {"user": "carol"}) == 5123456
    assert v("obsdvpn_ppp_user_transmit_bytes_total", {"user": "kim"}) == 5000
    assert v("obsdvpn_ppp_user_receive_bytes_total", {"user": "judy"}) is None
    assert v("obsdvpn_ppp_user_transmit_bytes_total", {"user": "dave"}) == 0   # from 0 on
    assert v("obsdvpn_log_lines_total", {"result": "unmatched"}) == 1
    assert v("obsdvpn_log_read_success") == 1
    users = {s.labels["user"] for m in reg.collect() for s in m.samples if "user" in s.labels}
    assert users == {"carol", "kim", "dave"}
