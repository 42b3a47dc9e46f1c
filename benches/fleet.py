#!/usr/bin/env python3
"""Measures `status` over many contexts in one run against one context, on
a far-away cluster, and writes the section "Many contexts in one run" of
benches/RESULTS.md.

    benches/fleet.py [--rtt-ms 100] [--runs 3] [--contexts 1,10,50]

The modern test cluster gets one live namespace pair (its gateway pod
runs a real proxy, which `status` reads) set up by the plugin's chain, so
every context passes every check. A kubeconfig then holds N
contexts, all reaching that cluster through benches/latency_proxy.py (each
its own connection, as N clusters would be), and `status --context c1 ...
--context cN` runs over them; N = 1 is the single-context run. Wall time is
the median of --runs runs; peak RSS is the process's high-water mark in one
more run.
"""

import argparse
import json
import os
import resource
import re
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runbook import (ROOT, Harness, LatencyProxy, median, peak_rss, plugin_chain,  # noqa: E402
                     replace_section, sh, wait_until_status_passes)

HEADING = "## Many contexts in one run"
# How many contexts status reads at once, and how many more open their
# connections ahead of their turn, as the source says.
STATUS_SOURCE = (ROOT / "src/commands/status.rs").read_text()
CONCURRENT = re.search(r"const CONCURRENT_CONTEXTS: usize = (\d+);", STATUS_SOURCE).group(1)
AHEAD = re.search(r"const OPENING_AHEAD: usize = (\d+);", STATUS_SOURCE).group(1)
# Targets, as multiples of one context's wall time, and the peak RSS at 50.
TIME_TARGETS = {10: 1.5, 50: 3.0}
RSS_TARGET_MB = 40


def fleet_kubeconfig(proxy_kubeconfig, count):
    """A kubeconfig of `count` contexts, each with its own cluster entry
    pointing at the proxy and the cluster's admin user."""
    config = yaml.safe_load(Path(proxy_kubeconfig).read_text())
    cluster, user = config["clusters"][0], config["users"][0]
    names = [f"site-{index:02d}" for index in range(1, count + 1)]
    fleet = {
        "apiVersion": "v1", "kind": "Config", "current-context": names[0],
        "clusters": [{"name": name, "cluster": cluster["cluster"]} for name in names],
        "users": [user],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user["name"]}} for name in names],
    }
    path = Path(proxy_kubeconfig).with_name(f"fleet-{count}.kubeconfig")
    path.write_text(yaml.safe_dump(fleet))
    return path, names


def status_command(h, kubeconfig, names, kms, istio):
    contexts = [arg for name in names for arg in ("--context", name)]
    return [h.plugin, "--kubeconfig", kubeconfig, "--kms-namespace", kms, "--istio-namespace", istio,
            "status", "-o", "json", *contexts]


def measure(h, command, runs):
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        result = sh(*command, env=h.env, check=False)
        walls.append(time.monotonic() - started)
        if result.returncode != 0:
            sys.exit(f"error: status exited with {result.returncode}:\n{result.stdout[-2000:]}{result.stderr}")
        document = json.loads(result.stdout)
        if "contexts" in document and document["summary"]["passed"] != len(document["contexts"]):
            sys.exit(f"error: not every context passed: {document['summary']}")
    # The plugin's own CPU time (user + system) in the peak-RSS run: what
    # of the wall time is the plugin working rather than waiting on the
    # one test API server and the proxy, which share this machine.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = peak_rss(command, None, h.env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return median(walls), rss, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rtt-ms", type=float, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--contexts", default="1,10,50")
    parser.add_argument("--out", default=str(ROOT / "benches/RESULTS.md"))
    args = parser.parse_args()
    counts = [int(n) for n in args.contexts.split(",")]
    h = Harness("modern")
    kms, istio = h.fresh_namespaces("fleet", live=True)
    workdir = Path(sh("mktemp", "-d").stdout.strip())
    plugin_chain(h, kms, istio, workdir)
    wait_until_status_passes(h, kms, istio)
    proxy = LatencyProxy(h, args.rtt_ms)
    results = {}
    try:
        for count in counts:
            kubeconfig, names = fleet_kubeconfig(proxy.kubeconfig, count)
            results[count] = measure(h, status_command(h, kubeconfig, names, kms, istio), args.runs)
            wall, rss, cpu = results[count]
            print(f"{count} contexts: {wall:.2f}s, {rss:.1f} MB, {cpu:.2f}s CPU", file=sys.stderr)
    finally:
        proxy.close()

    one = results[counts[0]][0]
    rows = []
    for count in counts:
        wall, rss, cpu = results[count]
        target = TIME_TARGETS.get(count)
        targets = [f"≤ {target}x" if target else ""]
        if count == max(counts):
            targets.append(f"RSS < {RSS_TARGET_MB} MB")
        rows.append(f"| {count} | {wall:.2f} | {wall / one:.2f}x | {cpu:.2f} | {rss:.1f} | "
                    f"{', '.join(t for t in targets if t)} |")
    lines = [
        f"Measured by `benches/fleet.py` on {time.strftime('%Y-%m-%d')}: `status` over N kubeconfig contexts in "
        f"one run, every one reaching the modern test cluster through `benches/latency_proxy.py` at "
        f"{args.rtt_ms:.0f} ms round trip, each context its own connection, the same set-up namespace pair "
        f"in all (every context passes every check). Wall time is the median of {args.runs} runs; N = 1 is "
        f"the single-context run. Contexts read {CONCURRENT} at a time, {AHEAD} more opening their connections "
        f"ahead of their turn. Plugin CPU is the plugin "
        f"process's user and system time in one run; the API server and the proxy every context reaches "
        f"run on the same {os.cpu_count()} cores.",
        "",
        "| contexts | wall time (s) | of one context's | plugin CPU (s) | peak RSS (MB) | target |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    out = Path(args.out)
    out.write_text(replace_section(out, HEADING, lines))
    print(out)


if __name__ == "__main__":
    main()
