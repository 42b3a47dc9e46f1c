#!/usr/bin/env python3
"""Counts the requests that cross the real gateway while the plugin changes
what serves them, and writes the section "Requests during changes" of
benches/RESULTS.md.

    benches/traffic.py [--interval-ms 20]

On the modern test cluster, a live namespace pair (its pods played for real:
gateway proxies configured by istiod, the KMS stand-in) is set up by the
chain on the previous Istio build, then requests go to KMS through the
gateway that mounts its certificate, one after the other on fresh
connections, while in turn:

  refresh   Istio is upgraded in place (`tests/cluster/install-istio
            --build current`) and `inject` refreshes the stale sidecar: a
            rolling update of the KMS Deployment, so every KMS pod is
            replaced and the gateway's endpoints move;
  restart   `set-apikey` stores a new key and restarts the token adapter.

A request counts as served when the KMS stand-in answered it; anything else
(no connection, a reset, a 5xx or 404 from the gateway) is a failure.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/cluster"))
from runbook import ROOT, Harness, replace_section, sh  # noqa: E402

import testcluster  # noqa: E402

HEADING = "## Requests during changes"
HOST = "kms.bench.example"


class Load:
    """Requests to KMS through one gateway pod, one after another, counted."""

    def __init__(self, cluster, address, port, interval):
        self.cluster, self.address, self.port, self.interval = cluster, address, port, interval
        self.served = self.failed = 0
        self.failures = []
        self.pods = []
        self.latencies = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stopping.is_set():
            result = testcluster.one_request(self.cluster, self.address, self.port, HOST,
                                             "/kms/api/v1/keys")
            if result["reached_kms"]:
                self.served += 1
                self.latencies.append(result["seconds"])
                self.pods.append(result["answer"]["pod"])
            else:
                self.failed += 1
                self.failures.append(result.get("error") or f"{result.get('status')}")
            self.stopping.wait(self.interval)

    def during(self, action, settle):
        """Counts the requests made while `action` runs and for `settle`
        seconds after it (while the gateway's endpoints catch up), and which
        KMS pods answered them."""
        served, failed, failures, pods = (self.served, self.failed, len(self.failures),
                                          len(self.pods))
        started = time.monotonic()
        action()
        took = time.monotonic() - started
        time.sleep(settle)
        answered = self.pods[pods:]
        return {"served": self.served - served, "failed": self.failed - failed,
                "action": took, "seconds": time.monotonic() - started,
                "why": self.failures[failures:],
                "first": sorted(set(answered[:3])), "last": sorted(set(answered[-3:]))}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval-ms", type=float, default=20,
                        help="pause between one answer and the next request")
    parser.add_argument("--settle", type=float, default=5,
                        help="seconds to keep counting after each change")
    parser.add_argument("--out", default=str(ROOT / "benches/RESULTS.md"))
    args = parser.parse_args()
    h = Harness("modern")
    cluster = testcluster.running_cluster("modern")
    label = f"traffic-{os.getpid()}"
    kms, istio = f"bench-kms-{label}", f"bench-istio-{label}"
    sh(ROOT / "tests/cluster/seed-namespaces", kms, istio, "--live")
    sh(ROOT / "tests/cluster/install-istio", istio, "--build", "previous")
    workdir = Path(sh("mktemp", "-d").stdout.strip())
    ns = ["--kms-namespace", kms, "--istio-namespace", istio]
    selector = f"istio=ingressgateway-{istio}"
    h.run(h.plugin, *ns, "set-apikey", "--from-stdin", input="bench-api-key-1")
    h.run(h.plugin, *ns, "inject", "--backup-dir", workdir / "backups")
    h.run(h.plugin, *ns, "expose", "--host", HOST, "--gateway-selector", selector)
    h.run("kubectl", "--kubeconfig", h.kubeconfig, "wait", "--for=condition=Ready",
          "certificates.cert-manager.io/istio-ingressgateway-certs", "-n", istio, "--timeout=120s")
    first = sh(ROOT / "tests/cluster/request", istio, selector, HOST).stdout
    first = json.loads(first)
    if not first["reached_kms"]:
        sys.exit(f"error: the gateway does not route to KMS before the changes: {first}")
    load = Load(cluster, first["address"], first["port"], args.interval_ms / 1000)
    load.thread.start()
    time.sleep(2)

    def refresh():
        sh(ROOT / "tests/cluster/install-istio", istio, "--build", "current")
        h.run(h.plugin, *ns, "inject", "--backup-dir", workdir / "backups")

    def restart():
        h.run(h.plugin, *ns, "set-apikey", "--from-stdin", input="bench-api-key-2")

    phases = {"steady (nothing changing)": lambda: None,
              "refresh after an in-place Istio upgrade (`inject`)": refresh,
              "key rotation with restart (`set-apikey`)": restart}
    results = {}
    for name, action in phases.items():
        results[name] = load.during(action, args.settle)
        r = results[name]
        print(f"{name}: {r['served']} served, {r['failed']} failed in {r['seconds']:.1f}s "
              f"(change {r['action']:.1f}s); answered first by {', '.join(r['first'])}, last by "
              f"{', '.join(r['last'])}"
              + (f"; failures: {', '.join(sorted(set(r['why'])))}" if r["why"] else ""),
              file=sys.stderr)
    load.stopping.set()
    load.thread.join()
    sh(ROOT / "tests/cluster/clean")

    latencies = sorted(load.latencies)
    def pods(names):
        return ", ".join(n.rsplit("-", 1)[-1] for n in names)
    rows = [f"| {name} | {r['served']} | {r['failed']} | {r['action']:.1f} + {args.settle:.0f} | "
            f"{pods(r['first'])} | {pods(r['last'])} | {', '.join(sorted(set(r['why'])))} |"
            for name, r in results.items()]
    lines = [
        f"Measured by `benches/traffic.py` on {time.strftime('%Y-%m-%d')}: HTTPS requests to KMS through "
        f"a real ingress gateway (Envoy {envoy_version()} configured by istiod) on the modern test "
        f"cluster, one after another on fresh connections with {args.interval_ms:.0f} ms between an "
        f"answer and the next request, while the plugin changes what serves them, and for "
        f"{args.settle:.0f} s after each change. Served: the KMS stand-in answered; the pods that "
        f"answered are named by their suffix (a refresh replaces them all). Target: 0 failed. Median latency of a served request "
        f"{latencies[len(latencies) // 2] * 1000:.1f} ms (TLS handshake included), on "
        f"{os.cpu_count()} cores shared with the whole test cluster.",
        "",
        "| while | served | failed | seconds (change + after) | answered first by | answered last by "
        "| failures |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    out = Path(args.out)
    out.write_text(replace_section(out, HEADING, lines))


def envoy_version():
    envoy = Path(testcluster.tool_dirs(["envoy"])["envoy"]) / "envoy"
    return re.search(r"/(\d+\.\d+\.\d+)/", sh(envoy, "--version").stdout).group(1)


if __name__ == "__main__":
    main()
