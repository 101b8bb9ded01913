"""Is the loaded ruleset what pf.conf loads?  A diff of `pfctl -sr` and `pfctl -nvf`.

Both outputs come from print_rule() (sbin/pfctl/pfctl_parser.c rev 1.352),
so after parsers.pfctl.normalize_rule() equal rules have equal text.
"""

from __future__ import annotations

import difflib

from ..parsers.pfctl import PfRuleset

_MAX_DIFFERENCES = 50


def rulesets_equal(loaded: PfRuleset, config: PfRuleset) -> tuple[bool, tuple[str, ...]]:
    """Compare the rules of `pfctl -sr` (loaded) and `pfctl -nvf` (config), in order.

    Differences read like `diff loaded config`: '- RULE' is loaded but not in
    the config, '+ RULE' is in the config but not loaded; a rule inside an
    anchor is shown as '- [one/two] RULE'.  Options, tables and macros are not
    compared.  Rules inside an anchor are compared only where both sides
    print that anchor's block: `-sr` expands only unnamed `{ }` anchors, while
    `-nvf` also prints the inline rules of named ones.  Not modelled: rules
    that `load anchor` adds after the main ruleset in `-nvf`, and expired
    `once` rules that `-sr` hides.  At most 50 lines are returned, the last
    one saying how many were left out.
    """
    def keys(rs: PfRuleset, shown: set[str | None]) -> list[str]:
        return [f"[{r.path}] {r.text}" if r.path else r.text
                for r in rs.rules if not r.path or r.path in shown]

    expanded_both = ({r.anchor_path for r in loaded.rules if r.expanded}
                     & {r.anchor_path for r in config.rules if r.expanded})
    a, b = keys(loaded, expanded_both), keys(config, expanded_both)
    diffs: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            diffs += [f"- {k}" for k in a[i1:i2]]
        if op in ("insert", "replace"):
            diffs += [f"+ {k}" for k in b[j1:j2]]
    if len(diffs) > _MAX_DIFFERENCES:
        left = len(diffs) - (_MAX_DIFFERENCES - 1)
        diffs = diffs[:_MAX_DIFFERENCES - 1] + [f"... and {left} more differences"]
    return not diffs, tuple(diffs)
