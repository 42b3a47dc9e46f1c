"""The running mesh of the modern test cluster: a real istiod, and the pods
that carry traffic played by real processes at their own addresses.

KWOK makes pods Running without running anything. For the traffic of the
runbook's data path to be real, this module gives the cluster what a node
and Istio's control plane would:

  network   a namespace `kms-sts-<profile>-net` holding a bridge for the pod
            network (10.244.0.0/16, KWOK's pod CIDR), joined to the root
            namespace by a veth whose root side (10.243.0.1) is where istiod
            listens; the root namespace routes the pod CIDR through it, so
            the API server reaches pods (webhooks, pods/proxy) and the tests
            reach the gateways. No other address is ever used.
  istiod    `pilot-discovery` from the pinned Istio, as a process with a
            client identity of its own (its ServiceAccount's name), behind
            the `istiod` Service of istio-system through an EndpointSlice
            naming 10.243.0.1, with the validating webhooks a default
            install has (it turns them to fail closed once it serves them).
  players   `play` watches pods; every Running pod of a role it knows, in a
            namespace labelled kms-sts.test/live=true, runs in a network
            namespace of its own at the pod's address, with the secrets its
            container mounts bind-mounted where the container expects them
            (a mount namespace per pod) and kept current as the kubelet
            does: an ingress gateway pod (label `istio`, or the label istiod
            gives the gateway it deploys for a Gateway API Gateway, and a
            container named istio-proxy) runs pilot-agent and Envoy
            configured by istiod; a
            KMS pod (app=key-management-api) runs the KMS stand-in
            (`standin.py`); a backend pod (kms-sts.test/backend) runs the
            same stand-in for another application. A played pod stops when
            its pod stops Running or goes away. Pods of the live pairs'
            Deployments carry the readiness gate PLAYED_GATE: KWOK leaves
            them unready and the player makes them Ready once what plays
            them answers, as the kubelet does after a readiness probe. `kubectl port-forward` to a
            played pod works as the kubelet's does (a connection to the port
            on the pod's loopback, in its network namespace): KWOK serves the
            node's kubelet API and follows the PortForward object the player
            writes for the pod, owned by it, which runs `relay.rs` (built
            with rustc) for each connection.

What differs from a production install, and why, is listed in README's
Development section: upstream Envoy lacks Istio's own filters, so istiod is
told not to send them (metadata exchange and ALPN by its environment, stats
by the mesh config's empty metrics providers); pilot-agent reaches istiod by
address (no cluster DNS here), naming it by ISTIOD_SAN; the sidecar injection
webhook is not installed (KMS lives in kube-system, which webhook injection
never covers; the plugin injects it by hand).
"""

import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST_ADDRESS = "10.243.0.1"
ROUTER_ADDRESS = "10.243.0.2"
# The pod network's router, at the end of KWOK's pod CIDR, where KWOK (which
# hands out addresses from its start) does not reach.
POD_GATEWAY = "10.244.255.254"
POD_PREFIX = 16
POD_CIDR = "10.244.0.0/16"
LIVE_LABEL = "kms-sts.test/live"
# The readiness gate of played pods: KWOK leaves them unready, and the player
# makes them Ready once what plays them answers (see testcluster.kwok_stages).
PLAYED_GATE = "kms-sts.test/played"
BACKEND_LABEL = "kms-sts.test/backend"
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
ISTIOD_PORTS = {"http": 8080, "monitoring": 15014, "grpc": 15010, "secure-grpc": 15012,
                "webhook": 15017}
ISTIOD_SAN = "istiod.istio-system.svc"
KMS_PORT = 28674
# The ports `kubectl port-forward` reaches on every played pod besides those
# its containers declare: Envoy's admin interface and pilot-agent's status.
FORWARDED_PORTS = {15000, 15020, 15021}
# Seconds a stopped pod's network namespace stays.
SANDBOX_LINGERS = 10
# The environment that makes istiod's gateway configuration loadable by an
# Envoy without Istio's own extensions.
UPSTREAM_ENVOY_ENV = {"PILOT_ENABLE_METADATA_EXCHANGE": "false",
                      "PILOT_ENABLE_ALPN_FILTER": "false"}


def names(profile):
    """The names of the network objects of a profile's mesh."""
    short = profile[0]
    return {"router": f"kms-sts-{profile}-net", "host_link": f"kms{short}-host",
            "router_link": f"kms{short}-router", "pod_prefix": f"kms-sts-{profile}-pod-",
            "pod_link_prefix": f"kms{short}p"}


def sh(*argv, check=True):
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: {result.stderr.strip()}")
    return result


def netns_list():
    return [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line]


# ---- network ----------------------------------------------------------------

def network_up(profile):
    """The pod network and the root namespace's way into it. Idempotent."""
    n = names(profile)
    if n["router"] in netns_list():
        return
    if os.geteuid() != 0:
        sys.exit("error: the modern test cluster's mesh needs root (network namespaces); "
                 "run the tests as root")
    r = n["router"]
    sh("ip", "netns", "add", r)
    sh("ip", "-n", r, "link", "set", "lo", "up")
    sh("ip", "link", "add", n["host_link"], "type", "veth", "peer", "name", n["router_link"],
       "netns", r)
    sh("ip", "addr", "add", f"{HOST_ADDRESS}/30", "dev", n["host_link"])
    sh("ip", "link", "set", n["host_link"], "up")
    sh("ip", "-n", r, "addr", "add", f"{ROUTER_ADDRESS}/30", "dev", n["router_link"])
    sh("ip", "-n", r, "link", "set", n["router_link"], "up")
    sh("ip", "-n", r, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", r, "addr", "add", f"{POD_GATEWAY}/{POD_PREFIX}", "dev", "br0")
    sh("ip", "-n", r, "link", "set", "br0", "up")
    sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "route", "replace", POD_CIDR, "via", ROUTER_ADDRESS, "dev", n["host_link"])


def network_down(profile):
    """Stops every process left in the mesh's namespaces and removes them;
    the links go with them."""
    n = names(profile)
    for ns in netns_list():
        if ns.startswith(n["pod_prefix"]) or ns == n["router"]:
            remove_netns(ns)
    sh("ip", "link", "del", n["host_link"], check=False)


def kill_netns_processes(ns):
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def remove_netns(ns):
    """A network namespace gone, with whatever still runs in it; its links
    go with it."""
    kill_netns_processes(ns)
    sh("ip", "netns", "del", ns, check=False)


def hold_config(profile, pod, hold):
    """Stops (`hold`) or continues the pilot-agent of a played gateway pod.
    Stopped, it passes nothing between istiod and Envoy: the proxy keeps
    serving what it last took, and istiod's updates (routes, listeners,
    certificates) wait, as when a proxy is cut off from its control plane.
    Returns the process ids signalled."""
    key = hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest()[:8]
    netns = names(profile)["pod_prefix"] + key
    signalled = []
    for pid in sh("ip", "netns", "pids", netns, check=False).stdout.split():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pilot-agent":
                os.kill(int(pid), signal.SIGSTOP if hold else signal.SIGCONT)
                signalled.append(int(pid))
    return signalled


def http_ok(url, timeout=2):
    """Whether a plain-HTTP GET of `url` is answered 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def pod_network_up(profile, netns, link, address):
    n = names(profile)
    sh("ip", "netns", "add", netns)
    sh("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
    sh("ip", "link", "set", link, "netns", n["router"])
    sh("ip", "-n", n["router"], "link", "set", link, "master", "br0", "up")
    sh("ip", "-n", netns, "link", "set", "lo", "up")
    # The hardware address follows from the IP address, as Docker's bridge
    # does it: KWOK hands a released address to the next pod at once, and
    # neighbours' ARP caches then still point at the right interface.
    mac = "02:42:" + ":".join(f"{int(octet):02x}" for octet in address.split("."))
    sh("ip", "-n", netns, "link", "set", "eth0", "address", mac)
    sh("ip", "-n", netns, "addr", "add", f"{address}/{POD_PREFIX}", "dev", "eth0")
    sh("ip", "-n", netns, "link", "set", "eth0", "up")
    sh("ip", "-n", netns, "route", "add", "default", "via", POD_GATEWAY)


# ---- the API server ----------------------------------------------------------

class Api:
    """A small client of the API server with a client certificate: enough
    for lists, watches and a few writes."""

    def __init__(self, server_port, ca, cert, key):
        self.port = server_port
        self.context = ssl.create_default_context(cafile=str(ca))
        self.context.load_cert_chain(str(cert), str(key))

    def connection(self, timeout=30):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                           timeout=timeout)

    def call(self, method, path, body=None, content_type="application/json"):
        conn = self.connection()
        try:
            headers = {"Content-Type": content_type, "Accept": "application/json"}
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def watch(self, path, on_event, stopping):
        """Lists `path`, then follows it; on_event(type, object) for each
        change, ("SYNC", items) after each list. Runs until `stopping`."""
        while not stopping.is_set():
            try:
                status, listed = self.call("GET", path)
                if status != 200:
                    raise RuntimeError(f"list {path}: {status}")
                on_event("SYNC", listed["items"])
                version = listed["metadata"]["resourceVersion"]
                sep = "&" if "?" in path else "?"
                conn = self.connection(timeout=None)
                conn.request("GET", f"{path}{sep}watch=1&resourceVersion={version}"
                             "&timeoutSeconds=300")
                response = conn.getresponse()
                if response.status != 200:
                    raise RuntimeError(f"watch {path}: {response.status}")
                for line in response:
                    if stopping.is_set():
                        break
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        break
                    on_event(event["type"], event["object"])
                conn.close()
            except (OSError, RuntimeError, http.client.HTTPException, ValueError) as e:
                log(f"watch {path}: {e}; again in 1s")
                stopping.wait(1)


def log(message):
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# ---- volumes, as the kubelet writes them ------------------------------------

def write_volume(directory, files):
    """Writes `files` ({name: bytes}) into `directory` the way the kubelet
    updates a secret volume: a new timestamped directory, the `..data` link
    swapped to it in one rename, and each name a link through `..data`, so a
    reader never sees half an update and file watchers see the swap."""
    directory.mkdir(parents=True, exist_ok=True)
    fresh = directory / f"..{time.time_ns()}"
    fresh.mkdir()
    for name, content in files.items():
        (fresh / name).write_bytes(content)
        (fresh / name).chmod(0o644)
    link = directory / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(fresh.name)
    old = (directory / "..data").resolve() if (directory / "..data").exists() else None
    os.replace(link, directory / "..data")
    for name in files:
        entry = directory / name
        if not entry.is_symlink():
            entry.symlink_to(f"..data/{name}")
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
            entry.unlink()
    if old and old != fresh.resolve():
        shutil.rmtree(old, ignore_errors=True)


def secret_files(secret):
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


# ---- roles ---------------------------------------------------------------------

def role(pod):
    labels = pod["metadata"].get("labels") or {}
    containers = [c["name"] for c in pod["spec"]["containers"]]
    if labels.get("app") == "key-management-api" and "key-management-api" in containers:
        return "kms"
    if BACKEND_LABEL in labels:
        return "backend"
    # A classic gateway (label `istio`), or one istiod deploys for a
    # Gateway API Gateway (labelled with the Gateway's name).
    if ({"istio", GATEWAY_NAME_LABEL} & labels.keys()) and "istio-proxy" in containers:
        return "gateway"
    return None


def role_container(pod, kind):
    wanted = {"kms": "key-management-api", "gateway": "istio-proxy"}.get(kind)
    for c in pod["spec"]["containers"]:
        if wanted is None or c["name"] == wanted:
            return c
    return pod["spec"]["containers"][0]


def field(pod, path):
    value = {"metadata.name": pod["metadata"]["name"],
             "metadata.namespace": pod["metadata"]["namespace"],
             "status.podIP": pod["status"].get("podIP", ""),
             "status.hostIP": pod["status"].get("hostIP", ""),
             "spec.nodeName": pod["spec"].get("nodeName", ""),
             "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default")}
    return value.get(path, "")


def expand(text, env):
    """`text` with each `$(NAME)` of `env` replaced, as the kubelet expands
    a container's arguments and environment."""
    for k, v in env.items():
        text = text.replace(f"$({k})", v)
    return text


def container_env(pod, container):
    env = {}
    for entry in container.get("env") or []:
        source = entry.get("valueFrom")
        if source is None:
            env[entry["name"]] = expand(entry.get("value", ""), env)
        elif "fieldRef" in source:
            env[entry["name"]] = field(pod, source["fieldRef"]["fieldPath"])
    return env


class PlayedPod:
    """One pod played at its address: its network and mount namespaces, its
    secret volumes, and its process."""

    def __init__(self, player, pod):
        self.player = player
        self.uid = pod["metadata"]["uid"]
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.address = pod["status"]["podIP"]
        self.kind = role(pod)
        self.pod = pod
        key = hashlib.sha256(self.uid.encode()).hexdigest()[:8]
        n = names(player.profile)
        self.netns = n["pod_prefix"] + key
        self.link = n["pod_link_prefix"] + key
        self.dir = player.pods_dir / f"{self.namespace}.{self.name}"
        self.process = None
        self.ready = False
        self.restarts_at = 0.0
        self.volumes = {}  # volume name -> (secret name, resourceVersion written)

    def secret_mounts(self):
        container = role_container(self.pod, self.kind)
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"], {})
            if "secret" in volume:
                yield volume, mount

    def start(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        if self.netns in netns_list():
            # Left by a player that was killed before it could stop it.
            remove_netns(self.netns)
        pod_network_up(self.player.profile, self.netns, self.link, self.address)
        mounts = []
        for volume, mount in self.secret_mounts():
            source = self.dir / "volumes" / volume["name"]
            self.volumes[volume["name"]] = (volume["secret"]["secretName"], None)
            self.sync_volume(volume["name"])
            mounts.append([str(source), mount["mountPath"]])
        (self.dir / "mounts.json").write_text(json.dumps(mounts))
        self.launch()
        self.player.write_port_forward(self.pod, self.netns)
        log(f"playing {self.kind} {self.namespace}/{self.name} at {self.address}")

    def sync_volume(self, volume):
        secret_name, seen = self.volumes[volume]
        secret = self.player.secrets.get((self.namespace, secret_name))
        version = secret["metadata"]["resourceVersion"] if secret else ""
        if version == seen:
            return
        write_volume(self.dir / "volumes" / volume, secret_files(secret) if secret else {})
        self.volumes[volume] = (secret_name, version)

    def port(self):
        """The port a stand-in serves: KMS's container port, or the one a
        backend's label names."""
        if self.kind == "kms":
            container = role_container(self.pod, "kms")
            return next((p["containerPort"] for p in container.get("ports") or []), KMS_PORT)
        return int(self.pod["metadata"]["labels"].get(BACKEND_LABEL) or 8443)

    def answers(self):
        """The readiness probe: the gateway's agent says Envoy is ready; a
        stand-in accepts connections on its port."""
        if self.kind == "gateway":
            return http_ok(f"http://{self.address}:15021/healthz/ready", timeout=0.5)
        try:
            socket.create_connection((self.address, self.port()), 0.5).close()
            return True
        except OSError:
            return False

    def mark_ready(self):
        gates = [g["conditionType"] for g in self.pod["spec"].get("readinessGates") or []]
        if PLAYED_GATE not in gates:
            self.ready = True
            return
        if not self.answers():
            return
        conditions = [{"type": t, "status": "True"} for t in ("Ready", "ContainersReady",
                                                              PLAYED_GATE)]
        status, answer = self.player.api.call(
            "PATCH", f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status",
            {"status": {"conditions": conditions}}, "application/strategic-merge-patch+json")
        if status != 200:
            raise RuntimeError(f"ready {self.namespace}/{self.name}: {status} {answer}")
        self.ready = True
        log(f"{self.kind} {self.namespace}/{self.name} answers: Ready")

    def sync(self):
        if not self.ready:
            self.mark_ready()
        for volume in self.volumes:
            self.sync_volume(volume)
        if self.process and self.process.poll() is not None and time.monotonic() > self.restarts_at:
            log(f"{self.kind} {self.namespace}/{self.name} exited ({self.process.returncode}); "
                "restarting")
            self.restarts_at = time.monotonic() + 5
            self.launch()

    def launch(self):
        argv, env, cwd = (self.gateway_command() if self.kind == "gateway"
                          else self.standin_command())
        logf = open(self.dir / "process.log", "ab")
        enter = [sys.executable, str(HERE / "mesh.py"), "enter", str(self.dir / "mounts.json"),
                 str(cwd), "--"]
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "-m", "--propagation", "private",
             *enter, *map(str, argv)],
            env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)

    def standin_command(self):
        record = self.dir / "requests.jsonl"
        tls = None
        if self.kind == "kms":
            tls = next((m["mountPath"] for v, m in self.secret_mounts()), "/etc/kms/tls")
        argv = [sys.executable, HERE / "standin.py", "--port", self.port(), "--record", record,
                "--pod", f"{self.namespace}/{self.name}", "--role", self.kind]
        if tls:
            argv += ["--tls-dir", tls]
        return argv, dict(os.environ), self.dir

    def gateway_command(self):
        """pilot-agent as the gateway's istio-proxy container runs it: its
        arguments and environment from the pod, its files under a working
        directory of its own (relative paths are where pilot-agent looks
        when run from there)."""
        root = self.dir / "root"
        for d in ("etc/istio/proxy", "var/lib/istio/envoy", "var/run/secrets/tokens",
                  "var/run/secrets/istio", "etc/istio/pod"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.player.istio / "envoy_bootstrap.json",
                    root / "var/lib/istio/envoy/envoy_bootstrap_tmpl.json")
        (root / "var/run/secrets/tokens/istio-token").write_text(self.player.token(self.pod))
        (root / "var/run/secrets/istio/root-cert.pem").write_text(
            self.player.root_certs[self.namespace])
        labels = self.pod["metadata"].get("labels") or {}
        (root / "etc/istio/pod/labels").write_text(
            "\n".join(f'{k}="{v}"' for k, v in sorted(labels.items())))
        container = role_container(self.pod, "gateway")
        env = container_env(self.pod, container)
        for name in ("POD_NAME", "POD_NAMESPACE", "INSTANCE_IP", "SERVICE_ACCOUNT"):
            env.setdefault(name, field(self.pod, {
                "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
                "INSTANCE_IP": "status.podIP", "SERVICE_ACCOUNT": "spec.serviceAccountName"}[name]))
        env.setdefault("ISTIO_META_CLUSTER_ID", "Kubernetes")
        env.setdefault("ISTIO_META_WORKLOAD_NAME", labels.get("app", self.name))
        # No cluster DNS: istiod by its address, checked by its name. With
        # CA_ADDR set pilot-agent would check the address instead.
        env.pop("CA_ADDR", None)
        proxy_config = json.loads(env.get("PROXY_CONFIG") or "{}")
        proxy_config.update({"discoveryAddress": f"{HOST_ADDRESS}:{ISTIOD_PORTS['secure-grpc']}",
                             "binaryPath": str(self.player.envoy / "envoy")})
        env["PROXY_CONFIG"] = json.dumps(proxy_config)
        env["ISTIOD_SAN"] = ISTIOD_SAN
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        args = container.get("args") or ["proxy", "router", "--domain",
                                          "$(POD_NAMESPACE).svc.cluster.local"]
        args = [expand(a, env) for a in args]
        return [self.player.istio / "pilot-agent", *args], env, root

    def stop(self, linger=True):
        """Stops the pod's process. Its network namespace stays a while, as a
        pod's sandbox outlives its containers: a connection to its address is
        refused (and retried elsewhere by the gateway) rather than lost."""
        if self.process:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if linger:
            kill_netns_processes(self.netns)
            self.player.lingering[self.address] = (self.netns, time.monotonic() + SANDBOX_LINGERS)
        else:
            remove_netns(self.netns)
        kept = self.player.pods_dir.parent / "logs" / "pods"
        kept.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.move(self.dir / "process.log", kept / f"{self.namespace}.{self.name}.log")
        shutil.rmtree(self.dir, ignore_errors=True)
        log(f"stopped {self.kind} {self.namespace}/{self.name}")


class Player:
    """Keeps the played pods in step with the cluster's Running pods."""

    def __init__(self, profile, cluster_dir, api, istio_tools, envoy_tools):
        self.profile = profile
        self.pods_dir = cluster_dir / "pods"
        self.api = api
        self.istio = istio_tools
        self.envoy = envoy_tools
        self.relay = built_relay(cluster_dir)
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.stopping = threading.Event()
        # What the watches keep: pods by UID, the live namespaces, secrets by
        # (namespace, name), root certificates by namespace.
        self.pods, self.live, self.secrets, self.root_certs = {}, {}, {}, {}
        self.played = {}
        self.lingering = {}  # address -> (network namespace, when it goes)

    def tracker(self, key_of, store):
        """The watch callback that keeps `store` as the watched objects are,
        keyed and valued by `key_of`, and wakes the reconcile loop."""
        def on_event(kind, obj):
            with self.lock:
                if kind == "SYNC":
                    store.clear()
                    for item in obj:
                        key, value = key_of(item)
                        store[key] = value
                elif kind == "DELETED":
                    store.pop(key_of(obj)[0], None)
                elif kind in ("ADDED", "MODIFIED"):
                    key, value = key_of(obj)
                    store[key] = value
            self.changed.set()
        return on_event

    def write_port_forward(self, pod, netns):
        """The PortForward KWOK follows for `kubectl port-forward` to the pod:
        every port is relayed to the pod's loopback, in its network
        namespace. Owned by the pod, so it goes with it."""
        meta = pod["metadata"]
        ports = sorted({int(p["containerPort"]) for c in pod["spec"]["containers"]
                        for p in c.get("ports") or []} | FORWARDED_PORTS)
        body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Pod",
                                                  "name": meta["name"], "uid": meta["uid"]}]},
                "spec": {"forwards": [{"ports": [port], "command": [
                    "ip", "netns", "exec", netns, str(self.relay), str(port)]}
                    for port in ports]}}
        status, answer = self.api.call(
            "POST", f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{meta['namespace']}/portforwards",
            body)
        if status not in (201, 409):
            raise RuntimeError(f"port-forward for {meta['name']}: {status} {answer}")

    def token(self, pod):
        sa = pod["spec"].get("serviceAccountName", "default")
        status, answer = self.api.call(
            "POST", f"/api/v1/namespaces/{pod['metadata']['namespace']}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"audiences": ["istio-ca"], "expirationSeconds": 172800,
                      "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                         "name": pod["metadata"]["name"],
                                         "uid": pod["metadata"]["uid"]}}})
        if status != 201:
            raise RuntimeError(f"token for {sa}: {status} {answer}")
        return answer["status"]["token"]

    def run(self):
        shutil.rmtree(self.pods_dir, ignore_errors=True)
        self.pods_dir.mkdir(parents=True)
        watches = [
            ("/api/v1/pods", self.tracker(lambda o: (o["metadata"]["uid"], o), self.pods)),
            (f"/api/v1/namespaces?labelSelector={LIVE_LABEL}%3Dtrue",
             self.tracker(lambda o: (o["metadata"]["name"], True), self.live)),
            ("/api/v1/secrets", self.tracker(
                lambda o: ((o["metadata"]["namespace"], o["metadata"]["name"]), o), self.secrets)),
            ("/api/v1/configmaps?fieldSelector=metadata.name%3Distio-ca-root-cert",
             self.tracker(lambda o: (o["metadata"]["namespace"],
                                     (o.get("data") or {}).get("root-cert.pem", "")),
                          self.root_certs)),
        ]
        for path, on_event in watches:
            threading.Thread(target=self.api.watch, args=(path, on_event, self.stopping),
                             daemon=True).start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        while not self.stopping.is_set():
            self.changed.wait(1)
            self.changed.clear()
            try:
                self.reconcile()
            except (RuntimeError, OSError) as e:
                log(f"reconcile: {e}")
        for played in list(self.played.values()):
            played.stop(linger=False)
        for netns, _ in self.lingering.values():
            remove_netns(netns)

    def wanted(self):
        with self.lock:
            pods = list(self.pods.values())
            live = set(self.live)
            ready_roots = {ns for ns, pem in self.root_certs.items() if pem}
        wanted = {}
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status") or {}
            kind = role(pod)
            if (kind and meta["namespace"] in live and status.get("phase") == "Running"
                    and status.get("podIP") and not meta.get("deletionTimestamp")
                    and (kind != "gateway" or meta["namespace"] in ready_roots)):
                wanted[meta["uid"]] = pod
        return wanted

    def reconcile(self):
        wanted = self.wanted()
        for uid in list(self.played):
            if uid not in wanted:
                self.played.pop(uid).stop()
        now = time.monotonic()
        for address, (netns, until) in list(self.lingering.items()):
            reused = any(p["status"]["podIP"] == address for u, p in wanted.items()
                         if u not in self.played)
            if until < now or reused:
                remove_netns(netns)
                del self.lingering[address]
        for uid, pod in wanted.items():
            if uid not in self.played:
                played = PlayedPod(self, pod)
                self.played[uid] = played
                try:
                    played.start()
                except (RuntimeError, OSError) as e:
                    log(f"could not play {played.namespace}/{played.name}: {e}")
                    self.played.pop(uid)
                    played.stop(linger=False)
            else:
                self.played[uid].sync()


# ---- inside a played pod -------------------------------------------------------

def enter(mounts_file, cwd, argv):
    """Runs in the played pod's fresh mount namespace: puts each secret
    volume where the container mounts it, then becomes the pod's process.
    A mount point that does not exist on this machine is made in an overlay
    of its nearest existing directory, private to this namespace."""
    mounts = json.loads(Path(mounts_file).read_text())
    overlaid = []
    for _, target in mounts:
        if os.path.isdir(target):
            continue
        ancestor = Path(target)
        while not ancestor.exists():
            ancestor = ancestor.parent
        ancestor = ancestor.resolve()
        if not any(ancestor == o or o in ancestor.parents for o in overlaid):
            if ancestor == Path("/"):
                sys.exit(f"error: will not overlay / for {target}")
            work = Path(mounts_file).parent / "overlay" / str(len(overlaid))
            (work / "upper").mkdir(parents=True, exist_ok=True)
            (work / "work").mkdir(parents=True, exist_ok=True)
            sh("mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={ancestor},upperdir={work / 'upper'},workdir={work / 'work'}",
               ancestor)
            overlaid.append(ancestor)
        os.makedirs(target, exist_ok=True)
    for source, target in mounts:
        sh("mount", "--bind", "-o", "ro", source, target)
    os.chdir(cwd)
    os.execvp(argv[0], argv)


def built_relay(cluster_dir):
    """relay.rs built with rustc into the cluster's directory, keyed by its
    source: what KWOK runs for each port-forwarded connection."""
    source = HERE / "relay.rs"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = cluster_dir / "bin" / f"relay-{digest}"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        sh("rustc", "--edition", "2024", "-O", "-o", partial, source)
        partial.rename(binary)
    return binary


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[1] == "enter" and sys.argv[4] == "--":
        enter(sys.argv[2], sys.argv[3], sys.argv[5:])
    else:
        sys.exit("usage: mesh.py enter MOUNTS CWD -- COMMAND...")
