#!/usr/bin/env python3
"""The local test cluster: a real control plane on 127.0.0.1, seeded to look
like the runbook's environment.

etcd, kube-apiserver (TLS, client-certificate authentication, RBAC, audit log),
kube-controller-manager and kube-scheduler run as plain processes; KWOK
simulates a node and makes its pods Running and Ready. Every binary is built
from its published Go module by `build-tools` and cached outside the repo.

Profiles differ in the APIs they serve:
  modern  cert-manager.io/v1 (with the real cert-manager controller),
          Istio networking v1/v1beta1/v1alpha3 and the Gateway API, served
          by a real istiod whose gateway pods are played by real proxies
          (see mesh.py)
  legacy  only certmanager.k8s.io/v1alpha1, Istio networking only v1alpha3

Commands, each also a script of its name beside this file (`check-usage`
checks that every form written here and in README.md parses):
  up [--profile P]          start and seed; last stdout line: kubeconfig path
  down [--profile P] [--purge]
                            stop (both profiles unless one is named); no
                            process, network namespace or link is left behind;
                            --purge also deletes the cluster's data
  clean [--profile P]       delete the namespaces earlier test runs seeded
  user NAME [--group G] [--profile P]
                            a client certificate and kubeconfig for NAME
  seed-namespaces KMS ISTIO [--live] [--own-gateways] [--profile P]
                            the runbook's workloads in a fresh namespace pair;
                            with --live (modern) their pods are played; with
                            --live or --own-gateways their gateways are labelled
                            istio=ingressgateway-ISTIO and istio=ingress-ISTIO
                            (see own_gateway_labels)
  install-istio ISTIO [--build previous|current|1.0] [--revision R] [--tag T] [--profile P]
                            a build's injector configuration in ISTIO, in place
                            or as revision R beside it
  issue-legacy-certificate NS NAME [--days N]
                            issue a legacy Certificate as its old controller did
  request NAMESPACE SELECTOR HOST [--path P] [--port N] [--until kms|backend|not-kms] [--timeout S] [--summary] [--while-missing FILE]
                            an HTTPS request to HOST through a played gateway;
                            JSON (or, with --summary, words): status,
                            certificate, what the answering pod received;
                            with --while-missing, one request after another
                            (a JSON line each) until FILE exists
  received NAMESPACE        every request the played pods of NAMESPACE received
  hold-config NAMESPACE SELECTOR [--release] [--profile P]
                            istiod's updates held back from the played gateway
                            pods of SELECTOR (each pod's pilot-agent stopped;
                            Envoy serves what it has); --release lets them in
  seed-app NAMESPACE GATEWAY_NAMESPACE SELECTOR HOST...
                            another application on the same gateway, live: its
                            Gateway (HTTPS 443, HOSTs), VirtualService (/ to its
                            backend), certificate and a backend that answers
"""

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

import mesh

# libyaml's parser where PyYAML was built with it: many times faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

HERE = Path(__file__).resolve().parent
SEED = HERE / "seed"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubectl-kms-sts"
CLUSTER_ROOT = Path(os.environ.get("KMS_STS_CLUSTER_DIR", CACHE / "cluster"))

# Each profile gets its own ports so both can run at once. They lie below
# the kernel's range for outgoing connections (32768 and up on Linux), so an
# outgoing connection can never be holding one when a component starts.
PORT_BASE = {"modern": 26000, "legacy": 27000}
PROFILES = tuple(PORT_BASE)
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "kwok", "cert-manager", "istiod", "mesh-player")
FAKE_NODE = "kwok-node-0"
# The client identity of the pod player (mesh.py), its certificate in the PKI.
MESH_PLAYER_USER = "kms-sts-test-mesh"
# Namespaces that tests seed carry this label, so `clean` can remove them.
SCRATCH_LABEL = "kms-sts.test/scratch"
KMS_SERVICE = "kms-api"
# The TLS secret kms-api serves from.
KMS_TLS_SECRET = "kms-api-tls"
# Where `up` keeps the ingress gateway istioctl generates, in the cluster's directory.
GENERATED_GATEWAY = "ingressgateway.yaml"
# The Istio builds the harness installs, each as a release: the proxy image
# its injector names is ISTIO_HUB/proxyv2:TAG. Each build is an istioctl
# tool group (`build-tools`) and brings its own injection templates; the
# cluster is seeded with the current one, upgrade tests start from the
# previous one.
ISTIO_HUB = "docker.io/istio"
ISTIO_BUILDS = {"current": ("istioctl", "1.31.2"), "previous": ("istioctl-previous", "1.31.0")}
# The injector configuration of Istio 1.0, shaped by hand (seed/injector-istio-1.0.yaml).
ISTIO_1_0 = "1.0"


def log(message):
    print(message, file=sys.stderr, flush=True)


def tool_dirs(groups):
    """Builds (or finds cached) binaries; returns {group: directory}."""
    out = subprocess.run([str(HERE / "build-tools"), *groups], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.split()
    return dict(zip(groups, (Path(p) for p in out)))


class Cluster:
    def __init__(self, profile):
        if profile not in PORT_BASE:
            sys.exit(f"error: unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
        self.profile = profile
        self.dir = CLUSTER_ROOT / profile
        self.pki = self.dir / "pki"
        base = PORT_BASE[profile]
        self.ports = {"apiserver": base + 443, "etcd": base + 379, "etcd-peer": base + 380,
                      "kcm": base + 257, "scheduler": base + 259, "kwok": base + 247,
                      "kubelet": base + 250}
        self.kubeconfig = self.dir / "kubeconfig"
        self.audit_log = self.dir / "audit.log"

    # ---- processes -------------------------------------------------------

    def pid_file(self, name):
        return self.dir / "run" / f"{name}.pid"

    def running(self, name):
        try:
            pid = int(self.pid_file(name).read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def start(self, name, argv, env=None):
        (self.dir / "run").mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        logf = open(self.dir / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen([str(a) for a in argv], stdout=logf, stderr=logf, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file(name).write_text(str(proc.pid))

    def stop(self):
        for name in reversed(COMPONENTS):
            self.stop_component(name)
        if self.profile == "modern":
            mesh.network_down(self.profile)

    def stop_component(self, name):
        pid = self.running(name)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            for _ in range(150):
                if not self.running(name):
                    break
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.pid_file(name).unlink(missing_ok=True)

    def healthy(self):
        if not self.kubeconfig.exists() or not self.running("kube-apiserver"):
            return False
        return subprocess.run([self.kubectl, "--kubeconfig", self.kubeconfig, "get", "--raw",
                               "/readyz"], capture_output=True).returncode == 0

    # ---- PKI ---------------------------------------------------------------

    def openssl(self, *args, stdin=None):
        subprocess.run(["openssl", *map(str, args)], check=True, input=stdin,
                       capture_output=True)

    def make_pki(self):
        p = self.pki
        if (p / "complete").exists():
            return
        p.mkdir(parents=True, exist_ok=True)
        self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                     "-keyout", p / "ca.key", "-out", p / "ca.crt",
                     "-subj", f"/CN=kms-sts-test-ca-{self.profile}")
        self.sign(p / "apiserver", "/CN=kube-apiserver", "serverAuth",
                  "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
                  "DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1")
        self.sign(p / "admin", "/O=system:masters/CN=kms-sts-admin", "clientAuth")
        self.openssl("genrsa", "-out", p / "sa.key", "2048")
        self.openssl("rsa", "-in", p / "sa.key", "-pubout", "-out", p / "sa.pub")
        # The issuing CA behind the icp-ca-issuer ClusterIssuer.
        self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                     "-keyout", p / "issuer-ca.key", "-out", p / "issuer-ca.crt",
                     "-subj", "/CN=icp-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        (p / "complete").touch()

    def sign(self, stem, subject, usage, extra=None, ca=None, days=3650):
        ca = ca or self.pki / "ca"
        ext = stem.with_suffix(".ext")
        ext.write_text(f"extendedKeyUsage={usage}\n" + (extra + "\n" if extra else ""))
        self.openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", stem.with_suffix(".key"),
                     "-out", stem.with_suffix(".csr"), "-subj", subject)
        # A random serial, not openssl's shared serial file: tests sign
        # certificates for several users at once, and that file is not
        # safe to update concurrently.
        serial = "0x" + secrets.token_hex(16)
        self.openssl("x509", "-req", "-in", stem.with_suffix(".csr"), "-days", str(days),
                     "-CA", ca.with_suffix(".crt"), "-CAkey", ca.with_suffix(".key"),
                     "-set_serial", serial, "-out", stem.with_suffix(".crt"), "-extfile", ext)
        stem.with_suffix(".key").chmod(0o600)

    def write_kubeconfig(self, path, user, stem):
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": f"kms-sts-{self.profile}", "cluster": {
                "server": f"https://127.0.0.1:{self.ports['apiserver']}",
                "certificate-authority": str(self.pki / "ca.crt")}}],
            "users": [{"name": user, "user": {
                "client-certificate": str(stem.with_suffix(".crt")),
                "client-key": str(stem.with_suffix(".key"))}}],
            "contexts": [{"name": f"{user}@kms-sts-{self.profile}", "context": {
                "cluster": f"kms-sts-{self.profile}", "user": user}}],
            "current-context": f"{user}@kms-sts-{self.profile}",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)

    # ---- control plane -----------------------------------------------------

    def up(self):
        tools = tool_dirs(["kubernetes", "etcd", "kwok", "istioctl"]
                          + (["certmanager", "istiod", "envoy"] if self.profile == "modern"
                             else []))
        self.tools = tools
        self.kubectl = str(tools["kubernetes"] / "kubectl")
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.locked():
            if not self.healthy():
                started = time.monotonic()
                self.stop()
                # A fresh cluster: KWOK hands out pod addresses anew after a
                # start, so pods kept from before would share them.
                shutil.rmtree(self.dir / "etcd-data", ignore_errors=True)
                (self.dir / "seeded").unlink(missing_ok=True)
                self.make_pki()
                self.write_kubeconfig(self.kubeconfig, "kms-sts-admin", self.pki / "admin")
                if self.profile == "modern":
                    mesh.network_up(self.profile)
                self.start_control_plane()
                log(f"cluster {self.profile}: control plane ready in "
                    f"{time.monotonic() - started:.1f}s")
            self.seed()
            if self.profile == "modern":
                self.start_cert_manager()
                self.start_mesh()
        print(self.kubeconfig)

    @contextlib.contextmanager
    def locked(self):
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def start_control_plane(self):
        k8s = self.tools["kubernetes"]
        p, ports = self.pki, self.ports
        (self.dir / "audit-policy.yaml").write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n"
            "rules:\n- level: Metadata\n")
        self.start("etcd", [
            self.tools["etcd"] / "etcd", "--name", "default",
            "--data-dir", self.dir / "etcd-data",
            "--listen-client-urls", f"http://127.0.0.1:{ports['etcd']}",
            "--advertise-client-urls", f"http://127.0.0.1:{ports['etcd']}",
            "--listen-peer-urls", f"http://127.0.0.1:{ports['etcd-peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports['etcd-peer']}",
            "--initial-cluster", f"default=http://127.0.0.1:{ports['etcd-peer']}",
            "--unsafe-no-fsync", "--quota-backend-bytes", str(2 << 30),
            "--log-level", "warn"])
        self.start("kube-apiserver", [
            k8s / "kube-apiserver",
            "--etcd-servers", f"http://127.0.0.1:{ports['etcd']}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", ports["apiserver"],
            "--tls-cert-file", p / "apiserver.crt", "--tls-private-key-file", p / "apiserver.key",
            "--client-ca-file", p / "ca.crt",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", p / "sa.pub",
            "--service-account-signing-key-file", p / "sa.key",
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--authorization-mode", "Node,RBAC",
            "--audit-policy-file", self.dir / "audit-policy.yaml",
            "--audit-log-path", self.audit_log, "--audit-log-format", "json",
            "--audit-log-maxbackup", "1",
            "--allow-privileged", "--profiling=false",
            # The node's address only: its name resolves nowhere.
            "--kubelet-preferred-address-types=InternalIP",
            # Webhooks are called at their Service's endpoints (istiod's
            # address), as the API server of a cluster with a pod network does.
            "--enable-aggregator-routing=true"])
        self.wait_for("/readyz", 90)
        shared = ["--kubeconfig", self.kubeconfig,
                  "--authentication-kubeconfig", self.kubeconfig,
                  "--authorization-kubeconfig", self.kubeconfig,
                  "--bind-address", "127.0.0.1", "--leader-elect=false"]
        self.start("kube-controller-manager", [
            k8s / "kube-controller-manager", *shared, "--secure-port", ports["kcm"],
            "--root-ca-file", p / "ca.crt",
            "--service-account-private-key-file", p / "sa.key",
            "--cluster-signing-cert-file", p / "ca.crt",
            "--cluster-signing-key-file", p / "ca.key",
            "--use-service-account-credentials=false",
            "--controllers", "*,-nodeipam,-service-lb-controller,-node-route-controller,"
                             "-cloud-node-lifecycle-controller"])
        self.start("kube-scheduler", [
            k8s / "kube-scheduler", *shared, "--secure-port", ports["scheduler"]])
        kwok = self.tools["kwok"]
        if self.profile == "modern":
            # KWOK serves the node's kubelet API at an address of the mesh's
            # network, so `kubectl port-forward` reaches played pods through
            # the PortForward objects the player writes (see mesh.py).
            self.apply_objects(load_yaml(kwok_crd("portforwards")))
            self.kubectl_run("wait", "--for=condition=Established", "--timeout=60s",
                             "crd/portforwards.kwok.x-k8s.io")
            node = ["--node-ip", mesh.HOST_ADDRESS, "--node-port", ports["kubelet"],
                    "--server-address", f"{mesh.HOST_ADDRESS}:{ports['kubelet']}",
                    "--enable-crds", "PortForward"]
        else:
            node = ["--node-ip", "10.0.0.1", "--server-address", f"127.0.0.1:{ports['kwok']}"]
        self.start("kwok", [
            kwok / "kwok", "--kubeconfig", self.kubeconfig,
            "--config", self.kwok_stages(kwok / "stages.yaml"),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
            "--cidr", "10.244.0.0/16", *node])
        capacity = {"cpu": "640", "memory": "2560Gi", "pods": "5000"}
        self.apply_objects([{
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": FAKE_NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": FAKE_NODE,
                                    "kubernetes.io/os": "linux", "type": "kwok"}},
            "status": {"allocatable": capacity, "capacity": capacity}}])
        # Status is only taken on create; a node kept from an earlier start
        # gets its capacity through the status subresource.
        self.kubectl_run("patch", "node", FAKE_NODE, "--subresource=status", "--type=merge",
                         "-p", json.dumps({"status": {"allocatable": capacity, "capacity": capacity}}))
        self.kubectl_run("wait", "--for=condition=Ready", f"node/{FAKE_NODE}", "--timeout=60s")
        # The default ServiceAccount must exist before pods can be created.
        self.wait_until(lambda: self.kubectl_run("get", "serviceaccount", "default", "-n",
                                                 "default", check=False).returncode == 0, 60,
                        "the default ServiceAccount")

    def kwok_stages(self, stages):
        """KWOK's stages, but a pod with the readiness gate of played pods
        is not made Ready by KWOK: the player makes it Ready once what
        plays it answers, as the kubelet does after a readiness probe."""
        text = stages.read_text()
        ready = """      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}"""
        gated = """      {{ $played := false }}
      {{ range .spec.readinessGates }}{{ if eq .conditionType "%s" }}{{ $played = true }}{{ end }}{{ end }}
      - lastTransitionTime: {{ $now | Quote }}
        status: {{ if $played }}"False"{{ else }}"True"{{ end }}
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: {{ if $played }}"False"{{ else }}"True"{{ end }}
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: {{ if eq .conditionType "%s" }}"False"{{ else }}"True"{{ end }}
        type: {{ .conditionType | Quote }}
      {{ end }}""" % (mesh.PLAYED_GATE, mesh.PLAYED_GATE)
        if text.count(ready) != 1:
            sys.exit(f"error: KWOK's pod-ready stage in {stages} is not the one expected")
        path = self.dir / "kwok-stages.yaml"
        path.write_text(text.replace(ready, gated))
        return path

    def wait_for(self, path, seconds):
        self.wait_until(lambda: subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, "get", "--raw", path],
            capture_output=True).returncode == 0, seconds, f"the API server's {path}")

    def wait_until(self, condition, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.25)
        sys.exit(f"error: {what} not ready after {seconds}s; logs in {self.dir / 'logs'}")

    def kubectl_run(self, *args, check=True, input=None):
        result = subprocess.run([self.kubectl, "--kubeconfig", self.kubeconfig, *map(str, args)],
                                capture_output=True, text=True, input=input)
        if check and result.returncode != 0:
            sys.exit(f"error: kubectl {' '.join(map(str, args))} failed:\n{result.stderr}")
        return result

    def apply_objects(self, objects):
        text = "\n---\n".join(json.dumps(o) for o in objects)
        self.kubectl_run("apply", "--server-side", "--force-conflicts",
                         "--field-manager", "kms-sts-test-seed", "-f", "-", input=text)

    # ---- seed ------------------------------------------------------------------

    def seed(self):
        """Makes the cluster look like the runbook's environment. Idempotent;
        skipped when the same seed inputs were already applied."""
        inputs = hashlib.sha256()
        for path in sorted(SEED.glob("*")) + [Path(__file__)]:
            inputs.update(path.read_bytes())
        for tool in self.tools.values():
            inputs.update(str(tool).encode())
        stamp = self.dir / "seeded"
        if stamp.exists() and stamp.read_text() == inputs.hexdigest():
            return
        started = time.monotonic()
        istio = self.istio_seed()
        crds = [o for o in istio if o["kind"] == "CustomResourceDefinition"]
        crds += load_yaml(SEED / "identitymappingpolicy-crd.yaml")
        if self.profile == "modern":
            crds += self.cert_manager_crds()
            for path in sorted((self.tools["istiod"] / "gateway-api-crds").glob("*.yaml")):
                crds += load_yaml(path)
        else:
            crds += load_yaml(SEED / "certmanager-legacy-crds.yaml")
        self.apply_objects(crds)
        for crd in crds:
            self.kubectl_run("wait", "--for=condition=Established", "--timeout=60s",
                             f"crd/{crd['metadata']['name']}")
        self.apply_objects([{"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "istio-system"}}]
                           + [o for o in istio if o["kind"] == "ConfigMap"])

        self.seed_issuer()
        if self.profile == "modern":
            self.start_cert_manager()
        if self.profile == "modern":
            self.seed_control_plane(istio)
            # The pair seeded next is live: its pods are Ready once played.
            self.start_mesh()
        seed_namespaces(self, "kube-system", "istio-system", live=self.profile == "modern")
        stamp.write_text(inputs.hexdigest())
        log(f"cluster {self.profile}: seeded in {time.monotonic() - started:.1f}s")

    def istio_seed(self):
        """Istio's CRDs and its injector ConfigMaps, generated by the current
        istioctl with the hub and version tag of a release (a build from a
        module pseudo-version would name `registry.istio.io/testing` and
        `latest`, which say no version).
        The ingress gateway of `istioctl install`'s default profile (its
        Deployment, Service and ServiceAccount) is kept in the cluster's
        directory for `seed_namespaces`."""
        generated = istio_manifests(self.tools["istioctl"] / "istioctl", "istio-system",
                                    ISTIO_BUILDS["current"][1], default_revision=True)
        wanted = [o for o in generated if o["kind"] == "CustomResourceDefinition"]
        if self.profile == "legacy":
            for crd in wanted:
                if crd["spec"]["group"] == "networking.istio.io":
                    serve_only(crd, "v1alpha3")
        wanted += injector_configmaps(generated)
        if self.profile == "modern":
            wanted += control_plane_objects(generated)
            for obj in wanted:
                if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "istio":
                    obj["data"]["mesh"] = without_metrics_providers(obj["data"]["mesh"])
        gateway = []
        for obj in generated:
            if obj["kind"] in ("Deployment", "Service", "ServiceAccount", "Role",
                               "RoleBinding") and \
                    obj["metadata"]["name"] in ("istio-ingressgateway",
                                                "istio-ingressgateway-service-account",
                                                "istio-ingressgateway-sds"):
                obj["metadata"]["namespace"] = "${ISTIO_NAMESPACE}"
                for subject in obj.get("subjects", []):
                    subject["namespace"] = "${ISTIO_NAMESPACE}"
                gateway.append(obj)
        if self.profile == "modern":
            text = yaml.safe_dump_all(gateway).replace("/namespaces/istio-system/",
                                                       "/namespaces/${ISTIO_NAMESPACE}/")
            (self.dir / GENERATED_GATEWAY).write_text(text)
        return wanted

    def install_istio(self, namespace, build, revision=None, tag=None):
        """Installs a build's injector configuration in `namespace`, as
        `istioctl install` would: without `revision` in place of what is
        there (an in-place upgrade), with one beside it (a canary). Build
        `1.0` is the configuration of the Istio 1.0 chart ICP shipped."""
        if build == ISTIO_1_0:
            if revision or tag:
                sys.exit("error: Istio 1.0's injector has no revisions and names its own release")
            text = (SEED / "injector-istio-1.0.yaml").read_text()
            self.apply_objects(load_yaml_text(text.replace("${ISTIO_NAMESPACE}", namespace)))
            return
        group, release = ISTIO_BUILDS[build]
        istioctl = tool_dirs([group])[group] / "istioctl"
        generated = istio_manifests(istioctl, namespace, tag or release, revision)
        self.apply_objects(injector_configmaps(generated, revision))

    def cert_manager_crds(self):
        crds = []
        for path in sorted((self.tools["certmanager"] / "crds").glob("*.yaml")):
            crds += load_yaml(path)
        return crds

    def seed_issuer(self):
        p = self.pki
        if self.profile == "modern":
            api, namespace = "cert-manager.io/v1", "kube-system"
        else:
            api, namespace = "certmanager.k8s.io/v1alpha1", "kube-system"
        self.apply_objects([
            {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": "icp-ca-key-pair", "namespace": namespace},
             "data": {"tls.crt": b64((p / "issuer-ca.crt").read_bytes()),
                      "tls.key": b64((p / "issuer-ca.key").read_bytes())}},
            {"apiVersion": api, "kind": "ClusterIssuer", "metadata": {"name": "icp-ca-issuer"},
             "spec": {"ca": {"secretName": "icp-ca-key-pair"}}}])

    def seed_control_plane(self, istio):
        """What a default install has around istiod: its ServiceAccount and
        RBAC, its Service (here without a selector: an EndpointSlice names the
        address the process listens on), and the validating webhooks."""
        objects = [o for o in istio if o["kind"] not in ("CustomResourceDefinition",
                                                         "ConfigMap")]
        objects.append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "istiod-process", "namespace": "istio-system",
                         "labels": {"kubernetes.io/service-name": "istiod",
                                    "endpointslice.kubernetes.io/managed-by": "kms-sts-test"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [mesh.HOST_ADDRESS], "conditions": {"ready": True}}],
            "ports": [{"name": name, "port": port, "protocol": "TCP"} for name, port in (
                ("grpc-xds", mesh.ISTIOD_PORTS["grpc"]),
                ("https-dns", mesh.ISTIOD_PORTS["secure-grpc"]),
                ("https-webhook", mesh.ISTIOD_PORTS["webhook"]),
                ("http-monitoring", mesh.ISTIOD_PORTS["monitoring"]))]})
        self.apply_objects(objects)

    def client_kubeconfig(self, directory, name, groups):
        """A client certificate for user `name` in `groups`, signed by the
        cluster's CA, and a kubeconfig that uses it, both in `directory`:
        the kubeconfig's path and the certificate's stem."""
        directory.mkdir(parents=True, exist_ok=True)
        file = name.replace(":", "-")
        stem = directory / file
        self.sign(stem, "".join(f"/O={g}" for g in groups) + f"/CN={name}", "clientAuth")
        path = directory / f"{file}.kubeconfig"
        self.write_kubeconfig(path, name, stem)
        return path, stem

    def start_mesh(self):
        """The pod network, istiod and the pod player (see mesh.py)."""
        mesh.network_up(self.profile)
        started = time.monotonic()
        if not self.running("istiod"):
            # A client identity of its own: its ServiceAccount's name.
            kubeconfig, _ = self.client_kubeconfig(
                self.pki, "system:serviceaccount:istio-system:istiod",
                ["system:serviceaccounts", "system:serviceaccounts:istio-system"])
            address = mesh.HOST_ADDRESS
            ports = mesh.ISTIOD_PORTS
            env = {**os.environ, "REVISION": "default", "PILOT_CERT_PROVIDER": "istiod",
                   "POD_NAME": "istiod-process", "POD_NAMESPACE": "istio-system",
                   "SERVICE_ACCOUNT": "istiod", "CLUSTER_ID": "Kubernetes",
                   "PILOT_ENABLE_ANALYSIS": "false", **mesh.UPSTREAM_ENVOY_ENV}
            self.start("istiod", [
                self.tools["istiod"] / "pilot-discovery", "discovery",
                "--kubeconfig", kubeconfig, "--domain", "cluster.local",
                "--httpAddr", f"{address}:{ports['http']}",
                "--monitoringAddr", f"{address}:{ports['monitoring']}",
                "--grpcAddr", f"{address}:{ports['grpc']}",
                "--secureGRPCAddr", f"{address}:{ports['secure-grpc']}",
                "--httpsAddr", f"{address}:{ports['webhook']}",
                "--ctrlz_address", address, "--log_output_level", "default:info"], env=env)
            self.wait_until(lambda: mesh.http_ok(f"http://{address}:{ports['http']}/ready"), 90,
                            "istiod")
            log(f"cluster {self.profile}: istiod ready in {time.monotonic() - started:.1f}s")
        code = hashlib.sha256(b"".join((HERE / f).read_bytes()
                                       for f in ("mesh.py", "standin.py"))).hexdigest()
        stamp = self.dir / "run" / "mesh-player.code"
        if self.running("mesh-player") and (not stamp.exists() or stamp.read_text() != code):
            self.stop_component("mesh-player")
        if not self.running("mesh-player"):
            self.client_kubeconfig(self.pki, MESH_PLAYER_USER, ["system:masters"])
            stamp.write_text(code)
            self.start("mesh-player", [sys.executable, Path(__file__), "play",
                                       "--profile", self.profile])

    def start_cert_manager(self):
        if self.running("cert-manager"):
            return
        self.start("cert-manager", [
            self.tools["certmanager"] / "cert-manager-controller",
            "--kubeconfig", self.kubeconfig,
            "--cluster-resource-namespace", "kube-system"])


def kwok_crd(plural):
    """A CRD of KWOK's own, from the pinned module's source."""
    source = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"],
                            cwd=HERE / "gomod" / "kwok", check=True, capture_output=True,
                            text=True).stdout.strip()
    return Path(source) / "kustomize" / "crd" / "bases" / f"kwok.x-k8s.io_{plural}.yaml"


def istio_manifests(istioctl, namespace, tag, revision=None, default_revision=False):
    """What `istioctl manifest generate` gives for a control plane in
    `namespace` naming release `tag`, of `revision` when given; with
    `default_revision`, with the validator of objects of no revision that
    `istioctl install` adds for the default one."""
    command = [istioctl, "manifest", "generate",
               "--set", f"values.global.istioNamespace={namespace}",
               "--set", f"hub={ISTIO_HUB}", "--set", f"tag={tag}"]
    if revision:
        command += ["--set", f"revision={revision}"]
    if default_revision:
        command += ["--set", "values.defaultRevision=default"]
    generated = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return load_yaml_text(generated)


def injector_configmaps(generated, revision=None):
    """The ConfigMaps sidecar injection reads (mesh config and injector
    templates with values), named as the revision's are."""
    suffix = f"-{revision}" if revision else ""
    names = (f"istio{suffix}", f"istio-sidecar-injector{suffix}")
    return [o for o in generated if o["kind"] == "ConfigMap" and o["metadata"]["name"] in names]


def control_plane_objects(generated):
    """istiod's ServiceAccount, RBAC, Service (without its selector: the
    process is not a pod) and validating webhooks, from a generated
    manifest."""
    wanted = []
    for obj in generated:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "ValidatingWebhookConfiguration" or (
                kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                         "RoleBinding", "Service") and name.startswith("istiod")):
            if kind == "Service":
                obj["spec"].pop("selector", None)
            wanted.append(obj)
    return wanted


def without_metrics_providers(mesh_text):
    """The mesh config with no default metrics provider: istiod then sends
    no `istio.stats` filter, which upstream Envoy does not have."""
    config = yaml.safe_load(mesh_text)
    config.setdefault("defaultProviders", {})["metrics"] = []
    return yaml.safe_dump(config, sort_keys=False)


def serve_only(crd, version):
    """Serves a CRD at one version only, stored there too; a CRD that never
    had that version (Istio's ProxyConfig) stays as it is."""
    kept = [v for v in crd["spec"]["versions"] if v["name"] == version]
    if not kept:
        return
    for v in kept:
        v["served"] = v["storage"] = True
    crd["spec"]["versions"] = kept


def load_yaml(path):
    return [o for o in yaml.load_all(Path(path).read_text(), Loader=YAML_LOADER) if o]


def b64(data):
    return base64.b64encode(data).decode()


def gateway_seeds(cluster):
    """The ingress gateways' manifests: the profile's istio=ingressgateway one
    (on `modern` the one `istioctl manifest generate` gives, on `legacy` one
    shaped like the Istio 1.0 chart ICP shipped), and the `gateway` Helm
    chart's istio=ingress one."""
    if cluster.profile == "modern":
        first = (cluster.dir / GENERATED_GATEWAY).read_text()
    else:
        first = (SEED / "gateway-istio-1.0.yaml").read_text()
    return first + "\n---\n" + (SEED / "gateway-helm-chart.yaml").read_text()


def kms_tls(cluster, kms_namespace):
    """The certificate kms-api serves, in the secret its Deployment mounts,
    signed by the cluster's CA and naming the Service's DNS names: issued by
    cert-manager on `modern`, made here on `legacy`."""
    names = [f"{KMS_SERVICE}", f"{KMS_SERVICE}.{kms_namespace}", f"{KMS_SERVICE}.{kms_namespace}.svc",
             f"{KMS_SERVICE}.{kms_namespace}.svc.cluster.local"]
    if cluster.profile == "modern":
        return [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                 "metadata": {"name": KMS_TLS_SECRET, "namespace": kms_namespace},
                 "spec": {"secretName": KMS_TLS_SECRET, "commonName": names[-1], "dnsNames": names,
                          "issuerRef": {"name": "icp-ca-issuer", "kind": "ClusterIssuer"}}}]
    stem = cluster.pki / f"kms-api-{kms_namespace}"
    cluster.sign(stem, f"/CN={names[-1]}", "serverAuth",
                 "subjectAltName=" + ",".join(f"DNS:{n}" for n in names),
                 ca=cluster.pki / "issuer-ca")
    return [{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": KMS_TLS_SECRET, "namespace": kms_namespace},
             "data": {"tls.crt": b64(stem.with_suffix(".crt").read_bytes()),
                      "tls.key": b64(stem.with_suffix(".key").read_bytes()),
                      "ca.crt": b64((cluster.pki / "issuer-ca.crt").read_bytes())}}]


def seed_namespaces(cluster, kms_namespace, istio_namespace, live=False, own_gateways=False):
    """The runbook's workloads in a namespace pair, and waits for them.
    `live`: the pair's pods are played (mesh.py), on the modern profile.
    `own_gateways` (always, when `live`): the pair's gateways get labels of
    their own."""
    if live and cluster.profile != "modern":
        sys.exit("error: only the modern profile runs a mesh (--live)")
    text = (SEED / "workloads.yaml").read_text() + "\n---\n" + gateway_seeds(cluster)
    text = text.replace("${KMS_NAMESPACE}", kms_namespace)
    text = text.replace("${ISTIO_NAMESPACE}", istio_namespace)
    objects = load_yaml_text(text)
    if (live or own_gateways) and istio_namespace != "istio-system":
        for obj in objects:
            own_gateway_labels(obj, istio_namespace)
    if live:
        for obj in objects:
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] in PLAYED_DEPLOYMENTS:
                obj["spec"]["template"]["spec"]["readinessGates"] = [
                    {"conditionType": mesh.PLAYED_GATE}]
    if kms_namespace == "kube-system":
        objects = [o for o in objects if o["kind"] != "Namespace"
                   or o["metadata"]["name"] != "kube-system"]
    for obj in objects:
        if obj["kind"] == "Namespace":
            labels = obj["metadata"].setdefault("labels", {})
            if obj["metadata"]["name"] not in ("kube-system", "istio-system"):
                labels[SCRATCH_LABEL] = "true"
            if live:
                labels[mesh.LIVE_LABEL] = "true"
    if kms_namespace == "kube-system" and live:
        objects.append({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "kube-system", "labels": {mesh.LIVE_LABEL: "true"}}})
    if istio_namespace != "istio-system":
        # The injector configuration Istio keeps in its own namespace.
        configs = json.loads(cluster.kubectl_run("get", "configmap", "istio",
                                                 "istio-sidecar-injector", "-n", "istio-system",
                                                 "-o", "json").stdout)
        for cm in configs["items"]:
            objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": cm["metadata"]["name"],
                                         "namespace": istio_namespace},
                            "data": cm["data"]})
    objects += kms_tls(cluster, kms_namespace)
    cluster.apply_objects(objects)
    # Each Deployment is new, with one revision: Available is its rollout done.
    for ns, names in ((kms_namespace, ["key-management-api"]),
                      (istio_namespace, ["tokenadapter", "istio-ingressgateway",
                                         "istio-ingress"])):
        cluster.kubectl_run("wait", "--for=condition=Available", "--timeout=120s", "-n", ns,
                            *(f"deployment/{name}" for name in names))
    if cluster.profile == "modern":
        cluster.kubectl_run("wait", "--for=condition=Ready", "--timeout=120s", "-n", kms_namespace,
                            f"certificate.cert-manager.io/{KMS_TLS_SECRET}")


# The Deployments of a live pair whose pods are played: Ready only once
# what plays them answers.
PLAYED_DEPLOYMENTS = ("key-management-api", "istio-ingressgateway", "istio-ingress")


def own_gateway_labels(obj, istio_namespace):
    """Gives a pair's gateways labels of their own: `istio:
    ingressgateway` becomes `istio: ingressgateway-ISTIO_NAMESPACE` (and
    `ingress` likewise) on the Deployment, its pods and the Service. istiod
    merges every Gateway that selects a gateway's pods, in any namespace; with
    labels of its own, only the Gateways meant for it select it."""
    def relabel(labels):
        if labels and labels.get("istio") in ("ingressgateway", "ingress"):
            labels["istio"] = f"{labels['istio']}-{istio_namespace}"
    if obj["kind"] == "Deployment":
        relabel(obj["spec"]["selector"]["matchLabels"])
        relabel(obj["spec"]["template"]["metadata"]["labels"])
    elif obj["kind"] == "Service":
        relabel(obj["spec"].get("selector"))


APP = "other-app"
APP_PORT = 8080


def seed_app(cluster, namespace, gateway_namespace, selector, hosts):
    """Another application served by the same ingress gateway, as a
    neighbour of KMS would be: in its own live namespace, a Gateway selecting
    the gateway pods (HTTPS on 443 for `hosts`, its certificate by
    credentialName, issued by cert-manager into the gateway's namespace), a
    VirtualService routing `/` to its Service, and a backend whose played pod
    answers plain HTTP with what it received. Waits until the certificate is
    issued and the backend is Running."""
    if cluster.profile != "modern":
        sys.exit("error: only the modern profile runs a mesh")
    label, value = selector.split("=", 1)
    secret = f"{APP}-certs"
    names = [h if h != "*" else "other-app.example" for h in hosts]
    labels = {"app": APP, mesh.BACKEND_LABEL: str(APP_PORT)}
    cluster.apply_objects([
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {SCRATCH_LABEL: "true", mesh.LIVE_LABEL: "true"}}},
        {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
         "metadata": {"name": secret, "namespace": gateway_namespace},
         "spec": {"secretName": secret, "commonName": names[0], "dnsNames": names,
                  "issuerRef": {"name": "icp-ca-issuer", "kind": "ClusterIssuer"}}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": APP, "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": APP}},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                      {"name": APP, "image": "registry.example/other-app:1.0",
                       "ports": [{"name": "http", "containerPort": APP_PORT}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": APP, "namespace": namespace},
         "spec": {"selector": {"app": APP},
                  "ports": [{"name": "http", "port": 80, "targetPort": APP_PORT}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
         "metadata": {"name": APP, "namespace": namespace},
         "spec": {"selector": {label: value}, "servers": [
             {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": hosts,
              "tls": {"mode": "SIMPLE", "credentialName": secret}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": APP, "namespace": namespace},
         "spec": {"hosts": hosts, "gateways": [f"{namespace}/{APP}"], "http": [
             {"route": [{"destination": {"host": f"{APP}.{namespace}.svc.cluster.local",
                                         "port": {"number": 80}}}]}]}},
    ])
    cluster.kubectl_run("wait", "--for=condition=Available", "--timeout=120s", "-n", namespace,
                        f"deployment/{APP}")
    cluster.kubectl_run("wait", "--for=condition=Ready", "--timeout=120s", "-n",
                        gateway_namespace, f"certificate.cert-manager.io/{secret}")


def issue_legacy_certificate(cluster, namespace, name, days=3650):
    """Does for a certmanager.k8s.io/v1alpha1 Certificate what the old
    cert-manager controller did (no controller serves that API here): signs
    it with the ClusterIssuer's CA, writes its secret with the CA beside it,
    and marks it Ready."""
    cert = json.loads(cluster.kubectl_run("get", "certificates.certmanager.k8s.io", name, "-n",
                                          namespace, "-o", "json").stdout)
    spec = cert["spec"]
    names = [f"DNS:{n}" for n in spec.get("dnsNames", [])]
    names += [f"IP:{ip}" for ip in spec.get("ipAddresses", [])]
    stem = cluster.pki / f"legacy-{namespace}-{name}"
    cluster.sign(stem, f"/CN={spec.get('commonName', name)}", "serverAuth",
                 "subjectAltName=" + ",".join(names) if names else None,
                 ca=cluster.pki / "issuer-ca", days=days)
    cluster.apply_objects([{
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": spec["secretName"], "namespace": namespace},
        "data": {"tls.crt": b64(stem.with_suffix(".crt").read_bytes()),
                 "tls.key": b64(stem.with_suffix(".key").read_bytes()),
                 "ca.crt": b64((cluster.pki / "issuer-ca.crt").read_bytes())}}])
    cluster.kubectl_run("patch", "certificates.certmanager.k8s.io", name, "-n", namespace,
                        "--subresource=status", "--type=merge", "-p",
                        json.dumps({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}))


def request_loop(cluster, args):
    """Requests through the same gateway pod, one after another on fresh
    connections, until the file `args.while_missing` exists."""
    pod, port = gateway_pod(cluster, args)
    while not Path(args.while_missing).exists():
        result = one_request(cluster, pod["status"]["podIP"], port, args.host, args.path)
        result["gateway"] = f"{args.namespace}/{pod['metadata']['name']}"
        result["time"] = round(time.time(), 3)
        print(json.dumps(result), flush=True)
        time.sleep(0.02)


def running_pods(cluster, namespace, selector):
    """The Running pods of `selector` in `namespace` that are not going away;
    exits with an error when there is none."""
    pods = json.loads(cluster.kubectl_run("get", "pods", "-n", namespace, "-l", selector,
                                          "-o", "json").stdout)["items"]
    pods = [p for p in pods if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]
    if not pods:
        sys.exit(f"error: no Running pod in {namespace} has {selector}")
    return pods


def gateway_pod(cluster, args):
    """A Running gateway pod of the selector, and the target port of the
    gateway Service's port `args.port` on it."""
    pod = running_pods(cluster, args.namespace, args.selector)[0]
    services = json.loads(cluster.kubectl_run("get", "services", "-n", args.namespace,
                                              "-o", "json").stdout)["items"]
    labels = pod["metadata"].get("labels") or {}
    port = args.port
    for service in services:
        selector = service["spec"].get("selector") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            for p in service["spec"]["ports"]:
                if p["port"] == args.port:
                    port = p.get("targetPort", p["port"])
    return pod, port


def hold_config(cluster, namespace, selector, hold):
    """`hold-config`: every Running gateway pod of `selector` in `namespace`
    has its pilot-agent stopped (`hold`) or continued; fails when a pod has
    no played agent."""
    for pod in running_pods(cluster, namespace, selector):
        name = f"{namespace}/{pod['metadata']['name']}"
        if not mesh.hold_config(cluster.profile, pod, hold):
            sys.exit(f"error: {name} runs no pilot-agent (is it a played gateway pod?)")
        print(f"{name}: istiod's updates {'held back' if hold else 'let in'}")


def gateway_request(cluster, args):
    """An HTTPS request to `args.host` through a Running gateway pod of the
    selector, at the pod's address and the target port of the gateway
    Service's port `args.port`, verifying the gateway's certificate against
    the issuing CA for the host. Tried again (a gateway just configured may
    not serve the route yet) until KMS answers or, with `--until not-kms`,
    until anything else happens, up to the timeout; the last try is returned
    with `reached_kms`."""
    pod, port = gateway_pod(cluster, args)
    deadline = time.monotonic() + args.timeout
    while True:
        result = one_request(cluster, pod["status"]["podIP"], port, args.host, args.path)
        result["gateway"] = f"{args.namespace}/{pod['metadata']['name']}"
        done = (not result["reached_kms"] if args.until == "not-kms"
                else result["reached"] == args.until)
        if done or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def one_request(cluster, address, port, host, path):
    import http.client
    import socket
    import ssl
    context = ssl.create_default_context(cafile=str(cluster.pki / "issuer-ca.crt"))
    result = {"address": address, "port": port, "host": host, "path": path,
              "reached": None, "reached_kms": False}
    conn = http.client.HTTPSConnection(address, port, timeout=5)

    peer = {}

    def connect():
        sock = socket.create_connection((address, port), 5)
        conn.sock = context.wrap_socket(sock, server_hostname=host)
        # Kept now: a response that closes the connection takes the socket.
        peer["certificate"] = conn.sock.getpeercert()
    conn.connect = connect
    try:
        started = time.monotonic()
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        certificate = peer["certificate"]
        result.update({"status": response.status,
                       "seconds": round(time.monotonic() - started, 3),
                       "server": response.getheader("server"),
                       "certificate": {"serial": certificate.get("serialNumber"),
                                       "names": [n for _, n in
                                                 certificate.get("subjectAltName", ())]}})
        try:
            result["answer"] = json.loads(body)
        except ValueError:
            result["answer"] = body
        if response.status == 200 and isinstance(result["answer"], dict):
            result["reached"] = result["answer"].get("role")
        result["reached_kms"] = result["reached"] == "kms"
    except (OSError, http.client.HTTPException) as e:
        result["error"] = str(e)
    finally:
        conn.close()
    return result


def request_summary(result):
    """One request in words, for people."""
    asked = (f"GET https://{result['host']}{result['path']} (sent to gateway pod "
             f"{result['gateway']} at {result['address']}:{result['port']})")
    if "error" in result:
        return f"{asked}: no answer ({result['error']})"
    answer = result["answer"]
    if not result["reached_kms"]:
        source = (f"{answer['role']} pod {answer['pod']}" if isinstance(answer, dict)
                  and "pod" in answer else result.get("server") or "the gateway")
        return f"{asked}: {result['status']} from {source}, not from KMS"
    return (f"{asked}: {result['status']} in {result['seconds']}s from KMS pod {answer['pod']}, "
            f"which received {answer['method']} {answer['path']} (Host {answer['host']}) over "
            f"TLS for {answer['sni']}; the gateway's certificate was verified for "
            f"{result['host']}")


def received_requests(cluster, namespace):
    """What the played pods of `namespace` received, in order."""
    seen = []
    for record in (cluster.dir / "pods").glob(f"{namespace}.*/requests.jsonl"):
        seen += [json.loads(line) for line in record.read_text().splitlines() if line]
    return sorted(seen, key=lambda r: r["time"])


def load_yaml_text(text):
    return [o for o in yaml.load_all(text, Loader=YAML_LOADER) if o]


def running_cluster(profile):
    """The running cluster of `profile`, with the kubectl to talk to it, for
    the commands that change what it holds."""
    cluster = Cluster(profile)
    cluster.tools = tool_dirs(["kubernetes"])
    cluster.kubectl = str(cluster.tools["kubernetes"] / "kubectl")
    return cluster


def build_parser():
    parser = argparse.ArgumentParser(prog="testcluster")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--profile", default="modern", choices=PROFILES)
    down = sub.add_parser("down")
    down.add_argument("--profile", choices=PROFILES)
    down.add_argument("--purge", action="store_true", help="also delete the cluster's data")
    user = sub.add_parser("user")
    user.add_argument("name")
    user.add_argument("--group", action="append", default=[])
    user.add_argument("--profile", default="modern", choices=PROFILES)
    clean = sub.add_parser("clean")
    clean.add_argument("--profile", default="modern", choices=PROFILES)
    ns = sub.add_parser("seed-namespaces")
    ns.add_argument("kms_namespace")
    ns.add_argument("istio_namespace")
    ns.add_argument("--live", action="store_true", help="play the pair's pods (modern)")
    ns.add_argument("--own-gateways", action="store_true",
                    help="label the pair's gateways apart from every other pair's")
    ns.add_argument("--profile", default="modern", choices=PROFILES)
    request = sub.add_parser("request")
    request.add_argument("namespace", help="the gateway's namespace")
    request.add_argument("selector", help="the gateway pods' label, LABEL=VALUE")
    request.add_argument("host")
    request.add_argument("--path", default="/kms/api/v1/keys")
    request.add_argument("--port", type=int, default=443, help="the gateway Service's port")
    request.add_argument("--until", choices=["kms", "backend", "not-kms"], default="kms",
                         help="keep trying until KMS answers, or another application's "
                              "backend, or until anything but KMS does (or nothing does); "
                              "the last try is printed either way")
    request.add_argument("--timeout", type=float, default=60, help="seconds to keep trying")
    request.add_argument("--while-missing", metavar="FILE",
                         help="send one request after another until FILE exists, printing one "
                              "JSON line for each (for load while something changes)")
    request.add_argument("--summary", action="store_true",
                         help="print what happened in words; exit 1 unless KMS answered")
    app = sub.add_parser("seed-app")
    app.add_argument("namespace")
    app.add_argument("gateway_namespace")
    app.add_argument("selector", help="the gateway pods' label, LABEL=VALUE")
    app.add_argument("hosts", nargs="+")
    app.add_argument("--profile", default="modern", choices=PROFILES)
    received = sub.add_parser("received")
    received.add_argument("namespace")
    received.add_argument("--profile", default="modern", choices=PROFILES)
    request.add_argument("--profile", default="modern", choices=PROFILES)
    hold = sub.add_parser("hold-config")
    hold.add_argument("namespace", help="the gateway's namespace")
    hold.add_argument("selector", help="the gateway pods' label, LABEL=VALUE")
    hold.add_argument("--release", action="store_true", help="let the updates in again")
    hold.add_argument("--profile", default="modern", choices=PROFILES)
    play = sub.add_parser("play", help="(run by `up`) play the live namespaces' pods")
    play.add_argument("--profile", default="modern", choices=PROFILES)
    install = sub.add_parser("install-istio")
    install.add_argument("istio_namespace")
    install.add_argument("--build", default="current", choices=[*ISTIO_BUILDS, ISTIO_1_0])
    install.add_argument("--revision")
    install.add_argument("--tag", help="the release its values name (default: the build's)")
    install.add_argument("--profile", default="modern", choices=PROFILES)
    issue = sub.add_parser("issue-legacy-certificate")
    issue.add_argument("namespace")
    issue.add_argument("name")
    issue.add_argument("--days", type=int, default=3650, help="how long the certificate is valid")
    return parser


def main():
    args = build_parser().parse_args()

    if args.command == "up":
        Cluster(args.profile).up()
    elif args.command == "down":
        for profile in [args.profile] if args.profile else PROFILES:
            cluster = Cluster(profile)
            cluster.stop()
            if args.purge:
                shutil.rmtree(cluster.dir, ignore_errors=True)
    elif args.command == "user":
        cluster = Cluster(args.profile)
        path, _ = cluster.client_kubeconfig(cluster.dir / "users", args.name, args.group)
        print(path)
    elif args.command == "clean":
        cluster = running_cluster(args.profile)
        cluster.kubectl_run("delete", "namespace", "-l", f"{SCRATCH_LABEL}=true", "--wait=false")
    elif args.command == "seed-namespaces":
        cluster = running_cluster(args.profile)
        seed_namespaces(cluster, args.kms_namespace, args.istio_namespace, live=args.live,
                        own_gateways=args.own_gateways)
    elif args.command == "request":
        cluster = running_cluster(args.profile)
        if args.while_missing:
            request_loop(cluster, args)
            return
        result = gateway_request(cluster, args)
        if not args.summary:
            print(json.dumps(result, indent=2))
        else:
            print(request_summary(result))
            sys.exit(0 if result["reached_kms"] else 1)
    elif args.command == "seed-app":
        seed_app(running_cluster(args.profile), args.namespace, args.gateway_namespace,
                 args.selector, args.hosts)
    elif args.command == "received":
        print(json.dumps(received_requests(Cluster(args.profile), args.namespace), indent=2))
    elif args.command == "hold-config":
        hold_config(running_cluster(args.profile), args.namespace, args.selector,
                    hold=not args.release)
    elif args.command == "play":
        cluster = Cluster(args.profile)
        tools = tool_dirs(["istiod", "envoy"])
        stem = cluster.pki / MESH_PLAYER_USER
        api = mesh.Api(cluster.ports["apiserver"], cluster.pki / "ca.crt",
                       stem.with_suffix(".crt"), stem.with_suffix(".key"))
        mesh.Player(args.profile, cluster.dir, api, tools["istiod"], tools["envoy"]).run()
    elif args.command == "install-istio":
        cluster = running_cluster(args.profile)
        cluster.install_istio(args.istio_namespace, args.build, args.revision, args.tag)
    elif args.command == "issue-legacy-certificate":
        cluster = running_cluster("legacy")
        issue_legacy_certificate(cluster, args.namespace, args.name, args.days)


if __name__ == "__main__":
    main()
