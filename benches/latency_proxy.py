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
"""

import argparse
import asyncio
import sys
import time


async def pipe(reader, writer, delay):
    """Copies reader to writer, each chunk delivered `delay` seconds after it
    was read; a reader task and a writer task keep reading unblocked."""
    queue = asyncio.Queue()

    async def read():
        while True:
            chunk = await reader.read(65536)
            await queue.put((time.monotonic() + delay, chunk))
            if not chunk:
                return

    async def write():
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, OSError):
        pass


async def serve(upstream_host, upstream_port, port, delay):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            return
        # The TCP handshake to the far server costs a round trip too.
        await asyncio.sleep(2 * delay)
        await asyncio.gather(
            pipe(client_reader, server_writer, delay),
            pipe(server_reader, client_writer, delay),
        )
        for writer in (client_writer, server_writer):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
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
