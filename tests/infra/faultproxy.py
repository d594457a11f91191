#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 reverse proxy for the integration tests.

It listens on 127.0.0.1:PORT in front of one upstream registry (http or https)
and forwards every request to it, streaming bodies both ways, unless a rule
says to misbehave on that request. A second listener (the "alt" listener,
default 127.0.0.2, a different host for an HTTP client) serves the same
upstream and is where the `redirect` action sends clients, as a CDN would.

    faultproxy.py --upstream http://127.0.0.1:5000 [--ca CA.crt]
                  [--listen 127.0.0.1:0] [--alt-listen 127.0.0.2:0]
                  [--tls-cert C --tls-key K]     serve HTTPS on both listeners
                  [--rules RULES.json] --log LOG.jsonl [--env-file F]

Port 0 picks a free port; the ports in use are written to --env-file
(shell syntax): AL_FAULT_PROXY, AL_FAULT_ALT, AL_FAULT_URL, AL_FAULT_ALT_URL,
AL_FAULT_LOG, AL_FAULT_RULES, AL_FAULT_PID. The file appears once both
listeners accept connections, so waiting for it is waiting for readiness.

Rules (a JSON file, re-read whenever it changes; or POST /__fault/rules with
the same JSON; either way the counters restart from zero):

    {"rules": [
      {"id": "r1", "method": "GET", "path": "/blobs/sha256:", "nth": 1,
       "action": "status", "status": 429, "headers": {"Retry-After": "1"}},
      {"path": "/blobs/", "first": 2, "action": "reset", "bytes": 4096}
    ]}

Match (all optional): method (exact, or a list), path (a Python regex,
searched in the path with its query), listener ("main", the default; "alt";
"any"), if_header {"Name": "regex"} (the header must be present and match),
unless_header ["Name", ...] (those headers must be absent). Each rule counts
the requests that match it; which of them it fires on: "nth": N or [N, M]
(1-based), "first": N, "after": N (every one after the Nth), or "every": true
(the default). The first rule that fires wins.

Actions:
  forward   pass through (the default); with set_headers {}/del_headers []
            to alter the upstream's response headers
  delay     sleep "seconds" then forward (any rule may also carry "delay")
  status    answer "status" (default 503) with "headers" and "body" (default
            a registry-style JSON error) without asking the upstream
  html      answer "status" (default 200) with a text/html page
  close     close the connection without answering (FIN: "empty reply";
            with "rst": true, a reset)
  reset     forward, send headers and "bytes" body bytes, then reset (RST)
  truncate  forward with the full Content-Length but only "bytes" bytes, then
            close cleanly (FIN)
  cut_request
            a cut inside an upload: forward the request's headers and only its
            first "bytes" body bytes to the upstream, then drop both
            connections (the upstream sees its client vanish mid-body, the
            client a reset, no answer)
  corrupt   forward, flipping the byte at offset "offset" (default 0); the
            length stays the same
  stall     forward "bytes" body bytes (-1: stall before the status line), then
            hold the connection for "seconds"; then "then": "close" (default)
            or "continue"
  redirect  answer "status" (default 307) with a Location on the alt listener,
            same path and query plus a one-use signature that lets the alt
            listener fetch from the upstream with the Authorization of the
            original request (as a presigned URL would). "location" overrides
            it: a template with {alt} {self} {path} {query} ({query} keeps its
            leading "?")
Forwarding actions also take "rate" (bytes per second) to send slowly.

Log: one JSON line per request: ts, listener, client, method, path, status
(what the client got, 0 if nothing), upstream_status, auth (was an
Authorization header present), auth_scheme, range, headers (request headers;
credential values redacted), bytes (body bytes sent), fault (rule id and
action, or null), error, ms. Authorization values are never written anywhere.

Control (main listener only; never forwarded nor logged): GET/POST /__fault/rules,
GET /__fault/stats (per-rule counters), POST /__fault/reset (counters to 0).
"""

import argparse
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse

CHUNK = 64 * 1024
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
    "trailer", "upgrade", "proxy-authenticate", "proxy-authorization", "expect",
}
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
SIG_PARAM = "__fault_sig"
ACTIONS = {"forward", "delay", "status", "html", "close", "reset", "truncate",
           "corrupt", "stall", "redirect", "cut_request"}

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Network login</title></head>\n"
             b"<body><h1>Please log in to continue</h1>\n"
             b"<form method=\"post\"><input name=\"user\"></form></body></html>\n")


def warn(msg):
    print(f"faultproxy: {msg}", file=sys.stderr, flush=True)


class RuleError(ValueError):
    pass


def compile_rules(doc):
    """Validate a rules document; return the list of rule dicts (compiled)."""
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("rules", []), list):
        raise RuleError('rules must be {"rules": [...]}')
    out = []
    for i, r in enumerate(doc.get("rules", [])):
        if not isinstance(r, dict):
            raise RuleError(f"rule {i}: not an object")
        r = dict(r)
        r.setdefault("id", f"rule{i}")
        action = r.setdefault("action", "forward")
        if action not in ACTIONS:
            raise RuleError(f"rule {r['id']}: unknown action {action!r}")
        try:
            r["_path"] = re.compile(r.get("path", ""))
            r["_if"] = {k.lower(): re.compile(v) for k, v in r.get("if_header", {}).items()}
        except re.error as e:
            raise RuleError(f"rule {r['id']}: bad regex: {e}") from None
        r["_unless"] = [h.lower() for h in r.get("unless_header", [])]
        m = r.get("method")
        r["_methods"] = None if m is None else ({m} if isinstance(m, str) else set(m))
        if r.get("listener", "main") not in ("main", "alt", "any"):
            raise RuleError(f"rule {r['id']}: listener must be main, alt or any")
        nth = r.get("nth")
        if nth is not None:
            r["_nth"] = {nth} if isinstance(nth, int) else set(nth)
        out.append(r)
    return out


class Rules:
    """The rule set, its per-rule counters, and the file it came from."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.reload_lock = threading.Lock()
        self.rules = []
        self.counts = []
        self.fired = []
        self.stamp = None
        if path:
            self.maybe_reload(force=True)

    def _stamp(self):
        try:
            st = os.stat(self.path)
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return None

    def set(self, rules):
        with self.lock:
            self.rules = rules
            self.counts = [0] * len(rules)
            self.fired = [0] * len(rules)

    def maybe_reload(self, force=False):
        if not self.path:
            return
        with self.reload_lock:
            self._maybe_reload(force)

    def _maybe_reload(self, force):
        stamp = self._stamp()
        if stamp == self.stamp and not force:
            return
        self.stamp = stamp
        if stamp is None:
            self.set([])
            return
        try:
            with open(self.path) as f:
                rules = compile_rules(json.load(f))
        except (OSError, ValueError) as e:
            # Keep the old rules: a half-written file must not drop them.
            warn(f"rules file {self.path}: {e}; keeping the previous rules")
            return
        self.set(rules)
        warn(f"loaded {len(rules)} rule(s) from {self.path}")

    def pick(self, listener, method, target, headers):
        """Count the request against every matching rule; return the first
        rule that fires on it, or None."""
        self.maybe_reload()
        chosen = None
        with self.lock:
            for i, r in enumerate(self.rules):
                lst = r.get("listener", "main")
                if lst != "any" and lst != listener:
                    continue
                if r["_methods"] is not None and method not in r["_methods"]:
                    continue
                if not r["_path"].search(target):
                    continue
                if any(headers.get(h) is not None for h in r["_unless"]):
                    continue
                if any(headers.get(h) is None or not rx.search(headers.get(h))
                       for h, rx in r["_if"].items()):
                    continue
                self.counts[i] += 1
                n = self.counts[i]
                if "_nth" in r:
                    fires = n in r["_nth"]
                elif "first" in r:
                    fires = n <= r["first"]
                elif "after" in r:
                    fires = n > r["after"]
                else:
                    fires = True
                if fires and chosen is None:
                    chosen = r
                    self.fired[i] += 1
        return chosen

    def stats(self):
        with self.lock:
            return [{"id": r["id"], "action": r["action"], "matched": c, "fired": f}
                    for r, c, f in zip(self.rules, self.counts, self.fired)]

    def public(self):
        with self.lock:
            return {"rules": [{k: v for k, v in r.items() if not k.startswith("_")}
                              for r in self.rules]}


class Proxy:
    """Shared state of both listeners."""

    def __init__(self, args):
        u = urllib.parse.urlsplit(args.upstream)
        if u.scheme not in ("http", "https") or not u.hostname:
            sys.exit(f"faultproxy: bad --upstream {args.upstream!r}")
        self.up_scheme = u.scheme
        self.up_host = u.hostname
        self.up_port = u.port or (443 if u.scheme == "https" else 80)
        self.up_ctx = None
        if u.scheme == "https":
            self.up_ctx = ssl.create_default_context(cafile=args.ca)
        self.rules = Rules(args.rules)
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1)
        self.connect_timeout = args.upstream_timeout
        # Signatures handed out in redirects: sig -> Authorization (or None).
        self.sigs = {}
        self.sigs_lock = threading.Lock()
        self.scheme = "https" if args.tls_cert else "http"
        self.main_addr = None
        self.alt_addr = None

    def upstream_conn(self):
        if self.up_scheme == "https":
            return http.client.HTTPSConnection(self.up_host, self.up_port,
                                               timeout=self.connect_timeout,
                                               context=self.up_ctx)
        return http.client.HTTPConnection(self.up_host, self.up_port,
                                          timeout=self.connect_timeout)

    def write_log(self, entry):
        line = json.dumps(entry, sort_keys=True)
        with self.log_lock:
            self.log.write(line + "\n")
            self.log.flush()

    def new_sig(self, authorization):
        sig = secrets.token_hex(16)
        with self.sigs_lock:
            self.sigs[sig] = authorization
        return sig

    def take_sig(self, sig):
        with self.sigs_lock:
            return self.sigs.pop(sig, False)


def redact_headers(headers):
    out = {}
    for k, v in headers.items():
        if k.lower() in SECRET_HEADERS:
            scheme = v.split(" ", 1)[0] if " " in v else ""
            v = f"<redacted {scheme}>".replace(" >", ">")
        if k in out:
            out[k] += ", " + v
        else:
            out[k] = v
    return out


def hard_reset(handler):
    """Close the client connection with a TCP RST: SO_LINGER with a zero
    timeout makes close() discard unsent data and send RST instead of FIN.
    The makefile() objects hold references, so close them first or the fd
    would stay open."""
    sock = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    for f in (handler.rfile, handler.wfile):
        try:
            f.close()
        except OSError:
            pass
    try:
        sock.close()
    except OSError:
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"
    proxy = None  # set on the subclass per listener
    listener = "main"

    def log_message(self, fmt, *args):  # quiet: we write our own log
        pass

    # Every method goes through one path.
    def do_GET(self):
        self.handle_one()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def hdr(self, name):
        return self.headers.get(name)

    def handle_one(self):
        t0 = time.monotonic()
        self.entry = {
            "ts": round(time.time(), 3), "listener": self.listener,
            "client": self.client_address[0], "method": self.command,
            "path": self.path, "status": 0, "upstream_status": None,
            "auth": self.hdr("Authorization") is not None,
            "auth_scheme": (self.hdr("Authorization") or " ").split(" ", 1)[0] or None,
            "range": self.hdr("Range"), "headers": redact_headers(self.headers),
            "bytes": 0, "fault": None, "error": None,
        }
        try:
            if self.listener == "main" and self.path.startswith("/__fault/"):
                self.entry["control"] = True  # stays out of the log
                self.control()
                return
            rule = self.proxy.rules.pick(self.listener, self.command, self.path,
                                         self.headers)
            if rule is not None:
                self.entry["fault"] = {"id": rule["id"], "action": rule["action"]}
            self.apply(rule)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
            self.entry["error"] = f"client: {e.__class__.__name__}"
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - log it, keep serving
            self.entry["error"] = f"{e.__class__.__name__}: {e}"
            self.close_connection = True
            if self.entry["status"] == 0:
                try:
                    self.simple(502, {"Content-Type": "text/plain"},
                                f"faultproxy: {e}\n".encode())
                except OSError:
                    pass
        finally:
            if not self.entry.get("control"):
                self.entry["ms"] = int((time.monotonic() - t0) * 1000)
                self.proxy.write_log(self.entry)

    # -- control endpoint ----------------------------------------------------
    def control(self):
        body = self.read_body_small()
        p = self.path.split("?", 1)[0]
        if not (p == "/__fault/rules" and self.command == "POST"):
            self.proxy.rules.maybe_reload()
        if p == "/__fault/rules" and self.command == "POST":
            try:
                rules = compile_rules(json.loads(body or b"{}"))
            except ValueError as e:
                self.simple(400, {"Content-Type": "text/plain"}, f"{e}\n".encode())
                return
            self.proxy.rules.set(rules)
            self.json_reply({"loaded": len(rules)})
        elif p == "/__fault/rules":
            self.json_reply(self.proxy.rules.public())
        elif p == "/__fault/stats":
            self.json_reply(self.proxy.rules.stats())
        elif p == "/__fault/reset" and self.command == "POST":
            r = self.proxy.rules
            with r.lock:
                r.counts = [0] * len(r.rules)
                r.fired = [0] * len(r.rules)
            self.json_reply({"reset": True})
        else:
            self.simple(404, {"Content-Type": "text/plain"}, b"unknown control path\n")

    def json_reply(self, obj):
        self.simple(200, {"Content-Type": "application/json"},
                    (json.dumps(obj, indent=1) + "\n").encode())

    # -- request body ----------------------------------------------------------
    def read_body_small(self, limit=16 << 20):
        """Read (or drain) a request body we do not forward."""
        if (self.hdr("Transfer-Encoding") or "").lower() == "chunked":
            return b"".join(self.iter_chunked_body())
        n = int(self.hdr("Content-Length") or 0)
        if n > limit:
            self.close_connection = True
            return b""
        return self.rfile.read(n) if n else b""

    def iter_chunked_body(self):
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return
            data = self.rfile.read(size)
            self.rfile.readline(3)
            yield data

    def iter_length_body(self, n):
        while n > 0:
            data = self.rfile.read(min(CHUNK, n))
            if not data:
                raise ConnectionResetError("client closed mid-body")
            n -= len(data)
            yield data

    # -- answers made here -------------------------------------------------------
    def send_head(self, status, headers, reason=None):
        reason = reason or http.client.responses.get(status, "Unknown")
        lines = [f"HTTP/1.1 {status} {reason}"]
        for k, v in headers:
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.entry["status"] = status

    def simple(self, status, headers, body):
        h = list(headers.items()) + [("Content-Length", str(len(body)))]
        self.send_head(status, h)
        if self.command != "HEAD":
            self.wfile.write(body)
            self.entry["bytes"] = len(body)

    # -- the actions -------------------------------------------------------------
    def apply(self, rule):
        r = rule or {}
        action = r.get("action", "forward")
        delay = r.get("delay", r.get("seconds", 0) if action == "delay" else 0)
        if delay:
            time.sleep(float(delay))
        if action == "stall" and int(r.get("bytes", 0)) < 0:
            time.sleep(float(r.get("seconds", 30)))
            if r.get("then", "close") == "close":
                self.close_connection = True
                return
        if action in ("status", "html", "close", "redirect"):
            # Answered here: consume the request body so the next request on
            # this connection parses.
            self.read_body_small()
        if action == "close":
            self.close_connection = True
            if r.get("rst"):
                hard_reset(self)
            return
        if action == "status":
            status = int(r.get("status", 503))
            body = r.get("body")
            if body is None:
                code = {401: "UNAUTHORIZED", 403: "DENIED", 404: "BLOB_UNKNOWN",
                        429: "TOOMANYREQUESTS"}.get(status, "UNAVAILABLE")
                body = json.dumps({"errors": [{"code": code, "message": f"faultproxy: injected {status}",
                                               "detail": None}]})
            headers = {"Content-Type": "application/json"}
            headers.update(r.get("headers", {}))
            self.simple(status, headers, body.encode() if isinstance(body, str) else body)
            return
        if action == "html":
            headers = {"Content-Type": "text/html; charset=utf-8"}
            headers.update(r.get("headers", {}))
            self.simple(int(r.get("status", 200)), headers, HTML_PAGE)
            return
        if action == "redirect":
            self.redirect(r)
            return
        self.forward(r)

    def redirect(self, r):
        path, _, query = self.path.partition("?")
        query = "?" + query if query else ""
        sig = self.proxy.new_sig(self.hdr("Authorization"))
        signed_query = (query + "&" if query else "?") + f"{SIG_PARAM}={sig}"
        scheme = self.proxy.scheme
        alt = f"{scheme}://{self.proxy.alt_addr}" if self.proxy.alt_addr else ""
        if "location" in r:
            loc = r["location"].format(alt=alt, self=f"{scheme}://{self.proxy.main_addr}",
                                       path=path, query=query, signed_query=signed_query)
        else:
            loc = f"{alt}{path}{signed_query}"
        headers = {"Location": loc, "Content-Type": "text/plain"}
        headers.update(r.get("headers", {}))
        self.simple(int(r.get("status", 307)), headers, b"redirected by faultproxy\n")

    def forward(self, r):
        action = r.get("action", "forward")
        method = self.command
        target = self.path
        headers = []
        for k, v in self.headers.items():
            if k.lower() in HOP_BY_HOP:
                continue
            headers.append((k, v))
        # On the alt listener, a signed URL stands in for the credentials the
        # client must not send there (see the redirect action).
        if self.listener == "alt":
            path, _, query = target.partition("?")
            params = urllib.parse.parse_qsl(query, keep_blank_values=True)
            sig = [v for k, v in params if k == SIG_PARAM]
            if sig:
                auth = self.proxy.take_sig(sig[0])
                self.entry["signed"] = auth is not False
                rest = [(k, v) for k, v in params if k != SIG_PARAM]
                target = path + ("?" + urllib.parse.urlencode(rest) if rest else "")
                if auth and not any(k.lower() == "authorization" for k, _ in headers):
                    headers.append(("Authorization", auth))
        headers.append(("X-Forwarded-Proto", self.proxy.scheme))
        chunked_in = (self.hdr("Transfer-Encoding") or "").lower() == "chunked"
        body = None
        if chunked_in:
            body = self.iter_chunked_body()
            headers.append(("Transfer-Encoding", "chunked"))
        elif self.hdr("Content-Length"):
            body = self.iter_length_body(int(self.hdr("Content-Length")))

        conn = self.proxy.upstream_conn()
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders()
            if action == "cut_request":
                self.cut_request(conn, body, int(r.get("bytes", 0)))
                return
            if body is not None:
                for data in body:
                    if chunked_in:
                        conn.send(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        conn.send(data)
                if chunked_in:
                    conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self.entry["error"] = f"upstream: {e.__class__.__name__}: {e}"
            self.close_connection = True
            self.simple(502, {"Content-Type": "text/plain"}, f"faultproxy: upstream: {e}\n".encode())
            return
        try:
            self.relay(resp, r, action)
        finally:
            conn.close()

    def cut_request(self, conn, body, limit):
        """Send the upstream limit bytes of the body, then hang up on both."""
        sent = 0
        for data in body or ():
            if sent >= limit:
                break
            part = data[:limit - sent]
            conn.send(part)
            sent += len(part)
        self.entry["error"] = f"cut_request after {sent} body bytes"
        self.entry["request_bytes"] = sent
        try:
            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()
        self.close_connection = True
        hard_reset(self)

    def relay(self, resp, r, action):
        self.entry["upstream_status"] = resp.status
        out = []
        drop = {h.lower() for h in r.get("del_headers", [])}
        sets = r.get("set_headers", {})
        drop |= {h.lower() for h in sets}
        length = None
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in HOP_BY_HOP or lk in drop:
                continue
            if lk == "content-length":
                length = int(v)
                continue
            out.append((k, v))
        out += list(sets.items())
        no_body = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        if length is not None:
            out.append(("Content-Length", str(length)))
        elif not no_body:
            out.append(("Transfer-Encoding", "chunked"))
        if action in ("reset", "truncate", "stall"):
            self.close_connection = True
        self.send_head(resp.status, out, resp.reason)
        if no_body:
            return
        chunked = length is None
        limit = int(r.get("bytes", 0)) if action in ("reset", "truncate", "stall") else None
        corrupt_at = int(r.get("offset", 0)) if action == "corrupt" else None
        rate = float(r.get("rate", 0)) or None
        sent = 0
        t0 = time.monotonic()
        while True:
            want = CHUNK
            if limit is not None:
                want = min(want, limit - sent)
                if want <= 0:
                    break
            data = resp.read(want)
            if not data:
                break
            if corrupt_at is not None and sent <= corrupt_at < sent + len(data):
                b = bytearray(data)
                b[corrupt_at - sent] ^= 0xFF
                data = bytes(b)
                self.entry["corrupted_offset"] = corrupt_at
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            sent += len(data)
            self.entry["bytes"] = sent
            if rate:
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        if limit is None:
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        # The faults that cut the body short.
        if action == "stall":
            time.sleep(float(r.get("seconds", 30)))
            if r.get("then", "close") == "continue":
                while True:
                    data = resp.read(CHUNK)
                    if not data:
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    sent += len(data)
                    self.entry["bytes"] = sent
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                # Keep the connection usable: the response is complete.
                self.close_connection = self.headers.get("Connection", "").lower() == "close"
                return
            self.close_connection = True
            return
        if action == "reset":
            hard_reset(self)
            return
        # truncate: a clean FIN after the short body.
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def split_addr(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def make_server(proxy, addr, listener, tls_ctx):
    cls = type(f"Handler_{listener}", (Handler,), {"proxy": proxy, "listener": listener})
    srv = Server(split_addr(addr), cls)
    if tls_ctx is not None:
        srv.socket = tls_ctx.wrap_socket(srv.socket, server_side=True)
    return srv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="http(s)://HOST:PORT of the registry")
    ap.add_argument("--ca", help="CA bundle to verify an https upstream")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--alt-listen", default="127.0.0.2:0",
                    help="the redirect target listener ('' to disable)")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (SAN must cover both hosts)")
    ap.add_argument("--tls-key")
    ap.add_argument("--rules", help="JSON rules file, re-read when it changes")
    ap.add_argument("--log", required=True, help="JSON-lines request log")
    ap.add_argument("--env-file", help="write the listener addresses here once ready")
    ap.add_argument("--upstream-timeout", type=float, default=60.0)
    args = ap.parse_args()

    proxy = Proxy(args)
    tls_ctx = None
    if args.tls_cert:
        tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    main_srv = make_server(proxy, args.listen, "main", tls_ctx)
    servers = [main_srv]
    h, p = main_srv.server_address[:2]
    proxy.main_addr = f"{h}:{p}"
    if args.alt_listen:
        alt_srv = make_server(proxy, args.alt_listen, "alt", tls_ctx)
        servers.append(alt_srv)
        h, p = alt_srv.server_address[:2]
        proxy.alt_addr = f"{h}:{p}"
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()

    def stop(*_):
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda *_: proxy.rules.maybe_reload(force=True))

    scheme = proxy.scheme
    env = {
        "AL_FAULT_PROXY": proxy.main_addr,
        "AL_FAULT_ALT": proxy.alt_addr or "",
        "AL_FAULT_URL": f"{scheme}://{proxy.main_addr}",
        "AL_FAULT_ALT_URL": f"{scheme}://{proxy.alt_addr}" if proxy.alt_addr else "",
        "AL_FAULT_LOG": os.path.abspath(args.log),
        "AL_FAULT_RULES": os.path.abspath(args.rules) if args.rules else "",
        "AL_FAULT_PID": str(os.getpid()),
    }
    text = "".join(f"export {k}={v}\n" for k, v in env.items())
    if args.env_file:
        tmp = args.env_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, args.env_file)
    warn(f"listening on {proxy.main_addr}" + (f" and {proxy.alt_addr}" if proxy.alt_addr else "")
         + f", upstream {args.upstream}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
