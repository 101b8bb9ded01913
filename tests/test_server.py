"""The exporter: /metrics bytes, formats, landing page, exposure rules, signals."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ServeProcess, sample_snapshot_document
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.snapshot import SnapshotHost
from obsdvpn_agent.server import Collector, ListenError, make_server


@pytest.fixture
def snapshot_dir(tmp_path):
    doc = sample_snapshot_document()
    # A user name that would inject HTML into the landing page if not escaped.
    for c in doc["commands"]:
        if c["argv"][0] == "/usr/sbin/npppctl":
            c["stdout"] = c["stdout"].replace("Username                : bob",
                                              "Username                : <script>x</script>")
    (tmp_path / "snapshot.json").write_text(json.dumps(doc))
    return tmp_path


@pytest.fixture
def served(snapshot_dir):
    host = SnapshotHost(str(snapshot_dir))
    collector = Collector(lambda: host, Config, interval_s=3600)
    collector.collect_once()
    server = make_server(collector, "127.0.0.1:0")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server, collector
    server.shutdown()
    server.server_close()


def get(server, path, headers=None):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r, body


def test_metrics_text_format(served):
    server, _ = served
    r, body = get(server, "/metrics")
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'obsdvpn_check_status{check="ipsec.sessions_sa"} 2.0' in text
    assert 'obsdvpn_ppp_session_receive_bytes_total{interface="pppx0",user="alice"} 123456.0' \
        in text


def test_metrics_openmetrics_and_gzip(served):
    server, _ = served
    r, body = get(server, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0",
                                       "Accept-Encoding": "gzip"})
    assert r.getheader("Content-Type").startswith("application/openmetrics-text")
    assert r.getheader("Content-Encoding") == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    assert "obsdvpn_ppp_sessions 2" in text


def test_scrapes_share_one_collection(served):
    server, collector = served
    before = collector.collections
    for _ in range(20):
        get(server, "/metrics")
    assert collector.collections == before


def test_landing_page_escapes_user_names(served):
    server, _ = served
    r, body = get(server, "/")
    page = body.decode()
    assert r.status == 200 and r.getheader("Content-Type").startswith("text/html")
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert 'href="/metrics"' in page and "CRITICAL" in page and "alice" in page
    # the age of the collection, filled in as the page is served
    assert re.search(r'<span id="age">[0-9]+ (s|min) ago</span>', page), page[:600]


def test_other_paths_get_404_without_traceback(served):
    server, _ = served
    for path in ("/nope", "/metrics/../etc/passwd", "/%00"):
        r, body = get(server, path)
        assert r.status == 404
        assert b"Traceback" not in body


def test_refuses_non_loopback_without_tls():
    collector = Collector(lambda: None, Config, interval_s=3600)
    with pytest.raises(ListenError, match="without TLS"):
        make_server(collector, "0.0.0.0:0")


def test_serve_process_stops_cleanly_on_sigterm(snapshot_dir):
    serve = ServeProcess("--snapshot", str(snapshot_dir), "serve", "--listen", "127.0.0.1:0")
    try:
        assert serve.get()[0] == 200
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=10) == 0
        err = serve.stop()
        assert "Traceback" not in err
        assert "serving snapshot:" in err
    finally:
        serve.stop(signal.SIGKILL)


def test_check_state_changes_are_logged_once_each(tmp_path, caplog):
    import logging

    from conftest import run_cli
    from obsdvpn_agent.host.demo import DemoHost

    state = tmp_path / "demo.json"
    host = DemoHost(state)
    collector = Collector(lambda: host, Config, interval_s=3600)
    with caplog.at_level(logging.INFO, logger="obsdvpn-agent"):
        collector.collect_once()
        assert run_cli("--demo-state", str(state), "demo", "crash", "isakmpd").returncode == 0
        collector.collect_once()
        collector.collect_once()
        assert run_cli("--demo-state", str(state), "repair").returncode == 1
        collector.collect_once()
    lines = [r.getMessage() for r in caplog.records]
    down = [m for m in lines if m.startswith("daemon.isakmpd.running: OK -> CRITICAL")]
    up = [m for m in lines if m.startswith("daemon.isakmpd.running: CRITICAL -> OK")]
    assert len(down) == 1 and len(up) == 1, lines


def test_sighup_reloads_the_configuration(tmp_path):
    conf = tmp_path / "agent.conf"
    conf.write_text('[vpn]\nnetwork = "10.0.0.0/24"\n')
    serve = ServeProcess("--config", str(conf), "--demo-state", str(tmp_path / "d.json"),
                         "serve", "--listen", "127.0.0.1:0", "--interval", "0.3")

    def vpn_rules_status() -> str:
        body = serve.get()[1]
        return next(ln for ln in body.splitlines()
                if ln.startswith('obsdvpn_check_status{check="sessions.pool"}'))

    try:
        assert vpn_rules_status().endswith(" 0.0")
        # Another VPN network: npppd.conf's pool is no longer inside it.
        conf.write_text('[vpn]\nnetwork = "10.9.0.0/24"\n')
        serve.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not vpn_rules_status().endswith(" 1.0"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=10) == 0
        assert "configuration reloaded from" in serve.stop()
    finally:
        serve.stop(signal.SIGKILL)


def test_failed_collection_is_served_as_unknown_not_as_the_last_good_one(snapshot_dir):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
    from prometheus_client.parser import text_string_to_metric_families

    from obsdvpn_agent.server import CollectionError

    host = SnapshotHost(str(snapshot_dir))
    broken = {"now": False}

    def collect(cfg):
        if broken["now"]:
            raise CollectionError("the demo state went bad")
        from obsdvpn_agent.server import collect_in_process
        return collect_in_process(host, cfg, None)

    collector = Collector(lambda: host, Config, 3600, collect=collect)
    assert b"obsdvpn_status 2.0" in collector.collect_once().text
    broken["now"] = True
    with pytest.raises(CollectionError):
        collector.collect_once()
    snap = collector.latest(0)
    samples = {(s.name, tuple(s.labels.items())): s.value
               for f in text_string_to_metric_families(snap.text.decode()) for s in f.samples}
    assert samples[("obsdvpn_status", ())] == 3
    assert samples[("obsdvpn_collector_success", (("collector", "collection"),))] == 0
    assert list(om_parse(snap.openmetrics.decode()))  # valid OpenMetrics
    assert b"the demo state went bad" in snap.landing


# --- issue 13 item 7: content negotiation honours refusals; HEAD; Vary ----------------

@pytest.mark.parametrize("accept, accept_encoding, om, gz", [
    ("", "", False, False),
    ("application/openmetrics-text; version=1.0.0", "gzip", True, True),
    ("application/openmetrics-text;q=0", "gzip;q=0", False, False),
    ("application/openmetrics-text;q=0, text/plain", "identity, gzip;q=0", False, False),
    (("application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
      "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"), "gzip", True, True),
    ("text/plain;q=0.9, application/openmetrics-text;q=0.5", "GZIP;q=0.001", False, True),
    ("application/openmetrics-text;version=0.0.1", "x-gzip", False, True),
    ("application/openmetrics-text;q=nan", "gzip;q=2", False, False),
])
def test_negotiation_honours_q_values(served, accept, accept_encoding, om, gz):
    server, _ = served
    r, body = get(server, "/metrics", {"Accept": accept, "Accept-Encoding": accept_encoding})
    assert r.status == 200
    assert r.getheader("Vary") == "Accept, Accept-Encoding"
    assert r.getheader("Content-Type").startswith(
        "application/openmetrics-text" if om else "text/plain; version=0.0.4")
    assert (r.getheader("Content-Encoding") == "gzip") is gz
    text = (gzip.decompress(body) if gz else body).decode()
    assert text.endswith("# EOF\n") is om


def test_head_answers_like_get_without_a_body(served):
    server, _ = served
    for path in ("/metrics", "/", "/nope"):
        conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
        conn.request("GET", path)
        full = conn.getresponse()
        body = full.read()
        conn.request("HEAD", path)   # same connection: a HEAD body would corrupt the next
        head = conn.getresponse()
        assert head.read() == b""
        assert head.status == full.status
        if path != "/":   # the status page's age may have grown a digit in between
            assert head.getheader("Content-Length") == str(len(body))
        assert head.getheader("Content-Type") == full.getheader("Content-Type")
        conn.request("GET", path)
        again = conn.getresponse().read()
        assert again == body or path == "/"
        conn.close()


# --- issue 13 item 1: a bounded number of connections, a deadline per request -----------

@pytest.fixture
def tight(snapshot_dir):
    host = SnapshotHost(str(snapshot_dir))
    collector = Collector(lambda: host, Config, interval_s=3600)
    collector.collect_once()
    server = make_server(collector, "127.0.0.1:0", max_connections=4, request_timeout_s=1.0)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1024) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def test_a_client_dribbling_header_lines_is_cut_at_the_request_deadline(tight):
    s = socket.create_connection(tight.server_address[:2])
    s.settimeout(0.3)
    s.sendall(b"GET /metrics HTTP/1.1\r\n")
    # One header line every 0.3 s: each read is quick, the request never ends.
    # The per-read timeout (10 s) alone would keep it open for all 40 lines.
    for i in range(40):
        try:
            s.sendall(f"X-Slow-{i}: y\r\n".encode())
        except OSError:
            break
        if _closed(s):
            break
    else:
        pytest.fail("the dribbling client kept its connection for 12 s")
    s.close()


def test_slow_clients_beyond_the_cap_never_lock_scrapes_out(tight):
    slow = []
    for _ in range(20):
        s = socket.create_connection(tight.server_address[:2])
        s.sendall(b"GET /metrics HTTP/1.1\r\n")   # and then nothing
        slow.append(s)
    try:
        for _ in range(10):
            r, body = get(tight, "/metrics")
            assert r.status == 200 and b"obsdvpn_status" in body
        assert tight.connections() <= 4
        assert threading.active_count() < 20
    finally:
        for s in slow:
            s.close()


def test_every_connection_busy_answering_gets_503(snapshot_dir):
    host = SnapshotHost(str(snapshot_dir))
    release = threading.Event()

    class Slow(Collector):
        def latest(self, wait_s):
            release.wait(10)
            return super().latest(wait_s)

    collector = Slow(lambda: host, Config, interval_s=3600)
    collector.collect_once()
    server = make_server(collector, "127.0.0.1:0", max_connections=2)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     daemon=True).start()
    try:
        busy = [socket.create_connection(server.server_address[:2]) for _ in range(2)]
        for s in busy:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 10
        while server.connections() < 2 or any(v[1] for v in server._open.values()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r, body = get(server, "/metrics")
        assert r.status == 503 and body == b"too many connections"
        release.set()
        for s in busy:
            s.settimeout(5)
            assert s.recv(12) == b"HTTP/1.1 200"
            s.close()
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_connection_limit_leaves_descriptors_for_collections():
    from obsdvpn_agent.server import MAX_CONNECTIONS, RESERVED_FDS, connection_limit

    code = ("import resource; from obsdvpn_agent.server import connection_limit as c\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (80, 80)); print(c())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert int(out) == 80 - RESERVED_FDS
    assert connection_limit() <= MAX_CONNECTIONS


def test_negotiation_rules_directly():
    from obsdvpn_agent.server import accepts_gzip, wants_openmetrics

    assert not wants_openmetrics("text/plain;version=0.0.4, application/openmetrics-text;q=0.1")
    assert wants_openmetrics("text/plain;version=0.0.4;q=0.1, application/openmetrics-text")
    assert not wants_openmetrics("*/*")
    assert not accepts_gzip("*") and not accepts_gzip("gzip;q=0.000") and accepts_gzip("gzip")


def test_status_page_names_the_host_puts_failures_first_and_reads_like_a_page(tmp_path):
    import re
    import time as _time

    from obsdvpn_agent.checks import evaluate
    from obsdvpn_agent.host.demo import DemoHost
    from obsdvpn_agent.host.demo.events import break_host, fresh_state
    from obsdvpn_agent.host.demo.state import StateStore
    from obsdvpn_agent.probes import gather
    from obsdvpn_agent.server import landing_page

    path = tmp_path / "state.json"
    store = StateStore(path, fresh_state, _time.time)
    with store.change() as state:
        break_host(state, "ipsec-conf-mode", _time.time())   # CRITICAL, sessions stay up
    facts = gather(DemoHost(path), Config())
    page = landing_page(facts, evaluate(facts, Config()))
    assert facts.hostname and f"<h1>{facts.hostname}: CRITICAL</h1>" in page
    assert '<meta http-equiv="refresh"' in page and '<span id="age"><!--age--></span>' in page
    first_row = page.split("<tr class='", 2)[1]
    assert first_row.startswith("critical'><td>files.ipsec_conf"), first_row[:80]
    # traffic as people read it, the exact count on hover; the zone named
    assert re.search(r"<td title='[0-9]+ bytes'>[0-9.]+ (KiB|MiB|GiB)</td>", page)
    assert re.search(r"<td>20[0-9-]+ [0-9:]+ [A-Z]+</td><td>[0-9]+[dhms]", page)


def test_the_childs_collection_arrives_whole(snapshot_dir):
    """serve's child hands over the results and the pages as bytes after a JSON
    line of their sizes: what the parent rebuilds is what the child rendered."""
    from obsdvpn_agent.server import collect_in_child, collect_in_process

    cfg = Config()
    here = collect_in_process(SnapshotHost(str(snapshot_dir)), cfg, None)
    there = collect_in_child(["--snapshot", str(snapshot_dir)])(cfg)
    def timeless(page: bytes) -> bytes:  # durations and times differ between two runs
        return re.sub(rb"(_seconds(?:_total)?(?:\{[^}]*\})?) \S+\n", rb"\1 T\n", page)

    assert timeless(there.text) == timeless(here.text) and b"ppp_session_info{" in there.text
    assert timeless(there.openmetrics) == timeless(here.openmetrics)
    assert timeless(there.failed_text) == timeless(here.failed_text)
    assert timeless(there.failed_openmetrics) == timeless(here.failed_openmetrics)
    assert [(r.check, r.status, r.summary) for r in there.results] == \
        [(r.check, r.status, r.summary) for r in here.results]
    assert b"&lt;script&gt;" in there.landing and b"<script>" not in there.landing


@pytest.mark.parametrize("damage", [
    lambda b: b[:-1],                                  # a byte short: truncated
    lambda b: b + b"x",                                # a byte too many
    lambda b: b.replace(b'"sizes": [', b'"sizes": [-1, ', 1),
    lambda b: b.split(b"\n", 1)[0],                    # the JSON line alone
    lambda b: b"not json\n" + b,
])
def test_damaged_child_output_is_refused(snapshot_dir, damage):
    from obsdvpn_agent.server import Collection, collect_encoded

    good = b"".join(collect_encoded(SnapshotHost(str(snapshot_dir)), Config(), None))
    assert Collection.decode(good).text.count(b"obsdvpn_ppp_session_info{") == 2
    with pytest.raises((ValueError, KeyError, TypeError)):
        Collection.decode(damage(good))


def test_status_page_lists_at_most_a_thousand_sessions(tmp_path, monkeypatch):
    from obsdvpn_agent import server
    from obsdvpn_agent.checks import evaluate
    from obsdvpn_agent.host.demo import DemoHost
    from obsdvpn_agent.host.demo.events import reset
    from obsdvpn_agent.host.demo.state import StateStore
    from obsdvpn_agent.probes import gather

    path = tmp_path / "state.json"
    StateStore(path, lambda now: reset(now, 12), time.time).read()
    facts = gather(DemoHost(path), Config())
    results = evaluate(facts, Config())
    whole = server.landing_page(facts, results)
    assert "<h2>Sessions (12)</h2>" in whole and whole.count("<td title=") == 24
    assert "more not shown" not in whole
    monkeypatch.setattr(server, "PAGE_SESSIONS", 5)
    cut = server.landing_page(facts, results)
    assert "<h2>Sessions (12)</h2>" in cut and cut.count("<td title=") == 10
    assert "7 more not shown: <code>obsdvpn-agent sessions</code> lists them all." in cut
