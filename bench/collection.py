"""Measure a whole collection against node_exporter serving its result (issue 15).

    .venv/bin/python bench/collection.py [--baseline REV] [--sizes 0,1000,10000,20000]

In one run, for demo hosts of 0, 1,000, 10,000 and 20,000 sessions (built as
bench.py builds them, `demo reset --sessions N`, then recorded with
`obsdvpn-agent snapshot DIR`):

- collection: `obsdvpn-agent --snapshot DIR metrics` (parse, judge, render;
  no simulator), median wall time of RUNS runs, and its CPU time (user+sys of
  the child) and peak RSS;
- node_exporter (`--collector.disable-defaults --collector.textfile`) serving
  that very exposition from a textfile: median wall time of a scrape, which
  is node_exporter reading and parsing the file, and its CPU per scrape;
- growth of the collection from 1k to 10k and 10k to 20k sessions (x10 and
  x2 of the sessions: linear is at most x11 and x2.2 with start-up costs);
- peak RSS of `serve`'s collection child at 10,000 sessions: the child's
  very argv (`python -m obsdvpn_agent GLOBAL collect --config-stdin`), for a
  snapshot and for the demo host;
- scrape latency p50/p99 of `serve` at 1,000 sessions with CONCURRENT
  scrapers at once (each its own keep-alive connection and process), beside
  node_exporter scraped the same way;
- a cProfile of the 10,000-session collection in one process with the
  collectors run one after another (so each function's time is its own),
  top 10 functions by own time.

--baseline REV also times the collection of git revision REV (its agent/ unpacked
with git archive into a temporary directory, run with PYTHONPATH) on the same snapshots, for a
before/after table from one run.  The machine's load is printed with the
numbers: on a shared machine wall times move with it, CPU times much less.
Results go to bench/collection.json; a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench as common  # bench/bench.py: process, scrape and demo helpers
import psutil

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "collection.json"
REPO = HERE.parent
SIZES = (0, 1000, 10000, 20000)
RUNS = 3
NODE_SCRAPES = 5
CONCURRENT = 10
SCRAPES_EACH = 60
SCRAPE_SIZE = 1000
RSS_SIZE = 10000


def run_measured(argv: list[str], env: dict[str, str], stdin: bytes = b"",
                 timeout: float = 300) -> tuple[float, float, float, bytes]:
    """(wall s, user+sys CPU s, peak RSS MB, stdout) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as inp:
        inp.write(stdin)
        inp.seek(0)
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdin=inp, stdout=out, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                raise RuntimeError(f"{argv} did not finish in {timeout} s")
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise RuntimeError(f"{argv} exited {p.returncode}")
        out.seek(0)
        # ru_maxrss is in KiB on Linux.
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read()


def make_snapshot(n: int, work: Path) -> tuple[Path, Path]:
    state, snap = work / f"demo-{n}.json", work / f"snap-{n}"
    common.reset_demo(state, n)
    subprocess.run(common.agent_argv() + ["--demo-state", str(state), "snapshot", str(snap)],
                   check=True, capture_output=True, timeout=300, env=common.ENV)
    return state, snap


def time_collection(argv: list[str], env: dict[str, str]) -> dict:
    runs = [run_measured(argv, env) for _ in range(RUNS)]
    return {"wall_ms": statistics.median(r[0] for r in runs) * 1e3,
            "cpu_ms": statistics.median(r[1] for r in runs) * 1e3,
            "rss_mb": max(r[2] for r in runs), "body": runs[0][3]}


def node_exporter_serving(body: bytes, work: Path, n: int, procs: common.Processes) -> dict:
    textdir = work / f"textfile-{n}"
    textdir.mkdir()
    (textdir / "obsdvpn.prom").write_bytes(body)
    port = common.free_port()
    log = work / f"node-{n}.log"
    t0 = time.monotonic()
    node = procs.start(common.node_exporter_argv(textdir, port), log)
    try:
        _, first = common.wait_ready(node, port, log, t0)
        ours = sum(1 for s in common.samples(first) if s.startswith(b"obsdvpn_"))
        if ours != len(common.samples(body)) or b"node_textfile_scrape_error 0" not in first:
            raise RuntimeError(f"node_exporter serves {ours} of {len(common.samples(body))} "
                               "series of the textfile")
        proc = psutil.Process(node.pid)
        client = common.Scraper(port, common.PLAIN)
        before = proc.cpu_times()
        walls = [client.get()[0] for _ in range(NODE_SCRAPES)]
        after = proc.cpu_times()
        client.close()
    finally:
        procs.stop(node)
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"wall_ms": statistics.median(walls) * 1e3, "cpu_ms": cpu / NODE_SCRAPES * 1e3,
            "series": ours}


def _scrape_worker(args: tuple[int, int]) -> list[float]:
    port, count = args
    client = common.Scraper(port, common.PLAIN)
    try:
        for _ in range(5):
            client.get()
        return [client.get()[0] for _ in range(count)]
    finally:
        client.close()


def concurrent_scrapes(port: int) -> dict:
    # spawn, not fork: the bench has reader threads, and a fork can inherit a held lock
    with multiprocessing.get_context("spawn").Pool(CONCURRENT) as pool:
        lat = [x for part in pool.map(_scrape_worker, [(port, SCRAPES_EACH)] * CONCURRENT)
               for x in part]
    return {"scrapers": CONCURRENT, "scrapes": len(lat),
            "p50_ms": statistics.median(lat) * 1e3,
            "p99_ms": common.percentile(lat, 99) * 1e3, "max_ms": max(lat) * 1e3}


def scrape_latency(snap: Path, work: Path, procs: common.Processes) -> dict:
    """10 concurrent scrapers of serve replaying SNAP, and of node_exporter serving the
    textfile node_exporter_serving() wrote for the same snapshot."""
    port = common.free_port()
    log = work / "serve-scrape.log"
    t0 = time.monotonic()
    agent = procs.start(common.agent_argv() + ["--snapshot", str(snap), "serve", "--listen",
                                               f"127.0.0.1:{port}", "--interval", "3600"],
                        log, common.ENV)
    n_port = common.free_port()
    n_log = work / "node-scrape.log"
    node = procs.start(common.node_exporter_argv(work / f"textfile-{SCRAPE_SIZE}", n_port), n_log)
    try:
        common.wait_ready(agent, port, log, t0)
        common.wait_ready(node, n_port, n_log, time.monotonic())
        time.sleep(0.5)
        return {"agent": concurrent_scrapes(port), "node_exporter": concurrent_scrapes(n_port),
                "serve_rss_mb": common.rss_mb(agent.pid)}
    finally:
        procs.stop(agent)
        procs.stop(node)


def child_rss(snap: Path, state: Path) -> dict:
    """Peak RSS of `serve`'s collection child (server.collect_in_child()'s argv)."""
    from obsdvpn_agent.config import load
    from obsdvpn_agent.server import child_config
    cfg = child_config(load(None))
    out = {}
    for kind, global_args in (("snapshot", ["--snapshot", str(snap)]),
                              ("demo", ["--demo-state", str(state)])):
        argv = [sys.executable, "-m", "obsdvpn_agent", *global_args, "collect", "--config-stdin"]
        wall, cpu, rss, _ = run_measured(argv, common.ENV, cfg)
        out[kind] = {"peak_rss_mb": rss, "wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3}
    return out


def profile(snap: Path, top: int = 10) -> dict:
    """cProfile of one collection (collect_in_process), collectors one after another."""
    from obsdvpn_agent import probes, server
    from obsdvpn_agent.config import load
    from obsdvpn_agent.host.snapshot import SnapshotHost

    cfg = load(None)
    host = SnapshotHost(str(snap))
    host.info()
    gather = probes.gather
    probes.gather = lambda h, c, parallel=True, **kw: gather(h, c, parallel=False, **kw)
    prof = cProfile.Profile()
    try:
        prof.enable()
        server.collect_encoded(host, cfg, None)
        prof.disable()
    finally:
        probes.gather = gather
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (path, line, fn), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(path).name}:{line}({fn})", "calls": calls,
                     "own_s": own, "cumulative_s": cum})
    by_own = sorted(rows, key=lambda r: -r["own_s"])[:top]
    renders = [r for r in rows if "generate_latest" in r["function"]]
    total = sum(r["own_s"] for r in rows)
    return {"top_own": by_own, "generate_latest": renders, "total_s": total}


def baseline_tree(rev: str, work: Path) -> Path:
    """REV's agent/ unpacked under `work` (git archive: the repository is left as it is)."""
    tree = work / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "agent"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def markdown(res: dict) -> str:
    m = res["machine"]
    base = res.get("baseline_rev")
    lines = [(f"Measured by `bench/collection.py` on {m['cpu']} ({m['cpus']} CPUs, load "
             f"{m['load_start']:.1f} at start, {m['load_end']:.1f} at the end), Python "
             f"{m['python']}, {m['node_exporter']}; medians of {RUNS} runs."), "",
             "| sessions | series | collection wall | collection CPU "
             + (f"| before ({base}) wall | before CPU " if base else "")
             + "| node_exporter scrape (same series, textfile) | node_exporter CPU |",
             "|---:|---:|---:|---:|" + ("---:|---:|" if base else "") + "---:|---:|"]
    for r in res["sizes"]:
        c, ne = r["collection"], r["node_exporter"]
        row = (f"| {r['sessions']:,} | {r['series']:,} | {c['wall_ms']:,.0f} ms "
               f"| {c['cpu_ms']:,.0f} ms ")
        if base:
            b = r["baseline"]
            row += f"| {b['wall_ms']:,.0f} ms | {b['cpu_ms']:,.0f} ms "
        row += f"| {ne['wall_ms']:,.0f} ms | {ne['cpu_ms']:,.0f} ms |"
        lines.append(row)
    lines.append("")
    for name, key in (("growth of the collection", "growth"), ("before", "baseline_growth")):
        g = res.get(key) or {}
        steps = [f"{a} x{g[s + '_wall']:.1f} (CPU x{g[s + '_cpu']:.1f})"
                 for s, a in (("1k_10k", "1k -> 10k"), ("10k_20k", "10k -> 20k"))
                 if s + "_wall" in g]
        if steps:
            lines.append(f"- {name}, wall (CPU): " + ", ".join(steps))
    rss = res.get("child_rss")
    if rss:
        lines.append(f"- `serve` collection child at {RSS_SIZE:,} sessions, peak RSS: "
                     f"{rss['snapshot']['peak_rss_mb']:.0f} MB (snapshot), "
                     f"{rss['demo']['peak_rss_mb']:.0f} MB (demo host)")
    sc = res.get("scrapes")
    if sc:
        a, n = sc["agent"], sc["node_exporter"]
        lines.append(f"- {CONCURRENT} concurrent scrapers at {SCRAPE_SIZE:,} sessions "
                     f"({a['scrapes']} scrapes): serve p50 {a['p50_ms']:.2f} ms, p99 "
                     f"{a['p99_ms']:.2f} ms; node_exporter p50 {n['p50_ms']:.2f} ms, p99 "
                     f"{n['p99_ms']:.2f} ms; serve RSS {sc['serve_rss_mb']:.1f} MB")
    prof = res.get("profile")
    if prof:
        lines += ["", (f"Profile of the {RSS_SIZE:,}-session collection (cProfile, collectors "
                  f"serial, {prof['total_s']:.2f} s under the profiler), top 10 by own time:"),
                  "", "| function | calls | own | cumulative |", "|---|---:|---:|---:|"]
        for r in prof["top_own"]:
            lines.append(f"| `{r['function']}` | {r['calls']:,} | {r['own_s']:.3f} s "
                         f"| {r['cumulative_s']:.3f} s |")
        for r in prof["generate_latest"]:
            lines.append(f"- `{r['function']}`: {r['cumulative_s']:.3f} s cumulative")
    return "\n".join(lines)


def growth(rows: list[dict], key: str) -> dict:
    at = {r["sessions"]: r[key] for r in rows}
    out = {}
    for a, b, name in ((1000, 10000, "1k_10k"), (10000, 20000, "10k_20k")):
        if a in at and b in at:
            out[name + "_wall"] = at[b]["wall_ms"] / at[a]["wall_ms"]
            out[name + "_cpu"] = at[b]["cpu_ms"] / at[a]["cpu_ms"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", metavar="REV", help="also time the collection of REV")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--no-serve", action="store_true", help="skip RSS, scrapes and profile")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    work = Path(tempfile.mkdtemp(prefix="obsdvpn-bench-collection."))
    common.ENV = common.agent_env(work)
    procs = common.Processes()
    m = common.machine()
    res: dict = {"machine": {"cpu": m["cpu"], "cpus": m["cpus"], "python": m["python"],
                             "node_exporter": m["node_exporter"],
                             "load_start": os.getloadavg()[0]}, "sizes": []}
    try:
        if args.baseline:
            tree = baseline_tree(args.baseline, work)
            res["baseline_rev"] = args.baseline
            base_env = dict(common.ENV, PYTHONPATH=str(tree / "agent"))
        snaps = {}
        for n in sizes:
            print(f"collection: {n} sessions ...", file=sys.stderr, flush=True)
            state, snap = make_snapshot(n, work)
            snaps[n] = (state, snap)
            row: dict = {"sessions": n}
            c = time_collection(common.agent_argv() + ["--snapshot", str(snap), "metrics"],
                                common.ENV)
            body = c.pop("body")
            row["series"] = len(common.samples(body))
            row["collection"] = c
            if args.baseline:
                b = time_collection([sys.executable, "-m", "obsdvpn_agent", "--snapshot",
                                     str(snap), "metrics"], base_env)
                b.pop("body")
                row["baseline"] = b
            row["node_exporter"] = node_exporter_serving(body, work, n, procs)
            res["sizes"].append(row)
        res["growth"] = growth(res["sizes"], "collection")
        if args.baseline:
            res["baseline_growth"] = growth(res["sizes"], "baseline")
        if not args.no_serve:
            if RSS_SIZE in snaps:
                res["child_rss"] = child_rss(snaps[RSS_SIZE][1], snaps[RSS_SIZE][0])
                res["profile"] = profile(snaps[RSS_SIZE][1])
            if SCRAPE_SIZE in snaps:
                res["scrapes"] = scrape_latency(snaps[SCRAPE_SIZE][1], work, procs)
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    for r in res["sizes"]:
        r.pop("body", None)
    res["machine"]["load_end"] = os.getloadavg()[0]
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
