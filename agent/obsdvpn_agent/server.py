"""`obsdvpn-agent serve`: the resident exporter.

A background thread collects every `interval` seconds and renders the
exposition once; scrapes only copy those bytes (rendering costs ~15 ms per
1000 series, far more than a scrape may take).  Concurrent scrapes therefore
share one collection and the host's commands run once per interval, whatever
the number of scrapers.  Check state changes are logged once each.
"""

from __future__ import annotations

import errno
import gzip
import html
import ipaddress
import json
import logging
import resource
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from . import __version__
from .checks import Result, Status, worst
from .config import Config

if TYPE_CHECKING:
    from .host.base import Host
    from .probes import Facts
    from .repair import Pause

log = logging.getLogger("obsdvpn-agent")

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class CollectionError(Exception):
    pass


@dataclass(frozen=True)
class Collection:
    """One collection, judged and rendered: all a scrape needs of it.

    It also carries what to serve should the next collection fail (every
    collector failed), rendered by the same metrics code, so the exporter
    itself never imports prometheus_client.
    """

    results: tuple[Result, ...]
    text: bytes
    openmetrics: bytes
    landing: bytes
    failed_text: bytes = b""
    failed_openmetrics: bytes = b""
    collected_at: float = 0.0

    @classmethod
    def decode(cls, data: bytes) -> Collection:
        """The collection encode_collection() wrote; ValueError when `data` is not one."""
        at = data.find(b"\n") + 1
        if not at:
            raise ValueError("no line of results and sizes")
        head = json.loads(data[:at])
        sizes = head["sizes"]
        if (len(sizes) != len(_PAGES) or not all(isinstance(n, int) and n >= 0 for n in sizes)
                or sum(sizes) != len(data) - at):
            raise ValueError(f"page sizes {sizes} do not add up to the "
                             f"{len(data) - at} bytes sent")
        # Each page copied once out of what the child sent, nothing else.
        view, pages = memoryview(data), []
        for n in sizes:
            pages.append(bytes(view[at:at + n]))
            at += n
        text, openmetrics, landing, failed_text, failed_openmetrics = pages
        return cls(tuple(Result(c, Status(s), summary) for c, s, summary in head["results"]),
                   text, openmetrics, landing, failed_text, failed_openmetrics,
                   float(head["collected_at"]))


# The pages of a collection, in the order encode_collection() writes them.
_PAGES = ("text", "openmetrics", "landing", "failed_text", "failed_openmetrics")


def encode_collection(results: tuple[Result, ...], collected_at: float,
                      pages: Mapping[str, list[bytes]]) -> list[bytes]:
    """A collection as serve's child hands it over: a JSON line of the results
    and of the pages' sizes, then the pages' bytes as they are, piece by piece
    (megabytes at 10,000 sessions: never escaped into JSON, joined or copied)."""
    head = {"results": [[r.check, int(r.status), r.summary] for r in results],
            "collected_at": collected_at,
            "sizes": [sum(len(piece) for piece in pages[name]) for name in _PAGES]}
    return [json.dumps(head).encode() + b"\n", *(p for name in _PAGES for p in pages[name])]


def collect_encoded(host: Host, cfg: Config, repair_record: Mapping[str, Any] | None,
                    pause: Pause | None = None, observed: Mapping[str, Any] | None = None,
                    log_state: str | None = None) -> list[bytes]:
    """Gather, judge and render in this process: the collection, encoded."""
    from .checks import evaluate
    from .metrics import render_pieces
    from .probes import CollectorRun, ProbeFailure, gather, unknown_facts

    facts = gather(host, cfg, observed=observed, log_state=log_state)
    results = evaluate(facts, cfg)
    # What to serve should the next collection fail: nothing known since this one.
    lost = ProbeFailure("collection", "error", "collection failed")
    nothing = unknown_facts(cfg, lost, facts.collected_at,
                            (CollectorRun("collection", False, 0.0, (lost,)),))
    text, openmetrics = render_pieces(facts, results, cfg, repair_record, pause)
    failed_text, failed_openmetrics = render_pieces(nothing, evaluate(nothing, cfg), cfg)
    return encode_collection(results, facts.collected_at, {
        "text": text, "openmetrics": openmetrics,
        "landing": [landing_page(facts, results).encode()],
        "failed_text": failed_text, "failed_openmetrics": failed_openmetrics})


def collect_in_process(host: Host, cfg: Config, repair_record: Mapping[str, Any] | None,
                       pause: Pause | None = None,
                       observed: Mapping[str, Any] | None = None,
                       log_state: str | None = None) -> Collection:
    """Gather, judge and render in this process (serve's child encodes; this decodes
    at once, so both take the one path)."""
    return Collection.decode(b"".join(collect_encoded(host, cfg, repair_record, pause,
                                                      observed, log_state)))


def child_config(cfg: Config) -> bytes:
    """What `collect --config-stdin` reads: the effective configuration as JSON."""
    from .config import to_dict

    return json.dumps({"source": cfg.source, "config": to_dict(cfg)}).encode()


def collect_in_child(global_args: list[str]) -> Callable[[Config], Collection]:
    """Collect in a short-lived child process, handing it the effective config.

    The exporter itself then never holds parsed facts, the simulator or
    prometheus_client: it stays small (RSS measured in bench/), and a parser
    bug or a leak dies with the child.  The configuration goes as JSON: the
    one the parent validated (reloads included), not the file again.
    """
    from .host.child import ChildFailed, run_child

    def collect(cfg: Config) -> Collection:
        argv = [sys.executable, "-m", "obsdvpn_agent", *global_args, "collect", "--config-stdin"]
        # Every collector runs its commands one after another, each with a timeout.
        limit = 6 * cfg.command_timeout_s + 10
        try:
            out = run_child(argv, child_config(cfg), limit)
        except ChildFailed as e:
            raise CollectionError(str(e)) from None
        try:
            return Collection.decode(out)
        except (ValueError, KeyError, TypeError) as e:
            raise CollectionError(f"collector output not understood: {e}") from None

    return collect


def failed_collection(reason: str, template: Collection | None) -> Collection:
    """What a scrape gets while collections fail: every check UNKNOWN, the
    collectors failed, and on the page why."""
    e = html.escape
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>obsdvpn-agent</title>"
            f"</head><body><h1>obsdvpn-agent {e(__version__)}</h1><p>Status: <b>UNKNOWN</b>: "
            f"the last collection failed: {e(reason)}</p><p><a href=\"/metrics\">Metrics</a>"
            "</p></body></html>\n")
    if template is None:
        return Collection((), b"", b"", page.encode())
    return Collection((), template.failed_text, template.failed_openmetrics, page.encode())


@dataclass(frozen=True)
class Snapshot:
    """The latest collection with its gzip copies: what every scrape serves."""

    results: tuple[Result, ...]
    text: bytes
    text_gz: bytes
    openmetrics: bytes
    openmetrics_gz: bytes
    landing: bytes
    collected_at: float = 0.0


class Collector:
    """Runs collections and keeps the latest rendered one."""

    def __init__(self, open_host: Callable[[], Host], load_config: Callable[[], Config],
                 interval_s: float,
                 repair_record: Callable[[], Mapping[str, Any] | None] = lambda: None,
                 collect: Callable[[Config], Collection] | None = None) -> None:
        self._collect = collect or (
            lambda cfg: collect_in_process(open_host(), cfg, repair_record()))
        self._load_config = load_config
        self._template: Collection | None = None
        self.cfg = load_config()
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._latest: Snapshot | None = None
        self._previous: dict[str, Status] = {}
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._failing = False
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
        if self._reload.is_set():
            self._reload.clear()
            try:
                self.cfg = self._load_config()
                log.info("configuration reloaded from %s", self.cfg.source)
            except Exception as e:  # keep serving with the old config
                log.error("configuration not reloaded: %s", e)
        try:
            c = self._collect(self.cfg)
        except Exception as e:
            # Never keep serving the last good collection as if it were fresh:
            # say UNKNOWN and that the collection failed, until one succeeds.
            if not self._failing:
                log.error("collection failed: %s", e)
            self._failing = True
            self._publish(failed_collection(str(e), self._template))
            raise
        if self._failing:
            log.info("collection works again")
        self._failing = False
        self._template = c
        self._log_changes(c.results)
        return self._publish(c)

    def _publish(self, c: Collection) -> Snapshot:
        snap = Snapshot(c.results, c.text, gzip.compress(c.text, 5), c.openmetrics,
                        gzip.compress(c.openmetrics, 5), c.landing, c.collected_at)
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

    def loop(self, first_wait: bool = False) -> None:
        if first_wait:
            self._stop.wait(self.interval_s)
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                self.collect_once()
            except Exception:  # logged once by collect_once; never kills the exporter
                pass
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - start)))


# Where the page says how old the collection is: filled in when the page is served.
AGE_MARK = b"<!--age-->"


def age_text(seconds: float) -> bytes:
    s = max(0, round(seconds))
    return (f"{s} s ago" if s < 90 else f"{round(s / 60)} min ago").encode()


# The status page lists this many sessions: all of them on most hosts, while a
# host of 10,000 would make a page of megabytes, reloaded every 30 s, that took
# a tenth of the collection to write.
PAGE_SESSIONS = 1000


def landing_page(facts: Facts, results: tuple[Result, ...]) -> str:
    """The status page: host, when collected (and how long ago, filled in as it is
    served), the checks worst first, who is connected; it reloads itself."""
    from .probes import failed
    from .report import duration, human_bytes, local_time, sessions

    e = html.escape
    status = worst(r.status for r in results)
    ordered = sorted(results, key=lambda r: -r.status.severity)
    rows = "\n".join(
        f"<tr class='{e(r.status.name.lower())}'><td>{e(r.check)}</td>"
        f"<td>{e(r.status.name)}</td><td>{e(r.summary)}</td></tr>" for r in ordered)
    found = facts.npppctl.sessions
    total = None if failed(found) else len(found)
    views = sessions(facts, PAGE_SESSIONS)
    if views is None or total is None:
        listing = f"<p>Sessions unknown: {e(str(facts.npppctl.sessions))}</p>"
    else:
        srows = "\n".join(
            f"<tr><td>{e(v.user)}</td><td>{e(v.interface)}</td><td>{e(v.address)}</td>"
            f"<td>{e(v.peer)}</td><td>{e(local_time(v.since_unix))}</td>"
            f"<td>{e(duration(v.elapsed_s))}</td><td title='{v.bytes_in} bytes'>"
            f"{e(human_bytes(v.bytes_in))}</td><td title='{v.bytes_out} bytes'>"
            f"{e(human_bytes(v.bytes_out))}</td></tr>" for v in views)
        more = total - len(views)
        listing = ("<table><tr><th>User</th><th>Interface</th><th>Address</th><th>Peer</th>"
                   "<th>Since</th><th>Connected for</th><th>In</th><th>Out</th></tr>\n"
                   f"{srows}</table>" + (f"\n<p>{more:,} more not shown: "
                                         "<code>obsdvpn-agent sessions</code> lists them all.</p>"
                                         if more > 0 else ""))
    at = facts.collected_at
    host = facts.hostname or "this host"
    count = "?" if total is None else str(total)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>{e(status.name)} - {e(host)} - obsdvpn-agent</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:left}}
.critical{{background:#fbb}} .warning{{background:#fe9}} .unknown{{background:#ddd}}</style>
</head><body>
<h1>{e(host)}: {e(status.name)}</h1>
<p>Collected {e(local_time(at))} (<span id="age">{AGE_MARK.decode()}</span>)
&middot; obsdvpn-agent {e(__version__)} &middot; <a href="/metrics">Metrics</a></p>
<h2>Checks</h2>
<table><tr><th>Check</th><th>Status</th><th>Summary</th></tr>
{rows}
</table>
<h2>Sessions ({count})</h2>
{listing}
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"obsdvpn-agent/{__version__}"
    sys_version = ""
    # Per read; the server's deadline (_Server.request_timeout_s) bounds a whole request.
    timeout = 10

    collector: Collector  # set on the subclass made by make_server
    first_wait_s: float = 10.0
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Keep-alive plus Nagle plus delayed ACK stalls each response ~40 ms.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle_one_request(self) -> None:
        # Each request, the first or a keep-alive one, has the whole deadline
        # from now, and may be dropped for a newcomer until it is read.
        self.server.waiting(self.connection)
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        self.server.answering(self.connection)
        path = self.path.split("?", 1)[0]
        if path not in ("/", "/metrics"):
            self._send(404, "text/plain; charset=utf-8", b"404 not found: try /metrics\n", head)
            return
        snap = self.collector.latest(self.first_wait_s)
        if snap is None:
            self._send(503, "text/plain; charset=utf-8", b"first collection not finished yet\n",
                       head)
            return
        if path == "/":
            self._send(200, "text/html; charset=utf-8", snap.landing.replace(
                AGE_MARK, age_text(time.time() - snap.collected_at)), head)
            return
        om = wants_openmetrics(self.headers.get("Accept", ""))
        gz = accepts_gzip(self.headers.get("Accept-Encoding", ""))
        body = (snap.openmetrics_gz if gz else snap.openmetrics) if om else (
            snap.text_gz if gz else snap.text)
        self._send(200, OPENMETRICS_TYPE if om else TEXT_TYPE, body, head, gzipped=gz,
                   vary=True)

    def _send(self, code: int, ctype: str, body: bytes, head: bool = False,
              gzipped: bool = False, vary: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if vary:
            self.send_header("Vary", "Accept, Accept-Encoding")
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _accepted(header: str) -> dict[str, float]:
    """An Accept or Accept-Encoding header as {lowercased value: best q}.

    RFC 9110 12.4.2: `q=0` means "not acceptable".  prometheus_client's own
    choose_encoder() and gzip_accepted() (0.26) look at the names only and
    so answer `gzip;q=0` with gzip; the exporter also never imports it.
    """
    out: dict[str, float] = {}
    for item in header.split(","):
        name, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if (name.lower() == "application/openmetrics-text" and key.strip() == "version"
                    and not value.strip().startswith("1.")):
                q = 0.0  # OpenMetrics 0.0.1 is not served; prometheus_client does the same
                break
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also nan
                    q = 0.0
        if name:
            out[name.lower()] = max(q, out.get(name.lower(), 0.0))
    return out


def wants_openmetrics(accept: str) -> bool:
    """Whether to answer OpenMetrics: asked for, and not less wanted than text."""
    q = _accepted(accept)
    om = q.get("application/openmetrics-text", 0.0)
    text = max(q.get("text/plain", 0.0), q.get("text/*", 0.0))
    return om > 0 and om >= text


def accepts_gzip(accept_encoding: str) -> bool:
    q = _accepted(accept_encoding)
    return max(q.get("gzip", 0.0), q.get("x-gzip", 0.0)) > 0


class ListenError(Exception):
    pass


def parse_listen(listen: str) -> tuple[str, int]:
    """config.parse_listen(), the one rule for --listen and serve.listen."""
    from .config import parse_listen as parse

    try:
        return parse(listen)
    except ValueError as e:
        raise ListenError(f"--listen {listen}: {e}") from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# At most this many connections at once, each with a thread; more would only
# let one client starve the others and the collection of descriptors.
MAX_CONNECTIONS = 64
# Descriptors kept free for everything but connections: the collection
# child's pipes, the log socket, the config file on SIGHUP, TLS files.
RESERVED_FDS = 48
# A whole request, from the moment it is awaited until its answer is sent.
REQUEST_TIMEOUT_S = 10.0

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: 20\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections")


def connection_limit(max_connections: int = MAX_CONNECTIONS) -> int:
    """MAX_CONNECTIONS, or fewer when RLIMIT_NOFILE leaves less (128 is OpenBSD's daemon class)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, soft - RESERVED_FDS))


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a bounded number of connections, each with a deadline.

    One thread per connection, but never more than max_connections of them:
    when all are taken, the connection that has waited longest for its
    request is dropped for the newcomer (a scraper sends its request at once,
    a slow or idle client does not), and only when every connection is being
    answered does the newcomer get a 503 from the accepting thread itself.
    serve_forever() calls service_actions() twice a second; it shuts down
    the connections past their deadline, which also wakes a thread blocked
    in a read.  A client dribbling one header line every few seconds is so
    cut off after request_timeout_s, whatever the per-read timeout.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[Handler],
                 max_connections: int = MAX_CONNECTIONS,
                 request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self._lock = threading.Lock()
        # connection -> (deadline (monotonic), still waiting for its request)
        self._open: dict[socket.socket, tuple[float, bool]] = {}
        self._emfile_logged = False
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, object]:
        try:
            return super().get_request()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                # The listening socket stays readable: without a pause the
                # accept loop would spin on EMFILE.
                if not self._emfile_logged:
                    log.warning("no descriptor left to accept a connection: %s", e.strerror)
                    self._emfile_logged = True
                time.sleep(0.1)
            raise

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            full = len(self._open) >= self.max_connections
            waiting = [(v[0], c) for c, v in self._open.items() if v[1]] if full else []
            if waiting:
                self._drop(min(waiting, key=lambda w: w[0])[1])
            if not full or waiting:
                self._open[request] = (time.monotonic() + self.request_timeout_s, True)
        if full and not waiting:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # can't start new thread
            with self._lock:
                self._open.pop(request, None)
            self.shutdown_request(request)

    def _refuse(self, request: socket.socket) -> None:
        if not isinstance(request, ssl.SSLSocket):  # no handshake yet: just close
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:
                pass
        log.debug("%d connections being answered: one refused", self.max_connections)
        self.shutdown_request(request)

    def _drop(self, conn: socket.socket) -> None:
        """Cut a connection from another thread (lock held): its reads end at once."""
        self._open.pop(conn, None)
        try:
            # socket.socket's own shutdown: SSLSocket.shutdown() would also drop
            # the TLS state under the thread still reading it.
            socket.socket.shutdown(conn, socket.SHUT_RDWR)
        except OSError:
            pass

    def waiting(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._open:
                self._open[conn] = (time.monotonic() + self.request_timeout_s, True)

    def answering(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._open:
                self._open[conn] = (self._open[conn][0], False)

    def service_actions(self) -> None:
        now = time.monotonic()
        with self._lock:
            for conn in [c for c, v in self._open.items() if v[0] <= now]:
                self._drop(conn)

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # A client that resets, times out or speaks clear text to TLS is the
        # client's problem: one debug line, never a traceback on stderr.
        log.debug("%s: connection dropped: %s", client_address[0], sys.exc_info()[1])


def make_server(collector: Collector, listen: str, tls_cert: str = "", tls_key: str = "",
                allow_remote: bool = False, max_connections: int = MAX_CONNECTIONS,
                request_timeout_s: float = REQUEST_TIMEOUT_S) -> _Server:
    host, port = parse_listen(listen)
    if not is_loopback(host) and not tls_cert and not allow_remote:
        raise ListenError(f"refusing to serve on {host} without TLS: who is connected to the VPN "
                          "is private; set tls_cert and tls_key, or pass --allow-remote")
    handler = type("BoundHandler", (Handler,), {"collector": collector})
    _Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = _Server((host, port), handler, connection_limit(max_connections),
                         request_timeout_s)
    except OSError as e:
        raise ListenError(f"cannot listen on {listen}: {e.strerror}") from None
    if tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as e:
            server.server_close()
            raise ListenError(f"TLS certificate {tls_cert} / key {tls_key}: {e}") from None
        # The handshake happens in the request thread, so a slow TLS client never
        # holds up accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    return server
