#!/usr/bin/env python3
"""A TCP relay that slows the upstream -> client direction to a fixed rate,
shared by all connections, so that a download lasts long enough to watch.

    throttle-proxy.py --upstream HOST:PORT --rate BYTES_PER_SEC --port-file FILE

It listens on 127.0.0.1 (a free port, written to FILE once listening) and
relays every connection to the upstream. Stop it with SIGTERM."""
import argparse
import os
import signal
import socket
import sys
import threading
import time


class Bucket:
    """A token bucket: take(n) blocks until n bytes may pass."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.tokens = 0.0
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n):
        while True:
            with self.lock:
                now = time.monotonic()
                # At most a tenth of a second of burst.
                self.tokens = min(self.tokens + (now - self.last) * self.rate, self.rate / 10)
                self.last = now
                if self.tokens >= n:
                    self.tokens -= n
                    return
                wait = (n - self.tokens) / self.rate
            time.sleep(min(wait, 0.05))


def pipe(src, dst, bucket):
    try:
        while True:
            data = src.recv(16384)
            if not data:
                break
            if bucket is not None:
                bucket.take(len(data))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    bucket = Bucket(args.rate)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        client, _ = ls.accept()
        try:
            up = socket.create_connection((host, int(port)))
        except OSError:
            client.close()
            continue
        threading.Thread(target=pipe, args=(client, up, None), daemon=True).start()
        threading.Thread(target=pipe, args=(up, client, bucket), daemon=True).start()


if __name__ == "__main__":
    main()
