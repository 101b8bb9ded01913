"""Whole-host scenarios on the demo host, each step a separate process, the way
cron, rc.d and an admin run the agent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import run_cli

DRIFTS = ["reboot-drift", "isakmpd-down", "flags-lost", "ipsec-disabled", "pf-disabled",
          "ruleset-flushed", "pfconf-unloaded", "ipsec-conf-mode"]


@pytest.fixture
def demo(tmp_path):
    state = tmp_path / "demo-state.json"

    def agent(*args: str, **kw) -> subprocess.CompletedProcess:
        return run_cli("--demo-state", str(state), *args, **kw)

    agent.state = state
    assert agent("demo", "reset").returncode == 0
    return agent


def checks(agent) -> dict[str, dict]:
    p = agent("check", "--json")
    return {c["id"]: c for c in json.loads(p.stdout)["checks"]}


def test_healthy_host_checks_ok(demo):
    p = demo("check")
    assert p.returncode == 0, p.stdout
    assert p.stdout.startswith("OBSDVPN OK - ")


def test_break_list_names_every_scenario(demo):
    listed = [line.split()[0] for line in demo("demo", "break", "--list").stdout.splitlines()]
    assert set(DRIFTS) <= set(listed)


def test_reboot_with_unpersisted_sysctl_names_it(demo):
    assert demo("demo", "break", "reboot-drift").returncode == 0
    p = demo("check")
    assert p.returncode in (1, 2)
    assert "net.inet.ip.forwarding" in p.stdout.splitlines()[0]


def test_isakmpd_crash_is_critical(demo):
    assert demo("demo", "crash", "isakmpd").returncode == 0
    p = demo("check")
    assert p.returncode == 2
    assert checks(demo)["daemon.isakmpd.running"]["status"] == "CRITICAL"


def test_flushed_pf_is_critical(demo):
    assert demo("demo", "run", "--", "pfctl", "-F", "rules").returncode == 0
    assert demo("check").returncode == 2
    assert checks(demo)["pf.vpn_rules"]["status"] == "CRITICAL"


def test_connect_and_disconnect_are_followed(demo):
    before = json.loads(demo("sessions", "--json").stdout)
    users = {s["user"] for s in before}
    p = demo("demo", "connect", "dave")
    assert p.returncode == 0, p.stderr
    after = json.loads(demo("sessions", "--json").stdout)
    assert {s["user"] for s in after} == users | {"dave"}
    report = json.loads(demo("check", "--json").stdout)
    assert "dave" in {s["user"] for s in report["facts"]["sessions"]}
    assert report["facts"]["ipsec"]["sas"] == 2 * len(after)
    assert report["status"] == "OK"
    assert demo("demo", "disconnect", "dave").returncode == 0
    assert {s["user"] for s in json.loads(demo("sessions", "--json").stdout)} == users


@pytest.mark.parametrize("drift", DRIFTS)
def test_repair_fixes_each_drift(demo, drift):
    assert demo("demo", "break", drift).returncode == 0
    assert demo("check").returncode != 0, drift
    before = demo.state.read_bytes()
    dry = demo("repair", "--dry-run")
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert demo.state.read_bytes() == before  # the dry run changed nothing
    p = demo("repair")
    assert p.returncode == 1, p.stdout + p.stderr
    c = demo("check")
    assert c.returncode == 0, c.stdout
    again = demo("repair")
    assert again.returncode == 0, again.stdout
    assert "APPLIED" not in again.stdout and "nothing to repair" in again.stdout


def test_repair_fixes_several_drifts_at_once(demo):
    for drift in ("reboot-drift", "flags-lost", "ipsec-conf-mode", "pf-disabled"):
        assert demo("demo", "break", drift).returncode == 0
    p = demo("repair")
    assert p.returncode == 1, p.stdout
    assert demo("check").returncode == 0


def test_repair_refuses_pf_conf_with_syntax_error(demo):
    assert demo("demo", "break", "ruleset-flushed").returncode == 0
    rules_before = demo("demo", "run", "--", "pfctl", "-sr").stdout
    # An admin's hand edit that pfctl -n rejects.
    from obsdvpn_agent.host.demo import DemoHost
    host = DemoHost(demo.state)
    host.write_file("/etc/pf.conf", host.read_file("/etc/pf.conf")
                    + "pass in on egress proto tcp to port {\n", 0o600)
    assert demo("demo", "run", "--", "pfctl", "-nf", "/etc/pf.conf").returncode == 1
    p = demo("repair")
    assert p.returncode in (2, 3), p.stdout
    refused = [ln for ln in p.stdout.splitlines() if ln.startswith("REFUSED")]
    assert len(refused) == 1 and "pfctl -nf /etc/pf.conf" in refused[0]
    assert demo("demo", "run", "--", "pfctl", "-sr").stdout == rules_before


def test_repair_lock_held_exits_3_naming_it(demo):
    import fcntl
    import os

    lock = str(demo.state) + ".repair.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert demo("demo", "break", "pf-disabled").returncode == 0
        p = demo("repair")
        assert p.returncode == 3
        assert lock in p.stderr and "another repair" in p.stderr
    finally:
        os.close(fd)


def test_two_repairs_together_one_runs(demo):
    assert demo("demo", "break", "reboot-drift").returncode == 0
    cmd = [sys.executable, "-m", "obsdvpn_agent", "--demo-state", str(demo.state), "repair"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(o[0] for o in outs)
    # Either they overlapped (one ran, the other found the lock) or the second
    # started after the first finished and found nothing to do.
    assert codes in ([1, 3], [0, 1]), outs
    assert sum("APPLIED" in o[1] for o in outs) == 1
    if codes == [1, 3]:
        assert "another repair holds the lock" in next(o[2] for o in outs if o[0] == 3)
    assert demo("check").returncode == 0


def test_repair_outcome_is_in_the_metrics(demo):
    assert demo("demo", "break", "pf-disabled").returncode == 0
    assert demo("repair").returncode == 1
    text = demo("metrics").stdout
    assert "obsdvpn_repair_last_exit_code 1.0" in text
    assert 'obsdvpn_repair_last_actions{result="applied"} 1.0' in text


def test_repair_with_nothing_to_do_records_exit_0(demo):
    assert demo("demo", "break", "ipsec-conf-mode").returncode == 0
    assert demo("demo", "run", "--", "pfctl", "-nf", "/etc/pf.conf").returncode == 0
    assert demo("repair").returncode == 1
    assert "obsdvpn_repair_last_exit_code 1.0" in demo("metrics").stdout
    assert demo("repair").returncode == 0
    assert "obsdvpn_repair_last_exit_code 0.0" in demo("metrics").stdout
