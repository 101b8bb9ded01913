"""One incident, one page, through Debian's real Alertmanager.

dashboards/alertmanager.yml is loaded by `prometheus-alertmanager` itself, with
only its receivers swapped for a webhook served by this test and group_wait
and group_interval shortened: routing, grouping and every inhibit rule are the shipped ones.

Two parts:
- the incident table: for each fault a host can have, the alerts the rules
  raise for it (their labels as the promtool unit tests in tests/rules/ prove
  them) are posted to Alertmanager, which must leave exactly the one alert that
  names the cause active and inhibit the rest;
- the fleet: three demo agents scraped by Prometheus with the shipped rules,
  alerting to that Alertmanager. One crashed isakmpd gives one active alert, on
  its host only, one page, which resolves after `repair`.

Speed-up, on purpose: Prometheus loads a copy of the rules in which every `for:`
of N minutes becomes N seconds (hours: N minutes). That keeps the order of the
durations, which inhibition relies on (a specific alert fires no later than the
generic one it stands for); the durations themselves are proven by promtool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from test_e2e_prometheus import Procs, agent, http_get, wait_for

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "dashboards" / "obsdvpn-alerts.yml"
AM_CONFIG = ROOT / "dashboards" / "alertmanager.yml"
RECEIVERS = ("page", "ticket")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install Debian's prometheus and prometheus-alertmanager " \
                 "packages (`make deps`)"
    return path


# -- the rules and the configuration, adapted for a short run -------------------

def scaled_rules(text: str) -> str:
    """The rule file with every `for:` sixty times shorter (see the docstring)."""
    def scale(m: re.Match[str]) -> str:
        n, unit = int(m.group(2)), m.group(3)
        return m.group(1) + {"s": f"{max(n // 60, 1)}s" if n else "0s", "m": f"{n}s",
                             "h": f"{n}m"}[unit]
    out, n = re.subn(r"^(\s*for:\s*)(\d+)([smh])\s*$", scale, text, flags=re.MULTILINE)
    assert n >= 17, f"only {n} for: lines rewritten"
    return out


def for_seconds(text: str) -> list[int]:
    """Every `for:` of a rule file, in seconds."""
    unit = {"s": 1, "m": 60, "h": 3600}
    return [int(n) * unit[u] for n, u in re.findall(r"^\s*for:\s*(\d+)([smh])$", text,
                                                     flags=re.MULTILINE)]


def test_scaled_rules_change_only_the_durations_and_keep_their_order() -> None:
    text = RULES.read_text()
    fast = scaled_rules(text)

    def strip(rules: str) -> str:
        return re.sub(r"^\s*for:.*$", "", rules, flags=re.MULTILINE)
    assert strip(fast) == strip(text)
    assert for_seconds(fast) == [max(s // 60, 1) if s else 0 for s in for_seconds(text)]


def test_shipped_configuration_passes_amtool() -> None:
    r = subprocess.run([tool("amtool"), "check-config", str(AM_CONFIG)], capture_output=True,
                       text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout and " - 2 receivers" in r.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    ("severity=critical alertname=ObsdvpnDaemonDown instance=vpn1:8469", "page"),
    ("severity=warning alertname=ObsdvpnPfRulesetDrift instance=vpn1:8469", "ticket"),
    ("alertname=ObsdvpnAgentAbsent", "ticket"),
])
def test_critical_pages_warning_makes_a_ticket(labels: str, receiver: str) -> None:
    r = subprocess.run([tool("amtool"), "config", "routes", "test",
                        f"--config.file={AM_CONFIG}", *labels.split()],
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0 and r.stdout.strip() == receiver, r.stdout + r.stderr


def am_config(webhook_url: str) -> str:
    """The shipped configuration with webhook receivers and 1 s group timers."""
    text = AM_CONFIG.read_text()
    head, sep, receivers = text.partition("\nreceivers:\n")
    assert sep and tuple(re.findall(r"^  - name: (\w+)$", receivers, re.MULTILINE)) == RECEIVERS
    # 30 s before the first notification of a group, 5 m before its next one (a
    # new alert in it, or the resolution): both 1 s here
    head, n = re.subn(r"^(\s*group_(?:wait|interval):\s*)\S+$", r"\g<1>1s", head, flags=re.MULTILINE)
    assert n == 2
    hooks = "".join(f"  - name: {name}\n    webhook_configs:\n"
                    f"      - url: \"{webhook_url}/{name}\"\n        send_resolved: true\n"
                    for name in RECEIVERS)
    return head + sep + hooks


# -- the processes -----------------------------------------------------------------

class Webhook:
    """Records what Alertmanager sends: (receiver, its JSON payload)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    received.append((self.path.strip("/"), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[tuple[str, str, dict[str, str]]]:
        """(receiver, status, labels) of every alert in every notification so far."""
        return [(receiver, a["status"], a["labels"]) for receiver, doc in list(self.received)
                for a in doc["alerts"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_alertmanager(procs: Procs, webhook: Webhook) -> str:
    config = procs.tmp / "alertmanager.yml"
    config.write_text(am_config(webhook.url))
    am = tool("prometheus-alertmanager")
    return procs.on_free_port("alertmanager", lambda port: [
        am, f"--config.file={config}", f"--storage.path={procs.tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn"], lambda url: http_get(f"{url}/-/ready") != b"")


def am_alerts(am: str, **filters: str) -> list[dict[str, Any]]:
    """Alertmanager's current alerts (resolved ones are gone), inhibited included."""
    query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
    alerts: list[dict[str, Any]] = json.loads(http_get(f"{am}/api/v2/alerts?{query}"))
    return alerts


def summary(alerts: list[dict[str, Any]], state: str) -> list[str]:
    """'alertname check' of the alerts in one state (active or suppressed), sorted."""
    return sorted(f"{a['labels']['alertname']} {a['labels'].get('check', '-')}"
                  for a in alerts if a["status"]["state"] == state)


# -- the incident table --------------------------------------------------------------

def crit(alertname: str, **labels: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": "critical", **labels}


def warn(alertname: str, **labels: str) -> dict[str, str]:
    return {"alertname": alertname, "severity": "warning", **labels}


FWD = "sysctl.net.inet.ip.forwarding"
# incident -> (what the rules raise, the one alert left active). The labels are
# the rules' (tests/rules/*.yml assert them); job and instance are added below.
INCIDENTS: dict[str, tuple[list[dict[str, str]], list[str]]] = {
    "isakmpd stopped": ([
        crit("ObsdvpnDaemonDown", daemon="isakmpd", check="daemon.isakmpd.running"),
        crit("ObsdvpnCheckCritical", check="daemon.isakmpd.running"),
        crit("ObsdvpnCheckCritical", check="ipsec.ike_rules"),
        crit("ObsdvpnRepairFailed"),
    ], ["ObsdvpnDaemonDown daemon.isakmpd.running"]),
    "npppd stopped": ([
        crit("ObsdvpnDaemonDown", daemon="npppd", check="daemon.npppd.running"),
        crit("ObsdvpnCheckCritical", check="daemon.npppd.running"),
    ], ["ObsdvpnDaemonDown daemon.npppd.running"]),
    "sysctl lost at reboot": ([
        crit("ObsdvpnSysctlDrift", name="net.inet.ip.forwarding", check=FWD),
        warn("ObsdvpnSysctlNotPersisted", name="net.inet.ip.forwarding", check=FWD),
        crit("ObsdvpnCheckCritical", check=FWD),
    ], [f"ObsdvpnSysctlDrift {FWD}"]),
    "sysctl set but not persisted": ([
        warn("ObsdvpnSysctlNotPersisted", name="net.inet.ip.forwarding", check=FWD),
        warn("ObsdvpnCheckWarning", check=FWD),
    ], [f"ObsdvpnSysctlNotPersisted {FWD}"]),
    "isakmpd_flags lost -K": ([
        warn("ObsdvpnIsakmpdFlagsWrong", daemon="isakmpd", check="daemon.isakmpd.flags"),
        warn("ObsdvpnCheckWarning", check="daemon.isakmpd.flags"),
    ], ["ObsdvpnIsakmpdFlagsWrong daemon.isakmpd.flags"]),
    "isakmpd running without -K": ([
        warn("ObsdvpnIsakmpdFlagsWrong", daemon="isakmpd", check="daemon.isakmpd.flags"),
        crit("ObsdvpnCheckCritical", check="daemon.isakmpd.flags"),
    ], ["ObsdvpnCheckCritical daemon.isakmpd.flags"]),
    "pf disabled": ([
        crit("ObsdvpnPfDisabled", check="pf.enabled"),
        crit("ObsdvpnCheckCritical", check="pf.enabled"),
    ], ["ObsdvpnPfDisabled pf.enabled"]),
    "pf rules flushed": ([
        crit("ObsdvpnPfPathBlocked", check="pf.path.nat_out"),
        crit("ObsdvpnCheckCritical", check="pf.path.nat_out"),
        warn("ObsdvpnPfRulesetDrift", check="pf.ruleset"),
        warn("ObsdvpnCheckWarning", check="pf.ruleset"),
    ], ["ObsdvpnPfPathBlocked pf.path.nat_out"]),
    "pf.conf edited, not loaded": ([
        warn("ObsdvpnPfRulesetDrift", check="pf.ruleset"),
        warn("ObsdvpnCheckWarning", check="pf.ruleset"),
    ], ["ObsdvpnPfRulesetDrift pf.ruleset"]),
    "sessions without SA": ([
        crit("ObsdvpnSessionsWithoutSA", check="ipsec.sessions_sa"),
        crit("ObsdvpnCheckCritical", check="ipsec.sessions_sa"),
    ], ["ObsdvpnSessionsWithoutSA ipsec.sessions_sa"]),
    "state table 96 % full": ([
        warn("ObsdvpnPfStateTableNearLimit", check="pf.states"),
        crit("ObsdvpnCheckCritical", check="pf.states"),
    ], ["ObsdvpnCheckCritical pf.states"]),
    "ipsec.conf world-readable": ([
        crit("ObsdvpnCheckCritical", check="files.ipsec_conf"),
    ], ["ObsdvpnCheckCritical files.ipsec_conf"]),
    "pf collector failing": ([
        warn("ObsdvpnCollectorFailing", collector="pf"),
        warn("ObsdvpnCheckUnknown", check="pf.enabled"),
        warn("ObsdvpnCheckUnknown", check="pf.ruleset"),
        warn("ObsdvpnCheckUnknown", check="pf.path.nat_out"),
    ], ["ObsdvpnCollectorFailing -"]),
    "textfile stale with old faults in it": ([
        crit("ObsdvpnCollectionStale"),
        crit("ObsdvpnPfDisabled", check="pf.enabled"),
        crit("ObsdvpnCheckCritical", check="pf.enabled"),
        warn("ObsdvpnCheckWarning", check="sessions.users"),
    ], ["ObsdvpnCollectionStale -"]),
    "agent down": ([
        crit("ObsdvpnAgentDown"),
        crit("ObsdvpnCollectionStale"),
        warn("ObsdvpnCollectorFailing", collector="pf"),
    ], ["ObsdvpnAgentDown -"]),
    # two faults that are not one: both page
    "isakmpd stopped and ipsec.conf world-readable": ([
        crit("ObsdvpnDaemonDown", daemon="isakmpd", check="daemon.isakmpd.running"),
        crit("ObsdvpnCheckCritical", check="daemon.isakmpd.running"),
        crit("ObsdvpnCheckCritical", check="ipsec.ike_rules"),
        crit("ObsdvpnCheckCritical", check="files.ipsec_conf"),
    ], ["ObsdvpnCheckCritical files.ipsec_conf", "ObsdvpnDaemonDown daemon.isakmpd.running"]),
}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    procs = Procs(tmp_path_factory.mktemp("am"))
    webhook = Webhook()
    try:
        yield start_alertmanager(procs, webhook)
    finally:
        procs.stop()
        webhook.stop()


@pytest.mark.parametrize("incident", list(INCIDENTS))
def test_one_incident_leaves_one_active_alert(alertmanager: str, incident: str) -> None:
    raised, expected = INCIDENTS[incident]
    # one host per incident, and a healthy neighbour that must stay out of it
    instance = f"{re.sub(r'[^a-z0-9]+', '-', incident)}.example:8469"
    now = datetime.now(UTC)
    body = [{"labels": {**labels, "job": "vpn", "instance": instance},
             "annotations": {"summary": incident},
             "startsAt": now.isoformat(),
             "endsAt": (now + timedelta(minutes=10)).isoformat()} for labels in raised]
    req = urllib.request.Request(f"{alertmanager}/api/v2/alerts", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200

    # The API shows an alert as soon as it is stored, but Alertmanager's inhibitor
    # learns of the source alerts through its own subscription, a moment later:
    # until then an alert reads "active". So wait for the expected state, then
    # read it again a second later: inhibition only grows while the alerts last,
    # so a state that holds is the settled one (and an over-eager inhibit rule
    # shows up as a shorter active list on the second read).
    end = time.monotonic() + 10
    while time.monotonic() < end:
        alerts = am_alerts(alertmanager, instance=instance)
        if len(alerts) == len(raised) and summary(alerts, "active") == expected:
            break
        time.sleep(0.25)
    time.sleep(1)
    alerts = am_alerts(alertmanager, instance=instance)
    assert len(alerts) == len(raised), alerts
    assert summary(alerts, "active") == expected, alerts
    assert len(summary(alerts, "suppressed")) == len(raised) - len(expected)
    for a in alerts:
        if a["status"]["state"] == "suppressed":
            assert a["status"]["inhibitedBy"] and not a["status"]["silencedBy"], a


# -- the fleet -----------------------------------------------------------------------

class Fleet:
    """Three demo agents, Prometheus with the rules, the shipped Alertmanager."""

    HOSTS = ("a", "b", "c")

    def __init__(self, tmp: Path) -> None:
        self.procs = Procs(tmp)
        self.tmp = tmp
        self.state = {h: tmp / f"{h}.json" for h in self.HOSTS}
        self.instance: dict[str, str] = {}
        self.webhook = Webhook()
        self.am = ""
        self.prom = ""

    def start(self) -> None:
        self.instance = self.procs.agents(self.state)
        self.am = start_alertmanager(self.procs, self.webhook)
        # the job is not called obsdvpn: the rules must not care
        self.prom = self.procs.prometheus(scaled_rules(RULES.read_text()), "vpn-fleet",
                                          list(self.instance.values()), alertmanager=self.am)

    def query(self, promql: str) -> list[dict[str, Any]]:
        doc = json.loads(http_get(f"{self.prom}/api/v1/query?"
                                  f"{urllib.parse.urlencode({'query': promql})}"))
        assert doc["status"] == "success", doc
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def stop(self) -> None:
        self.procs.stop()
        self.webhook.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        f.start()
        yield f
    finally:
        f.stop()


def test_one_crashed_isakmpd_pages_once_on_its_host_and_clears_after_repair(
        fleet: Fleet) -> None:
    a = fleet.instance["a"]
    logs = tuple(fleet.procs.logs)
    # healthy to begin with: every host scraped, the rules evaluated over all of them
    wait_for("the rules to see three healthy hosts",
             lambda: [r for r in fleet.query("count(obsdvpn_daemon_running == 1)")
                      if r["value"][1] == "6"], logs=logs)
    time.sleep(2)  # a few evaluations: anything that would fire on a healthy host, pending
    assert fleet.query("ALERTS") == []
    assert am_alerts(fleet.am) == []

    agent("--demo-state", str(fleet.state["a"]), "demo", "crash", "isakmpd")

    # the rules raise the three alerts they always did; Alertmanager lets one through
    def one_active() -> list[dict[str, Any]] | None:
        alerts = am_alerts(fleet.am)
        return alerts if len(summary(alerts, "suppressed")) == 2 else None
    alerts = wait_for("Alertmanager to inhibit the consequences", one_active, logs=logs)
    assert summary(alerts, "active") == ["ObsdvpnDaemonDown daemon.isakmpd.running"]
    assert summary(alerts, "suppressed") == ["ObsdvpnCheckCritical daemon.isakmpd.running",
                                             "ObsdvpnCheckCritical ipsec.ike_rules"]
    assert {x["labels"]["instance"] for x in alerts} == {a}
    assert all(x["labels"]["job"] == "vpn-fleet" for x in alerts)
    firing = [r["metric"] for r in fleet.query('ALERTS{alertstate="firing"}')]
    assert len(firing) == 3 and {m["instance"] for m in firing} == {a}

    # one page: the page receiver, that alert, and nothing else was ever sent
    wait_for("the page", lambda: fleet.webhook.alerts(), logs=logs)
    time.sleep(3)  # a second notification would come within group_interval (1 s)
    sent = fleet.webhook.alerts()
    assert [(rcv, st, lab["alertname"], lab["instance"], lab["daemon"])
            for rcv, st, lab in sent] == [("page", "firing", "ObsdvpnDaemonDown", a, "isakmpd")]

    agent("--demo-state", str(fleet.state["a"]), "repair", check_rc=(1,))
    wait_for("host a's alerts to resolve after repair", lambda: am_alerts(fleet.am) == [],
             logs=logs)
    wait_for("the resolved notification", lambda: len(fleet.webhook.alerts()) == 2, logs=logs)
    rcv, status, labels = fleet.webhook.alerts()[1]
    assert (rcv, status, labels["alertname"], labels["instance"]) == (
        "page", "resolved", "ObsdvpnDaemonDown", a)
    assert fleet.query("ALERTS") == []
