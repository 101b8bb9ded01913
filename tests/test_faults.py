"""Faults, each through the exporter or the CLI: one clear line, the right status, no crash.

Command faults run through the real LocalHost code (subprocess, timeout,
UTF-8 decoding with replacement): StandInHost skips LocalHost's "is this
OpenBSD?" check and moves every absolute path under a temporary root, where
/sbin/pfctl & co. are small /bin/sh scripts that print the real samples, or
hang, fail, print junk.  The facts then go through probes.gather,
checks.evaluate and the exporter (server.Collector + make_server on
127.0.0.1:0) and the tests look at what a scraper sees over HTTP.

Configuration, demo state and snapshot faults go through the installed CLI
in a separate process, as cron runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pytest

from conftest import one_line_error, run_cli, sample_snapshot_document, set_at
from obsdvpn_agent import cli as cli_module
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.local import LocalHost
from obsdvpn_agent.server import Collector, make_server

COLLECTORS = ("sysctl", "rcctl", "pf", "ipsec", "isakmpd", "ifconfig", "npppctl", "files",
              "logs")
TIMINGS: dict[str, float] = {}


# ---------------------------------------------------------------------------
# A LocalHost whose commands are stand-in scripts


class StandInHost(LocalHost):
    """LocalHost with every absolute path (commands and files) moved under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = f"stand-in:{root}"
        self._is_root = True
        self._doas_argvs = frozenset()

    def _at(self, path: str) -> str:
        return f"{self.root}{path}"

    def run(self, argv, timeout_s):
        argv = tuple(argv)
        return super().run((self._at(argv[0]), *argv[1:]), timeout_s)

    def read_file(self, path):
        return super().read_file(self._at(path))

    def stat_file(self, path):
        return dataclasses.replace(super().stat_file(self._at(path)), path=path)

    def write_file(self, path, text, mode):
        return super().write_file(self._at(path), text, mode)

    def query_isakmpd(self, tag, timeout_s):
        # isakmpd's FIFO stands in as the answer the sample snapshot recorded.
        return next(q["result"] for q in sample_snapshot_document()["isakmpd"]
                    if q["tag"] == tag)


def build_root(tmp: Path, doc: dict | None = None, scripts: dict | None = None,
               outputs: dict | None = None) -> Path:
    """A root whose commands answer what `doc` (a snapshot document) recorded.

    scripts: argv -> shell lines run instead (e.g. "exec sleep 30");
    outputs: argv -> bytes printed instead of the recorded stdout.
    """
    doc = doc or sample_snapshot_document()
    scripts, outputs = scripts or {}, outputs or {}
    root, data = tmp / "root", tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    cases: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i, c in enumerate(doc["commands"]):
        argv = tuple(c["argv"])
        out = outputs.get(argv, c["stdout"].encode())
        (data / f"{i}.out").write_bytes(out)
        (data / f"{i}.err").write_text(c["stderr"])
        body = scripts.get(argv) or (f'cat "{data}/{i}.out"; cat "{data}/{i}.err" >&2; '
                                     f'exit {c["returncode"]}')
        cases[argv[0]].append((" ".join(argv[1:]), body))
    for binary, entries in cases.items():
        path = root / binary.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["#!/bin/sh", 'case "$*" in']
        lines += [f'"{args}")\n    {body}\n    ;;' for args, body in entries]
        lines += ["esac", 'echo "stand-in: unexpected arguments: $*" >&2', "exit 99", ""]
        path.write_text("\n".join(lines))
        path.chmod(0o755)
    for f in doc["files"]:
        path = root / f["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.get("content", "# stand-in\n"))
        path.chmod(int(f["mode"], 8))
    return root


@contextlib.contextmanager
def exporter(host, cfg: Config, interval_s: float = 3600.0):
    """The exporter as `serve` runs it: a collector thread and an HTTP server on loopback."""
    collector = Collector(lambda: host, lambda: cfg, interval_s)
    server = make_server(collector, "127.0.0.1:0")
    loop = threading.Thread(target=collector.loop, daemon=True)
    loop.start()
    # A short poll interval: shutdown() waits for it (0.5 s by default).
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    try:
        yield server, collector
    finally:
        collector.stop()
        server.shutdown()
        server.server_close()
        loop.join(timeout=15)


def get(server, path: str = "/metrics", timeout: float = 15) -> tuple[int, str, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode("utf-8")       # a non-UTF-8 body fails here
    finally:
        conn.close()
    return r.status, body, time.monotonic() - start


def gauge(text: str, name: str) -> dict[str, float]:
    """label value -> sample value of a metric with one label."""
    return {m[1]: float(m[2]) for m in
            re.finditer(rf'^obsdvpn_{name}\{{\w+="([^"]*)"\}} (\S+)$', text, re.MULTILINE)}


def check_status(text: str) -> dict[str, float]:
    return gauge(text, "check_status")


def summary(page: str, check: str) -> str:
    """The landing page's summary cell of one check (HTML-escaped)."""
    m = re.search(rf"<td>{re.escape(check)}</td><td>\w+</td><td>(.*?)</td>", page, re.DOTALL)
    assert m, f"{check} not on the landing page"
    assert "\n" not in m.group(1), f"{check}: the reason is not one line"
    return m.group(1)


def only_failing(text: str, *failing: str) -> None:
    success = gauge(text, "collector_success")
    assert set(success) == set(COLLECTORS), success
    assert {c for c, v in success.items() if v == 0} == set(failing), success


def leftover_children() -> list[str]:
    return [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


PFCTL_SI = ("/sbin/pfctl", "-si")
PFCTL_SR = ("/sbin/pfctl", "-sr")
NPPPCTL = ("/usr/sbin/npppctl", "-n", "session", "all")
IFCONFIG = ("/sbin/ifconfig", "pppx")
IPSECCTL = ("/sbin/ipsecctl", "-sa")
FAST = Config(command_timeout_s=1.0)


def test_stand_in_host_answers_like_the_snapshot(tmp_path):
    """The harness: with nothing broken every collector succeeds, as on the snapshot."""
    host = StandInHost(build_root(tmp_path))
    with exporter(host, FAST) as (server, _):
        status, text, _ = get(server)
    assert status == 200
    only_failing(text)
    assert check_status(text)["pf.enabled"] == 0
    assert 'obsdvpn_ppp_session_receive_bytes_total{interface="pppx0",user="alice"} 123456.0' \
        in text


# ---------------------------------------------------------------------------
# Command faults, through the exporter


def test_hanging_command_times_out_and_the_scrape_still_answers(tmp_path):
    host = StandInHost(build_root(tmp_path, scripts={PFCTL_SI: "exec sleep 30"}))
    with exporter(host, FAST) as (server, _):
        status, text, took = get(server)
        _, page, _ = get(server, "/")
    TIMINGS["first scrape with pfctl -si hanging (timeout 1 s)"] = took
    # Answered at all: get() gives up after 15 s, half the hung command's 30 s.
    assert status == 200
    only_failing(text, "pf")
    assert check_status(text)["pf.enabled"] == 3
    assert "did not finish within 1 s" in summary(page, "pf.enabled")
    assert "obsdvpn_pf_enabled " not in text        # no made-up value
    assert not [c for c in leftover_children() if "sleep 30" in c], "the hung command lives on"


def test_scrapes_during_a_hanging_collection_are_answered_at_once(tmp_path):
    """While a collection is stuck on a command, scrapes get the previous one at once."""
    flag = tmp_path / "hang"
    data_si = next(i for i, c in enumerate(sample_snapshot_document()["commands"])
                   if tuple(c["argv"]) == PFCTL_SI)
    hang_or_answer = (f'[ -e "{flag}" ] && exec sleep 30; cat "{tmp_path}/data/{data_si}.out"; '
                      "exit 0")
    host = StandInHost(build_root(tmp_path, scripts={PFCTL_SI: hang_or_answer}))
    with exporter(host, FAST, interval_s=0.2) as (server, _collector):
        _, text, _ = get(server)
        only_failing(text)
        flag.touch()
        slowest, scrapes = 0.0, 0
        deadline = time.monotonic() + 10
        while gauge(text, "collector_success")["pf"] == 1:
            assert time.monotonic() < deadline, "no collection noticed the hang"
            status, text, took = get(server)    # meanwhile a collection waits on pfctl
            assert status == 200
            slowest, scrapes = max(slowest, took), scrapes + 1
            time.sleep(0.02)
        flag.unlink()
    TIMINGS["slowest scrape while a collection hangs"] = slowest
    assert scrapes >= 10, (scrapes, slowest)
    only_failing(text, "pf")


def test_missing_command(tmp_path):
    root = build_root(tmp_path)
    (root / "usr/sbin/npppctl").unlink()
    with exporter(StandInHost(root), FAST) as (server, _):
        _, text, _ = get(server)
        _, page, _ = get(server, "/")
    only_failing(text, "npppctl")
    assert check_status(text)["sessions.users"] == 3
    assert "npppctl: command not found" in summary(page, "sessions.users")
    assert "obsdvpn_ppp_sessions " not in text


def test_command_that_cannot_be_executed(tmp_path):
    root = build_root(tmp_path)
    (root / "sbin/ipsecctl").chmod(0o644)
    with exporter(StandInHost(root), FAST) as (server, _):
        _, text, _ = get(server)
        _, page, _ = get(server, "/")
    only_failing(text, "ipsec", "isakmpd")   # -sa and -nvf: the same broken binary
    assert check_status(text)["ipsec.sessions_sa"] == 3
    assert "permission denied" in summary(page, "ipsec.sessions_sa")
    assert check_status(text)["ipsec.clients"] == 3


def test_exit_non_zero_with_stderr(tmp_path):
    fail = 'echo "pfctl: DIOCGETRULES: Device busy" >&2; exit 1'
    with exporter(StandInHost(build_root(tmp_path, scripts={PFCTL_SR: fail})), FAST) \
            as (server, _):
        _, text, _ = get(server)
        _, page, _ = get(server, "/")
    only_failing(text, "pf")
    assert check_status(text)["pf.ruleset"] == 3
    assert summary(page, "pf.ruleset") == (
        "cannot read the loaded ruleset: `/sbin/pfctl -sr` exited 1: "
        "pfctl: DIOCGETRULES: Device busy")


def test_permission_denied_is_unknown_never_disabled(tmp_path):
    denied = 'echo "pfctl: /dev/pf: Permission denied" >&2; exit 1'
    with exporter(StandInHost(build_root(tmp_path, scripts={PFCTL_SI: denied})), FAST) \
            as (server, _):
        _, text, _ = get(server)
        _, page, _ = get(server, "/")
    only_failing(text, "pf")
    assert check_status(text)["pf.enabled"] == 3
    said = summary(page, "pf.enabled")
    assert "pfctl: /dev/pf: Permission denied" in said and "disabled" not in said
    assert "obsdvpn_pf_enabled " not in text


def test_permission_denied_through_the_cli(tmp_path):
    doc = sample_snapshot_document()
    for c in doc["commands"]:
        if tuple(c["argv"]) == PFCTL_SI:
            c.update(returncode=1, stdout="", stderr="pfctl: /dev/pf: Permission denied\n")
    (tmp_path / "snapshot.json").write_text(json.dumps(doc))
    p = run_cli("--snapshot", str(tmp_path), "check")
    lines = p.stdout.splitlines()
    assert p.returncode == 2, p.stderr      # the sample's missing SA stays the worst
    line = next(ln for ln in lines if ln.startswith("UNKNOWN pf.enabled: "))
    assert "pfctl: /dev/pf: Permission denied" in line and "disabled" not in line
    assert p.stderr == ""


def test_two_line_stderr_still_gives_a_one_line_reason(tmp_path):
    two_lines = ('echo "/etc/rc.d/npppd: cannot read /etc/npppd/npppd.conf" >&2; '
                 'echo "npppd: configuration error" >&2; exit 1')
    host = StandInHost(build_root(tmp_path, scripts={
        ("/usr/sbin/rcctl", "check", "npppd"): two_lines}))
    host.processes = _no_process_list      # so the check has only rcctl's answer to go by
    with exporter(host, FAST) as (server, _):
        _, page, _ = get(server, "/")
    assert "cannot read /etc/npppd/npppd.conf" in summary(page, "daemon.npppd.running")


def _no_process_list():
    raise OSError(1, "Operation not permitted")


CUT = [  # command, the collector that must fail, the check that becomes UNKNOWN
    (PFCTL_SI, "pf", "pf.enabled"),
    (NPPPCTL, "npppctl", "sessions.users"),
    (IFCONFIG, "ifconfig", "sessions.descriptions"),
    (IPSECCTL, "ipsec", "ipsec.sessions_sa"),
]


@pytest.mark.parametrize("argv, collector, check", CUT, ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else None)
def test_output_cut_in_the_middle(tmp_path, argv, collector, check):
    doc = sample_snapshot_document()
    text = next(c["stdout"] for c in doc["commands"] if tuple(c["argv"]) == argv)
    # Cut inside the first word of the middle line: a cut at a line end can look
    # like complete output, a cut inside a word cannot.
    start = text.rfind("\n", 0, len(text) // 2) + 1
    cut = text[:start + len(text[start:]) - len(text[start:].lstrip()) + 3]
    assert not cut.endswith("\n")
    host = StandInHost(build_root(tmp_path, outputs={argv: cut.encode()}))
    with exporter(host, FAST) as (server, _):
        _, text, _ = get(server)
        _, page, _ = get(server, "/")
    only_failing(text, collector)
    assert check_status(text)[check] == 3
    said = summary(page, check)
    assert "output" in said and "\n" not in said, said


def _many_interfaces(n: int) -> bytes:
    lines = []
    for i in range(n):
        lines += [f"pppx{i}: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST> mtu 1400",
                  f"\tdescription: user{i}", f"\tindex {i + 7} priority 0 llprio 3",
                  "\tgroups: pppx",
                  (f"\tinet 10.0.0.1 --> 10.{i // 65536}.{i // 256 % 256}.{i % 256} "
                  "netmask 0xffffffff")]
    return ("\n".join(lines) + "\n").encode()


def _many_sessions(n: int) -> bytes:
    entry = sample_snapshot_document()
    text = next(c["stdout"] for c in entry["commands"] if tuple(c["argv"]) == NPPPCTL)
    first = text.split("\n\n")[0]
    body = "\n".join(line for line in first.splitlines()[2:]
                     if "Username" not in line and "Concentrated" not in line)
    out = []
    for i in range(n):
        out.append(f"Ppp Id = {i}\n          Ppp Id                  : {i}\n"
                   f"          Username                : user{i}\n"
                   f"          Concentrated Interface  : pppx{i}\n{body}")
    return ("\n\n".join(out) + "\n").encode()


@pytest.mark.parametrize("argv, make, count, collector", [
    (IFCONFIG, _many_interfaces, 20_000, "ifconfig"),
    (NPPPCTL, _many_sessions, 5_556, "npppctl"),   # 18 lines a session
], ids=["ifconfig", "npppctl"])
def test_huge_output_is_survived(tmp_path, argv, make, count, collector):
    out = make(count)
    lines = out.count(b"\n")
    assert lines >= 100_000
    host = StandInHost(build_root(tmp_path, outputs={argv: out}))
    cfg = Config(command_timeout_s=20.0)
    with exporter(host, cfg) as (server, _):
        status, text, took = get(server, timeout=60)
        _, page, _ = get(server, "/")
    assert status == 200 and "</html>" in page
    success = gauge(text, "collector_success")
    assert set(success) == set(COLLECTORS)
    duration = gauge(text, "collector_duration_seconds")[collector]
    TIMINGS[f"{lines} lines of `{' '.join(argv)}`: collector"] = duration
    TIMINGS[f"{lines} lines of `{' '.join(argv)}`: first scrape (collect+render)"] = took
    # Parsed, or a one-line parse error; either way every other collector is fine.
    assert success[collector] == 1, "a huge but well-formed output should parse"
    only_failing(text)
    if collector == "npppctl":
        assert f"obsdvpn_ppp_sessions {count}.0" in text
    else:
        assert check_status(text)["sessions.descriptions"] == 0


def test_non_utf8_bytes_in_command_output(tmp_path):
    doc = sample_snapshot_document()
    sessions = next(c["stdout"] for c in doc["commands"] if tuple(c["argv"]) == NPPPCTL)
    junk_user = sessions.encode().replace(b": bob", b": b\xffo\xc3b", 1)
    si = next(c["stdout"] for c in doc["commands"] if tuple(c["argv"]) == PFCTL_SI)
    junk_si = si.encode().replace(b"37", b"3\xff7", 1)
    host = StandInHost(build_root(tmp_path, outputs={NPPPCTL: junk_user, PFCTL_SI: junk_si}))
    with exporter(host, FAST) as (server, _):
        status, text, _ = get(server)           # decodes as UTF-8 or fails
        _, page, _ = get(server, "/")
    assert status == 200
    # A user name is free text: kept with U+FFFD.  A number with a junk byte is refused.
    only_failing(text, "pf")
    assert 'user="b\ufffdo\ufffdb"' in text
    assert "b\ufffdo\ufffdb" in page
    assert "not pfctl output" in summary(page, "pf.enabled") or \
        "expected" in summary(page, "pf.enabled")


# ---------------------------------------------------------------------------
# CLI faults: configuration, demo state, snapshot


def files_under(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run the CLI's main() with HOME, XDG_STATE_HOME and the working directory in tmp/home.

    In this process by default (quick: the matrices below are large); with
    separate=True in a new process, as cron runs it.
    """
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    monkeypatch.chdir(home)

    def run(*args: str, separate: bool = False) -> subprocess.CompletedProcess:
        if separate:
            return run_cli(*args, env=env)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("OBSDVPN_AGENT_CONFIG", raising=False)
        monkeypatch.setattr(sys, "argv", ["obsdvpn-agent", *args])
        logger = logging.getLogger("obsdvpn-agent")
        handlers, level = logger.handlers[:], logger.level
        capsys.readouterr()
        try:
            with pytest.raises(SystemExit) as exit_:
                cli_module.main()
        finally:
            logger.handlers[:] = handlers
            logger.setLevel(level)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_.value.code, out, err)

    return run


BAD_CONFIGS = [
    ("wrong type", '[commands]\ntimeout = "5"\n', "'commands.timeout'"),
    ("wrong bool", '[serve]\nallow_remote = "yes"\n', "'serve.allow_remote'"),
    ("unknown key", '[serve]\nlisten_on = "127.0.0.1:9"\n', "'serve.listen_on'"),
    ("unknown table", "[bogus]\nx = 1\n", "'bogus'"),
    ("table is a value", "sysctl = 3\n", "'sysctl'"),
    ("sysctl value", '[sysctl.required]\n"net.pipex.enable" = 1.5\n', "net.pipex.enable"),
    ("bad network", '[vpn]\nnetwork = "10.0.0.0/33"\n', "'vpn.network'"),
    ("not TOML", "timeout = \n", "not valid TOML"),
    ("not UTF-8", b"[vpn]\nnetwork = \"\xff\"\n", "not UTF-8"),
    ("bad listen", '[serve]\nlisten = "nowhere"\n', "'serve.listen'"),
]


@pytest.mark.parametrize("text, key", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
@pytest.mark.parametrize("command", [("check",), ("serve", "--listen", "127.0.0.1:0"),
                                     ("config",)], ids=lambda c: c[0])
def test_bad_config_is_one_line_exit_3(tmp_path, cli, sample_snapshot, text, key, command):
    conf = tmp_path / "agent.conf"
    conf.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = files_under(tmp_path)
    p = cli("--config", str(conf), "--snapshot", str(sample_snapshot),
                     *command)
    one_line_error(p, str(conf), key)
    assert files_under(tmp_path) == before, "a failed run wrote something"


def test_missing_config_file_is_one_line(tmp_path, cli, sample_snapshot):
    p = cli("--config", str(tmp_path / "nope.conf"),
                     "--snapshot", str(sample_snapshot), "check")
    one_line_error(p, "nope.conf: no such file")


CORRUPT_STATES = [
    ("invalid JSON", b'{"version": 1, "hostname": '),
    ("not UTF-8", b'{"version": 1, "hostname": "\xff"}'),
    ("not an object", b"[1, 2, 3]\n"),
    ("missing keys", b'{"version": 1}\n'),
    ("empty", b""),
]


@pytest.mark.parametrize("content", [c[1] for c in CORRUPT_STATES],
                         ids=[c[0] for c in CORRUPT_STATES])
def test_corrupt_demo_state_is_unknown_and_left_alone(tmp_path, cli, content):
    state = tmp_path / "state.json"
    state.write_bytes(content)
    # (`metrics` prints the exposition, every check UNKNOWN, and exits 0: see below.)
    for command in (("check",), ("check", "--json"), ("sessions",)):
        p = cli("--demo-state", str(state), *command)
        assert p.returncode == 3, (command, p.stdout, p.stderr)
        assert "Traceback" not in p.stdout + p.stderr
        assert str(state) in p.stdout + p.stderr
        assert state.read_bytes() == content, "the corrupt state was overwritten"
        assert not [f for f in os.listdir(tmp_path) if f.startswith(".state.json.")], \
            "a temp file was left behind"


@pytest.mark.parametrize("command", ["check", "metrics"])
def test_corrupt_demo_state_is_one_line(tmp_path, cli, command):
    state = tmp_path / "state.json"
    state.write_bytes(CORRUPT_STATES[0][1])
    p = cli("--demo-state", str(state), command)
    one_line_error(p, str(state), "corrupt demo state")


def _without(argv):
    def change(doc):
        doc["commands"] = [c for c in doc["commands"] if tuple(c["argv"]) != argv]
    return change


# doc change, words of the one error line (stderr, exit 3)
MALFORMED = [
    ("format", set_at("format", "something-else"), "not an obsdvpn-agent snapshot"),
    ("version", set_at("version", 2), "snapshot version 2"),
    ("commands not a list", set_at("commands", {"a": 1}), "'commands' must be a list"),
    ("argv empty", set_at("commands", 0, "argv", []), "commands[0]: 'argv'"),
    ("returncode string", set_at("commands", 0, "returncode", "0"), "commands[0]: 'returncode'"),
    ("stdout number", set_at("commands", 0, "stdout", 5), "commands[0]: 'stdout'"),
    ("host missing", set_at("host", None), "'host' must be a dict"),
    ("file without path", set_at("files", 0, "path", 7), "files[0]"),
    ("process without pid", lambda d: d["processes"][0].pop("pid"), "processes[0]"),
]
MALFORMED_TYPES = [
    ("cmdline not a list", set_at("processes", 0, "cmdline", 5), "processes[0]",
     "snapshot.py:171 iterates processes[i].cmdline unchecked: TypeError"),
    ("command_errors not a list", set_at("command_errors", 5), "command_errors",
     "snapshot.py:158 enumerates command_errors unchecked: TypeError"),
    ("files not a list", set_at("files", 5), "'files'",
     "snapshot.py:166 enumerates files unchecked: TypeError"),
]


@pytest.mark.parametrize("change, words",
                         [m[1:] for m in MALFORMED] + [m[1:3] for m in MALFORMED_TYPES],
                         ids=[m[0] for m in MALFORMED + MALFORMED_TYPES])
def test_malformed_snapshot_is_one_line_exit_3(tmp_path, cli, change, words):
    doc = sample_snapshot_document()
    change(doc)
    (tmp_path / "snapshot.json").write_text(json.dumps(doc))
    before = files_under(tmp_path)
    p = cli("--snapshot", str(tmp_path), "check")
    one_line_error(p, "snapshot.json", words)
    after = files_under(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("home")} == before


@pytest.mark.parametrize("raw, words", [
    (b"", "not a JSON snapshot"),
    (json.dumps(sample_snapshot_document()).encode()[:500], "not a JSON snapshot"),
    (b"\xff\xfe{}", "not a JSON snapshot"),
    (b"[]", "not an obsdvpn-agent snapshot"),
], ids=["empty", "truncated", "not UTF-8", "a list"])
def test_unreadable_snapshot_file_is_one_line(tmp_path, cli, raw, words):
    (tmp_path / "snapshot.json").write_bytes(raw)
    one_line_error(cli("--snapshot", str(tmp_path), "check"), words)


@pytest.mark.parametrize("args, words", [
    (("--config", "{tmp}/bad.conf", "--snapshot", "{snap}", "serve", "--listen",
      "127.0.0.1:0"), "'commands.timeout'"),
    (("--snapshot", "{tmp}/broken", "check"), "'returncode' must be an integer"),
    (("--demo-state", "{tmp}/state.json", "sessions"), "corrupt demo state"),
], ids=["bad config, serve", "malformed snapshot", "corrupt demo state"])
def test_faults_in_a_separate_process(tmp_path, cli, sample_snapshot, args, words):
    (tmp_path / "bad.conf").write_text('[commands]\ntimeout = "5"\n')
    broken = sample_snapshot_document()
    broken["commands"][0]["returncode"] = "0"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken/snapshot.json").write_text(json.dumps(broken))
    (tmp_path / "state.json").write_text("{")
    args = [a.format(tmp=tmp_path, snap=sample_snapshot) for a in args]
    one_line_error(cli(*args, separate=True), words)


def test_missing_snapshot_is_one_line(tmp_path, cli):
    one_line_error(cli("--snapshot", str(tmp_path / "none"), "check"),
                   "no such file")


# doc change, check that becomes UNKNOWN, words of its summary
MISSING_ENTRIES = [
    ("no pfctl -si", _without(PFCTL_SI), "pf.enabled", "`/sbin/pfctl -si` is not in"),
    ("no npppctl", _without(NPPPCTL), "sessions.users", "is not in"),
    ("recorded timeout", lambda d: (_without(PFCTL_SI)(d), d.setdefault(
        "command_errors", []).append({"argv": list(PFCTL_SI), "error": "timeout",
                                      "message": "`/sbin/pfctl -si` did not finish within 5 s"})),
     "pf.enabled", "did not finish within 5 s"),
    ("file mode not octal", set_at("files", 0, "mode", "rw-------"), "files.ipsec_conf",
     "needs mode (octal)"),
    ("file entry missing", lambda d: d["files"].pop(0), "files.ipsec_conf", "not in"),
    ("npppd-users content missing", lambda d: d["files"][1].pop("content"),
     "sessions.users", "content is not in"),
]


@pytest.mark.parametrize("change, check, words", [m[1:] for m in MISSING_ENTRIES],
                         ids=[m[0] for m in MISSING_ENTRIES])
def test_snapshot_with_missing_entries_gives_unknown(tmp_path, cli, change, check, words):
    doc = sample_snapshot_document()
    change(doc)
    (tmp_path / "snapshot.json").write_text(json.dumps(doc))
    p = cli("--snapshot", str(tmp_path), "check", "--json")
    assert "Traceback" not in p.stderr and p.stderr == ""
    report = json.loads(p.stdout)
    found = next(c for c in report["checks"] if c["id"] == check)
    assert found["status"] == "UNKNOWN" and words in found["summary"], found
    assert "\n" not in found["summary"]
    assert p.returncode in (2, 3)


@pytest.mark.parametrize("command", ["check", "sessions", "metrics"])
def test_snapshot_with_a_lone_surrogate(tmp_path, cli, command):
    doc = sample_snapshot_document()
    for c in doc["commands"]:
        if tuple(c["argv"]) == NPPPCTL:
            c["stdout"] = c["stdout"].replace(": bob", ": b\ud800b")
    (tmp_path / "snapshot.json").write_text(json.dumps(doc))
    p = cli("--snapshot", str(tmp_path), command, separate=True)
    assert "internal error" not in p.stderr, p.stderr
    assert p.returncode in (0, 2, 3) and len(p.stderr.splitlines()) <= 1


def test_parser_bug_does_not_take_the_exporter_down(tmp_path, monkeypatch):
    """A parser that raises something other than ParseError (a bug) costs only
    its own fact: the pf collector fails, alone, not the whole collection."""
    from obsdvpn_agent.parsers import pfctl

    def broken(text):
        raise ValueError("a parser bug")

    monkeypatch.setattr(pfctl, "parse_info", broken)
    doc = sample_snapshot_document()
    si = next(c["stdout"] for c in doc["commands"] if tuple(c["argv"]) == PFCTL_SI)
    host = StandInHost(build_root(tmp_path, outputs={PFCTL_SI: si.encode()}))
    collector = Collector(lambda: host, lambda: FAST, 3600)
    snap = collector.collect_once()
    only_failing(snap.text.decode(), "pf")
    assert 'obsdvpn_check_status{check="pf.enabled"} 3.0' in snap.text.decode()


@pytest.fixture(scope="module", autouse=True)
def report_timings(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TIMINGS:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for what, seconds in TIMINGS.items():
                reporter.write_line(f"faults: {what}: {seconds:.3f} s")


def test_timed_out_command_that_cannot_be_killed_is_abandoned(tmp_path, monkeypatch):
    """Through doas the hung child runs as root and the agent may not signal
    it: the timeout must still come back at once, never wait for the child."""
    import subprocess

    from obsdvpn_agent.host.base import CommandTimeout

    pid_file = tmp_path / "child.pid"
    host = StandInHost(build_root(tmp_path, scripts={
        PFCTL_SI: f'echo $$ > "{pid_file}"; exec sleep 30'}))
    monkeypatch.setattr(subprocess.Popen, "kill",
                        lambda self: (_ for _ in ()).throw(PermissionError(1, "EPERM")))
    with pytest.raises(CommandTimeout):
        host.run(PFCTL_SI, 0.5)
    # The timeout came back while the child still runs: nothing waited for it to end.
    child = psutil.Process(int(pid_file.read_text()))
    try:
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    finally:
        child.kill()
