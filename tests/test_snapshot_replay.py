"""`--snapshot DIR check` on a snapshot made of real outputs, through the CLI."""

from __future__ import annotations

import json

from conftest import NPPPD_USERS_TEXT, run_cli


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


def test_check_json_on_real_outputs_reports_sessions_users_and_sas(sample_snapshot):
    p = run_cli("--snapshot", str(sample_snapshot), "check", "--json")
    report = json.loads(p.stdout)
    st = statuses(report)
    # sa-flows-no-sas: flows for 203.0.113.10 are loaded but there is no SA,
    # so both L2TP sessions run without IPsec: CRITICAL, exit 2.
    assert p.returncode == 2, p.stderr
    assert report["status"] == "CRITICAL"
    assert st["ipsec.sessions_sa"] == "CRITICAL"
    facts = report["facts"]
    assert [(s["user"], s["interface"], s["address"], s["peer"], s["peer_port"])
            for s in facts["sessions"]] == [
        ("alice", "pppx0", "10.0.0.2", "203.0.113.10", 1701),
        ("bob", "pppx1", "10.0.0.3", "198.51.100.7", 54321)]
    assert facts["sessions"][0]["bytes_in"] == 123456
    assert facts["ipsec"] == {"flows": 2, "sas": 0, "peers": []}
    assert facts["sysctl"] == {"net.inet.ip.forwarding": "1", "net.pipex.enable": "1"}
    assert facts["daemons"]["isakmpd"] == {"enabled": True, "flags": "-K", "running": True,
                                           "running_flags": "-K"}
    assert facts["interfaces"] == [{"name": "pppx0", "description": "alice",
                                    "local": "10.0.0.1", "peer": "10.0.0.2"}]
    # Everything else on that host is as it should be.
    for cid in ("sysctl.net.inet.ip.forwarding", "sysctl.net.pipex.enable",
                "daemon.isakmpd.enabled", "daemon.isakmpd.running", "daemon.isakmpd.flags",
                "daemon.npppd.enabled", "daemon.npppd.running", "ipsec.enabled", "pf.enabled",
                "pf.ruleset", "pf.path.ike", "pf.path.nat_t", "pf.path.esp", "pf.path.l2tp",
                "pf.path.ppp_in", "pf.path.nat_out", "pf.states", "ipsec.ike_rules", "ipsec.clients", "sessions.descriptions",
                "sessions.users", "files.ipsec_conf", "files.npppd_users"):
        assert st[cid] == "OK", (cid, report["checks"])


def test_check_text_first_line_is_plugin_format(sample_snapshot):
    p = run_cli("--snapshot", str(sample_snapshot), "check")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("OBSDVPN CRITICAL - ipsec.sessions_sa: 2 L2TP session(s) have "
                               "no established IPsec SA")
    # The one failing check is the summary line: no detail line repeats it.
    assert len(lines) == 1


def test_missing_command_in_snapshot_is_unknown_not_a_crash(sample_snapshot):
    path = sample_snapshot / "snapshot.json"
    doc = json.loads(path.read_text())
    doc["commands"] = [c for c in doc["commands"] if c["argv"][0] != "/sbin/ipsecctl"]
    path.write_text(json.dumps(doc))
    p = run_cli("--snapshot", str(sample_snapshot), "check", "--json")
    report = json.loads(p.stdout)
    st = statuses(report)
    assert st["ipsec.sessions_sa"] == "UNKNOWN"
    assert "Traceback" not in p.stderr
    assert "ipsecctl -sa` is not in" in next(c["summary"] for c in report["checks"]
                                              if c["id"] == "ipsec.sessions_sa")


def test_sessions_command_lists_who_is_connected(sample_snapshot):
    p = run_cli("--snapshot", str(sample_snapshot), "sessions")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["USER", "INTERFACE", "ADDRESS", "PEER", "SINCE", "DURATION",
                                "BYTES", "IN",
                                "BYTES", "OUT"]
    assert lines[1].split()[:4] == ["alice", "pppx0", "10.0.0.2", "203.0.113.10:1701"]
    assert lines[2].split()[-2:] == ["512", "0"]


def test_corrupt_snapshot_is_one_line_unknown(tmp_path):
    (tmp_path / "snapshot.json").write_text('{"format": "obsdvpn-agent-snapshot", "version": 1,'
                                            ' "host": {}, "commands": [{"argv": []}]}')
    p = run_cli("--snapshot", str(tmp_path), "check")
    assert p.returncode == 3
    assert p.stderr.strip().count("\n") == 0
    assert "commands[0]: 'argv' must be a non-empty list of strings" in p.stderr
    assert "Traceback" not in p.stderr


def test_snapshot_never_contains_npppd_passwords(sample_snapshot, tmp_path):
    # Re-record a snapshot from the replayed one: the recorder redacts npppd-users.
    out = tmp_path / "again"
    p = run_cli("--snapshot", str(sample_snapshot), "snapshot", str(out))
    assert p.returncode == 0, p.stderr
    text = (out / "snapshot.json").read_text()
    assert "alice-Secret-pw1" not in text and "bob-Secret-pw2" not in text
    assert "alice-Secret-pw1" in NPPPD_USERS_TEXT  # the test would see it if it leaked
    json.loads(text)
    replay = run_cli("--snapshot", str(out), "check", "--json")
    assert json.loads(replay.stdout)["checks"] == json.loads(
        run_cli("--snapshot", str(sample_snapshot), "check", "--json").stdout)["checks"]


def test_missing_privilege_names_the_doas_rule_to_add(sample_snapshot):
    import getpass

    path = sample_snapshot / "snapshot.json"
    doc = json.loads(path.read_text())
    for c in doc["commands"]:
        if c["argv"] == ["/sbin/pfctl", "-si"]:
            c.update(returncode=1, stdout="", stderr="pfctl: /dev/pf: Permission denied\n")
    path.write_text(json.dumps(doc))
    p = run_cli("--snapshot", str(sample_snapshot), "check", "--json")
    summary = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["pf.enabled"]
    assert summary["status"] == "UNKNOWN"
    assert "\n" not in summary["summary"]
    assert (f"add `permit nopass nolog {getpass.getuser()} as root cmd /sbin/pfctl args -si` to "
            "/etc/doas.conf and set `doas = true` under [commands]") in summary["summary"]


# Issue 13 item 5: getent() joins backslash-newlines before it reads fields, so a
# password name or value split over lines is still the password.
_SECRET = "Sekr1t-pw"


def _splits() -> list[str]:
    field = f"password={_SECRET}"
    return [f"alice:\\\n\t:{field[:k]}\\\n{field[k:]}:\\\n\t:framed-ip-address=10.0.0.2:\n"
            for k in range(1, len(field))] + [
        f"alice:\\\n\t:pass\\\nw\\\n\\\nord={_SECRET[:3]}\\\n{_SECRET[3:]}:\n",
        f"alice:\\\n\tPASSWORD={_SECRET}:\n",
        f"alice:\\\n\tpassword={_SECRET}:\n",            # an attribute line lost its `:`
        f"#alice:\\\n\t:passw\\\nord={_SECRET}:\n"]       # a commented-out record


def test_snapshot_redacts_passwords_split_by_continuation_lines(sample_snapshot, tmp_path):
    from conftest import sample_snapshot_document
    from obsdvpn_agent.parsers.npppd_users import parse_usernames

    for n, users in enumerate(_splits()):
        doc = sample_snapshot_document()
        for f in doc["files"]:
            if f["path"] == "/etc/npppd/npppd-users":
                f["content"] = users
        src = tmp_path / f"src{n}"
        src.mkdir()
        (src / "snapshot.json").write_text(json.dumps(doc))
        out = tmp_path / f"out{n}"
        p = run_cli("--snapshot", str(src), "snapshot", str(out))
        assert p.returncode == 0, p.stderr
        written = (out / "snapshot.json").read_text()
        assert _SECRET not in written and _SECRET[:4] not in written, users
        assert "Sekr" not in p.stdout + p.stderr
        redacted = next(f for f in json.loads(written)["files"]
                        if f["path"] == "/etc/npppd/npppd-users")["content"]
        assert "REDACTED" in redacted
        assert len(redacted.split("\n")) == len(users.split("\n"))  # line numbers stay true
        try:
            names = parse_usernames(users)
        except ValueError:
            continue
        assert parse_usernames(redacted) == names
