#!/usr/bin/env python3
"""The stand-in a played pod runs for an application the mesh routes to: the
KMS API (HTTPS with the certificate of the secret its Deployment mounts) or
another application's backend (plain HTTP).

Every request is answered with what the server received, as JSON (the pod,
its role, method, path, Host header and, over TLS, the server name the client asked
for), and appended to the record file the tests read. KMS answers paths
under /api/ with 200 and anything else with 404, as the real API has
nothing else; a backend answers everything with 200.

The certificate is read again whenever the mounted files change (the
kubelet swaps them when the Secret changes), so a renewal is served without
a restart. On SIGTERM it shuts down as a well-behaved server does when its
pod is deleted: it stops accepting connections, answers what still comes on
the open ones with `Connection: close`, and exits after a short drain.

    standin.py --port 28674 --record FILE --pod NS/NAME --role kms|backend [--tls-dir DIR]
"""

import argparse
import json
import os
import signal
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# How long a stopping stand-in keeps answering on its open connections.
DRAIN_SECONDS = 1.5


class Certificates:
    """A server TLS context for the certificate in a mounted directory,
    made again when the files behind it change."""

    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        self.seen = None
        self.context = None

    def current(self):
        cert = os.path.join(self.directory, "tls.crt")
        key = os.path.join(self.directory, "tls.key")
        version = (os.path.realpath(cert), os.stat(cert).st_mtime_ns)
        with self.lock:
            if version != self.seen:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(cert, key)
                context.sni_callback = remember_server_name
                self.context, self.seen = context, version
            return self.context


def remember_server_name(connection, server_name, _context):
    connection.requested_server_name = server_name


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, certificates, record, pod, role):
        self.role = role
        self.certificates = certificates
        self.record = record
        self.pod = pod
        self.record_lock = threading.Lock()
        self.draining = False
        super().__init__(("0.0.0.0", port), Handler)

    def drain(self, seconds):
        self.draining = True
        self.shutdown()
        self.socket.close()
        time.sleep(seconds)
        os._exit(0)

    def finish_request(self, request, client_address):
        # The handshake happens here, in the connection's own thread.
        if self.certificates:
            request.settimeout(10)
            request = self.certificates.current().wrap_socket(request, server_side=True)
        self.RequestHandlerClass(request, client_address, self)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def answer(self):
        server = self.server
        tls = server.certificates is not None
        seen = {"pod": server.pod, "role": server.role, "method": self.command, "path": self.path,
                "host": self.headers.get("Host"), "tls": tls,
                "sni": getattr(self.connection, "requested_server_name", None) if tls else None,
                "time": time.time()}
        with server.record_lock, open(server.record, "a") as f:
            f.write(json.dumps(seen) + "\n")
        found = not tls or self.path.startswith("/api/")
        body = json.dumps(seen).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if server.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--pod", required=True)
    parser.add_argument("--role", required=True, choices=["kms", "backend"])
    parser.add_argument("--tls-dir")
    args = parser.parse_args()
    certificates = Certificates(args.tls_dir) if args.tls_dir else None
    socketserver.TCPServer.allow_reuse_address = True
    server = Server(args.port, certificates, args.record, args.pod, args.role)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
        target=server.drain, args=(DRAIN_SECONDS,), daemon=True).start())
    server.serve_forever()
    threading.Event().wait()


if __name__ == "__main__":
    main()
