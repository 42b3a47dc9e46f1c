#!/usr/bin/env python3
"""A TCP proxy that makes a near server look far away: every chunk of bytes,
in either direction, is delivered half the round-trip time after it
arrived, in order, so each round trip through the proxy costs RTT more.
Connections and chunks are not serialised against each other: concurrent
requests stay concurrent, as they would over a VPN.

    benches/latency_proxy.py --upstream 127.0.0.1:6443 --rtt-ms 100

It listens on 127.0.0.1 (a free port unless --port is given) and prints
`127.0.0.1:PORT` on stdout once it accepts connections. TLS passes through
untouched, so a kubeconfig whose server is the proxy's address verifies the
API server's own certificate (its 127.0.0.1 address matches any port).

The proxy shares the machine's cores with the API server it stands in
front of, so it is built on asyncio's transports and callbacks: a chunk
costs one timer, not the tasks, queues and stream buffers of asyncio's
streams (which took 0.27 s of CPU where 50 contexts' `status` took 1.7 s).
"""

import argparse
import asyncio
import sys


class Side(asyncio.Protocol):
    """One end of a proxied connection: what arrives here is written to the
    other end `delay` seconds later, in the order it arrived."""

    def __init__(self, delay):
        self.delay = delay
        self.transport = None
        self.peer = None
        self.last_due = 0.0

    def connection_made(self, transport):
        self.transport = transport
        # Nothing is read until both ends are connected (see `join`).
        transport.pause_reading()

    def later(self, callback, *args):
        """Runs `callback` a delay from now, after everything this side
        scheduled before (timers due at the same instant keep no order)."""
        loop = asyncio.get_running_loop()
        self.last_due = max(loop.time() + self.delay, self.last_due + 1e-6)
        loop.call_at(self.last_due, callback, *args)

    def data_received(self, data):
        self.later(self.peer.transport.write, data)

    def eof_received(self):
        self.later(self.peer.write_eof)
        return True

    def write_eof(self):
        if not self.transport.is_closing() and self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except OSError:
                # The other end is gone already; its close follows.
                pass

    def connection_lost(self, exc):
        if self.peer is not None:
            self.later(self.peer.transport.close)

    # Flow control: when this end cannot take more, the other stops reading.
    def pause_writing(self):
        self.peer.transport.pause_reading()

    def resume_writing(self):
        self.peer.transport.resume_reading()


async def serve(upstream_host, upstream_port, port, delay):
    loop = asyncio.get_running_loop()

    async def join(client):
        try:
            _, server = await loop.create_connection(lambda: Side(delay), upstream_host, upstream_port)
        except OSError:
            client.transport.close()
            return
        client.peer, server.peer = server, client
        if client.transport.is_closing():
            server.transport.close()
            return
        # The TCP handshake to the far server costs a round trip too.
        await asyncio.sleep(2 * delay)
        for side in (client, server):
            if not side.transport.is_closing():
                side.transport.resume_reading()

    def accept():
        client = Side(delay)
        loop.call_soon(lambda: loop.create_task(join(client)))
        return client

    server = await loop.create_server(accept, "127.0.0.1", port)
    print(f"127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    parser.add_argument("--rtt-ms", type=float, default=100)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    try:
        asyncio.run(serve(host, int(port), args.port, args.rtt_ms / 2000))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
