"""metrics.render() writes the per-session families itself (exposition.py): the
whole exposition must be the very bytes prometheus_client renders for the same
families, in both formats, for a demo host with sessions."""

from __future__ import annotations

import time

import pytest

from obsdvpn_agent.checks import evaluate
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.demo.events import reset
from obsdvpn_agent.host.demo.host import DemoHost
from obsdvpn_agent.host.demo.state import StateStore
from obsdvpn_agent.metrics import families, render, render_pieces
from obsdvpn_agent.probes import gather
from test_exposition import client_exposition, client_family


def _by_prometheus_client(facts, results, cfg, openmetrics):
    fams = []
    for item in families(facts, results, cfg):
        if not isinstance(item, tuple):
            fams.append(item)
            continue
        fams += [client_family(f.kind, f.name, f.documentation, list(f.labelnames), f.samples)
                 for f in item]
    return client_exposition(fams, openmetrics)


@pytest.mark.parametrize("sessions", [0, 3, 250])
@pytest.mark.parametrize("openmetrics", [False, True])
def test_render_is_prometheus_clients_bytes(tmp_path, sessions, openmetrics):
    path = tmp_path / "state.json"
    StateStore(path, lambda now: reset(now, sessions), time.time).read()
    cfg = Config()
    facts = gather(DemoHost(path), cfg)
    results = evaluate(facts, cfg)
    ours = render(facts, results, cfg, openmetrics=openmetrics)
    assert ours == _by_prometheus_client(facts, results, cfg, openmetrics)
    assert ours.count(b"obsdvpn_ppp_session_info{") == sessions
    # serve renders both formats at once, the session lines shared.
    assert b"".join(render_pieces(facts, results, cfg)[openmetrics]) == ours
