"""The Grafana dashboard is importable, serves one host or a fleet, and every
metric it and the alert rules name is one the agent really exports.

"Really exports" means: in the exposition printed by `obsdvpn-agent metrics`
run as a separate process, on the demo host after a real `repair` (the
obsdvpn_repair_* series only exist once a repair ran) and on a snapshot made
of real OpenBSD outputs.  Names are compared with the exposition's sample
names, which are what Prometheus stores: a counter is obsdvpn_x_total there,
so a query for its family name obsdvpn_x would find nothing and fails here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_cli, sample_snapshot_document

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "dashboards" / "obsdvpn-dashboard.json"
RULES = ROOT / "dashboards" / "obsdvpn-alerts.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
INSTANCE_FILTER = 'instance=~"$instance"'
# What Grafana puts in for its variables when the queries run against Prometheus
# directly (tests, or a look with promtool): all instances, a short rate window.
GRAFANA_VARIABLES = {"instance": ".*", "datasource": "prometheus", "__rate_interval": "1m",
                     "__interval": "15s", "__range": "1h"}


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' collapsed children included."""
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation and query variable."""
    out = [(f"panel {p['id']} {p['title']!r} target {t['refId']}", t["expr"])
           for p in panels(dashboard) for t in p.get("targets", [])]
    out += [(f"annotation {a['name']!r}", a["expr"])
            for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
            assert m, f"variable {v['name']}: {q!r} is not label_values(SELECTOR, LABEL)"
            out.append((f"variable {v['name']}", m.group(1)))
    return out


def substitute(expr: str) -> str:
    """The query as Prometheus receives it from Grafana (variables expanded)."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        assert name in GRAFANA_VARIABLES, f"unknown Grafana variable ${name} in {expr!r}"
        return GRAFANA_VARIABLES[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def rule_exprs() -> list[tuple[str, str]]:
    text = RULES.read_text()
    names = re.findall(r"^\s*- alert:\s*(\w+)", text, re.MULTILINE)
    exprs = re.findall(r"^\s*expr:\s*(.+?)\s*$", text, re.MULTILINE)
    assert len(names) == len(exprs) >= 17, "one single-line expr per alert"
    return [(f"alert {n}", e) for n, e in zip(names, exprs)]


def metric_names(promql: str) -> set[str]:
    """obsdvpn_* metric names in a PromQL expression (string literals removed,
    so a label value like job="obsdvpn" or check="pf.enabled" never counts)."""
    code = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', promql)
    return set(re.findall(r"\b(obsdvpn_[a-z0-9_]+)\b", code))


def exposition_samples(text: str) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets it has, from a text-format exposition."""
    out: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+", line)
        assert m, f"not an exposition line: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.setdefault(m.group(1), []).append(labels)
    return out


# -- the expositions, made by the CLI as cron or rc.d would run it --------------

@pytest.fixture(scope="module")
def demo_exposition(tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    state = tmp_path_factory.mktemp("demo") / "demo.json"
    demo = ("--demo-state", str(state))
    r = run_cli(*demo, "demo", "break", "pf-disabled")
    assert r.returncode == 0, r.stderr
    r = run_cli(*demo, "repair")
    assert r.returncode == 1, f"repair should fix pf: {r.returncode} {r.stdout} {r.stderr}"
    assert Path(f"{state}.last-repair.json").exists()
    r = run_cli(*demo, "metrics")
    assert r.returncode == 0, r.stderr
    return exposition_samples(r.stdout)


@pytest.fixture(scope="module")
def snapshot_exposition(tmp_path_factory) -> dict[str, list[dict[str, str]]]:
    d = tmp_path_factory.mktemp("snap")
    (d / "snapshot.json").write_text(json.dumps(sample_snapshot_document()))
    r = run_cli("--snapshot", str(d), "metrics")
    assert r.returncode == 0, r.stderr
    return exposition_samples(r.stdout)


# -- an importable dashboard ------------------------------------------------------

def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    d = load_dashboard()
    assert d["uid"] == "obsdvpn-agent" and len(d["uid"]) <= 40
    assert d["title"] == "obsdvpn-agent: OpenBSD L2TP/IPsec VPN"
    assert 36 <= d["schemaVersion"] <= 41
    # an exported dashboard has no database id: importing must create, not overwrite
    assert d.get("id") is None
    assert isinstance(d["panels"], list) and d["panels"]
    assert d["time"]["from"].startswith("now-")
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_has_a_datasource_and_targets_that_filter_the_instance() -> None:
    for p in panels(load_dashboard()):
        where = f"panel {p.get('id')} {p.get('title')!r}"
        assert p["type"] in {"stat", "gauge", "table", "timeseries", "state-timeline",
                             "bargauge", "status-history"}, where
        assert p["title"] and p.get("description"), where
        assert p["datasource"] == DATASOURCE, where
        assert p["targets"], where
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), where
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, f"{where} {t['refId']}"
            assert t["expr"].strip(), f"{where} {t['refId']}"


def test_every_selector_filters_the_selected_instances() -> None:
    d = load_dashboard()
    for where, expr in dashboard_queries(d):
        if where.startswith("variable"):
            continue  # the variable lists the instances, so it cannot filter on them
        selectors = re.findall(r"\b(obsdvpn_[a-z0-9_]+)(\{[^}]*\})?", expr)
        assert selectors, f"{where}: no obsdvpn metric in {expr!r}"
        for name, matchers in selectors:
            assert INSTANCE_FILTER in matchers, f"{where}: {name} lacks {INSTANCE_FILTER}"


def test_panels_do_not_overlap_and_fit_the_grid() -> None:
    cells: dict[tuple[int, int], str] = {}
    for p in panels(load_dashboard()):
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_variables_serve_one_host_or_a_fleet() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    inst = variables["instance"]
    assert inst["type"] == "query" and inst["datasource"] == DATASOURCE
    q = inst["query"]["query"] if isinstance(inst["query"], dict) else inst["query"]
    assert q == "label_values(obsdvpn_build_info, instance)"
    assert inst["multi"] is True and inst["includeAll"] is True
    assert inst["refresh"] in (1, 2)  # re-read on load / time change: new hosts appear


def _by_metric(d: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in panels(d):
        for t in p["targets"]:
            for name in metric_names(t["expr"]):
                out.setdefault(name, []).append(p)
    return out


def _mapping_texts(p: dict) -> dict[str, str]:
    return {value: o["text"] for m in p["fieldConfig"]["defaults"].get("mappings", [])
            if m["type"] == "value" for value, o in m["options"].items()}


def test_the_required_panels_are_there() -> None:
    d = load_dashboard()
    by_metric = _by_metric(d)
    status_names = {"0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}
    # check status overview, as a table and a state timeline, in Nagios words
    check_panels = by_metric["obsdvpn_check_status"]
    assert {p["type"] for p in check_panels} >= {"table", "state-timeline"}
    for p in check_panels:
        assert _mapping_texts(p) == status_names, p["title"]
    overall = [p for p in by_metric["obsdvpn_status"] if p["type"] == "stat"]
    assert overall and _mapping_texts(overall[0]) == status_names
    assert any(p["type"] == "stat" for p in by_metric["obsdvpn_ppp_sessions"])
    # traffic per user over time
    traffic = [t["expr"] for p in panels(d) if p["type"] == "timeseries" for t in p["targets"]]
    for direction in ("receive", "transmit"):
        assert any(re.search(rf"sum by \([^)]*\buser\b[^)]*\) \(rate\(obsdvpn_ppp_session_"
                             rf"{direction}_bytes_total\{{[^}}]*\}}\[\$__rate_interval\]\)\)", e)
                   for e in traffic), direction
    # SAs and flows beside sessions, pf states vs limit: one panel each
    together = [set(_by_metric({"panels": [p]})) for p in panels(d)]
    assert {"obsdvpn_ipsec_sas", "obsdvpn_ipsec_flows", "obsdvpn_ppp_sessions"} in together
    assert any({"obsdvpn_pf_states", "obsdvpn_pf_state_limit"} <= s for s in together)
    # drift history
    drift = [p for p in panels(d) if p["type"] == "state-timeline"
             and {"obsdvpn_sysctl_ok", "obsdvpn_daemon_running", "obsdvpn_pf_enabled",
                  "obsdvpn_pf_ruleset_matches_config"} <= set(_by_metric({"panels": [p]}))]
    assert drift and _mapping_texts(drift[0]) == {"1": "OK", "0": "DRIFT"}
    # the agent itself, and the last repair
    assert "obsdvpn_collector_success" in by_metric
    assert "obsdvpn_collector_duration_seconds" in by_metric
    repair = by_metric["obsdvpn_repair_last_exit_code"]
    assert _mapping_texts(repair[0]) == {"0": "nothing to do", "1": "fixed",
                                         "2": "still failing", "3": "could not run"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses them: each query becomes a recording rule (JSON is YAML)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install Debian's prometheus package (`make deps`)"
    queries = dashboard_queries(load_dashboard())
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": substitute(expr)}
        for i, (_, expr) in enumerate(queries)]}]}
    f = tmp_path / "dashboard-queries.yml"
    f.write_text(json.dumps(rules, indent=1))
    r = subprocess.run([promtool, "check", "rules", str(f)], check=False, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr + "\n" + "\n".join(
        f"query_{i}: {w}: {e}" for i, (w, e) in enumerate(queries))


# -- every metric named exists ------------------------------------------------------

def test_metric_names_are_extracted_from_promql() -> None:
    assert metric_names('sum by (user) (rate(obsdvpn_ppp_session_receive_bytes_total'
                        '{instance=~"obsdvpn_x"}[1m])) / on() obsdvpn_ppp_sessions') == {
        "obsdvpn_ppp_session_receive_bytes_total", "obsdvpn_ppp_sessions"}
    assert metric_names('up{job="obsdvpn"} == 0') == set()
    assert metric_names("absent(obsdvpn_build_info)") == {"obsdvpn_build_info"}


def referenced() -> dict[str, str]:
    """Metric name -> where it is used first, over the dashboard and the rules."""
    out: dict[str, str] = {}
    for where, expr in dashboard_queries(load_dashboard()) + rule_exprs():
        for name in metric_names(expr):
            out.setdefault(name, where)
    return out


def test_dashboard_and_rules_name_the_core_metrics() -> None:
    names = set(referenced())
    assert len(names) >= 20, sorted(names)
    assert {"obsdvpn_check_status", "obsdvpn_build_info", "obsdvpn_repair_last_exit_code",
            "obsdvpn_ppp_session_transmit_bytes_total"} <= names


def test_every_metric_named_is_in_the_demo_hosts_exposition(demo_exposition) -> None:
    missing = {n: w for n, w in referenced().items() if n not in demo_exposition}
    assert not missing, f"not exported by the agent: {missing}"


def test_every_metric_named_is_exported_from_real_openbsd_outputs(snapshot_exposition) -> None:
    # the repair outcome and the log counters are the agent's own kept state, not an
    # OpenBSD output: a snapshot has neither
    own = ("obsdvpn_repair_", "obsdvpn_ppp_auth_failures", "obsdvpn_ike_failures",
           "obsdvpn_ppp_user_", "obsdvpn_ppp_sessions_started", "obsdvpn_ppp_sessions_closed",
           "obsdvpn_log_")
    missing = {n: w for n, w in referenced().items()
               if n not in snapshot_exposition and not n.startswith(own)}
    assert not missing, f"not exported from the sample snapshot: {missing}"


def test_label_values_the_rules_select_exist(demo_exposition) -> None:
    """A rule selecting check="ipsec.sessions_sa" needs that check to exist: a
    renamed check id would silently never alert."""
    for where, expr in rule_exprs():
        for name, matchers in re.findall(r"\b(obsdvpn_[a-z0-9_]+)\{([^}]*)\}", expr):
            for label, value in re.findall(r'(\w+)\s*=\s*"([^"]*)"', matchers):
                have = {s.get(label) for s in demo_exposition[name]}
                assert value in have, f"{where}: {name}{{{label}={value!r}}}; exported: {have}"


def test_label_names_the_dashboard_uses_exist(demo_exposition) -> None:
    """Legends and `by (...)` name labels: a typo shows empty legends, not an error."""
    d = load_dashboard()
    for p in panels(d):
        for t in p["targets"]:
            labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            for group in re.findall(r"\bby\s*\(([^)]*)\)", t["expr"]):
                labels |= {x.strip() for x in group.split(",") if x.strip()}
            exported = {k for n in metric_names(t["expr"]) for s in demo_exposition[n]
                        for k in s} | {"instance", "job"}
            assert labels <= exported, f"{p['title']!r} {t['refId']}: {labels - exported}"


# -- a fleet at a glance ---------------------------------------------------------------

def overview_panel(d: dict) -> dict:
    """The table in the first row: one line per host."""
    first = min(panels(d), key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))
    assert first["type"] == "table", first["title"]
    return first


def test_the_fleet_overview_is_on_top_one_line_per_host() -> None:
    d = load_dashboard()
    assert d["panels"][0]["type"] == "row" and d["panels"][1] is overview_panel(d)
    p = overview_panel(d)
    assert p["gridPos"]["w"] == 24
    wanted = {"obsdvpn_status", "obsdvpn_ppp_sessions", "obsdvpn_ipsec_sas",
              "obsdvpn_last_collection_timestamp_seconds"}
    assert set().union(*(metric_names(t["expr"]) for t in p["targets"])) == wanted
    for t in p["targets"]:
        # aggregated to the host, so the merge gives one row per instance
        assert re.search(r"\b(max|sum) by \(instance\) \(", t["expr"]), t["expr"]
        assert t["instant"] is True and t["format"] == "table", t["refId"]
    assert [x["id"] for x in p["transformations"]] == ["merge", "organize"]
    renamed = p["transformations"][1]["options"]["renameByName"]
    assert sorted(renamed.values()) == sorted(["status", "sessions", "SAs", "last collection"])
    by_name = {o["matcher"]["options"]: {x["id"]: x["value"] for x in o["properties"]}
               for o in p["fieldConfig"]["overrides"]}
    assert _mapping_texts({"fieldConfig": {"defaults": by_name["status"]}}) == {
        "0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}
    assert by_name["last collection"]["unit"] == "s"
    # the age turns red where ObsdvpnCollectionStale starts counting
    steps = by_name["last collection"]["thresholds"]["steps"]
    stale = re.search(r"obsdvpn_last_collection_timestamp_seconds > (\d+)", RULES.read_text())
    assert stale and steps[-1] == {"color": "red", "value": int(stale.group(1))}


def test_the_sessions_table_says_since_when() -> None:
    [p] = [p for p in panels(load_dashboard()) if p["type"] == "table"
           and "obsdvpn_ppp_session_info" in _by_metric({"panels": [p]})]
    names = {n for t in p["targets"] for n in metric_names(t["expr"])}
    assert "obsdvpn_ppp_session_start_time_seconds" in names
    renamed = p["transformations"][-1]["options"]["renameByName"]
    assert set(renamed.values()) == {"since", "connected for"}
    units = {o["matcher"]["options"]: o["properties"][0]["value"]
             for o in p["fieldConfig"]["overrides"]}
    assert units == {"since": "dateTimeAsIso", "connected for": "dtdurations"}
    since = next(t["expr"] for t in p["targets"] if "since" == renamed.get(f"Value #{t['refId']}"))
    assert since.endswith("* 1000"), "Grafana's date units take milliseconds"
