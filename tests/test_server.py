"""The exporter: /metrics bytes, formats, landing page, exposure rules, signals."""

from __future__ import annotations

import re

import gzip
import http.client
import json
import signal
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
        conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200
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
        conn = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=10)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
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
