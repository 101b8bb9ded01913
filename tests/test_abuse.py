"""Fault and abuse suite (issue 13): slow clients and descriptor exhaustion against a
real `serve` process, hostile snapshots and demo states through the CLI, and signals
during collections.  Behaviour only: no wall-clock performance assertion; each test
bounds its own waits so the file stays within its CI budget (~60 s)."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from conftest import ServeProcess, one_line_error, run_cli, sample_snapshot_document, set_at
from obsdvpn_agent.host.demo.events import fresh_state

# --- serve as a separate process -----------------------------------------------------

def _serve(args: list[str], nofile: int | None = None) -> ServeProcess:
    """serve, collecting every 0.3 s, once it answers a scrape."""
    serve = ServeProcess(*args, "serve", "--listen", "127.0.0.1:0", "--interval", "0.3",
                         nofile=nofile)
    try:
        serve.wait_ready()
    except BaseException:
        serve.stop(signal.SIGKILL)
        raise
    return serve


def _sample(text: str, prefix: str) -> str | None:
    return next((line.rsplit(" ", 1)[1] for line in text.splitlines()
                 if line.startswith(prefix)), None)


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def _stop(serve: ServeProcess) -> str:
    err = serve.stop()
    assert serve.proc.returncode == 0, err
    return err


class SlowClients:
    """Keeps `count` connections open that send one request line and then stall,
    reconnecting each one the server drops, as an attacker would."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.socks: list[socket.socket] = [self._open() for _ in range(count)]
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        return s

    def _keep(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select(self.socks, [], [], 0.2)
            for s in readable:
                try:
                    s.recv(4096)
                except OSError:
                    pass
                s.close()
                self.dropped += 1
                try:
                    self.socks[self.socks.index(s)] = self._open()
                except (OSError, ValueError):
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


def test_serve_with_128_descriptors_and_200_slow_clients_keeps_collecting(tmp_path):
    """Item 1: 128 descriptors (OpenBSD's daemon class), 200 stalled connections kept open:
    every scrape is answered, collections go on (a change shows up), the thread count stays
    bounded and /metrics never says UNKNOWN for lack of descriptors."""
    state = tmp_path / "demo.json"
    serve = _serve(["--demo-state", str(state)], nofile=128)
    proc = serve.proc
    slow = None
    try:
        slow = SlowClients(serve.port, 200)
        statuses = []
        for _ in range(10):
            status, body = serve.get()
            statuses.append(status)
            assert _sample(body, "obsdvpn_status ") in ("0.0", "1.0", "2.0"), body[:400]
            assert _sample(body, 'obsdvpn_collector_success{collector="collection"}') is None
        assert statuses == [200] * 10
        assert run_cli("--demo-state", str(state), "demo", "crash", "isakmpd").returncode == 0
        deadline = time.monotonic() + 20
        while True:
            status, body = serve.get()
            assert status == 200
            if _sample(body, 'obsdvpn_check_status{check="daemon.isakmpd.running"}') == "2.0":
                break
            assert time.monotonic() < deadline, "no collection saw isakmpd crash"
            time.sleep(0.2)
        assert _threads(proc.pid) <= 64 + 10
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        assert [line.split()[3] for line in limits.splitlines()
                if line.startswith("Max open files")] == ["128"]
    finally:
        if slow:
            slow.close()
        err = _stop(serve)
    assert "Too many open files" not in err and "Traceback" not in err


def test_sighup_storm_during_collections_never_breaks_serve(tmp_path):
    """SIGHUP (some of them mid-collection) with the config flipping between a good one and
    a broken one (timeout = nan): serve answers every scrape and keeps the last good config."""
    conf = tmp_path / "agent.conf"
    good = '[vpn]\nnetwork = "10.0.0.0/24"\n'
    conf.write_text(good)
    serve = _serve(["--config", str(conf), "--demo-state", str(tmp_path / "d.json")])
    proc = serve.proc
    try:
        for i in range(30):
            conf.write_text(good if i % 2 else "[commands]\ntimeout = nan\n")
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.05)
            if i % 5 == 0:
                assert serve.get()[0] == 200
        conf.write_text("[commands]\ntimeout = nan\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)   # a few collections with the broken file in place
        status, body = serve.get()
        assert status == 200 and _sample(body, "obsdvpn_status ") != "3.0"
        assert proc.poll() is None
    finally:
        err = _stop(serve)
    assert "configuration not reloaded" in err and "commands.timeout" in err
    assert "Traceback" not in err


# --- hostile snapshots ---------------------------------------------------------------

def _snapshot(tmp_path: Path, doc: object | None = None, text: str | None = None) -> str:
    d = tmp_path / "snap"
    d.mkdir(exist_ok=True)
    (d / "snapshot.json").write_text(text if text is not None else json.dumps(doc))
    return str(d)


def test_snapshot_nested_too_deep(tmp_path):
    path = _snapshot(tmp_path, text="[" * 100000 + "]" * 100000)
    one_line_error(run_cli("--snapshot", path, "check"), "snapshot.json", "nested too deep")


def test_snapshot_integer_of_5000_digits(tmp_path):
    doc = json.dumps(sample_snapshot_document())
    text = doc.replace('"returncode": 0', '"returncode": 1' + "0" * 5000, 1)
    one_line_error(run_cli("--snapshot", _snapshot(tmp_path, text=text), "check"), "snapshot.json",
              "4300 digits")


def test_snapshot_exit_status_out_of_range(tmp_path):
    doc = _with_command(sample_snapshot_document(), "/sbin/pfctl", "-si", returncode=10**4000)
    one_line_error(run_cli("--snapshot", _snapshot(tmp_path, doc), "check"), "commands[",
              "'returncode' must be an integer from -255 to 255")


def _with_command(doc: dict, argv0: str, *words: str, **fields: object) -> dict:
    for c in doc["commands"]:
        if c["argv"][0] == argv0 and all(w in c["argv"] for w in words):
            c.update(fields)
    return doc


def _check_json(path: str) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    p = run_cli("--snapshot", path, "check", "--json")
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p, {c["id"]: c for c in json.loads(p.stdout)["checks"]}


def test_rcctl_flags_cut_short_by_a_nul_are_not_judged(tmp_path):
    """`-K\\0...` is not the flags `-K`: UNKNOWN naming the command, never OK."""
    doc = _with_command(sample_snapshot_document(), "/usr/sbin/rcctl", "get", "isakmpd",
                        stdout="-K\0-v -D A=10\n")
    p, checks = _check_json(_snapshot(tmp_path, doc))
    flags = checks["daemon.isakmpd.flags"]
    assert flags["status"] == "UNKNOWN", flags
    assert "NUL byte" in flags["summary"] and "rcctl get isakmpd flags" in flags["summary"]
    assert "\0" not in p.stdout


def test_sysctl_value_with_a_nul_is_not_judged(tmp_path):
    doc = sample_snapshot_document()
    for c in doc["commands"]:
        if c["argv"][0] == "/sbin/sysctl":
            c["stdout"] = c["stdout"].replace("net.pipex.enable=1", "net.pipex.enable=1\0")
    _, checks = _check_json(_snapshot(tmp_path, doc))
    assert checks["sysctl.net.pipex.enable"]["status"] == "UNKNOWN"
    assert "NUL byte" in checks["sysctl.net.pipex.enable"]["summary"]


@pytest.mark.parametrize("mode", ["-1", "-0644", "177777", "10000", "0o644", "９"])
def test_snapshot_file_mode_outside_0_to_7777(tmp_path, mode):
    doc = sample_snapshot_document()
    doc["files"][0]["mode"] = mode          # /etc/ipsec.conf
    _, checks = _check_json(_snapshot(tmp_path, doc))
    c = checks["files.ipsec_conf"]
    assert c["status"] == "UNKNOWN" and "needs mode (octal) 0000 to 7777" in c["summary"], c


def test_snapshot_negative_uid(tmp_path):
    doc = sample_snapshot_document()
    doc["files"][0]["uid"] = -1
    _, checks = _check_json(_snapshot(tmp_path, doc))
    assert checks["files.ipsec_conf"]["status"] == "UNKNOWN"
    assert "uid" in checks["files.ipsec_conf"]["summary"]


def test_terminal_escapes_in_replayed_stderr_are_never_printed_raw(tmp_path):
    evil = "\x1b]0;owned\x07\x1b[2J\x1b[31mpfctl: /dev/pf: Permission denied\r\x9b1m\u202e"
    doc = _with_command(sample_snapshot_document(), "/sbin/pfctl", "-si", returncode=1,
                        stdout="", stderr=evil + "\n")
    doc["command_errors"] = [{"argv": ["/sbin/ipsecctl", "-sa"], "error": "timeout",
                              "message": "\x1b[2Jgone"}]
    doc["commands"] = [c for c in doc["commands"] if c["argv"] != ["/sbin/ipsecctl", "-sa"]]
    doc["host"]["hostname"] = "vpn\x1b[2J"
    path = _snapshot(tmp_path, doc)
    for args in (("check",), ("check", "--json"), ("sessions",), ("repair", "--dry-run")):
        p = run_cli("--snapshot", path, *args)
        out = p.stdout + p.stderr
        assert "Traceback" not in out and "internal error" not in out
        for raw in ("\x1b", "\x07", "\x9b", "\r", "\u202e"):
            assert raw not in out, (args, raw, out)
    p = run_cli("--snapshot", path, "check")
    assert "\\x1b[31mpfctl: /dev/pf: Permission denied" in p.stdout


# --- hostile demo states -------------------------------------------------------------

def _state(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    state = json.loads(json.dumps(fresh_state(time.time())))
    change(state)
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(state))
    return path


HOSTILE_STATES = [
    ("sysctl not an object", set_at("sysctl", "x"), "'sysctl' must be an object"),
    ("files a list", set_at("files", []), "'files' must be an object"),
    ("session not an object", set_at("sessions", [1]), "'sessions[0]' must be an object"),
    ("rate a string", lambda s: s["sessions"][0]["rate"].__setitem__(0, "x"),
     "'sessions[0].rate[0]' must be a number"),
    ("NUL in a sysctl value", set_at("sysctl", "net.pipex.enable", "1\0"),
     "'sysctl['net.pipex.enable']' holds a NUL byte"),
    ("NUL in daemon flags", set_at("procs", "isakmpd", "flags", "-K\0-v"),
     "'procs['isakmpd'].flags' holds a NUL byte"),
    ("negative mode", set_at("files", "/etc/ipsec.conf", "mode", -1),
     "'files['/etc/ipsec.conf'].mode' must be a file mode from 0 to 0o7777"),
    ("huge mode", set_at("files", "/etc/ipsec.conf", "mode", 2**40),
     "'files['/etc/ipsec.conf'].mode' must be a file mode from 0 to 0o7777"),
    ("float mode", set_at("files", "/etc/ipsec.conf", "mode", 384.5),
     "'files['/etc/ipsec.conf'].mode' must be an integer"),
    ("file without text", lambda s: s["files"]["/etc/pf.conf"].pop("text"),
     "'files['/etc/pf.conf'].text' is missing"),
    ("pf limits a string", set_at("pf", "limits", "states", "many"),
     "'pf.limits['states']' must be"),
    ("boolean as number", set_at("pf", "enabled", 1), "'pf.enabled' must be true or false"),
]


@pytest.mark.parametrize("change, words", [h[1:] for h in HOSTILE_STATES],
                         ids=[h[0] for h in HOSTILE_STATES])
def test_hostile_demo_state_is_one_line_naming_the_field(tmp_path, change, words):
    path = _state(tmp_path, change)
    before = path.read_bytes()
    one_line_error(run_cli("--demo-state", str(path), "check"), str(path), words)
    assert path.read_bytes() == before   # nothing rewritten


@pytest.mark.parametrize("text, words", [
    ("[" * 100000 + "]" * 100000, "nested too deep"),
    ('{"version": 1' + "0" * 5000 + "}", "4300 digits"),
    ('{"version": 1, "boot_time": NaN}', "missing"),
])
def test_demo_state_that_json_itself_chokes_on(tmp_path, text, words):
    path = tmp_path / "demo.json"
    path.write_text(text)
    one_line_error(run_cli("--demo-state", str(path), "check"), str(path), words)
    assert path.read_text() == text


def test_demo_state_with_nan_boot_time(tmp_path):
    path = _state(tmp_path, lambda s: None)
    path.write_text(path.read_text().replace('"boot_time":', '"boot_time": NaN, "x":', 1))
    one_line_error(run_cli("--demo-state", str(path), "check"), "'boot_time' must be a finite number")


def test_fresh_demo_state_passes_its_own_shape():
    from obsdvpn_agent.host.demo.state import _expected_shape, _shape_problem

    for n in (0, 3, 250):
        state = json.loads(json.dumps(fresh_state(time.time(), n_sessions=n)))
        assert _shape_problem(state, _expected_shape()) is None


def test_demo_state_after_every_event_passes_its_own_shape(tmp_path):
    """The check must never refuse a state the simulator itself wrote."""
    state = tmp_path / "demo.json"
    events = [["crash", "isakmpd"], ["reboot"], ["connect", "alice"], ["disconnect", "alice"]]
    events += [["break", line.split()[0]] for line in
               run_cli("demo", "break", "--list").stdout.splitlines() if line.strip()]
    for event in events:
        p = run_cli("--demo-state", str(state), "demo", *event)
        assert "corrupt demo state" not in p.stderr, (event, p.stderr)
    p = run_cli("--demo-state", str(state), "repair")
    assert "corrupt demo state" not in p.stderr, p.stderr
    p = run_cli("--demo-state", str(state), "check")
    assert p.returncode in (0, 1, 2) and "corrupt" not in p.stderr, p.stderr


def test_sigterm_stops_the_collection_under_way(tmp_path):
    """rcctl stop: serve goes, and so does the collection child it was waiting for
    (it runs root's commands through doas; it must not outlive serve)."""
    state = tmp_path / "state.json"
    assert run_cli("--demo-state", str(state), "demo", "reset").returncode == 0
    serve = ServeProcess("--demo-state", str(state), "serve", "--listen", "127.0.0.1:0",
                         "--interval", "0.5")
    try:
        serve.wait_listening()
        # The next collection's child blocks reading its state: a FIFO nobody writes.
        fifo = tmp_path / "hang"
        os.mkfifo(fifo)
        os.replace(fifo, state)
        deadline = time.monotonic() + 20
        children: list[psutil.Process] = []
        while not children:
            assert time.monotonic() < deadline, "no collection child started"
            children = [p for p in psutil.Process(serve.proc.pid).children(recursive=True)
                        if "collect" in p.cmdline()]
            time.sleep(0.1)
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=15) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        serve.stop(signal.SIGKILL)
