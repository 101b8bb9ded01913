"""Shared test helpers: the sample corpus, a snapshot built from real outputs,
and running the installed CLI as a separate process (as cron and rc.d do)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from obsdvpn_agent.parsers.ipsecctl import drop_psk_lines

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# bench/bench.py holds the load generator the load tests share with the benchmarks.
sys.path.insert(0, str(ROOT / "bench"))
# A copy of the project's OpenBSD sample corpus, same tree and SOURCES.md files,
# so that a plain clone of this repository tests with nothing beside it.
SAMPLES = FIXTURES / "openbsd-samples"


def sample(rel: str) -> str:
    return (SAMPLES / rel).read_text()


def sample_files(*patterns: str) -> list[Path]:
    """The samples under SAMPLES matching the glob patterns, sorted, for parametrize.

    Every pattern must match at least one file: a corpus folder that is empty or
    missing is a broken checkout, and it must fail collection loudly instead of
    parametrizing a test over nothing, which pytest reports as a quiet skip.
    """
    found: set[Path] = set()
    for pattern in patterns:
        matches = [p for p in SAMPLES.glob(pattern) if p.is_file()]
        if not matches:
            raise FileNotFoundError(f"no sample matches {pattern!r} under {SAMPLES}")
        found.update(matches)
    return sorted(found)


def sample_id(path: Path) -> str:
    """A sample's name relative to SAMPLES: the key of the tests' EXPECTED tables."""
    return path.relative_to(SAMPLES).as_posix()


def fixture(rel: str) -> str:
    return (FIXTURES / rel).read_text()


def run_cli(*args: str, env: dict | None = None, timeout: float = 60,
            input: str | bytes | None = None) -> subprocess.CompletedProcess:
    """Run `obsdvpn-agent ARGS` in a new process, as cron would.  Bytes on stdin go
    as they are (any byte); stdout and stderr come back as text either way."""
    full_env = dict(os.environ)
    full_env.pop("OBSDVPN_AGENT_CONFIG", None)
    if env:
        full_env.update(env)
    if isinstance(input, bytes):
        p = subprocess.run([sys.executable, "-m", "obsdvpn_agent", *args], check=False,
                           capture_output=True, timeout=timeout, env=full_env, input=input)
        return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(),
                                           p.stderr.decode())
    return subprocess.run([sys.executable, "-m", "obsdvpn_agent", *args], check=False,
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          input=input)


def one_line_error(p: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one error line of a refused command (exit 3, nothing on stdout), holding WORDS."""
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout and "internal error" not in p.stderr
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("obsdvpn-agent: ")
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def set_at(*keys_value):
    """A change for a JSON document: set doc[k1][k2]... = value (the last argument)."""
    *keys, value = keys_value

    def change(doc: dict) -> None:
        target = doc
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on loopback `host` that nothing listens on right now.

    Only where port 0 cannot be used: programs that do not say which port they
    bound (prometheus, node-exporter) and the agent's config file (which
    refuses port 0).  `serve --listen 127.0.0.1:0` reports the port it bound,
    see ServeProcess.  Another process may take the port before it is used, so
    a test fails (never hangs) if it is gone.
    """
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


# cli.py serve logs this once its socket listens, with the port the kernel chose.
SERVING = re.compile(r"serving .* on https?://(.+):([0-9]+)/metrics")


class ServeProcess:
    """`obsdvpn-agent ARGS` (a serve command) in a new process, and the port it bound.

    Give serve `--listen 127.0.0.1:0` (or a config with port 0) and read `port`:
    serve logs `serving ... on http://127.0.0.1:PORT/metrics` on stderr when its
    socket listens.  Threads drain stdout and stderr the whole time (a chatty
    `serve -v` would otherwise block on a full pipe) and keep them for the test.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None,
                 nofile: int | None = None) -> None:
        full_env = dict(os.environ)
        full_env.pop("OBSDVPN_AGENT_CONFIG", None)
        full_env.update(env or {})
        # nofile: RLIMIT_NOFILE, set by the new interpreter itself (preexec_fn is
        # unsafe with threads); serve's collection children inherit it.
        start = ["-m", "obsdvpn_agent"] if nofile is None else [
            "-c", "import resource, runpy, sys\n"
                  f"resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))\n"
                  "sys.argv[0] = 'obsdvpn-agent'\n"
                  "runpy.run_module('obsdvpn_agent', run_name='__main__', alter_sys=True)\n"]
        self.proc = subprocess.Popen([sys.executable, *start, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env)
        self._lines: list[str] = []
        self._out: list[str] = []
        self._address: tuple[str, int] | None = None
        self._reported = threading.Event()
        self._readers = (threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._drain_stdout, daemon=True))
        for reader in self._readers:
            reader.start()

    def _drain_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._out.extend(self.proc.stdout)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._lines.append(line)
            m = SERVING.search(line)
            if m and self._address is None:
                self._address = (m.group(1), int(m.group(2)))
                self._reported.set()
        self._reported.set()            # EOF: serve exited without (or after) listening

    @property
    def stderr(self) -> str:
        return "".join(self._lines)

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    def wait_listening(self, timeout: float = 20) -> tuple[str, int]:
        """The (host, port) serve reported; fails if it exits or stays silent first."""
        if not self._reported.wait(timeout):
            raise AssertionError(f"serve reported no port within {timeout} s:\n{self.stderr}")
        if self._address is None:
            self.proc.wait(timeout=10)
            raise AssertionError(f"serve exited {self.proc.returncode} without listening:\n"
                                 f"{self.stderr}")
        return self._address

    @property
    def port(self) -> int:
        return self.wait_listening()[1]

    def connection(self, timeout: float = 5) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str = "/metrics", method: str = "GET") -> tuple[int, str]:
        """One request on a new connection: (status, body)."""
        conn = self.connection()
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def wait_ready(self) -> None:
        # serve reports its port once the socket listens, after its first collection.
        self.wait_listening()
        assert self.get()[0] == 200

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> str:
        """Signal serve (if still running), wait for it, and return all of its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for reader in self._readers:
            reader.join(timeout)
        return self.stderr


# npppd-users in the layout of npppd-users(5) EXAMPLES; the passwords are the
# secrets that must never come out of the agent.
NPPPD_USERS_TEXT = """\
alice:\\
\t:password=alice-Secret-pw1:\\
\t:framed-ip-address=10.0.0.2:
bob:\\
\t:password=bob-Secret-pw2:
"""


def sample_snapshot_document() -> dict:
    """A snapshot whose command outputs are the corpus samples, verbatim.

    sysctl: derived/sysctl get-*; rcctl: derived ls-on/get/check; pfctl -si:
    derived si-enabled-7x; -sr/-nvf/-sm: tests/fixtures/pfctl (see its
    SOURCES.md); ipsecctl: derived sa-flows-no-sas (flows, no SA yet);
    ifconfig: derived pppx0-session; npppctl: derived session-all-2-sessions.
    """
    def cmd(argv, stdout, rc=0, stderr=""):
        return {"argv": argv, "returncode": rc, "stdout": stdout, "stderr": stderr}

    check_ok = sample("derived/rcctl/check-npppd-ok.txt")
    return {
        "format": "obsdvpn-agent-snapshot", "version": 1, "created": "2024-05-01T13:02:32Z",
        "agent_version": "test",
        "host": {"hostname": "vpn.example", "system": "OpenBSD", "release": "7.6",
                 "is_root": True},
        "commands": [
            cmd(["/sbin/sysctl", "net.inet.ip.forwarding", "net.pipex.enable"],
                sample("derived/sysctl/get-ip-forwarding.txt")
                + sample("derived/sysctl/get-pipex-enable.txt")),
            cmd(["/usr/sbin/rcctl", "ls", "on"], sample("derived/rcctl/ls-on-vpn-host-7x.txt")),
            cmd(["/usr/sbin/rcctl", "get", "isakmpd", "flags"],
                sample("derived/rcctl/get-isakmpd-flags.txt")),
            cmd(["/usr/sbin/rcctl", "check", "isakmpd"], check_ok.replace("npppd", "isakmpd")),
            cmd(["/usr/sbin/rcctl", "get", "npppd", "flags"], ""),
            cmd(["/usr/sbin/rcctl", "check", "npppd"], check_ok),
            cmd(["/sbin/pfctl", "-si"], sample("derived/pfctl/si-enabled-7x.txt")),
            cmd(["/sbin/pfctl", "-sr"], fixture("pfctl/vpn-l2tp-sr.txt")),
            cmd(["/sbin/pfctl", "-sm"], fixture("pfctl/sm-default.txt")),
            cmd(["/sbin/pfctl", "-nvf", "/etc/pf.conf"], fixture("pfctl/vpn-l2tp-nvf.txt")),
            # No anchor in that ruleset: `-a '*' -sr` prints the same lines as -sr.
            cmd(["/sbin/pfctl", "-a", "*", "-sr"], fixture("pfctl/vpn-l2tp-sr.txt")),
            cmd(["/sbin/pfctl", "-sI", "-v"],
                fixture("pfctl/path/healthy-default-deny.sI-v.txt")),
            cmd(["/sbin/ifconfig", "egress"], fixture("ifconfig/derived-egress-vio0.txt")),
            cmd(["/sbin/ipsecctl", "-sa"], sample("derived/ipsecctl/sa-flows-no-sas.txt")),
            cmd(["/sbin/ifconfig", "pppx"], sample("derived/ifconfig/pppx0-session.txt")),
            cmd(["/usr/sbin/npppctl", "-n", "session", "all"],
                sample("derived/npppctl/session-all-2-sessions-pppx.txt")),
            # root's check reads ipsec.conf's ike rules; the snapshot keeps no PSK line
            cmd(["/sbin/ipsecctl", "-nvf", "/etc/ipsec.conf"],
                drop_psk_lines(fixture("ipsecctl/derived-nvf-l2tp-modp2048-vv.txt"))),
        ],
        "files": [
            {"path": "/etc/ipsec.conf", "exists": True, "mode": "0600", "uid": 0, "gid": 0,
             "owner": "root", "group": "wheel", "size": 212},
            {"path": "/etc/npppd/npppd-users", "exists": True, "mode": "0600", "uid": 0,
             "gid": 0, "owner": "root", "group": "wheel", "size": 90,
             "content": NPPPD_USERS_TEXT},
            {"path": "/etc/npppd/npppd.conf", "exists": True, "mode": "0600", "uid": 0,
             "gid": 0, "owner": "root", "group": "wheel", "size": 857,
             "content": fixture("npppd-conf/sample-npppd.conf")},
            {"path": "/etc/pf.conf", "exists": True, "mode": "0600", "uid": 0, "gid": 0,
             "owner": "root", "group": "wheel", "size": 700},
            {"path": "/etc/sysctl.conf", "exists": True, "mode": "0644", "uid": 0, "gid": 0,
             "owner": "root", "group": "wheel", "size": 48,
             "content": "net.inet.ip.forwarding=1\nnet.pipex.enable=1\t# npppd\n"},
        ],
        "processes": [
            {"pid": 4242, "name": "isakmpd", "cmdline": ["/sbin/isakmpd", "-K"]},
            {"pid": 4343, "name": "npppd", "cmdline": ["/usr/sbin/npppd"]},
        ],
        "isakmpd": [{"tag": "[Phase 2]:Passive-Connections",
                     "result": "from-203.0.113.1=17-to-0.0.0.0/0=17:1701\n"}],
    }


@pytest.fixture
def sample_snapshot(tmp_path: Path) -> Path:
    d = tmp_path / "snap"
    d.mkdir()
    (d / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    return d


def with_fact(facts, where: str, value):
    """facts with one fact replaced: where is "collector.field", e.g. "pf.info"."""
    import dataclasses

    group, name = where.split(".")
    return dataclasses.replace(facts, **{group: dataclasses.replace(getattr(facts, group),
                                                                    **{name: value})})
