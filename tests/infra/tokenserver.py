#!/usr/bin/env python3
"""A Docker registry token issuer (the "token" auth scheme) for the tests.

    tokenserver.py --key SIGNING.key --cert SIGNING.crt [--chain CA.crt]
                   --issuer ISS --service SVC --policy POLICY.json
                   --log LOG.jsonl [--listen 127.0.0.1:0] [--expiry 300]
                   [--hard-expiry] [--env-file F]

GET /token?service=SVC&scope=repository:NAME:pull[,push]&scope=...
    with optional Basic auth. Answers {"token", "access_token", "expires_in",
    "issued_at"}; wrong credentials get 401. Scopes the caller may not have
    are left out of the token (not an error), as Docker Hub does: the
    registry then answers 401 insufficient_scope.
POST /token (OAuth2 form: grant_type=password with username/password, or
    grant_type=refresh_token) answers {"access_token", "expires_in",
    "issued_at", "scope"[, "refresh_token" when access_type=offline]}.

The JWT is signed RS256 with `openssl dgst` (python has no RSA in its
standard library). distribution 2.8 checks a token like this:
  - iss must equal auth.token.issuer, aud must equal auth.token.service
    (a plain string: 2.8 has no audience lists);
  - exp and nbf with 60 s of leeway (so a token lives 60 s past its exp);
  - the signing key comes from the header: `x5c` first (a chain of base64
    DER certificates, leaf first, that must verify up to a certificate in
    auth.token.rootcertbundle), else `jwk`, else `kid` looked up among the
    libtrust key IDs of the rootcertbundle's keys.
We send x5c = [signing cert, --chain certs...] and also the libtrust kid.

--hard-expiry backdates exp by that leeway, so the registry itself rejects
a token once expires_in has passed; with --expiry 5 that tests refresh.

POLICY.json (re-read on every request, so a test can change it live):
  {"users": {"NAME": "PASSWORD", ...},
   "repositories": [
     {"match": "public/*", "anonymous": ["pull"],
      "users": {"*": ["pull"], "NAME": ["pull", "push"]}},
     ...],
   "expires_in": 300, "hard_expiry": false, "jwt_expiry": 4}
The first repository rule whose fnmatch pattern matches the name applies;
"*" in users means any authenticated user. The "registry:catalog:*" scope is
granted to authenticated users. "expires_in" and "hard_expiry" override
--expiry and --hard-expiry. "jwt_expiry" (optional; default expires_in) sets
the token's exp claim alone: now + jwt_expiry (minus the leeway when
hard_expiry), while the answer still announces expires_in. So a registry can
refuse a token long before its announced expiry, as one does after a key
rotation or a revocation: the client's own clock never tells it to renew.

LOG.jsonl: one line per request: ts, method, path, user (null when
anonymous), auth ("none", "ok", "bad"), status, requested, granted,
expires_in, jti. Passwords and tokens are never logged.
"""

import argparse
import base64
import fnmatch
import hashlib
import http.server
import json
import os
import secrets
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

LEEWAY = 60  # distribution's registry/auth/token.Leeway


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pem_to_ders(path):
    """The DER bytes of every certificate in a PEM file."""
    out, cur = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line == "-----BEGIN CERTIFICATE-----":
                cur = []
            elif line == "-----END CERTIFICATE-----":
                out.append(base64.b64decode("".join(cur)))
                cur = None
            elif cur is not None:
                cur.append(line)
    return out


def libtrust_kid(cert_path):
    """libtrust's key ID: base32 of the first 240 bits of SHA-256 over the
    DER SubjectPublicKeyInfo, in 12 groups of 4 separated by ':'."""
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True).stdout
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def parse_scope(s):
    """'repository:NAME:pull,push' -> ('repository', 'NAME', ['pull', 'push']).
    NAME may itself hold ':' (a host:port), so split at the first and last."""
    typ, sep, rest = s.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not name:
        return None
    return typ, name, [a for a in actions.split(",") if a]


class Issuer:
    def __init__(self, args):
        self.args = args
        self.key = args.key
        x5c = pem_to_ders(args.cert)[:1]
        for c in args.chain or []:
            x5c += pem_to_ders(c)
        self.header = {"typ": "JWT", "alg": "RS256", "kid": libtrust_kid(args.cert),
                       "x5c": [base64.b64encode(d).decode() for d in x5c]}
        self.log_lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1)
        # refresh token -> username (POST grant_type=refresh_token)
        self.refresh = {}

    def policy(self):
        with open(self.args.policy) as f:
            return json.load(f)

    def write_log(self, entry):
        with self.log_lock:
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")

    def grant(self, pol, user, scopes):
        """Intersect requested scopes with what the policy allows USER
        (None = anonymous)."""
        granted = []
        for typ, name, actions in scopes:
            allowed = set()
            if typ == "repository":
                for rule in pol.get("repositories", []):
                    if fnmatch.fnmatchcase(name, rule.get("match", "")):
                        allowed |= set(rule.get("anonymous", []))
                        if user is not None:
                            users = rule.get("users", {})
                            allowed |= set(users.get("*", [])) | set(users.get(user, []))
                        break
            elif typ == "registry" and name == "catalog" and user is not None:
                allowed = {"*"}
            acts = [a for a in actions if a in allowed or "*" in allowed]
            if acts:
                granted.append({"type": typ, "name": name, "actions": acts})
        return granted

    def sign(self, claims):
        h = b64url(json.dumps(self.header, separators=(",", ":")).encode())
        c = b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{h}.{c}".encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                             input=signing_input, check=True, capture_output=True).stdout
        return f"{h}.{c}.{b64url(sig)}"

    def issue(self, pol, user, service, access):
        expires_in = int(pol.get("expires_in", self.args.expiry))
        hard = bool(pol.get("hard_expiry", self.args.hard_expiry))
        now = int(time.time())
        jwt_expiry = int(pol.get("jwt_expiry", expires_in))
        exp = now + jwt_expiry - (LEEWAY if hard else 0)
        jti = secrets.token_hex(12)
        claims = {"iss": self.args.issuer, "sub": user or "", "aud": service,
                  "exp": exp, "nbf": now - (LEEWAY if hard else 1) - 1, "iat": now,
                  "jti": jti, "access": access}
        issued_at = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self.sign(claims), expires_in, issued_at, jti


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "airlock-tokenserver"
    issuer = None

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, extra=None):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.entry["status"] = status

    def basic_user(self, pol):
        """-> (user or None, auth state)."""
        h = self.headers.get("Authorization")
        if not h:
            return None, "none"
        scheme, _, val = h.partition(" ")
        if scheme.lower() != "basic":
            return None, "none"
        try:
            user, _, pw = base64.b64decode(val.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, "bad"
        return self.check(pol, user, pw)

    @staticmethod
    def check(pol, user, pw):
        want = pol.get("users", {}).get(user)
        if want is None or not secrets.compare_digest(want.encode(), pw.encode()):
            return user, "bad"
        return user, "ok"

    def unauthorized(self, user):
        self.entry["user"] = user
        self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                      "message": "incorrect username or password"}]},
                   {"WWW-Authenticate": 'Basic realm="airlock-tokenserver"'})

    def common(self, service, raw_scopes, user, state, pol):
        self.entry.update(user=user if state == "ok" else None, auth=state,
                          requested=raw_scopes)
        if state == "bad":
            self.unauthorized(user)
            return None
        if service and service != self.issuer.args.service:
            self.reply(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service}"}]})
            return None
        scopes = [p for p in (parse_scope(s) for s in raw_scopes) if p]
        access = self.issuer.grant(pol, user if state == "ok" else None, scopes)
        tok, expires_in, issued_at, jti = self.issuer.issue(
            pol, user if state == "ok" else None, self.issuer.args.service, access)
        self.entry.update(granted=[f"{a['type']}:{a['name']}:{','.join(a['actions'])}"
                                   for a in access], expires_in=expires_in, jti=jti)
        return tok, expires_in, issued_at

    def handle_req(self, fn):
        self.entry = {"ts": round(time.time(), 3), "method": self.command,
                      "path": self.path, "status": 0, "user": None, "auth": "none"}
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a test server: log, answer 500
            self.entry["error"] = f"{e.__class__.__name__}: {e}"
            if self.entry["status"] == 0:
                self.reply(500, {"errors": [{"code": "UNKNOWN", "message": str(e)}]})
        finally:
            self.issuer.write_log(self.entry)

    def do_GET(self):
        self.handle_req(self.get)

    def do_POST(self):
        self.handle_req(self.post)

    def get(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": u.path}]})
            return
        q = urllib.parse.parse_qs(u.query)
        pol = self.issuer.policy()
        user, state = self.basic_user(pol)
        scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
        r = self.common(q.get("service", [""])[0], scopes, user, state, pol)
        if r:
            tok, expires_in, issued_at = r
            self.reply(200, {"token": tok, "access_token": tok,
                             "expires_in": expires_in, "issued_at": issued_at})

    def post(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(n).decode()) if n else {}
        if u.path != "/token":
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": u.path}]})
            return
        f = {k: v[0] for k, v in form.items()}
        pol = self.issuer.policy()
        grant = f.get("grant_type")
        if grant == "password":
            user, state = self.check(pol, f.get("username", ""), f.get("password", ""))
        elif grant == "refresh_token":
            user = self.issuer.refresh.get(f.get("refresh_token", ""))
            state = "ok" if user else "bad"
        else:
            self.reply(400, {"error": "unsupported_grant_type"})
            return
        scopes = [s for s in f.get("scope", "").split(" ") if s]
        r = self.common(f.get("service", ""), scopes, user, state, pol)
        if r:
            tok, expires_in, issued_at = r
            out = {"access_token": tok, "expires_in": expires_in, "issued_at": issued_at,
                   "scope": " ".join(self.entry.get("granted", []))}
            if f.get("access_type") == "offline":
                rt = secrets.token_hex(16)
                self.issuer.refresh[rt] = user
                out["refresh_token"] = rt
            self.reply(200, out)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--key", required=True, help="RSA private key (PEM)")
    ap.add_argument("--cert", required=True, help="its certificate (first in x5c)")
    ap.add_argument("--chain", action="append", help="intermediate certificates for x5c")
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--expiry", type=int, default=300, help="expires_in, seconds")
    ap.add_argument("--hard-expiry", action="store_true",
                    help="backdate exp by the registry's 60 s leeway")
    ap.add_argument("--env-file")
    args = ap.parse_args()

    issuer = Issuer(args)
    issuer.policy()  # fail now on a bad policy file
    cls = type("BoundHandler", (Handler,), {"issuer": issuer})
    host, _, port = args.listen.rpartition(":")
    srv = Server((host, int(port)), cls)
    addr = "%s:%d" % srv.server_address[:2]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if args.env_file:
        with open(args.env_file + ".tmp", "w") as f:
            f.write(f"export AL_TOKEN_SERVER={addr}\n"
                    f"export AL_TOKEN_REALM=http://{addr}/token\n"
                    f"export AL_TOKEN_SERVER_PID={os.getpid()}\n")
        os.rename(args.env_file + ".tmp", args.env_file)
    print(f"tokenserver: listening on {addr}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
