"""exposition.render_session_families() writes the bytes prometheus_client writes.

For any gauge or counter families with valid names, string label values
(quotes, backslashes, newlines, any Unicode) and any value (huge counters,
negative, NaN, infinities), in the text format and in OpenMetrics; and for
the real per-session families metrics.py builds from a demo host.
"""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.registry import Collector, CollectorRegistry

from conftest import with_fact
from obsdvpn_agent import metrics
from obsdvpn_agent.config import Config, load
from obsdvpn_agent.exposition import Family, render_session_families
from obsdvpn_agent.host.demo import commands, events
from obsdvpn_agent.parsers import npppctl
from obsdvpn_agent.probes import ProbeFailure, unknown_facts


class _Fixed(Collector):
    def __init__(self, fams: list) -> None:
        self.fams = fams

    def collect(self):
        return iter(self.fams)


def client_exposition(fams: list, openmetrics: bool) -> bytes:
    """What prometheus_client renders for these families (OpenMetrics with its `# EOF`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(fams))
    return (generate_openmetrics if openmetrics else generate_latest)(registry)


def _reference(fams: list, openmetrics: bool) -> bytes:
    body = client_exposition(fams, openmetrics)
    if openmetrics:
        assert body.endswith(b"# EOF\n")
        return body[:-len(b"# EOF\n")]
    return body


def _ours(fams: list[Family], openmetrics: bool = False) -> bytes:
    rendered = render_session_families(fams)
    return b"".join(rendered.openmetrics if openmetrics else rendered.text)


def _as_family(fam) -> Family:
    """The Family of a prometheus_client GaugeMetricFamily or CounterMetricFamily."""
    names = tuple(fam._labelnames)
    return Family(fam.name, fam.type, fam.documentation, names,
                  [(tuple(s.labels[n] for n in names), s.value) for s in fam.samples])


def client_family(kind: str, name: str, doc: str, labelnames: list[str], samples) -> object:
    cls = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
    fam = cls(name, doc, labels=labelnames)
    for values, value in samples:
        fam.add_metric(list(values), value)
    return fam


names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(
    lambda n: not n.startswith("__") and not n.endswith("_total"))
values = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=-2**63, max_value=0),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e6, 999999.0, 1234567.0]))
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ['"', "\\", "\n", 'a"b\\c\nd', "", "é", "\U0001f600"])


@st.composite
def family_specs(draw):
    kind = draw(st.sampled_from(["gauge", "counter"]))
    labelnames = draw(st.lists(names, max_size=5, unique=True))
    doc = draw(text)
    samples = draw(st.lists(st.tuples(st.tuples(*[text for _ in labelnames]), values),
                            max_size=6, unique_by=lambda s: s[0]))
    return kind, "obsdvpn_" + draw(names), doc, labelnames, samples


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.lists(family_specs(), max_size=4, unique_by=lambda f: f[1]), st.booleans())
def test_same_bytes_as_prometheus_client(specs, openmetrics):
    client = [client_family(*spec) for spec in specs]
    ours = [Family(name, kind, doc, tuple(labelnames), samples)
            for kind, name, doc, labelnames, samples in specs]
    assert _ours(ours, openmetrics) == _reference(client, openmetrics)


def test_same_bytes_for_the_session_families_of_a_demo_host():
    now = time.time()
    state = events.reset(now, 300)
    _, out, _ = commands.run_command(state, ("/usr/sbin/npppctl", "-n", "session", "all"),
                                     now, True)
    sessions = npppctl.parse_session_all(out)
    # A user twice on pppac0: the families sum the two sessions into one series.
    sessions += (sessions[0]._replace(interface="pppac0"),
                 sessions[1]._replace(interface="pppac0", username=sessions[0].username))
    nothing = unknown_facts(Config(), ProbeFailure("test", "error", "not collected"), now)
    facts = with_fact(nothing, "npppctl.sessions", sessions)
    fams = metrics._sessions(facts)
    assert len(fams) == 7 and sum(len(f.samples) for f in fams) == 1 + 6 * 301
    client = [client_family(f.kind, f.name, f.documentation, list(f.labelnames), f.samples)
              for f in fams]
    for openmetrics in (False, True):
        assert _ours(fams, openmetrics) == _reference(client, openmetrics)
    load(None)  # the defaults metrics.py renders with still load


def test_values_as_go_prints_them():
    fam = Family("obsdvpn_x", "counter", "d", ("a",),
                 [(("1",), 1), (("2",), 1795954095), (("3",), math.inf), (("4",), 0.5)])
    assert _ours([fam]).decode().splitlines()[2:] == [
        'obsdvpn_x_total{a="1"} 1.0', 'obsdvpn_x_total{a="2"} 1.795954095e+09',
        'obsdvpn_x_total{a="3"} +Inf', 'obsdvpn_x_total{a="4"} 0.5']


@pytest.mark.parametrize("family, fault", [
    (Family("obsdvpn x", "gauge", "", (), []), "invalid metric family name"),
    (Family("obsdvpn_x_total", "counter", "", (), []), "invalid metric family name"),
    (Family("obsdvpn_x", "gauge", "", ("__name",), []), "invalid label name"),
    (Family("obsdvpn_x", "gauge", "", ("a", "a"), []), "a label name twice"),
    (Family("obsdvpn_x", "info", "", (), []), "only gauge and counter"),
    (Family("obsdvpn_x", "gauge", "", ("a",), [(("1", "2"), 1)]), "2 label values for 1"),
])
def test_what_would_need_escaping_is_refused(family, fault):
    with pytest.raises(ValueError, match=fault):
        render_session_families([family])
