"""Repair only orders and applies what the checks ask for: every action a
failing check carries reaches the plan, once, in phase order; a failing check
without an action becomes a note; an action outside the allow-list becomes a
note without sinking the rest of the plan."""

from __future__ import annotations

import dataclasses
import time

import pytest

from obsdvpn_agent.checks import Action, Result, Status, evaluate
from obsdvpn_agent.config import Config
from obsdvpn_agent.host.demo.events import SCENARIOS, break_host, fresh_state
from obsdvpn_agent.host.demo.host import DemoHost
from obsdvpn_agent.host.demo.state import StateStore
from obsdvpn_agent.probes import gather
from obsdvpn_agent.repair import plan

CFG = Config()


def _broken(tmp_path, scenarios: tuple[str, ...]) -> tuple[Result, ...]:
    path = tmp_path / "state.json"
    store = StateStore(path, fresh_state, time.time)
    with store.change() as state:
        for name in scenarios:
            break_host(state, name, time.time())
    return evaluate(gather(DemoHost(path), CFG), CFG)


@pytest.mark.parametrize("scenarios", [(name,) for name in SCENARIOS] + [tuple(SCENARIOS)])
def test_every_action_of_a_failing_check_reaches_the_plan(tmp_path, scenarios):
    results = _broken(tmp_path, scenarios)
    failing = [r for r in results if r.status is not Status.OK]
    assert failing, f"{scenarios} broke nothing the checks see"
    p = plan(results)
    planned = {a.change for a in p.actions}
    for r in failing:
        for a in r.actions:
            if a.when_named:      # planned only when asked for by name (--only)
                assert a.change in {b.change for b in plan(results, only=(r.check,)).actions}
                continue
            assert a.change in planned, f"{r.check}: {a.shown} is not in the plan"
        if not r.actions or r.repair_note:
            assert any(n.startswith(f"{r.check}: ") for n in p.notes), r.check
    assert len(planned) == len(p.actions), "an action is planned twice"
    orders = [a.order for a in p.actions]
    assert orders == sorted(orders)


def test_ok_checks_and_unselected_checks_plan_nothing():
    action = Action("x.y", "do", "a", "b", argv=("/sbin/pfctl", "-e"))
    ok = Result("x.y", Status.OK, "fine", actions=(action,))
    assert plan((ok,)).actions == ()
    bad = dataclasses.replace(ok, status=Status.CRITICAL)
    assert plan((bad,), only=("other.check",)).actions == ()
    assert plan((bad,)).actions == (action,)


def test_an_action_outside_the_allow_list_is_a_note_not_a_crash():
    # isakmpd flags with characters the allow-list refuses (issue: `-v -D A=10,B`)
    odd = Action("daemon.isakmpd.flags", "add flags", "-v -D A=10,B", "-v -D A=10,B -K",
                 argv=("/usr/sbin/rcctl", "set", "isakmpd", "flags", "-v -D A=10,B -K"))
    fine = Action("pf.enabled", "enable pf", "disabled", "enabled", argv=("/sbin/pfctl", "-e"))
    p = plan((Result("daemon.isakmpd.flags", Status.WARNING, "flags", actions=(odd,)),
              Result("pf.enabled", Status.CRITICAL, "pf off", actions=(fine,))))
    assert p.actions == (fine,)
    assert len(p.notes) == 1 and p.notes[0].startswith("daemon.isakmpd.flags: repair will not run")
