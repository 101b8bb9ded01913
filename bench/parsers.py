"""Time the session-sized parsers on the outputs of a demo host of N sessions.

    .venv/bin/python bench/parsers.py [N ...]        (default: 1000 10000 20000)

For each N it builds a demo host (`demo reset --sessions N`), records one
collection of it (`obsdvpn-agent snapshot`), and times each parser whose
input grows with the sessions on the very text the agent read: ipsecctl -sa,
npppctl -n session all, ifconfig pppx, /etc/npppd/npppd-users.  Best of a few
runs, single-threaded, so the numbers are each parser's own work.  The growth
column is the time at N over the time at the previous N, to be compared with
the ratio of the sizes: a linear parser grows like the input.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from collection import make_snapshot  # bench/collection.py: demo reset, then snapshot

from obsdvpn_agent.parsers import ifconfig, ipsecctl, npppctl, npppd_users

DEFAULT_SIZES = (1000, 10000, 20000)
RUNS = 3

# The command line (or the file path) -> the parser the probes apply to it.  The
# whole line: the agent runs ipsecctl twice (-sa and -nvf), ifconfig twice.
PARSERS: dict[str, Callable[[str], object]] = {
    "/sbin/ipsecctl -sa": ipsecctl.parse_sa,
    "/usr/sbin/npppctl -n session all": npppctl.parse_session_all,
    "/sbin/ifconfig pppx": ifconfig.parse_ifconfig,
    "/etc/npppd/npppd-users": npppd_users.parse_usernames,
}


def inputs(snapshot: Path) -> dict[str, str]:
    doc = json.loads((snapshot / "snapshot.json").read_text())
    texts = {" ".join(c["argv"]): c["stdout"] for c in doc["commands"]
             if " ".join(c["argv"]) in PARSERS}
    texts.update({f["path"]: f["content"] for f in doc["files"]
                  if f["path"] in PARSERS and "content" in f})
    return texts


def best_of(fn: Callable[[str], object], text: str, runs: int = RUNS) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        fn(text)
        best = min(best, time.process_time() - t0)
    return best


def main(argv: list[str]) -> int:
    sizes = tuple(int(a) for a in argv) or DEFAULT_SIZES
    with tempfile.TemporaryDirectory(prefix="obsdvpn-bench-parsers.") as tmp:
        times: dict[int, dict[str, float]] = {}
        for n in sizes:
            texts = inputs(make_snapshot(n, Path(tmp))[1])
            times[n] = {what: best_of(PARSERS[what], text) for what, text in texts.items()}
    print("| parser | " + " | ".join(f"{n} sessions" for n in sizes) + " | growth |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for what in PARSERS:
        row = [times[n].get(what) for n in sizes]
        cells = [f"{t * 1e3:.1f} ms" if t is not None else "-" for t in row]
        growth = [f"x{b / a:.1f}" for a, b in itertools.pairwise(row) if a and b]
        print(f"| {Path(what).name} | " + " | ".join(cells) + f" | {', '.join(growth)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
