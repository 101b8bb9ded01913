"""Checks are pure: facts in, results out.  Facts come from the real-sample
snapshot (conftest), then one fact is changed per test."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import fixture, sample_snapshot_document, with_fact
from obsdvpn_agent.checks import Result, Status, check_ids, evaluate, worst
from obsdvpn_agent.config import Config, ExpectedSysctl
from obsdvpn_agent.host.base import FileInfo, Process
from obsdvpn_agent.host.snapshot import SnapshotHost
from obsdvpn_agent.parsers.ipsecctl import parse_sa
from obsdvpn_agent.parsers.rcctl import DaemonCheck, DaemonFlags
from obsdvpn_agent.parsers.sysctl import parse_conf, parse_get
from obsdvpn_agent.probes import PfConfigInvalid, ProbeFailure, gather
from obsdvpn_agent.report import summary_line

CFG = Config()
# The SA pair of the real FAQ sample, re-addressed to alice's and bob's peers
# so the sample host becomes healthy: same line layout, other addresses; the
# flows in the layout of derived-sa-l2tp-server-3clients-natt-rekey.txt.
SAS = """FLOWS:
flow esp in proto udp from 203.0.113.10 port l2tp to 192.0.2.1 peer 203.0.113.10 srcid 192.0.2.1/32 dstid 203.0.113.10/32 type use
flow esp out proto udp from 192.0.2.1 to 203.0.113.10 port l2tp peer 203.0.113.10 srcid 192.0.2.1/32 dstid 203.0.113.10/32 type require
flow esp in proto udp from 198.51.100.7 port l2tp to 192.0.2.1 peer 198.51.100.7 srcid 192.0.2.1/32 dstid 198.51.100.7/32 type use
flow esp out proto udp from 192.0.2.1 to 198.51.100.7 port l2tp peer 198.51.100.7 srcid 192.0.2.1/32 dstid 198.51.100.7/32 type require

SAD:
esp transport from 203.0.113.10 to 192.0.2.1 spi 0x0d16ad1c auth hmac-sha1 enc aes
esp transport from 192.0.2.1 to 203.0.113.10 spi 0xcd0549ba auth hmac-sha1 enc aes
esp transport from 198.51.100.7 to 192.0.2.1 spi 0x1d16ad1c auth hmac-sha1 enc aes
esp transport from 192.0.2.1 to 198.51.100.7 spi 0xdd0549ba auth hmac-sha1 enc aes
"""


@pytest.fixture
def facts(tmp_path):
    (tmp_path / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    f = gather(SnapshotHost(str(tmp_path)), CFG)
    return with_fact(f, "ipsec.sa", parse_sa(SAS))


def by_id(results: tuple[Result, ...]) -> dict[str, Result]:
    return {r.check: r for r in results}


def test_sample_host_with_sas_is_all_ok(facts):
    results = evaluate(facts, CFG)
    assert [r.check for r in results] == list(check_ids(CFG))
    assert {r.check: r.status for r in results if r.status is not Status.OK} == {}
    assert summary_line(results) == f"OBSDVPN OK - {len(results)} checks OK"


def test_worst_orders_unknown_below_warning_and_critical():
    assert worst([Status.OK, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.WARNING]) is Status.WARNING
    assert worst([Status.CRITICAL, Status.UNKNOWN, Status.WARNING]) is Status.CRITICAL
    assert worst([]) is Status.OK


def test_sysctl_running_but_not_persisted_is_warning(facts):
    facts = with_fact(facts, "sysctl.conf", parse_conf("net.inet.ip.forwarding=1\n"))
    r = by_id(evaluate(facts, CFG))["sysctl.net.pipex.enable"]
    assert r.status is Status.WARNING
    assert "next reboot" in r.summary and "net.pipex.enable=1" in r.summary


def test_sysctl_drifted_is_critical_and_names_the_fix(facts):
    facts = with_fact(facts, "sysctl.running", parse_get(
        "net.inet.ip.forwarding=0\nnet.pipex.enable=1\n"))
    r = by_id(evaluate(facts, CFG))["sysctl.net.inet.ip.forwarding"]
    assert r.status is Status.CRITICAL
    assert "`sysctl net.inet.ip.forwarding=1`" in r.summary


def test_optional_sysctl_drift_is_only_warning(facts):
    cfg = dataclasses.replace(CFG, sysctls=CFG.sysctls + (
        ExpectedSysctl("net.inet6.ip6.forwarding", "1", False),))
    facts = with_fact(facts, "sysctl.running", parse_get(
        "net.inet.ip.forwarding=1\nnet.pipex.enable=1\nnet.inet6.ip6.forwarding=0\n"))
    r = by_id(evaluate(facts, cfg))["sysctl.net.inet6.ip6.forwarding"]
    assert r.status is Status.WARNING


def test_unknown_sysctl_name_is_reported_not_zero(facts):
    cfg = dataclasses.replace(CFG, sysctls=CFG.sysctls + (
        ExpectedSysctl("net.inet.ip.nosuch", "1", True),))
    facts = with_fact(facts, "sysctl.running", parse_get(
        "net.inet.ip.forwarding=1\nnet.pipex.enable=1\n",
        "sysctl: third level name nosuch in net.inet.ip.nosuch is invalid\n"))
    r = by_id(evaluate(facts, cfg))["sysctl.net.inet.ip.nosuch"]
    assert r.status is Status.CRITICAL and "does not exist" in r.summary


def test_permission_denied_is_unknown_never_pf_disabled(facts):
    denied = ProbeFailure("/sbin/pfctl -si", "permission",
                          "`/sbin/pfctl -si`: permission denied: pfctl: /dev/pf: Permission denied")
    facts = with_fact(facts, "pf.info", denied)
    r = by_id(evaluate(facts, CFG))
    assert r["pf.enabled"].status is Status.UNKNOWN
    assert "Permission denied" in r["pf.enabled"].summary
    assert "disabled" not in r["pf.enabled"].summary
    assert r["pf.states"].status is Status.UNKNOWN


def test_rcctl_check_denied_falls_back_to_process_list(facts):
    denied = ProbeFailure("rcctl check isakmpd", "permission", "need root")
    checks = dict(facts.rcctl.check, isakmpd=denied)
    up = with_fact(facts, "rcctl.check", checks)
    assert by_id(evaluate(up, CFG))["daemon.isakmpd.running"].status is Status.OK
    down = with_fact(up, "rcctl.processes", (Process(4343, "npppd", ("/usr/sbin/npppd",)),))
    r = by_id(evaluate(down, CFG))
    assert r["daemon.isakmpd.running"].status is Status.CRITICAL
    assert "rcctl start isakmpd" in r["daemon.isakmpd.running"].summary
    nothing = with_fact(up, "rcctl.processes", ProbeFailure("ps", "error", "no ps"))
    assert by_id(evaluate(nothing, CFG))["daemon.isakmpd.running"].status is Status.UNKNOWN


def test_isakmpd_down_is_critical(facts):
    checks = dict(facts.rcctl.check, isakmpd=DaemonCheck("isakmpd", False))
    facts = with_fact(with_fact(facts, "rcctl.check", checks), "rcctl.processes", ())
    results = evaluate(facts, CFG)
    r = by_id(results)
    assert r["daemon.isakmpd.running"].status is Status.CRITICAL
    assert r["ipsec.ike_rules"].status is Status.CRITICAL
    assert summary_line(results).startswith(
        "OBSDVPN CRITICAL - daemon.isakmpd.running: isakmpd is not running")
    assert summary_line(results).endswith("(+1 critical)")


def test_isakmpd_flags_lost_in_rc_conf_is_warning(facts):
    flags = dict(facts.rcctl.flags, isakmpd=DaemonFlags("isakmpd", True, ""))
    r = by_id(evaluate(with_fact(facts, "rcctl.flags", flags), CFG))
    assert r["daemon.isakmpd.flags"].status is Status.WARNING
    assert "rcctl set isakmpd flags -K" in r["daemon.isakmpd.flags"].summary


def test_running_isakmpd_without_K_is_critical(facts):
    procs = (Process(4242, "isakmpd", ("/sbin/isakmpd",)),
             Process(4343, "npppd", ("/usr/sbin/npppd",)))
    r = by_id(evaluate(with_fact(facts, "rcctl.processes", procs), CFG))
    assert r["daemon.isakmpd.flags"].status is Status.CRITICAL


def test_ipsec_not_enabled_is_warning(facts):
    rc_on = tuple(s for s in facts.rcctl.on if s != "ipsec")
    r = by_id(evaluate(with_fact(facts, "rcctl.on", rc_on), CFG))
    assert r["ipsec.enabled"].status is Status.WARNING
    assert "rcctl enable ipsec" in r["ipsec.enabled"].summary


def test_pf_conf_that_does_not_load_is_named(facts):
    bad = PfConfigInvalid("/etc/pf.conf:12: syntax error")
    r = by_id(evaluate(with_fact(facts, "pf.config", bad), CFG))
    assert r["pf.ruleset"].status is Status.WARNING
    assert "/etc/pf.conf:12: syntax error" in r["pf.ruleset"].summary


def test_ipsec_conf_world_readable_is_critical(facts):
    files = dict(facts.files.stat)
    files["/etc/ipsec.conf"] = FileInfo("/etc/ipsec.conf", True, 0o644, 0, 0, "root", "wheel")
    r = by_id(evaluate(with_fact(facts, "files.stat", files), CFG))
    assert r["files.ipsec_conf"].status is Status.CRITICAL
    assert "chmod 600 /etc/ipsec.conf" in r["files.ipsec_conf"].summary


def test_npppd_users_group_readable_is_warning(facts):
    files = dict(facts.files.stat)
    files["/etc/npppd/npppd-users"] = FileInfo("/etc/npppd/npppd-users", True, 0o640, 0, 0,
                                               "root", "wheel")
    r = by_id(evaluate(with_fact(facts, "files.stat", files), CFG))
    assert r["files.npppd_users"].status is Status.WARNING


def test_session_user_not_in_npppd_users_is_warning(facts):
    r = by_id(evaluate(with_fact(facts, "files.npppd_users", ("alice",)), CFG))
    assert r["sessions.users"].status is Status.WARNING
    assert "bob" in r["sessions.users"].summary


def test_pppx_without_description_is_warning(facts):
    iface = dataclasses.replace(facts.ifconfig.pppx[0], description=None)
    r = by_id(evaluate(with_fact(facts, "ifconfig.pppx", (iface,)), CFG))
    assert r["sessions.descriptions"].status is Status.WARNING
    assert "net.pipex.enable=1" in r["sessions.descriptions"].summary


def test_state_table_near_limit(facts):
    info = dataclasses.replace(facts.pf.info, states_current=96000)
    r = by_id(evaluate(with_fact(facts, "pf.info", info), CFG))
    assert r["pf.states"].status is Status.CRITICAL
    info = dataclasses.replace(facts.pf.info, states_current=85000)
    r = by_id(evaluate(with_fact(facts, "pf.info", info), CFG))
    assert r["pf.states"].status is Status.WARNING


def test_no_sessions_no_sa_is_ok_and_honest_about_isakmpd(facts):
    facts = with_fact(with_fact(facts, "npppctl.sessions", ()), "ipsec.sa", parse_sa(
        "FLOWS:\nNo flows\n\nSAD:\nNo entries\n"))
    r = by_id(evaluate(facts, CFG))
    assert r["ipsec.sessions_sa"].status is Status.OK
    assert r["ipsec.ike_rules"].status is Status.OK
    # isakmpd was asked through its FIFO: what it holds is known, not guessed.
    assert "holds 1 passive connection" in r["ipsec.ike_rules"].summary


def test_npppd_users_unreadable_by_design_is_not_a_failure(tmp_path):
    from obsdvpn_agent.host.snapshot import SnapshotHost

    class Unprivileged(SnapshotHost):
        def read_file(self, path):
            if path == "/etc/npppd/npppd-users":
                raise PermissionError(path)
            return super().read_file(path)

    (tmp_path / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    facts = gather(Unprivileged(str(tmp_path)), CFG)
    assert next(r for r in facts.collectors if r.name == "files").success
    r = by_id(evaluate(facts, CFG))["sessions.users"]
    # It did not look, so it must not say OK (issue 13 item 14); still no collector failure.
    assert r.status is Status.UNKNOWN and "readable by root only" in r.summary


def test_flag_clusters_count(facts):
    procs = (Process(4242, "isakmpd", ("/sbin/isakmpd", "-vK")),
             Process(4343, "npppd", ("/usr/sbin/npppd",)))
    flags = dict(facts.rcctl.flags, isakmpd=DaemonFlags("isakmpd", True, "-vK"))
    r = by_id(evaluate(with_fact(with_fact(facts, "rcctl.processes", procs), "rcctl.flags", flags), CFG))
    assert r["daemon.isakmpd.flags"].status is Status.OK


@pytest.mark.parametrize("mode, uid, status", [
    (0o600, 0, Status.OK), (0o400, 0, Status.OK), (0o640, 0, Status.WARNING),
    (0o644, 0, Status.CRITICAL), (0o660, 0, Status.CRITICAL), (0o600, 1000, Status.CRITICAL)])
def test_ipsec_conf_modes_follow_ipsecctl(facts, mode, uid, status):
    files = dict(facts.files.stat)
    files["/etc/ipsec.conf"] = FileInfo("/etc/ipsec.conf", True, mode, uid, 0, "x", "wheel")
    assert by_id(evaluate(with_fact(facts, "files.stat", files), CFG))[
        "files.ipsec_conf"].status is status


def test_repair_tightens_and_gives_to_root_never_widens(facts):
    from obsdvpn_agent.repair import plan

    files = dict(facts.files.stat)
    files["/etc/ipsec.conf"] = FileInfo("/etc/ipsec.conf", True, 0o750, 1000, 0, "bob", "wheel")
    files["/etc/npppd/npppd-users"] = FileInfo("/etc/npppd/npppd-users", True, 0o440, 0, 0,
                                               "root", "wheel")
    facts = with_fact(facts, "files.stat", files)
    actions = plan(evaluate(facts, CFG)).actions
    shown = [a.shown for a in actions]
    assert shown == ["chmod 600 /etc/ipsec.conf", "chown root /etc/ipsec.conf",
                     "chmod 400 /etc/npppd/npppd-users"]
    for a in actions:
        if a.mode is not None:
            assert a.mode & ~files[a.path].mode == 0


def test_isakmpd_without_its_policy_is_critical_and_repair_loads_it(facts):
    from obsdvpn_agent.repair import plan

    facts = with_fact(facts, "isakmpd.passive", ())   # restarted without `ipsecctl -f`
    r = by_id(evaluate(facts, CFG))["ipsec.ike_rules"]
    assert r.status is Status.CRITICAL and "ipsecctl -f /etc/ipsec.conf" in r.summary
    shown = [a.shown for a in plan(evaluate(facts, CFG)).actions]
    assert shown == ["/sbin/ipsecctl -f /etc/ipsec.conf"]


def test_no_answer_from_isakmpd_is_unknown(facts):
    nothing = ProbeFailure("isakmpd FIFO", "timeout", "isakmpd wrote no answer")
    r = by_id(evaluate(with_fact(facts, "isakmpd.passive", nothing), CFG))["ipsec.ike_rules"]
    assert r.status is Status.UNKNOWN


@pytest.mark.parametrize("flags, status", [("-K", Status.OK), ("-vK", Status.OK),
                                           ("-vfK", Status.CRITICAL), ("-K -D A=10", Status.OK),
                                           ("-v -D A=10,B", Status.CRITICAL)])
def test_running_isakmpd_flags_are_read_with_its_getopt(facts, flags, status):
    procs = (Process(4242, "isakmpd", ("/sbin/isakmpd", *flags.split())),
             Process(4343, "npppd", ("/usr/sbin/npppd",)))
    r = by_id(evaluate(with_fact(facts, "rcctl.processes", procs), CFG))["daemon.isakmpd.flags"]
    assert r.status is status, r.summary


def test_configured_flags_without_K_and_odd_characters_still_plan(facts):
    from obsdvpn_agent.repair import plan

    flags = dict(facts.rcctl.flags, isakmpd=DaemonFlags("isakmpd", True, "-v -D A=10,B"))
    results = evaluate(with_fact(facts, "rcctl.flags", flags), CFG)
    assert by_id(results)["daemon.isakmpd.flags"].status is Status.WARNING
    p = plan(results)   # the allow-list refuses the commas: a note, not an internal error
    assert p.actions == () and any(n.startswith("daemon.isakmpd.flags: ") for n in p.notes)


def test_a_larval_sa_protects_no_session(facts):
    larval = parse_sa(SAS.replace(" auth hmac-sha1 enc aes\n", "\n", 1))
    r = by_id(evaluate(with_fact(facts, "ipsec.sa", larval), CFG))["ipsec.sessions_sa"]
    assert r.status is Status.CRITICAL and "203.0.113.10" in r.summary


def test_ike_rule_without_main_group_locks_out_every_common_client(facts):
    from obsdvpn_agent.parsers.ipsecctl import parse_ike_nvf

    default = parse_ike_nvf(fixture("ipsecctl/derived-nvf-l2tp-default.txt"))
    r = by_id(evaluate(with_fact(facts, "isakmpd.proposals", default), CFG))["ipsec.clients"]
    assert r.status is Status.CRITICAL and "MODP_3072" in r.summary
    assert "group modp2048" in r.summary


def test_check_from_cron_never_loads_the_log_patterns(tmp_path):
    """`check` reads no log: the syslog patterns and the log judgments stay unloaded
    (a tenth of a cold check), while `why` still finds them through checks."""
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from obsdvpn_agent.cli import main_group\n"
        f"args = ['--demo-state', {str(tmp_path / 'd.json')!r}, 'check', '--quiet']\n"
        "try:\n"
        "    main_group.main(args=args, standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.endswith(('syslog', 'attempts', "
        "'logcounts'))))\n"
        "from obsdvpn_agent.checks import why, Stitched\n"
        "print(why.__module__, Stitched.__name__)\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[-2] == "['obsdvpn_agent.host.demo.syslog']", out
    assert out[-1] == "obsdvpn_agent.checks.attempts Stitched"
