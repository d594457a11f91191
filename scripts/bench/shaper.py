#!/usr/bin/env python3
"""A shaped link in front of a registry: a small TCP proxy for the benchmark.

The kernel here has no netem, so this userspace proxy plays the WAN:

  * round-trip delay: every chunk the client sends (a request: HTTP/1.1
    without pipelining sends one at a time) is held for --delay-ms before it
    goes upstream, so each request costs one round trip more than on
    loopback. A new connection costs one as well (the TCP handshake): the
    first bytes of a connection wait the same delay.
  * bandwidth: server-to-client bytes are paced by two token buckets, one per
    connection (--conn-mbit) and one shared by all (--total-mbit), like a
    registry behind a CDN whose single flows cannot fill the link.
    Client-to-server bytes (request headers, and the bodies of a push) are
    paced the same way by --up-total-mbit and --up-conn-mbit (0, the
    default: not paced), with at most about a round trip's worth of them
    held here, so that a client pushing faster than the link is held back
    by TCP as it would be.

It counts what goes through: requests by method and kind (parsed from the
request lines of the client's stream; a push's bodies are binary, and a
request line in them would be a coincidence),
and bytes each way. GET http://127.0.0.1:CONTROL/stats returns them as JSON
(with the number of open connections, so a caller can wait for a client's
connections to close); GET /reset zeroes them.

    shaper.py --listen PORT --upstream HOST:PORT --control PORT
              [--delay-ms 20] [--total-mbit 200] [--conn-mbit 100]
              [--up-total-mbit 0] [--up-conn-mbit 0]

0 for a rate means unlimited; --delay-ms 0 --total-mbit 0 --conn-mbit 0 is a
plain relay, which the benchmark measures against a direct connection to
check that this proxy is not the bottleneck.
"""

import argparse
import asyncio
import json
import re
import signal
import sys
import time

REQ_LINE = re.compile(rb"(?:^|\r\n)(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")


class Bucket:
    """Pacing on a virtual timeline: a chunk of n bytes occupies n/rate
    seconds; it may leave when its slot ends. A little burst (the slot may
    start up to `burst` seconds in the past) keeps an idle link from
    losing time to scheduling jitter."""

    def __init__(self, mbit, burst=0.005):
        self.rate = mbit * 1e6 / 8 if mbit > 0 else 0
        self.t = 0.0
        self.burst = burst

    def reserve(self, n, now):
        if self.rate == 0:
            return now
        start = max(self.t, now - self.burst)
        self.t = start + n / self.rate
        return self.t


class Stats:
    def __init__(self):
        self.reset()
        self.active = 0

    def reset(self):
        self.requests = 0
        self.by_method = {}
        self.blob_gets = 0
        self.manifest_requests = 0
        self.bytes_down = 0
        self.bytes_up = 0
        self.connections = 0
        self.t0 = time.monotonic()

    def as_dict(self):
        return {"requests": self.requests, "by_method": self.by_method,
                "blob_gets": self.blob_gets, "manifest_requests": self.manifest_requests,
                "bytes_down": self.bytes_down, "bytes_up": self.bytes_up,
                "connections": self.connections, "active": self.active,
                "since_s": round(time.monotonic() - self.t0, 3)}


class Shaper:
    def __init__(self, args):
        self.up_host, _, up_port = args.upstream.rpartition(":")
        self.up_port = int(up_port)
        self.delay = args.delay_ms / 1000.0
        self.total = Bucket(args.total_mbit)
        self.conn_mbit = args.conn_mbit
        self.up_total = Bucket(args.up_total_mbit)
        self.up_conn_mbit = args.up_conn_mbit
        self.up_paced = bool(args.up_total_mbit or args.up_conn_mbit)
        # Paced: small chunks, so the buckets interleave connections finely
        # (16 KiB is 0.65 ms at 200 Mbit/s). Unpaced: big reads, fewer wakeups.
        self.chunk = 16384 if (args.total_mbit or args.conn_mbit) else 262144
        self.stats = Stats()

    def count_requests(self, data):
        for m in REQ_LINE.finditer(data):
            method, path = m.group(1).decode(), m.group(2)
            s = self.stats
            s.requests += 1
            s.by_method[method] = s.by_method.get(method, 0) + 1
            if b"/blobs/" in path and method == "GET":
                s.blob_gets += 1
            if b"/manifests/" in path:
                s.manifest_requests += 1

    async def client_to_upstream(self, reader, writer):
        """The request direction: a delay line. Each chunk leaves `delay`
        after it arrived, in order, and no sooner than the upload buckets
        allow; the queue is bounded, so a fast client waits on TCP."""
        q = asyncio.Queue(maxsize=64 if self.up_paced else 0)
        conn = Bucket(self.up_conn_mbit)
        read_size = 16384 if self.up_paced else 65536

        async def pump():
            while True:
                item = await q.get()
                if item is None:
                    break
                due, data = item
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        task = asyncio.ensure_future(pump())
        try:
            while True:
                data = await reader.read(read_size)
                if not data:
                    break
                self.count_requests(data)
                self.stats.bytes_up += len(data)
                now = time.monotonic()
                slot = max(conn.reserve(len(data), now), self.up_total.reserve(len(data), now))
                await q.put((slot + self.delay, data))
        finally:
            await q.put(None)
            await task

    async def upstream_to_client(self, reader, writer):
        conn = Bucket(self.conn_mbit)
        while True:
            data = await reader.read(self.chunk)
            if not data:
                break
            now = time.monotonic()
            due = max(conn.reserve(len(data), now), self.total.reserve(len(data), now))
            if due > now:
                await asyncio.sleep(due - now)
            writer.write(data)
            self.stats.bytes_down += len(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def handle(self, c_reader, c_writer):
        self.stats.connections += 1
        self.stats.active += 1
        u_writer = None
        try:
            # The handshake's round trip.
            if self.delay:
                await asyncio.sleep(self.delay)
            u_reader, u_writer = await asyncio.open_connection(self.up_host, self.up_port)
            await asyncio.gather(self.client_to_upstream(c_reader, u_writer),
                                 self.upstream_to_client(u_reader, c_writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (c_writer, u_writer):
                if w is not None:
                    w.close()
            self.stats.active -= 1

    async def control(self, reader, writer):
        try:
            line = await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            path = line.split()[1].decode() if len(line.split()) > 1 else "/"
            if path == "/reset":
                self.stats.reset()
            body = json.dumps(self.stats.as_dict()).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--control", type=int, required=True)
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--total-mbit", type=float, default=200)
    ap.add_argument("--conn-mbit", type=float, default=100)
    ap.add_argument("--up-total-mbit", type=float, default=0)
    ap.add_argument("--up-conn-mbit", type=float, default=0)
    args = ap.parse_args()
    sh = Shaper(args)
    srv = await asyncio.start_server(sh.handle, "127.0.0.1", args.listen, backlog=256)
    ctl = await asyncio.start_server(sh.control, "127.0.0.1", args.control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"shaper: 127.0.0.1:{args.listen} -> {args.upstream}, delay {args.delay_ms} ms, "
          f"{args.total_mbit or 'unlimited'} Mbit/s total, {args.conn_mbit or 'unlimited'} "
          f"Mbit/s per connection; up {args.up_total_mbit or 'unlimited'} Mbit/s total, "
          f"{args.up_conn_mbit or 'unlimited'} per connection; control 127.0.0.1:{args.control}",
          file=sys.stderr, flush=True)
    async with srv, ctl:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
