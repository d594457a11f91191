#!/usr/bin/env python3
"""A fake registry for bad-input and hostile-server tests: serves fixed responses from a JSON map.

    fakeregistry.py --port-file F [--bind ADDR] [--tls-cert C --tls-key K]
                    [--log F] [--header-log F] ROUTES.json

ROUTES.json maps "METHOD PATH" (or "PATH" for GET and HEAD) to a response
(POST, PUT and PATCH bodies are read and dropped; a push target that refuses
a manifest answers its PUT):
    {"status": 200, "headers": {"Content-Type": "..."}, "body": "text",
     "body_b64": "...", "body_file": "path", "repeat": N}
PATH is matched with its query string first, then without it (a token
endpoint is asked "/token?service=...&scope=..."). "repeat" makes the body
N copies of itself (for size-cap tests). Anything not in the map is a 404
with a registry-style error. Every request is appended to the log given by
--log as "METHOD PATH", and with --header-log as a JSON line {"method",
"path", "headers": [[name, value], ...]} in which the value of
Authorization is cut to its scheme ("Basic <redacted>"), so a test sees
whether credentials came without the log holding them. --bind (default
127.0.0.1) is the address to listen on (one in a network namespace, say);
--tls-cert/--tls-key serve HTTPS.
"""
import argparse
import base64
import http.server
import json
import socketserver
import ssl
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("routes")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--header-log")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    with open(args.routes) as f:
        routes = json.load(f)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def log_headers(self):
            hs = []
            for k, v in self.headers.items():
                if k.lower() == "authorization":
                    v = v.split(" ", 1)[0] + " <redacted>"
                hs.append([k, v])
            line = json.dumps({"method": self.command, "path": self.path, "headers": hs})
            with open(args.header_log, "a") as f:
                f.write(line + "\n")

        def respond(self, head):
            if args.log:
                with open(args.log, "a") as f:
                    f.write(f"{self.command} {self.path}\n")
            if args.header_log:
                self.log_headers()
            bare = self.path.split("?", 1)[0]
            r = (routes.get(f"{self.command} {self.path}") or routes.get(self.path)
                 or routes.get(f"{self.command} {bare}") or routes.get(bare))
            if r is None:
                body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
                r = {"status": 404, "headers": {"Content-Type": "application/json"}}
            elif "body_b64" in r:
                body = base64.b64decode(r["body_b64"])
            elif "body_file" in r:
                with open(r["body_file"], "rb") as f:
                    body = f.read()
            else:
                body = r.get("body", "").encode()
            body = body * int(r.get("repeat", 1))
            self.send_response(int(r.get("status", 200)))
            for k, v in r.get("headers", {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self):
            self.respond(False)

        def do_HEAD(self):
            self.respond(True)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            self.respond(False)

        do_PUT = do_PATCH = do_POST

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server((args.bind, 0), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(args.port_file, "w") as f:
        f.write(str(srv.server_address[1]))
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
