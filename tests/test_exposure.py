"""Exposure: who can reach `serve`, and what a hostile name or path can make it do.

- serve binds 127.0.0.1:8469 by default (the config default, and what a real
  process started without --listen asks for), else where --listen or the
  config file says;
- a non-loopback address is refused, in one line with exit 3, unless TLS or
  --allow-remote (nothing is bound to a non-loopback address by these tests);
- with a self-signed certificate (made by openssl) serve answers over HTTPS
  on loopback, and not in clear text; a client that never handshakes does
  not hold up others;
- user names and other free text from the host cannot inject HTML into the
  landing page, nor break the exposition format;
- any other path, method or a garbage request gets an error status and no
  traceback, and the server keeps serving.
"""

from __future__ import annotations

import contextlib
import html.parser
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ServeProcess, free_port, run_cli, sample_snapshot_document
from obsdvpn_agent.config import DEFAULT_LISTEN, Config, load
from obsdvpn_agent.server import is_loopback

NPPPCTL = ("/usr/sbin/npppctl", "-n", "session", "all")
IFCONFIG = ("/sbin/ifconfig", "pppx")
HOSTILE = ('<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "a\"b\\c'd&e")


@pytest.fixture
def hostile_snapshot(tmp_path) -> Path:
    """The sample host, where npppd reports users named like HTML and quotes."""
    doc = sample_snapshot_document()
    for c in doc["commands"]:
        if tuple(c["argv"]) == NPPPCTL:
            c["stdout"] = (c["stdout"].replace("Username                : alice",
                                               f"Username                : {HOSTILE[0]}")
                           .replace("Username                : bob",
                                    f"Username                : {HOSTILE[1]}"))
        if tuple(c["argv"]) == IFCONFIG:
            c["stdout"] = c["stdout"].replace("description: alice", f"description: {HOSTILE[2]}")
    d = tmp_path / "hostile"
    d.mkdir()
    (d / "snapshot.json").write_text(json.dumps(doc))
    return d


class Serve(ServeProcess):
    """A real `obsdvpn-agent serve` process on loopback, on the port it reports."""

    def __init__(self, *args: str, tls: ssl.SSLContext | None = None):
        super().__init__(*args)
        self.tls = tls
        self.check_stderr = True    # the fixture asserts there is no traceback in it

    def connection(self, timeout: float = 5) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection("localhost", self.port, timeout=timeout,
                                               context=self.tls)
        return super().connection(timeout)



@pytest.fixture
def serve(sample_snapshot):
    started: list[Serve] = []

    def start(*args: str, tls=None, snapshot=None, pre: tuple[str, ...] = ()) -> Serve:
        s = Serve("--snapshot", str(snapshot or sample_snapshot), *pre, "serve", *args, tls=tls)
        started.append(s)
        return s

    yield start
    for s in started:
        err = s.stop()
        assert not s.check_stderr or "Traceback" not in err, err


# ---------------------------------------------------------------------------
# Where serve listens


def test_default_listen_address_is_loopback(tmp_path, sample_snapshot):
    assert DEFAULT_LISTEN == "127.0.0.1:8469"
    assert Config().listen == DEFAULT_LISTEN
    conf = tmp_path / "agent.conf"
    conf.write_text("[vpn]\nnetwork = \"10.0.0.0/24\"\n")
    assert load(str(conf)).listen == DEFAULT_LISTEN       # a file without [serve] keeps it
    p = run_cli("--config", str(conf), "--snapshot", str(sample_snapshot), "config")
    assert 'listen = "127.0.0.1:8469"' in p.stdout.splitlines()
    assert "allow_remote = false" in p.stdout.splitlines()


def _listening(pid: int) -> set[tuple[str, int]]:
    proc = psutil.Process(pid)
    conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") \
        else proc.connections(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


# Replaces make_server() in a serve process by one that prints the address it is asked
# for and stops: the default port may be in use on a developer's machine (`make demo`),
# and which address serve asks for is the behaviour under test.
RECORD_LISTEN = """\
import sys
import obsdvpn_agent.server as server

def make_server(collector, listen, *args, **kwargs):
    print("listen:", listen)
    raise server.ListenError("not binding in this test")

server.make_server = make_server
from obsdvpn_agent.cli import main
main()
"""


def test_serve_without_listen_asks_for_127_0_0_1_8469(tmp_path, sample_snapshot):
    conf = tmp_path / "agent.conf"
    conf.write_text("[vpn]\nnetwork = \"10.0.0.0/24\"\n")       # no [serve] section
    p = subprocess.run([sys.executable, "-c", RECORD_LISTEN, "--config", str(conf),
                        "--snapshot", str(sample_snapshot), "serve"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert p.stdout == "listen: 127.0.0.1:8469\n", (p.stdout, p.stderr)
    assert p.returncode == 3 and "not binding in this test" in p.stderr


def test_serve_listens_where_the_config_file_says(tmp_path, serve):
    # 127.0.0.2 (loopback too) tells the file's address from the default one.  The
    # config file refuses port 0, so this one test takes a port that is free now.
    port = free_port("127.0.0.2")
    conf = tmp_path / "agent.conf"
    conf.write_text(f'[serve]\nlisten = "127.0.0.2:{port}"\n')
    s = serve(pre=("--config", str(conf)))
    assert s.wait_listening() == ("127.0.0.2", port)
    assert _listening(s.proc.pid) == {("127.0.0.2", port)}


@pytest.mark.parametrize("address", ["0.0.0.0", "[::]", "192.0.2.1", "vpn.example.org"])
def test_non_loopback_address_is_refused_without_tls(serve, address):
    s = serve("--listen", f"{address}:0")
    assert s.proc.wait(timeout=10) == 3
    err = s.stop().splitlines()
    assert len(err) == 1 and "refusing to serve on" in err[0] and "without TLS" in err[0], err
    assert err[0].startswith("obsdvpn-agent: ")


def test_non_loopback_address_in_the_config_file_is_refused_too(tmp_path, serve):
    conf = tmp_path / "agent.conf"
    conf.write_text('[serve]\nlisten = "0.0.0.0:0"\n')
    p = run_cli("--config", str(conf), "--snapshot", str(tmp_path), "serve")
    assert p.returncode == 3
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.1", False), ("10.0.0.1", False),
    ("localhost.example.org", False), ("", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_tls_cert_without_key_is_a_config_error(tmp_path, sample_snapshot):
    conf = tmp_path / "agent.conf"
    conf.write_text('[serve]\ntls_cert = "/nonexistent.pem"\n')
    p = run_cli("--config", str(conf), "--snapshot", str(sample_snapshot), "serve")
    assert p.returncode == 3 and p.stderr.count("\n") == 1
    assert "'serve.tls_cert' and 'serve.tls_key' go together" in p.stderr


# ---------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a self-signed certificate: apt-get install openssl")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_serves_https_on_loopback_with_a_self_signed_certificate(serve, certificate):
    cert, key = certificate
    tls = ssl.create_default_context(cafile=str(cert))
    s = serve("--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
              tls=tls)
    s.check_stderr = False      # see test_dropped_connections_leave_no_traceback
    s.wait_ready()
    port = s.port
    status, body = s.get("/metrics")
    assert status == 200 and "obsdvpn_check_status" in body
    # A client that connects and never handshakes does not hold up the others: the page
    # comes back within the client's 5 s timeout (how fast: bench.py, `tls_stalled_client`).
    stalled = socket.create_connection(("127.0.0.1", port))
    try:
        assert s.get("/")[0] == 200
    finally:
        stalled.close()
    # Clear text on the TLS port gets nothing readable back.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = raw.recv(65536)
        except (TimeoutError, ConnectionResetError):
            answer = b""
    assert b"obsdvpn_" not in answer
    assert s.get("/metrics")[0] == 200
    assert "https://" in s.stop()


def test_bad_certificate_is_one_line_exit_3(serve, tmp_path, certificate):
    cert, _ = certificate
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    s = serve("--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(junk))
    assert s.proc.wait(timeout=10) == 3
    err = s.stop().splitlines()
    assert len(err) == 1 and "TLS certificate" in err[0], err


# ---------------------------------------------------------------------------
# Hostile text, other paths


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)


def test_landing_page_escapes_user_names(serve, hostile_snapshot):
    s = serve("--listen", "127.0.0.1:0", snapshot=hostile_snapshot)
    s.wait_ready()
    status, page = s.get("/")
    assert status == 200
    parser = _Tags()
    parser.feed(page)
    # Only the page's own markup: nothing a user name brought in.
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
                           "b", "a", "table", "tr", "th", "td", "span"}, parser.tags
    assert parser.attrs <= {"charset", "href", "class", "http-equiv", "content", "id",
                            "title"}, parser.attrs
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page


def test_exposition_survives_user_names_with_quotes(serve, hostile_snapshot):
    s = serve("--listen", "127.0.0.1:0", snapshot=hostile_snapshot)
    s.wait_ready()
    _, body = s.get("/metrics")
    users = {sample.labels["user"] for family in text_string_to_metric_families(body)
             if family.name == "obsdvpn_ppp_session_info" for sample in family.samples}
    assert users == {HOSTILE[0], HOSTILE[1]}


# (`//metrics` is /metrics: http.server folds leading slashes since Python 3.11.4.)
OTHER_PATHS = ["/nope", "/metrics/", "/metrics.txt", "/index.html", "/x//metrics",
               "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/metrics%00", "/%ff%fe",
               "/" + "a" * 8000, "/etc/ipsec.conf", "/debug/pprof", "/.env"]


def test_other_paths_get_404_without_traceback(serve):
    s = serve("--listen", "127.0.0.1:0")
    s.wait_ready()
    port = s.port
    for path in OTHER_PATHS:
        status, body = s.get(path)
        assert status == 404, (path, status)
        assert "Traceback" not in body and "File \"" not in body
    for path in ("/?x=1", "/metrics?name[]=x"):
        assert s.get(path)[0] == 200
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE"):
        status, body = s.get("/metrics", method=method)
        assert 400 <= status < 600 and "Traceback" not in body, (method, status)
        assert "obsdvpn_" not in body
    assert s.get("/metrics", method="HEAD") == (200, "")  # issue 13 item 7: GET, no body
    for raw in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n",
                b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n",
                b"GET /metrics HTTP/9.9\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(raw)
            answer = b""
            try:
                while chunk := c.recv(65536):
                    answer += chunk
            except (TimeoutError, ConnectionResetError):
                pass
        assert b"Traceback" not in answer and b"obsdvpn_" not in answer, raw[:20]
        # (A bare `GET` is HTTP/0.9: the error page comes without a status line.)
        assert answer == b"" or answer.startswith(b"HTTP/") or b"Error response" in answer, \
            answer[:80]
    assert s.get("/metrics")[0] == 200                 # still serving
    assert "Traceback" not in s.stop()


@pytest.mark.parametrize("with_tls", [False, True], ids=["http", "https"])
def test_dropped_connections_leave_no_traceback(serve, certificate, with_tls):
    import struct

    cert, key = certificate
    tls = ssl.create_default_context(cafile=str(cert)) if with_tls else None
    extra = ("--tls-cert", str(cert), "--tls-key", str(key)) if with_tls else ()
    s = serve("--listen", "127.0.0.1:0", *extra, tls=tls)
    s.check_stderr = False
    s.wait_ready()
    port = s.port
    for request in (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 20, b"GET /met"):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(request)
        if with_tls:                               # clear text to TLS: wait for the refusal
            c.settimeout(5)
            with contextlib.suppress(OSError):
                while c.recv(65536):
                    pass
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()                                  # reset, answer unread
    if with_tls:                                   # connect, then leave without a handshake
        socket.create_connection(("127.0.0.1", port)).close()
    time.sleep(0.3)
    assert s.get("/metrics")[0] == 200
    err = s.stop()
    assert "Traceback" not in err, err
