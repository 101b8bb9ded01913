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
    c = checks(demo)
    # pf with no rule passes every packet, but translates none: no client reaches out.
    assert c["pf.path.nat_out"]["status"] == "CRITICAL"
    assert c["pf.path.ike"]["status"] == "OK"


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


# An edited pf.conf that still lets clients connect is loaded only when asked by name.
ASK = {"pfconf-unloaded": ("--only", "pf.ruleset")}


@pytest.mark.parametrize("drift", DRIFTS)
def test_repair_fixes_each_drift(demo, drift):
    assert demo("demo", "break", drift).returncode == 0
    assert demo("check").returncode != 0, drift
    before = demo.state.read_bytes()
    dry = demo("repair", "--dry-run", *ASK.get(drift, ()))
    assert dry.returncode == 1, dry.stdout + dry.stderr
    assert demo.state.read_bytes() == before  # the dry run changed nothing
    p = demo("repair", *ASK.get(drift, ()))
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


def test_repair_does_not_load_an_edited_pf_conf_the_admin_has_not_loaded(demo):
    assert demo("demo", "break", "pfconf-unloaded").returncode == 0
    rules_before = demo("demo", "run", "--", "pfctl", "-sr").stdout
    p = demo("repair")
    assert p.returncode == 0, p.stdout
    assert "not repaired: pf.ruleset" in p.stdout and "--only pf.ruleset" in p.stdout
    assert demo("demo", "run", "--", "pfctl", "-sr").stdout == rules_before
    assert checks(demo)["pf.ruleset"]["status"] == "WARNING"


def test_repair_loads_a_differing_pf_conf_when_the_config_asks(demo, tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text('[repair]\nload_pf_conf = "when-differs"\n')
    assert demo("demo", "break", "pfconf-unloaded").returncode == 0
    p = demo("--config", str(conf), "repair")
    assert p.returncode == 1, p.stdout + p.stderr
    assert checks(demo)["pf.ruleset"]["status"] == "OK"


def test_repair_skip_keeps_repair_off_a_check(demo, tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text('[repair]\nskip = ["pf.enabled"]\n')
    assert demo("demo", "break", "pf-disabled").returncode == 0
    p = demo("--config", str(conf), "repair")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pf.enabled: skipped ([repair] skip" in p.stdout
    assert checks(demo)["pf.enabled"]["status"] == "CRITICAL"
    conf.write_text('[repair]\nskip = ["pf.nosuch"]\n')
    bad = demo("--config", str(conf), "repair")
    assert bad.returncode == 3 and "repair.skip" in bad.stderr and "pf.nosuch" in bad.stderr


def test_pause_stops_repair_and_check_names_it(demo):
    assert demo("demo", "break", "isakmpd-down").returncode == 0
    p = demo("pause", "--for", "2h", "--reason", "kernel upgrade")
    assert p.returncode == 0, p.stderr
    r = demo("repair")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and "repair is paused" in lines[0] and "kernel upgrade" in lines[0]
    assert checks(demo)["daemon.isakmpd.running"]["status"] == "CRITICAL"  # nothing changed
    c = demo("check")
    assert c.returncode == 2 and "repair is paused" in c.stdout
    report = json.loads(demo("check", "--json").stdout)
    assert report["repair_pause"]["reason"] == "kernel upgrade"
    metrics = demo("metrics").stdout
    assert "obsdvpn_repair_paused 1.0" in metrics
    assert demo("resume").returncode == 0
    assert "obsdvpn_repair_paused 0.0" in demo("metrics").stdout
    assert demo("repair").returncode == 1
    assert demo("check").returncode == 0


def test_pause_for_a_bad_duration_is_a_usage_error(demo):
    p = demo("pause", "--for", "soon")
    assert p.returncode == 3 and "--for" in p.stderr and "soon" in p.stderr


def test_check_on_change_prints_only_changes_and_reminders(demo):
    quiet = ("check", "--quiet", "--on-change")
    assert demo(*quiet).stdout == ""                  # OK and nothing changed
    assert demo("demo", "break", "isakmpd-down").returncode == 0
    first = demo(*quiet)
    assert first.returncode == 2 and first.stdout.startswith("OBSDVPN CRITICAL")
    # the summary line is not repeated among the details
    assert first.stdout.splitlines()[0].split(" - ", 1)[1].split(":")[0] not in \
        "\n".join(first.stdout.splitlines()[1:])
    again = demo(*quiet)
    assert again.returncode == 2 and again.stdout == ""   # same problem: quiet
    reminded = demo(*quiet, "--remind", "0")
    assert reminded.returncode == 2 and reminded.stdout.startswith("OBSDVPN CRITICAL")
    assert demo("repair").returncode == 1
    back = demo(*quiet)
    assert back.returncode == 0 and back.stdout.startswith("OBSDVPN OK")  # the recovery
    assert demo(*quiet).stdout == ""


def test_isakmpd_restarted_without_its_policy_is_critical_until_repair(demo):
    # The most common mistake with -K: `rcctl restart isakmpd` and no `ipsecctl -f`.
    assert demo("demo", "run", "--", "rcctl", "restart", "isakmpd").returncode == 0
    c = checks(demo)
    assert c["ipsec.ike_rules"]["status"] == "CRITICAL", c["ipsec.ike_rules"]
    assert c["daemon.isakmpd.running"]["status"] == "OK"
    p = demo("repair")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "ipsecctl -f /etc/ipsec.conf" in p.stdout
    assert checks(demo)["ipsec.ike_rules"]["status"] == "OK"


def test_unprivileged_serve_learns_the_policy_from_roots_last_check(demo):
    import time

    from obsdvpn_agent.checks import by_id, evaluate
    from obsdvpn_agent.config import Config
    from obsdvpn_agent.host.agentfiles import load_record
    from obsdvpn_agent.host.demo import DemoHost
    from obsdvpn_agent.probes import gather

    unprivileged = DemoHost(demo.state, as_root=False)
    alone = by_id(evaluate(gather(unprivileged, Config()), Config()))
    assert alone["ipsec.ike_rules"].status.name == "UNKNOWN"
    assert "root" in alone["ipsec.ike_rules"].summary
    assert demo("check").returncode == 0           # root's check leaves its record
    record = load_record(f"{demo.state}.observed.json")
    from obsdvpn_agent.host.demo.events import PSK
    assert record is not None and PSK not in json.dumps(record)
    told = by_id(evaluate(gather(unprivileged, Config(), observed=record), Config()))
    assert told["ipsec.ike_rules"].status.name == "OK"
    assert "as root's check saw it" in told["ipsec.ike_rules"].summary
    stale = dict(record, time=time.time() - 3600)
    old = by_id(evaluate(gather(unprivileged, Config(), observed=stale), Config()))
    assert old["ipsec.ike_rules"].status.name == "UNKNOWN"
    assert "60 minutes old" in old["ipsec.ike_rules"].summary


def test_unprivileged_serve_judges_users_and_pool_from_roots_last_check(demo):
    from obsdvpn_agent.checks import by_id, evaluate
    from obsdvpn_agent.config import Config
    from obsdvpn_agent.host.agentfiles import load_record
    from obsdvpn_agent.host.demo import DemoHost
    from obsdvpn_agent.probes import gather

    root = DemoHost(demo.state)

    class ServeHost(DemoHost):
        """serve as _obsdvpn: root's commands through its doas rules, files as itself."""

        def run(self, argv, timeout_s):
            return root.run(argv, timeout_s)

    unprivileged = ServeHost(demo.state, as_root=False)
    alone = by_id(evaluate(gather(unprivileged, Config()), Config()))
    assert alone["sessions.users"].status.name == "UNKNOWN"
    assert alone["sessions.pool"].status.name == "UNKNOWN"
    assert demo("check").returncode == 0
    record = load_record(f"{demo.state}.observed.json")
    assert "alice" not in json.dumps(record)            # names only as digests
    told = by_id(evaluate(gather(unprivileged, Config(), observed=record), Config()))
    assert told["sessions.users"].status.name == "OK", told["sessions.users"].summary
    assert told["sessions.pool"].status.name == "OK"
    # A user removed from npppd-users while connected, seen by root's next check:
    users = root.read_file("/etc/npppd/npppd-users")
    root.write_file("/etc/npppd/npppd-users", users.replace("alice:", "alyce:"), 0o600)
    assert demo("check").returncode == 1
    record = load_record(f"{demo.state}.observed.json")
    told = by_id(evaluate(gather(unprivileged, Config(), observed=record), Config()))
    assert told["sessions.users"].status.name == "WARNING"
    assert "alice" in told["sessions.users"].summary


def test_a_pool_outside_the_agents_network_is_reported_and_judged_as_npppd_has_it(demo):
    from obsdvpn_agent.host.demo import DemoHost
    host = DemoHost(demo.state)
    host.write_file("/etc/npppd/npppd.conf", host.read_file("/etc/npppd/npppd.conf").replace(
        "10.0.0.2-10.0.0.254", "172.16.9.2-172.16.9.254"), 0o600)
    c = checks(demo)
    assert c["sessions.pool"]["status"] == "WARNING", c["sessions.pool"]
    assert 'network = "172.16.9.0/24"' in c["sessions.pool"]["summary"]
    # pf's nat-to covers 10.0.0.0/24 only: the clients npppd really serves are not translated
    assert c["pf.path.nat_out"]["status"] == "CRITICAL", c["pf.path.nat_out"]


def test_a_no_op_repair_keeps_the_record_of_the_repair_that_acted(demo):
    """cron's repair every 5 minutes must not erase, from the metrics, the repair
    that fixed something (issue 13 item 13)."""
    assert demo("demo", "break", "pf-disabled").returncode == 0
    assert demo("repair").returncode == 1
    fixed = demo("metrics").stdout
    assert demo("repair").returncode == 0                # nothing to do
    again = demo("metrics").stdout
    assert "obsdvpn_repair_last_exit_code 0.0" in again
    assert "obsdvpn_repair_last_change_exit_code 1.0" in again

    def change_time(text):
        return next(ln for ln in text.splitlines()
                    if ln.startswith("obsdvpn_repair_last_change_timestamp_seconds "))
    assert change_time(again) == change_time(fixed)
