"""The per-session metric families as exposition text, without prometheus_client.

    # HELP obsdvpn_ppp_session_receive_bytes Bytes received from the client.
    # TYPE obsdvpn_ppp_session_receive_bytes counter
    obsdvpn_ppp_session_receive_bytes_total{interface="pppx0",user="alice"} 123456.0

Six families carry one series per PPP session; at 10,000 sessions their
60,000 samples cost prometheus_client about 0.1 ms each to build as Sample
objects and to render (generate_latest() validates and escapes every label
name of every sample), which made rendering most of a collection.  These
families have fixed, valid names, string label values and plain gauge or
counter samples, so they are written here directly: the same bytes as
prometheus_client 0.26's generate_latest() (text 0.0.4) and
openmetrics.exposition.generate_latest() (without its closing `# EOF`) for
the same families, which tests/test_exposition.py proves sample for sample.

Rules copied from prometheus_client/exposition.py and openmetrics/exposition.py
(version 0.26.0):
- HELP text: text format escapes `\\` and newline; OpenMetrics also `"`.
- TYPE and HELP name a counter `NAME_total` in the text format, `NAME` in
  OpenMetrics; its samples are `NAME_total` in both.
- Labels sorted by name; values escape `\\`, newline and `"` in both formats.
- Values by prometheus_client.utils.floatToGoString() (`1.0`, `1.795e+09`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

# prometheus_client's own formatting of a value (the very function its
# renderers call), typed here because the library leaves it untyped.
_go_float: Callable[[float], str] = floatToGoString

# prometheus_client validation.py: METRIC_NAME_RE, METRIC_LABEL_NAME_RE and the
# reserved `__` prefix.  Names outside these would need escaping: refused.
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class Family:
    """A gauge or counter family: label values and a value per sample.

    `name` is the family name (a counter's without `_total`, as
    CounterMetricFamily keeps it); each sample's label values are in the
    order of `labelnames`.
    """

    name: str
    kind: str                                   # 'gauge' | 'counter'
    documentation: str
    labelnames: tuple[str, ...]
    samples: Sequence[tuple[Sequence[str], float]]


def _label_value(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _check_names(family: Family) -> None:
    if family.kind not in ("gauge", "counter"):
        raise ValueError(f"{family.name}: only gauge and counter families, not {family.kind}")
    if not _METRIC_NAME.fullmatch(family.name) or family.name.endswith("_total"):
        raise ValueError(f"invalid metric family name {family.name!r}")
    for label in family.labelnames:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"{family.name}: invalid label name {label!r}")
    if len(set(family.labelnames)) != len(family.labelnames):
        raise ValueError(f"{family.name}: a label name twice")


_MINUS_INF = float("-inf")
_EXACT = 2 ** 53                # integers below it are exact as floats


def _value_text(value: float) -> str:
    """floatToGoString(value), without its function calls for the usual values.

    It is repr(float(value)) except for the infinities, nan and positive numbers
    from 1e6 to 1e16, which Go writes with an exponent: for a whole number there (byte
    counters, Unix times) that is its digits as `d.ddd` without trailing zeros
    and `e+` the digit count less one, as floatToGoString() builds it from repr.
    """
    if _MINUS_INF < value < 1e6:
        return repr(float(value))
    if 1e6 <= value < _EXACT and value == (whole := int(value)):
        digits = str(whole)
        return f"{(digits[0] + '.' + digits[1:]).rstrip('0.')}e+{len(digits) - 1:02d}"
    return _go_float(value)


@dataclass(frozen=True)
class SessionExposition:
    """The per-session families in both formats, as pieces to join: the sample
    lines are the same bytes in both, so they are rendered once and shared."""

    text: list[bytes]
    openmetrics: list[bytes]


def render_session_families(families: Iterable[Family]) -> SessionExposition:
    """The exposition of `families`, in their order, as prometheus_client writes them.

    Meant to be spliced where prometheus_client would have written the same
    families: between the families before and after them (for OpenMetrics,
    before the final `# EOF`).
    """
    text: list[bytes] = []
    openmetrics: list[bytes] = []
    # The `{...}` of one set of label values, shared by the families that carry
    # the very same values object (five of the six per-session families do).
    # Keyed by identity, with the object kept so that its id cannot be reused.
    label_text: dict[tuple[str, ...], dict[int, tuple[Sequence[str], str]]] = {}
    for family in families:
        _check_names(family)
        sample_name = family.name + ("_total" if family.kind == "counter" else "")
        om_help = _label_value(family.documentation)
        text_help = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        names = family.labelnames
        order = sorted(range(len(names)), key=names.__getitem__)
        known = label_text.setdefault(names, {})
        lines: list[str] = []
        for values, value in family.samples:
            seen = known.get(id(values))
            if seen is None:
                if len(values) != len(names):
                    raise ValueError(f"{family.name}: {len(values)} label values for "
                                     f"{len(names)} label names")
                seen = known[id(values)] = (values, "{" + ",".join(
                    f'{names[i]}="{_label_value(values[i])}"' for i in order) + "}"
                    if names else "")
            lines.append(f"{sample_name}{seen[1]} {_value_text(value)}\n")
        body = "".join(lines).encode("utf-8")
        text += [f"# HELP {sample_name} {text_help}\n# TYPE {sample_name} {family.kind}\n"
                 .encode(), body]
        openmetrics += [f"# HELP {family.name} {om_help}\n# TYPE {family.name} {family.kind}\n"
                        .encode(), body]
    return SessionExposition(text, openmetrics)
