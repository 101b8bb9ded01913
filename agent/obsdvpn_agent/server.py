"""`obsdvpn-agent serve`: the resident exporter.

A background thread collects every `interval` seconds and renders the
exposition once; scrapes only copy those bytes (rendering costs ~15 ms per
1000 series, far more than a scrape may take).  Concurrent scrapes therefore
share one collection and the host's commands run once per interval, whatever
the number of scrapers.  Check state changes are logged once each.
"""

from __future__ import annotations

import gzip
import html
import ipaddress
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from . import __version__
from .checks import Result, Status, evaluate, worst
from .probes import Facts, failed, gather

log = logging.getLogger("obsdvpn-agent")

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(frozen=True)
class Snapshot:
    """One collection, rendered: what every scrape until the next one serves."""

    facts: Facts
    results: tuple[Result, ...]
    text: bytes
    text_gz: bytes
    openmetrics: bytes
    openmetrics_gz: bytes
    landing: bytes


class Collector:
    """Runs collections and keeps the latest rendered one."""

    def __init__(self, open_host: Callable, load_config: Callable, interval_s: float,
                 repair_state: Callable[[], dict | None] = lambda: None) -> None:
        self._open_host = open_host
        self._load_config = load_config
        self.cfg = load_config()
        self.interval_s = interval_s
        self._repair_state = repair_state
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._latest: Snapshot | None = None
        self._previous: dict[str, Status] = {}
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.collections = 0

    def reload(self) -> None:
        self._reload.set()

    def stop(self) -> None:
        self._stop.set()

    def latest(self, wait_s: float) -> Snapshot | None:
        with self._ready:
            if self._latest is None:
                self._ready.wait(wait_s)
            return self._latest

    def collect_once(self) -> Snapshot:
        from .metrics import render

        if self._reload.is_set():
            self._reload.clear()
            try:
                self.cfg = self._load_config()
                log.info("configuration reloaded from %s", self.cfg.source)
            except Exception as e:  # keep serving with the old config
                log.error("configuration not reloaded: %s", e)
        cfg = self.cfg
        facts = gather(self._open_host(), cfg)
        results = evaluate(facts, cfg)
        self._log_changes(results)
        repair = self._repair_state()
        text = render(facts, results, cfg, repair)
        om = render(facts, results, cfg, repair, openmetrics=True)
        snap = Snapshot(facts, results, text, gzip.compress(text, 5), om, gzip.compress(om, 5),
                        landing_page(facts, results).encode())
        with self._ready:
            self._latest = snap
            self.collections += 1
            self._ready.notify_all()
        return snap

    def _log_changes(self, results: tuple[Result, ...]) -> None:
        for r in results:
            before = self._previous.get(r.check)
            if before is not None and before is not r.status:
                level = logging.INFO if r.status is Status.OK else logging.WARNING
                log.log(level, "%s: %s -> %s: %s", r.check, before.name, r.status.name,
                        r.summary)
            elif before is None and r.status is not Status.OK:
                log.warning("%s: %s: %s", r.check, r.status.name, r.summary)
        self._previous = {r.check: r.status for r in results}

    def loop(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.collect_once()
            except Exception as e:  # a collection must never kill the exporter
                log.error("collection failed: %s", e)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - start)))


def landing_page(facts: Facts, results: tuple[Result, ...]) -> str:
    e = html.escape
    status = worst(r.status for r in results)
    rows = "\n".join(
        f"<tr class='{e(r.status.name.lower())}'><td>{e(r.check)}</td>"
        f"<td>{e(r.status.name)}</td><td>{e(r.summary)}</td></tr>" for r in results)
    if failed(facts.sessions):
        sessions = f"<p>Sessions unknown: {e(str(facts.sessions))}</p>"
    else:
        srows = "\n".join(
            f"<tr><td>{e(s.username)}</td><td>{e(s.interface)}</td><td>{e(s.assigned_ipv4)}"
            f"</td><td>{e(s.peer_host)}</td><td>{e(s.start_time)}</td><td>{s.bytes_in}</td>"
            f"<td>{s.bytes_out}</td></tr>" for s in facts.sessions)
        sessions = ("<table><tr><th>User</th><th>Interface</th><th>Address</th><th>Peer</th>"
                    "<th>Since</th><th>Bytes in</th><th>Bytes out</th></tr>\n"
                    f"{srows}</table>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>obsdvpn-agent</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:left}}
.critical{{background:#fbb}} .warning{{background:#fe9}} .unknown{{background:#ddd}}</style>
</head><body>
<h1>obsdvpn-agent {e(__version__)}</h1>
<p>Status: <b>{e(status.name)}</b> &middot; <a href="/metrics">Metrics</a></p>
<h2>Checks</h2>
<table><tr><th>Check</th><th>Status</th><th>Summary</th></tr>
{rows}
</table>
<h2>Sessions ({0 if failed(facts.sessions) else len(facts.sessions)})</h2>
{sessions}
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"obsdvpn-agent/{__version__}"
    sys_version = ""
    timeout = 10  # an idle or slow client loses its connection, never a thread forever

    collector: Collector  # set on the subclass made by make_server
    first_wait_s: float = 10.0

    def setup(self) -> None:
        super().setup()
        # Keep-alive plus Nagle plus delayed ACK stalls each response ~40 ms.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - base class name
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path not in ("/", "/metrics"):
            self._send(404, "text/plain; charset=utf-8", b"404 not found: try /metrics\n")
            return
        snap = self.collector.latest(self.first_wait_s)
        if snap is None:
            self._send(503, "text/plain; charset=utf-8", b"first collection not finished yet\n")
            return
        if path == "/":
            self._send(200, "text/html; charset=utf-8", snap.landing)
            return
        om = "application/openmetrics-text" in self.headers.get("Accept", "")
        gz = "gzip" in self.headers.get("Accept-Encoding", "")
        body = (snap.openmetrics_gz if gz else snap.openmetrics) if om else (
            snap.text_gz if gz else snap.text)
        self._send(200, OPENMETRICS_TYPE if om else TEXT_TYPE, body, gzipped=gz)

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(405, "text/plain; charset=utf-8", b"")

    def _send(self, code: int, ctype: str, body: bytes, gzipped: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)


class ListenError(Exception):
    pass


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ListenError(f"--listen {listen}: expected ADDRESS:PORT")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(collector: Collector, listen: str, tls_cert: str = "", tls_key: str = "",
                allow_remote: bool = False) -> ThreadingHTTPServer:
    host, port = parse_listen(listen)
    if not is_loopback(host) and not tls_cert and not allow_remote:
        raise ListenError(f"refusing to serve on {host} without TLS: who is connected to the VPN "
                          "is private; set tls_cert and tls_key, or pass --allow-remote")
    handler = type("BoundHandler", (Handler,), {"collector": collector})
    _Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = _Server((host, port), handler)
    except OSError as e:
        raise ListenError(f"cannot listen on {listen}: {e.strerror}")
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as e:
            server.server_close()
            raise ListenError(f"TLS certificate {tls_cert} / key {tls_key}: {e}")
        # The handshake happens in the request thread, so a slow TLS client never
        # holds up accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    return server
