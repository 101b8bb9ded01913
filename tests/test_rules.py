"""The alert rules pass promtool, and their unit tests (tests/rules/*.yml) prove
every alert: it fires with the right labels once its `for:` has elapsed, not
before, and stays quiet on healthy and just-below-threshold series.

"Prove" is checked, not trusted: each alert is mutated (never fires, fires one
evaluation early, fires on healthy values, threshold moved by one step, label
selector dropped) and `promtool test rules` must then fail naming that alert.
A unit test file that never looked at the alert would let the mutant pass.

promtool comes from Debian's `prometheus` package (`make test` installs it); a
missing promtool fails these tests rather than skipping them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "dashboards" / "obsdvpn-alerts.yml"
RULE_TESTS = sorted((ROOT / "tests" / "rules").glob("*.yml"))
# How the unit test files name the rule file (relative to themselves).
RULES_REF = "../../dashboards/obsdvpn-alerts.yml"
# The unit tests evaluate every minute; "one evaluation early" is this much.
EVAL_STEP_S = 60


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: install Debian's prometheus package (`make deps`)"
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60,
                          check=False)


# -- the rule file, read as text (no YAML library is a dependency) ------------

ALERT_LINE = re.compile(r"^\s*- alert:\s*(\w+)\s*$")
EXPR_LINE = re.compile(r"^(\s*expr:\s*)(.+?)\s*$")
FOR_LINE = re.compile(r"^(\s*for:\s*)(\S+)\s*$")


def alert_blocks(text: str) -> dict[str, tuple[int, int]]:
    """Alert name -> (first line, end line) of its entry in the rule file."""
    lines = text.splitlines()
    starts = [(i, m.group(1)) for i, line in enumerate(lines) if (m := ALERT_LINE.match(line))]
    ends = [i for i, _ in starts[1:]] + [len(lines)]
    return {name: (i, end) for (i, name), end in zip(starts, ends)}


def field_line(lines: list[str], block: tuple[int, int], pattern: re.Pattern) -> int:
    hits = [i for i in range(*block) if pattern.match(lines[i])]
    assert len(hits) == 1, f"expected one {pattern.pattern!r} line in {lines[block[0]]!r}"
    return hits[0]


def seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


ALERTS = alert_blocks(RULES.read_text())
COMPARISON = re.compile(r"^(.*?)\s*(==|!=|>=|<=|>|<)\s*([0-9.]+)$")
FILTERED_COMPARISON = re.compile(r"^(\w+)\s*(==|!=)\s*([0-9.]+)\s+((?:and|unless)\b.+)$")


LABEL_REPLACE = re.compile(r'label_replace\((.+), ("check", .+)\)')


def mutants(expr: str, for_s: int) -> dict[str, tuple[str, int]]:
    """Broken variants of one alert: kind -> (expr, for seconds)."""
    out = {"never-fires": ("vector(0) > 1", for_s)}
    if for_s > 0:
        out["fires-early"] = (expr, for_s - EVAL_STEP_S)
    m = COMPARISON.match(expr)
    filtered = FILTERED_COMPARISON.match(expr)
    relabeled = LABEL_REPLACE.fullmatch(expr)
    if relabeled:
        # `label_replace(X == 0, "check", ...)`: X's mutants inside, and the label dropped
        inner, rest = relabeled.groups()
        for kind, (mutated, f) in mutants(inner, for_s).items():
            if kind not in out:
                out[kind] = (f"label_replace({mutated}, {rest})", f)
        out["check-label-dropped"] = (inner, for_s)
        return out
    if expr.startswith("absent("):
        out["fires-when-healthy"] = ("vector(1)", for_s)
    elif m:
        lhs, op, value = m.groups()
        # Every obsdvpn metric is >= 0, so this matches healthy series too.
        out["fires-when-healthy"] = (f"({lhs}) >= 0", for_s)
        number = float(value)
        if op == "==" and number != 0:
            # Another bad code (WARNING for CRITICAL, ...) must not trigger it.
            out["other-bad-codes"] = (f"{lhs} != 0", for_s)
        if op == ">=":
            out["threshold-excluded"] = (f"{lhs} > {value}", for_s)
            step = 1 if number.is_integer() else 0.0001
            out["threshold-lowered"] = (f"{lhs} >= {number - step:g}", for_s)
        if op == ">":
            out["threshold-included"] = (f"{lhs} >= {value}", for_s)
    elif filtered:
        # `up == 0 and on(...) (...)`: the comparison, then which series count
        lhs, op, value, rest = filtered.groups()
        out["fires-when-healthy"] = (f"({lhs}) >= 0 {rest}", for_s)
        out["filter-dropped"] = (f"{lhs} {op} {value}", for_s)
    else:
        pytest.fail(f"no mutation for the expression {expr!r}: extend mutants()")
    if "{" in expr:
        out["selector-dropped"] = (re.sub(r"\{[^}]*\}", "", expr), for_s)
    return out


def mutated_rules(name: str, expr: str, for_s: int) -> str:
    lines = RULES.read_text().splitlines()
    block = ALERTS[name]
    e = field_line(lines, block, EXPR_LINE)
    lines[e] = EXPR_LINE.sub(lambda m: m.group(1) + expr, lines[e])
    f = field_line(lines, block, FOR_LINE)
    lines[f] = FOR_LINE.sub(lambda m: f"{m.group(1)}{for_s}s", lines[f])
    return "\n".join(lines) + "\n"


def original(name: str) -> tuple[str, int]:
    lines = RULES.read_text().splitlines()
    block = ALERTS[name]
    expr = EXPR_LINE.match(lines[field_line(lines, block, EXPR_LINE)]).group(2)
    return expr, seconds(FOR_LINE.match(lines[field_line(lines, block, FOR_LINE)]).group(2))


MUTANTS = [(name, kind, expr, for_s)
           for name in ALERTS
           for kind, (expr, for_s) in mutants(*original(name)).items()]


# -- tests ---------------------------------------------------------------------

def test_rule_file_passes_promtool_check() -> None:
    r = run_promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in r.stdout


# The alerts of this file's group; others may follow it in the file.
AGENT_ALERTS = {
    "ObsdvpnAgentDown", "ObsdvpnAgentAbsent", "ObsdvpnCollectionStale", "ObsdvpnCollectorFailing",
    "ObsdvpnCheckCritical", "ObsdvpnCheckWarning", "ObsdvpnCheckUnknown", "ObsdvpnSysctlDrift",
    "ObsdvpnSysctlNotPersisted", "ObsdvpnDaemonDown", "ObsdvpnIsakmpdFlagsWrong",
    "ObsdvpnPfDisabled", "ObsdvpnPfRulesetDrift", "ObsdvpnPfPathBlocked",
    "ObsdvpnSessionsWithoutSA", "ObsdvpnPfStateTableNearLimit", "ObsdvpnRepairFailed"}
GENERIC = {"critical": "ObsdvpnCheckCritical", "warning": "ObsdvpnCheckWarning"}


def test_rule_file_has_the_agent_alerts() -> None:
    assert AGENT_ALERTS <= set(ALERTS), sorted(AGENT_ALERTS - set(ALERTS))


def test_no_alert_is_tied_to_a_job_name() -> None:
    assert not re.search(r"\bjob\s*=", RULES.read_text()), "select agents by their metrics"


def alert_field(name: str, pattern: str) -> str | None:
    start, end = ALERTS[name]
    body = "\n".join(RULES.read_text().splitlines()[start:end])
    m = re.search(pattern, body, re.MULTILINE)
    return m.group(1) if m else None


def specific_alerts() -> dict[str, str]:
    """Alert -> severity, for the alerts about one check that are not the generic
    ObsdvpnCheck* ones: they name the check (a `check:` label, or label_replace)."""
    out = {}
    for name in ALERTS:
        if name.startswith("ObsdvpnCheck"):
            continue
        expr = original(name)[0]
        if alert_field(name, r"^\s*check: (\S+)$") or 'label_replace(' in expr \
                and '"check"' in expr or 'check="' in expr:
            out[name] = alert_field(name, r"^\s*severity: (\w+)$") or ""
    return out


def test_the_specific_alerts_name_their_check() -> None:
    """Alertmanager inhibits the generic alert of the same (instance, check) by them."""
    assert set(specific_alerts()) == {
        "ObsdvpnSysctlDrift", "ObsdvpnSysctlNotPersisted", "ObsdvpnDaemonDown",
        "ObsdvpnIsakmpdFlagsWrong", "ObsdvpnPfDisabled", "ObsdvpnPfRulesetDrift",
        "ObsdvpnPfPathBlocked", "ObsdvpnSessionsWithoutSA", "ObsdvpnPfStateTableNearLimit"}


def test_a_specific_alert_fires_no_later_than_the_generic_one() -> None:
    """An inhibiting alert must be there first, or the generic one pages in between."""
    for name, severity in specific_alerts().items():
        generic = GENERIC[severity]
        assert original(name)[1] <= original(generic)[1], f"{name} waits longer than {generic}"
    # isakmpd down inhibits ipsec.ike_rules' CRITICAL, another check
    assert original("ObsdvpnDaemonDown")[1] <= original("ObsdvpnCheckCritical")[1]
    # a failing collector inhibits the UNKNOWN checks it feeds
    assert original("ObsdvpnCollectorFailing")[1] <= original("ObsdvpnCheckUnknown")[1]


def test_every_alert_has_severity_summary_and_description() -> None:
    lines = RULES.read_text().splitlines()
    for name, (start, end) in ALERTS.items():
        body = "\n".join(lines[start:end])
        assert re.search(r"severity: (critical|warning)\b", body), name
        assert re.search(r"summary: \".+\"", body), name
        # the description tells the admin what to run: a command in backquotes
        assert re.search(r"description: \".*`[^`]+`.*\"", body), name


def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no tests/rules/*.yml"
    r = run_promtool("test", "rules", *map(str, RULE_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(RULE_TESTS), r.stdout


def test_unit_tests_name_only_real_alerts_and_cover_all() -> None:
    named = {m for f in RULE_TESTS
             for m in re.findall(r"^\s*alertname:\s*(\w+)\s*$", f.read_text(), re.MULTILINE)}
    assert named == set(ALERTS), (f"unknown: {sorted(named - set(ALERTS))}, "
                                  f"untested: {sorted(set(ALERTS) - named)}")
    for f in RULE_TESTS:
        assert f"  - {RULES_REF}\n" in f.read_text(), f"{f.name} must load {RULES_REF}"


@pytest.mark.parametrize(("name", "kind", "expr", "for_s"), MUTANTS,
                         ids=[f"{n}-{k}" for n, k, _, _ in MUTANTS])
def test_unit_tests_catch_a_broken_alert(tmp_path: Path, name: str, kind: str, expr: str,
                                         for_s: int) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(mutated_rules(name, expr, for_s))
    copies = []
    # Only the files about this alert: promtool then runs in a fraction of the time.
    for f in (f for f in RULE_TESTS if f"alertname: {name}\n" in f.read_text()):
        copy = tmp_path / f.name
        copy.write_text(f.read_text().replace(RULES_REF, str(rules)))
        copies.append(str(copy))
    r = run_promtool("test", "rules", *copies)
    assert r.returncode != 0, f"{name} with {kind} ({expr}, for {for_s}s) passed every test"
    # named in a failed expectation, so not a mutant promtool could not even load
    assert f"alertname: {name}," in r.stdout + r.stderr, r.stdout + r.stderr
