#!/usr/bin/env python3
"""Measures the plugin against the runbook it replaces, on the local test
cluster, and writes benches/RESULTS.md.

    benches/runbook.py [--profile modern] [--runs 5]

Each side starts from the same fresh seed (a new namespace pair holding the
runbook's workloads). The runbook side runs the runbook's commands in order,
as an operator would script them (`kubectl patch` for the interactive
`kubectl edit`; the runbook's YAML with only what would not apply corrected),
then waits until everything is ready. The plugin side runs set-apikey, inject,
expose and map-identity, which end ready by themselves. Requests are counted
from the API server's audit log by User-Agent.
"""

import argparse
import base64
import copy
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_CRN = "crn:v1:staging:public:sts:us-south:a/1234:123456789::"
TARGET_CRN = "crn:v1:icp:private:kms:mycluster:n/kube-system:0d705d95-e216-4ce4-9c81-38eeef4eee3b::"
MUTATING = {"create", "update", "patch", "delete", "deletecollection"}


def sh(*args, input=None, env=None, check=True):
    result = subprocess.run([str(a) for a in args], input=input, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def last_line(text):
    return text.strip().splitlines()[-1]


class Harness:
    def __init__(self, profile):
        self.profile = profile
        self.kubeconfig = Path(last_line(sh(ROOT / "tests/cluster/up", "--profile", profile).stdout))
        self.kube_bin = Path(last_line(sh(ROOT / "tests/cluster/build-tools", "kubernetes").stdout))
        self.istio_bin = Path(last_line(sh(ROOT / "tests/cluster/build-tools", "istioctl").stdout))
        self.audit = self.kubeconfig.with_name("audit.log")
        sh("cargo", "build", "--release", "--locked", "--quiet", check=True)
        # Where cargo put it: CARGO_TARGET_DIR when set, as for cargo itself.
        release = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
        self.plugin = release / "kubectl-kms_sts"
        self.env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                        PATH=f"{release}:{self.kube_bin}:{self.istio_bin}:{os.environ['PATH']}")
        self.processes = 0
        self.counter = 0

    def through(self, kubeconfig):
        """The same harness, reaching the cluster through `kubeconfig`."""
        far = copy.copy(self)
        far.kubeconfig = kubeconfig
        far.env = dict(self.env, KUBECONFIG=str(kubeconfig))
        return far

    def fresh_namespaces(self, label, live=False):
        """A fresh namespace pair whose gateway pods are labelled apart from
        every other pair's (with a real istiod, Gateways selecting the same
        pods meet); `live`: its pods are played, so `status` reads a real
        gateway proxy."""
        self.counter += 1
        kms, istio = f"bench-kms-{label}-{os.getpid()}-{self.counter}", f"bench-istio-{label}-{os.getpid()}-{self.counter}"
        sh(ROOT / "tests/cluster/seed-namespaces", kms, istio, "--profile", self.profile,
           "--live" if live else "--own-gateways")
        return kms, istio

    def run(self, *args, input=None):
        self.processes += 1
        return sh(*args, input=input, env=self.env)

    def audit_offset(self):
        return self.audit.stat().st_size

    def audit_events(self, offset, agents):
        time.sleep(1.5)
        with open(self.audit, "rb") as f:
            f.seek(offset)
            lines = f.read().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if e.get("userAgent", "").startswith(agents)]


def counts(events):
    by_verb = Counter(e["verb"] for e in events)
    mutating = sum(n for verb, n in by_verb.items() if verb in MUTATING)
    reviews = sum(1 for e in events if e["verb"] == "create"
                  and e.get("objectRef", {}).get("resource", "").startswith("selfsubject"))
    by_agent = Counter(e["userAgent"].split("/")[0] for e in events)
    return {"total": len(events), "by_verb": dict(sorted(by_verb.items())),
            "by_agent": dict(sorted(by_agent.items())),
            "mutating": mutating - reviews, "reviews": reviews}


def runbook(h, kms, istio, workdir, marks=None):
    """The runbook's commands, in order, then waits until ready. `marks`, when
    given, receives the time each step's commands end (before the waits)."""
    marks = [] if marks is None else marks
    key = base64.b64encode(b"bench-api-key").decode()
    kubectl = ["kubectl", "--kubeconfig", h.kubeconfig]
    h.run(*kubectl, "patch", "secret", "sts-apikey", "-n", istio, "-p", json.dumps({"data": {"apikey": key}}))
    pods = h.run(*kubectl, "get", "pods", "-n", istio, "-o", "name").stdout.split()
    for pod in pods:
        if pod.startswith("pod/tokenadapter"):
            h.run(*kubectl, "delete", pod, "-n", istio)
    marks.append(("set-apikey", time.monotonic()))
    saved = workdir / "kms-api-deployment.yaml"
    saved.write_text(h.run(*kubectl, "get", "deployment", "key-management-api", "-n", kms, "-o", "yaml").stdout)
    # `istioctl kube-inject -f FILE` alone reads the injector ConfigMap itself
    # and fails on this Istio ("cannot unmarshal string into ... int32"); the
    # working form is given the ConfigMaps' contents as files.
    config = {}
    for name, cm, key in [("inject", "istio-sidecar-injector", "config"),
                          ("values", "istio-sidecar-injector", "values"),
                          ("mesh", "istio", "mesh")]:
        config[name] = workdir / f"{name}.yaml"
        config[name].write_text(h.run(*kubectl, "get", "configmap", cm, "-n", istio, "-o",
                                      f"jsonpath={{.data.{key}}}").stdout)
    injected = workdir / "kms-api-deployment-injected.yaml"
    injected.write_text(h.run("istioctl", "kube-inject", "--kubeconfig", h.kubeconfig, "-i", istio,
                              "-f", saved, "--injectConfigFile", config["inject"],
                              "--valuesFile", config["values"], "--meshConfigFile", config["mesh"]).stdout)
    h.run(*kubectl, "delete", "deployment", "key-management-api", "-n", kms)
    h.run(*kubectl, "apply", "-f", injected, "-n", kms)
    marks.append(("inject", time.monotonic()))
    # The runbook's YAML: the certificate on the API this cluster serves, the
    # IP in ipAddresses and no typographic quotes (both would be rejected or
    # produce a useless certificate); everything else as written.
    files = {
        "certificate.yaml": f"""apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: istio-ingressgateway-certs
  namespace: {istio}
spec:
  secretName: istio-ingressgateway-certs
  issuerRef:
    name: icp-ca-issuer
    kind: ClusterIssuer
  commonName: "istio-service"
  ipAddresses:
  - 9.42.136.50
""",
        "gateway.yaml": f"""apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: kmsgateway
  namespace: {kms}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      name: https
      number: 443
      protocol: HTTPS
    tls:
      mode: SIMPLE
      serverCertificate: /etc/istio/ingressgateway-certs/tls.crt
      privateKey: /etc/istio/ingressgateway-certs/tls.key
    hosts:
    - "*"
""",
        "virtualservice.yaml": f"""apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: kmsvservice
  namespace: {kms}
spec:
  hosts:
  - "*"
  gateways:
  - kmsgateway
  http:
  - match:
    - uri:
        prefix: /kms/api
    rewrite:
        uri: /api
    route:
    - destination:
        host: kms-api
        port:
          number: 28674
""",
        "destinationrule.yaml": f"""apiVersion: "networking.istio.io/v1alpha3"
kind: "DestinationRule"
metadata:
  namespace: "{kms}"
  name: "kms-api-tls"
spec:
  host: kms-api
  trafficPolicy:
    tls:
      mode: SIMPLE
""",
        "sample-policy.yaml": f"""apiVersion: policy.ibm.com/v1alpha1
kind: IdentityMappingPolicy
metadata:
  name: stspolicy
  namespace: {istio}
spec:
  identityMapping:
    sourceIdentity: '{SOURCE_CRN}'
    targetCredentials:
      apiKeyRef:
        propertyName: apikey
        secretName: sts-apikey
  mappingType: inbound
  sourceAuthority: ibm-cloud-iam
  targetResources:
  - '{TARGET_CRN}'
""",
    }
    for name, text in files.items():
        (workdir / name).write_text(text)
        h.run(*kubectl, "apply", "-f", workdir / name)
        if name == "destinationrule.yaml":
            marks.append(("expose", time.monotonic()))
    marks.append(("map-identity", time.monotonic()))
    h.run(*kubectl, "rollout", "status", "deployment/tokenadapter", "-n", istio, "--timeout=120s")
    h.run(*kubectl, "rollout", "status", "deployment/key-management-api", "-n", kms, "--timeout=120s")
    h.run(*kubectl, "wait", "--for=condition=Ready", "certificates.cert-manager.io/istio-ingressgateway-certs",
          "-n", istio, "--timeout=120s")


def expose_args(istio):
    """`expose` as the benches run it: an address host, on the pair's own
    gateway pods (see `fresh_namespaces`)."""
    return ["expose", "--host", "9.42.136.50", "--gateway-selector", f"istio=ingressgateway-{istio}"]


def plugin_chain(h, kms, istio, workdir):
    ns = ["--kms-namespace", kms, "--istio-namespace", istio]
    h.run(h.plugin, *ns, "set-apikey", "--from-stdin", input="bench-api-key")
    h.run(h.plugin, *ns, "inject", "--backup-dir", workdir / "backups")
    h.run(h.plugin, *ns, *expose_args(istio))
    h.run(h.plugin, *ns, "map-identity", "--source-crn", SOURCE_CRN, "--target-crn", TARGET_CRN)
    # The chain ends ready except for the certificate, which cert-manager
    # issues asynchronously; wait for it exactly as the runbook side does.
    h.run("kubectl", "--kubeconfig", h.kubeconfig, "wait", "--for=condition=Ready",
          "certificates.cert-manager.io/istio-ingressgateway-certs", "-n", istio, "--timeout=120s")


def wait_until_status_passes(h, kms, istio, limit=120):
    """`status` until it passes: a live pair's gateway proxy takes what
    istiod sends it a moment after the chain."""
    status = [h.plugin, "--kms-namespace", kms, "--istio-namespace", istio, "status"]
    deadline = time.monotonic() + limit
    while sh(*status, env=h.env, check=False).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit(f"error: status of {kms} and {istio} did not pass within {limit}s:\n"
                     f"{sh(*status, env=h.env, check=False).stdout}")
        time.sleep(1)


def measure(h, side, runs):
    results = []
    for index in range(runs):
        kms, istio = h.fresh_namespaces(side)
        workdir = Path(sh("mktemp", "-d").stdout.strip())
        h.processes = 0
        offset = h.audit_offset()
        started = time.monotonic()
        (runbook if side == "runbook" else plugin_chain)(h, kms, istio, workdir)
        wall = time.monotonic() - started
        # kubectl's and istioctl's requests count on both sides (the plugin
        # side runs istioctl inside inject, and kubectl wait at the end).
        agents = ("kubectl/", "istioctl/", "kubectl-kms-sts/")
        events = h.audit_events(offset, agents)
        results.append({"wall": wall, "processes": h.processes, **counts(events)})
        print(f"{side} run {index + 1}: {wall:.2f}s, {len(events)} requests", file=sys.stderr)
    return results


def median(values):
    return statistics.median(values)


def startup(command, runs=21):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(part) for part in command], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return median(times) * 1000


def status_cost(h, runs=5):
    kms, istio = h.fresh_namespaces("status", live=True)
    workdir = Path(sh("mktemp", "-d").stdout.strip())
    plugin_chain(h, kms, istio, workdir)
    wait_until_status_passes(h, kms, istio)
    walls, requests = [], []
    for _ in range(runs):
        offset = h.audit_offset()
        started = time.perf_counter()
        sh(h.plugin, "--kms-namespace", kms, "--istio-namespace", istio, "status", env=h.env)
        walls.append(time.perf_counter() - started)
        requests.append(len(h.audit_events(offset, ("kubectl-kms-sts/",))))
    return median(walls), median(requests)


def peak_rss(args, stdin, env):
    """The process's own high-water mark (VmHWM), read until it exits; child
    processes (istioctl under inject) are not included."""
    proc = subprocess.Popen([str(a) for a in args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    if stdin is not None:
        proc.stdin.write(stdin)
    proc.stdin.close()
    peak = 0
    while proc.poll() is None:
        try:
            for line in open(f"/proc/{proc.pid}/status"):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, args))} exited with {proc.returncode}")
    return peak / 1024


def peak_rss_of_chain(h):
    kms, istio = h.fresh_namespaces("rss")
    workdir = Path(sh("mktemp", "-d").stdout.strip())
    ns = ["--kms-namespace", kms, "--istio-namespace", istio]
    return {
        name: peak_rss([h.plugin, *ns, *args], stdin, h.env)
        for name, args, stdin in [
            ("set-apikey", ["set-apikey", "--from-stdin"], "bench-api-key"),
            ("inject", ["inject", "--backup-dir", str(workdir / "b")], None),
            ("expose", expose_args(istio), None),
            ("map-identity", ["map-identity", "--source-crn", SOURCE_CRN, "--target-crn", TARGET_CRN], None),
        ]
    }


class LatencyProxy:
    """benches/latency_proxy.py in front of the test cluster's API server,
    and a kubeconfig that reaches the server through it."""

    def __init__(self, h, rtt_ms):
        text = h.kubeconfig.read_text()
        server = re.search(r"server: https://([^\s/]+)", text).group(1)
        self.proc = subprocess.Popen([sys.executable, ROOT / "benches/latency_proxy.py", "--upstream", server,
                                      "--rtt-ms", str(rtt_ms)], stdout=subprocess.PIPE, text=True)
        address = self.proc.stdout.readline().strip()
        self.kubeconfig = Path(sh("mktemp").stdout.strip())
        self.kubeconfig.write_text(text.replace(f"https://{server}", f"https://{address}"))

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def timed(h, *args, input=None):
    started = time.monotonic()
    h.run(*args, input=input)
    return time.monotonic() - started


def plugin_steps(h, kms, istio, workdir):
    """The chain, each step timed in seconds."""
    ns = [h.plugin, "--kms-namespace", kms, "--istio-namespace", istio]
    return {
        "set-apikey": timed(h, *ns, "set-apikey", "--from-stdin", input="bench-api-key"),
        "inject": timed(h, *ns, "inject", "--backup-dir", workdir / "backups"),
        "expose": timed(h, *ns, *expose_args(istio)),
        "map-identity": timed(h, *ns, "map-identity", "--source-crn", SOURCE_CRN, "--target-crn", TARGET_CRN),
    }


def plugin_rereads(h, kms, istio):
    """What can run again on a set-up namespace pair without changing it."""
    ns = [h.plugin, "--kms-namespace", kms, "--istio-namespace", istio]
    return {
        "expose, nothing to change": timed(h, *ns, *expose_args(istio)),
        "status": timed(h, *ns, "status"),
    }


def runbook_steps(h, kms, istio, workdir):
    """The runbook's commands of each step, timed in seconds, its waits left out."""
    marks = [("start", time.monotonic())]
    runbook(h, kms, istio, workdir, marks)
    return {name: end - start for (_, start), (name, end) in zip(marks, marks[1:])}


def runbook_rereads(h, kms, istio):
    return {"status": timed(h, "kubectl", "get", "deployment", "key-management-api", "-n", kms)}


def latency(h, rtt_ms, runs):
    """Each step's wall time through the proxy, and its round trips: the time
    it takes more than on the local cluster, in units of the round-trip time.
    Steps that write run on fresh seeds, `runs` each way; steps that only
    read run `2 * runs + 1` times each way, alternating, on one set-up pair.
    Medians throughout."""
    proxy = LatencyProxy(h, rtt_ms)
    try:
        far = h.through(proxy.kubeconfig)
        result = {}
        sides = (("runbook", runbook_steps, runbook_rereads), ("plugin", plugin_steps, plugin_rereads))
        for side, writing_steps, reading_steps in sides:
            samples = {"near": [], "far": []}
            for index in range(runs):
                for reach, harness in (("near", h), ("far", far)):
                    kms, istio = h.fresh_namespaces(f"rtt-{side}")
                    workdir = Path(sh("mktemp", "-d").stdout.strip())
                    samples[reach].append(writing_steps(harness, kms, istio, workdir))
                print(f"latency {side} run {index + 1}: {samples['far'][-1]}", file=sys.stderr)
            if side == "plugin":
                # Read again on a live pair: status reads its gateway proxy
                # (a played pod's readiness would slow the writing steps'
                # rollout waits with what no cluster pays).
                kms, istio = h.fresh_namespaces("rtt-plugin-live", live=True)
                plugin_chain(h, kms, istio, Path(sh("mktemp", "-d").stdout.strip()))
                wait_until_status_passes(h, kms, istio)
            rereads = {"near": [], "far": []}
            for _ in range(2 * runs + 1):
                for reach, harness in (("near", h), ("far", far)):
                    rereads[reach].append(reading_steps(harness, kms, istio))
            result[side] = {}
            for kind in (samples, rereads):
                for step in kind["far"][0]:
                    far_s = median([run[step] for run in kind["far"]])
                    near_s = median([run[step] for run in kind["near"]])
                    if kind is samples:
                        trips = median([(f[step] - n[step]) * 1000 / rtt_ms
                                        for f, n in zip(kind["far"], kind["near"])])
                    else:
                        trips = (far_s - near_s) * 1000 / rtt_ms
                    result[side][step] = {"far": far_s, "near": near_s, "round_trips": trips}
        return result
    finally:
        proxy.close()


def latency_lines(result, rtt_ms, runs):
    runbook_side, plugin_side = result["runbook"], result["plugin"]
    targets = {"status": 5, "expose, nothing to change": 5, "expose": 6, "map-identity": 6}
    rows = [
        ("set-apikey", "set-apikey", "set-apikey (with its rollout wait)"),
        ("inject", "inject", "inject (with its rollout wait)"),
        ("expose", "expose", "expose"),
        (None, "expose, nothing to change", "expose again, nothing to change"),
        ("map-identity", "map-identity", "map-identity"),
        ("status", "status", "status (runbook: one `kubectl get`)"),
    ]
    lines = [
        f"## On a far-away cluster ({rtt_ms:g} ms round trip)",
        "",
        f"Measured by `benches/runbook.py` through `benches/latency_proxy.py`, which delivers every TCP chunk "
        f"{rtt_ms / 2:g} ms late in each direction (and the TCP handshake one round trip late), concurrency kept. "
        f"Round trips = (time through the proxy - time without it) / {rtt_ms:g} ms, median of {runs} fresh seeds "
        "each way. The runbook side is its kubectl commands for the step (an operator's script), "
        "without its final waits.",
        "",
        "| step | runbook s | runbook round trips | plugin s (locally) | plugin round trips | target (round trips) |",
        "|---|---|---|---|---|---|",
    ]
    for runbook_key, plugin_key, label in rows:
        r = runbook_side.get(runbook_key) if runbook_key else None
        p = plugin_side[plugin_key]
        r_far = f"{r['far']:.2f}" if r else "–"
        r_trips = f"{r['round_trips']:.1f}" if r else "–"
        target = f"≤ {targets[plugin_key]}" if plugin_key in targets else ""
        lines.append(f"| {label} | {r_far} | {r_trips} | {p['far']:.2f} ({p['near']:.2f}) "
                     f"| {p['round_trips']:.1f} | {target} |")
    chain = ["set-apikey", "inject", "expose", "map-identity"]
    plugin_chain = sum(plugin_side[step]["round_trips"] for step in chain)
    runbook_chain = sum(runbook_side[step]["round_trips"] for step in chain)
    # Each rollout wait is one read of the Deployment and one watch.
    waits = 2 * 2
    lines += [
        f"| the chain without its rollout waits | {sum(runbook_side[s]['far'] for s in chain):.2f} "
        f"| {runbook_chain:.1f} | – | {plugin_chain - waits:.1f} | ≤ 20 |",
        "",
        f"The plugin's chain takes {plugin_chain:.1f} round trips with its two rollout waits, each a read of the "
        f"Deployment and a watch ({waits} round trips in all), which the last row leaves out. Every plugin "
        "process pays its connection once (TCP and TLS, 2 round trips) and then sends its reads in concurrent "
        "batches over one HTTP/2 connection.",
        "",
    ]
    return lines


# Sections of RESULTS.md that other scripts write (benches/fleet.py,
# benches/traffic.py), kept as they are when this script writes the rest.
OTHER_SECTIONS = ("## Many contexts in one run", "## Requests during changes")


def kept_sections(path):
    text = path.read_text() if path.exists() else ""
    kept = []
    for heading in OTHER_SECTIONS:
        start = text.find(heading)
        if start >= 0:
            end = text.find("\n## ", start + len(heading))
            kept.append(text[start:end + 1 if end >= 0 else len(text)])
    return kept


def replace_section(path, heading, lines):
    """RESULTS.md with the section under `heading` replaced (or added before
    the notes, which start at "## Reading the figures")."""
    text = path.read_text() if path.exists() else ""
    section = "\n".join([heading, "", *lines, ""]) + "\n"
    start = text.find(heading)
    if start >= 0:
        end = text.find("\n## ", start + len(heading))
        return text[:start] + section + (text[end + 1:] if end >= 0 else "")
    notes = text.find("## Reading the figures")
    if notes < 0:
        return text.rstrip("\n") + "\n\n" + section
    return text[:notes] + section + "\n" + text[notes:]


def size_mb(path):
    return Path(path).stat().st_size / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="modern")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benches/RESULTS.md"))
    parser.add_argument("--rtt-ms", type=float, default=100, help="round trip of the far-away cluster")
    parser.add_argument("--latency-runs", type=int, default=3)
    args = parser.parse_args()
    h = Harness(args.profile)

    runbook_results = measure(h, "runbook", args.runs)
    plugin_results = measure(h, "plugin", args.runs)
    help_ms = startup([h.plugin, "--help"])
    spawn_ms = startup(["true"])
    version_ms = startup([h.plugin, "version", "--client"])
    status_wall, status_requests = status_cost(h)
    rss = peak_rss_of_chain(h)
    far = latency(h, args.rtt_ms, args.latency_runs)

    def row(name, key, fmt="{:.0f}"):
        r = median([x[key] for x in runbook_results])
        p = median([x[key] for x in plugin_results])
        ratio = f"{p / r:.2f}" if r else "–"
        return f"| {name} | {fmt.format(r)} | {fmt.format(p)} | {ratio} |"

    def verbs(results, key="by_verb"):
        total = Counter()
        for r in results:
            total.update(r[key])
        return ", ".join(f"{verb} {n / len(results):g}" for verb, n in sorted(total.items()))

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    kubectl_version = sh(h.kube_bin / "kubectl", "version", "--client", "-o", "json").stdout
    lines = [
        "# Benchmark: the plugin against the runbook",
        "",
        f"Generated by `benches/runbook.py` on {time.strftime('%Y-%m-%d')}, profile `{args.profile}`, "
        f"median of {args.runs} runs per side, each from a fresh seed.",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"test cluster Kubernetes {json.loads(kubectl_version)['clientVersion']['gitVersion']}.",
        "",
        "| measure | runbook | plugin | plugin/runbook |",
        "|---|---|---|---|",
        row("API requests (audit log)", "total"),
        row("mutating requests (create, update, patch, delete)", "mutating"),
        row("permission reviews (SelfSubjectRulesReview)", "reviews"),
        row("wall time to fully ready (s)", "wall", "{:.2f}"),
        row("processes started", "processes"),
        "",
        f"Requests by verb, runbook (mean per run): {verbs(runbook_results)}.",
        "",
        f"Requests by verb, plugin (mean per run): {verbs(plugin_results)}.",
        "",
        f"Requests by client, runbook: {verbs(runbook_results, 'by_agent')}; "
        f"plugin: {verbs(plugin_results, 'by_agent')}.",
        "",
        "## The plugin's own costs",
        "",
        "| measure | figure | target |",
        "|---|---|---|",
        f"| `kubectl-kms_sts --help` start-up, median of 21 | {help_ms:.1f} ms | < 10 ms |",
        f"| `true` start-up on this machine, for comparison | {spawn_ms:.1f} ms | |",
        f"| `version --client` start-up, median of 21 | {version_ms:.1f} ms | |",
        f"| `status` on a set-up cluster, wall time (median of 5) | {status_wall * 1000:.0f} ms | < 300 ms |",
        f"| `status` on a set-up cluster, API requests | {status_requests:.0f} | < 40 |",
        f"| peak RSS of the chain (largest subcommand, istioctl child excluded) | {max(rss.values()):.1f} MB "
        f"({', '.join(f'{k} {v:.1f}' for k, v in rss.items())}) | < 40 MB |",
        f"| release binary | {size_mb(h.plugin):.1f} MB | < 15 MB |",
        f"| harness kubectl / istioctl binaries | {size_mb(h.kube_bin / 'kubectl'):.1f} MB / "
        f"{size_mb(h.istio_bin / 'istioctl'):.1f} MB | |",
        "",
        *latency_lines(far, args.rtt_ms, args.latency_runs),
    ]
    lines += kept_sections(Path(args.out))
    notes = ROOT / "benches/NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    Path(args.out).write_text("\n".join(lines))
    print(args.out)


if __name__ == "__main__":
    main()
