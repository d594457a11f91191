/* airlock-fetch: flags only; the work is in plan.c. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credentials.h"
#include "file.h"
#include "db.h"
#include "engine.h"
#include "import.h"
#include "log.h"
#include "plan.h"
#include "platform.h"
#include "progress.h"
#include "prune.h"
#include "ref.h"
#include "reflist.h"
#include "registry.h"
#include "report.h"
#include "sanitize.h"
#include "store.h"
#include "util.h"

#define AL_FETCH_VERSION "0.1.0"

static const char usage_text[] =
    "Usage: airlock-fetch [OPTIONS] [REF]...\n"
    "Mirror container images from Docker/OCI registries into an airlock store.\n"
    "\n"
    "Images:\n"
    "  REF                        image reference (busybox, rancher/pause:3.6, "
    "quay.io/a/b@sha256:...)\n"
    "  -f, --file FILE            read refs from FILE, one per line ('-' = stdin; repeatable)\n"
    "      --registry HOST[:PORT] fetch docker.io images from HOST instead of Docker Hub,\n"
    "                             keeping their docker.io names (default: Docker Hub)\n"
    "      --mirror UPSTREAM=HOST[:PORT][/PREFIX]\n"
    "                             fetch UPSTREAM's images (e.g. docker.io) from HOST, under\n"
    "                             PREFIX/ when given, keeping their names; repeatable, tried\n"
    "                             in order, then UPSTREAM itself\n"
    "      --mirror-only          never fall back to the upstream registry\n"
    "      --platform LIST        only these platforms, e.g. linux/amd64,linux/arm64\n"
    "                             (default: every platform of the image)\n"
    "      --include-attestations also mirror attestation manifests (unknown/unknown)\n"
    "\n"
    "Store:\n"
    "      --store DIR            the store (default: $AIRLOCK_STORE, else ./airlock-store)\n"
    "      --prune                after the fetch (or alone, without REF), remove the blobs\n"
    "                             that no kept tag reaches, and files without a row\n"
    "      --keep N               with --prune: besides each tag's current digest, keep the\n"
    "                             graphs of its N previous digests, so that an export of\n"
    "                             NAME@OLD-DIGEST (a rollback) still works (default: 1)\n"
    "      --remove REF           remove the tag REF from the store, then prune (repeatable)\n"
    "      --dry-run              with --prune or --remove: list what would go and how many\n"
    "                             bytes; change nothing\n"
    "      --import BUNDLE        apply a bundle that airlock-export wrote (BUNDLE, or its\n"
    "                             volumes BUNDLE.001 ...): every blob verified before\n"
    "                             anything is visible; tags move as in a fetch; a bundle\n"
    "                             whose base this store never applied is refused\n"
    "\n"
    "Transfers:\n"
    "  -j, --jobs N               concurrent downloads (default: 8)\n"
    "      --retries N            retries of a transient failure (default: 4)\n"
    "      --connect-timeout SEC  connection timeout (default: 30)\n"
    "      --stall-timeout SEC    cut a transfer slower than 1 kB/s for SEC (default: 60)\n"
    "\n"
    "Registry access:\n"
    "      --username USER        user name for every registry of this run\n"
    "      --password-stdin       read the password from stdin (with --username)\n"
    "      --ca-cert FILE         trust the CA certificates in FILE (PEM) as well as the system's\n"
    "      --client-cert FILE     client certificate (PEM) for registries that require one\n"
    "      --client-key FILE      its private key (default: in the --client-cert file)\n"
    "      --certs-dir DIR        per-registry TLS files DIR/HOST[:PORT]/{*.crt,client.cert,\n"
    "                             client.key} (default: /etc/docker/certs.d and\n"
    "                             /etc/containers/certs.d)\n"
    "      --insecure-registry HOST[:PORT]\n"
    "                             allow plain HTTP or unverified TLS for HOST (repeatable);\n"
    "                             localhost, 127.0.0.0/8 and ::1 may use plain HTTP without it\n"
    "  Without --username, credentials come from containers auth.json ($REGISTRY_AUTH_FILE,\n"
    "  else $XDG_RUNTIME_DIR/containers/auth.json), then docker's config.json ($DOCKER_CONFIG,\n"
    "  else ~/.docker/config.json: credHelpers, credsStore, auths).\n"
    "\n"
    "Output:\n"
    "      --json FILE            write a machine-readable report of the run to FILE\n"
    "                             (docs/fetch-report.schema.json)\n"
    "      --lock FILE            write every ref of the run pinned by the digest fetched\n"
    "                             (NAME:TAG@DIGEST) to FILE: a list for airlock-export -f\n"
    "  -q, --quiet                errors only on stderr\n"
    "  -v, --verbose              more detail on stderr (AL_DEBUG_HTTP=1 traces HTTP)\n"
    "  -h, --help                 this help\n"
    "      --version              print the version\n"
    "  Results go to stdout, one line per image, then a summary. Progress goes to stderr:\n"
    "  a display redrawn ten times a second on a terminal, else one line per blob.\n"
    "\n"
    "Exit status: 0 all images fetched, 1 some failed (the others are stored),\n"
    "2 usage or input error (nothing fetched), 3 store unusable (busy, corrupt, newer).\n";

enum {
    OPT_REGISTRY = 256,
    OPT_PLATFORM,
    OPT_ATTEST,
    OPT_STORE,
    OPT_USERNAME,
    OPT_PASSWORD_STDIN,
    OPT_CA_CERT,
    OPT_INSECURE,
    OPT_VERSION,
    OPT_RETRIES,
    OPT_CONNECT_TIMEOUT,
    OPT_STALL_TIMEOUT,
    OPT_CLIENT_CERT,
    OPT_CLIENT_KEY,
    OPT_CERTS_DIR,
    OPT_MIRROR,
    OPT_MIRROR_ONLY,
    OPT_JSON,
    OPT_LOCK,
    OPT_PRUNE,
    OPT_KEEP,
    OPT_REMOVE,
    OPT_DRY_RUN,
    OPT_IMPORT,
};

static const struct option long_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"registry", required_argument, NULL, OPT_REGISTRY},
    {"mirror", required_argument, NULL, OPT_MIRROR},
    {"mirror-only", no_argument, NULL, OPT_MIRROR_ONLY},
    {"platform", required_argument, NULL, OPT_PLATFORM},
    {"include-attestations", no_argument, NULL, OPT_ATTEST},
    {"store", required_argument, NULL, OPT_STORE},
    {"jobs", required_argument, NULL, 'j'},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"stall-timeout", required_argument, NULL, OPT_STALL_TIMEOUT},
    {"username", required_argument, NULL, OPT_USERNAME},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"ca-cert", required_argument, NULL, OPT_CA_CERT},
    {"client-cert", required_argument, NULL, OPT_CLIENT_CERT},
    {"client-key", required_argument, NULL, OPT_CLIENT_KEY},
    {"certs-dir", required_argument, NULL, OPT_CERTS_DIR},
    {"insecure-registry", required_argument, NULL, OPT_INSECURE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"json", required_argument, NULL, OPT_JSON},
    {"lock", required_argument, NULL, OPT_LOCK},
    {"prune", no_argument, NULL, OPT_PRUNE},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"remove", required_argument, NULL, OPT_REMOVE},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"import", required_argument, NULL, OPT_IMPORT},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    al_error_log("%s", msg);
    fputs("Try 'airlock-fetch --help'.\n", stderr);
    return AL_EXIT_USAGE;
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* HOST[:PORT] as the reference grammar accepts a registry. */
static bool valid_host(const char *s)
{
    if (*s == '\0' || strchr(s, '/') != NULL || strlen(s) > 255)
        return false;
    _cleanup_free_ char *probe = al_xasprintf("%s/x/y", s);
    al_ref *r = NULL;
    al_error *e = NULL;
    bool ok = al_ref_parse(&r, probe, &e) == 0 && strcmp(r->domain, s) == 0;
    al_ref_free(r);
    al_error_free(e);
    /* "localhost" and dotted or ported names parse as a domain; a bare word
     * like "mirror" would have become docker.io/mirror/x/y. */
    return ok;
}

/* UPSTREAM=HOST[:PORT][/PREFIX] into m (pointing into the copy *text). */
static bool parse_mirror(const char *arg, al_mirror *m, char **text)
{
    char *t = al_xstrdup(arg);
    *text = t;
    char *eq = strchr(t, '=');
    if (eq == NULL)
        return false;
    *eq = '\0';
    char *host = eq + 1;
    char *slash = strchr(host, '/');
    char *prefix = NULL;
    if (slash != NULL) {
        *slash = '\0';
        prefix = slash + 1;
    }
    if (!valid_host(t) || !valid_host(host))
        return false;
    if (prefix != NULL) {
        /* The prefix must be repository path components. */
        _cleanup_free_ char *probe = al_xasprintf("%s/%s/x", host, prefix);
        al_ref *r = NULL;
        bool ok = al_ref_parse(&r, probe, NULL) == 0;
        al_ref_free(r);
        if (!ok)
            return false;
    }
    m->upstream = strcmp(t, "index.docker.io") == 0 ? "docker.io" : t;
    m->host = host;
    m->prefix = prefix;
    return true;
}

static char *read_password(void)
{
    size_t cap = 4096, len = 0;
    char *buf = al_xmalloc(cap);
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 >= cap) {
            cap *= 2;
            buf = al_xrealloc(buf, cap);
        }
    }
    buf[len] = '\0';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return buf;
}

/* The command line as recorded in the runs table: never a secret. The
 * password only ever arrives on stdin, so argv holds none. */
static char *argv_text(int argc, char **argv)
{
    char *s = al_xstrdup("airlock-fetch");
    for (int i = 1; i < argc; i++) {
        char *t = al_xasprintf("%s %s", s, argv[i]);
        free(s);
        s = t;
    }
    return s;
}

static const char *status_word(al_image_status s)
{
    switch (s) {
    case AL_IMG_OK: return "ok";
    case AL_IMG_UNCHANGED: return "unchanged";
    case AL_IMG_MOVED: return "moved";
    case AL_IMG_FAILED: return "FAILED";
    }
    return "?";
}

/* Everything the command line asks for. Owned pointers are freed by
 * cli_dispose, so parse_cli can return from anywhere. */
typedef struct cli {
    const char *store_dir, *registry, *username, *ca_cert;
    const char *client_cert, *client_key, *certs_dir;
    bool password_stdin, attest;
    char **insecure; /* strings borrowed from argv */
    size_t n_insecure;
    al_engine_opts eopts;
    al_platform *plats;
    size_t n_plats;
    al_reflist list;
    al_mirror *mirrors; /* strings point into mirror_text */
    char **mirror_text;
    size_t n_mirrors;
    bool mirror_only;
    /* Report, lock file, prune. */
    const char *json_path, *lock_path;
    bool prune, dry_run, keep_set;
    int keep;
    char **remove; /* full names, owned */
    size_t n_remove;
    int verbosity;
    const char *import_path; /* --import BUNDLE */
} cli;

static void cli_dispose(cli *o)
{
    for (size_t i = 0; i < o->n_mirrors; i++)
        free(o->mirror_text[i]);
    free(o->mirror_text);
    free(o->mirrors);
    free(o->insecure);
    free(o->plats);
    al_reflist_dispose(&o->list);
    for (size_t i = 0; i < o->n_remove; i++)
        free(o->remove[i]);
    free(o->remove);
}

/* Returns -1 to go on, or the exit code. */
static int parse_cli(cli *o, int argc, char **argv)
{
    o->keep = 1;
    o->store_dir = getenv("AIRLOCK_STORE");
    if (o->store_dir == NULL || *o->store_dir == '\0')
        o->store_dir = "./airlock-store";
    const char *platform_arg = NULL;
    bool stdin_list = false;
    _cleanup_free_ char **files = NULL;
    size_t n_files = 0;
    al_engine_opts_default(&o->eopts);
    al_reflist_init(&o->list);
    int verbosity = AL_LOG_INFO;

    int c;
    while ((c = getopt_long(argc, argv, "f:j:qvh", long_opts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'f':
            files = al_xrealloc(files, (n_files + 1) * sizeof(char *));
            files[n_files++] = optarg;
            stdin_list |= strcmp(optarg, "-") == 0;
            break;
        case OPT_REGISTRY:
            if (!valid_host(optarg))
                return usage_error("--registry: invalid registry host \"%s\" (want HOST[:PORT])",
                                   optarg);
            o->registry = optarg;
            break;
        case OPT_MIRROR:
            o->mirrors = al_xrealloc(o->mirrors, (o->n_mirrors + 1) * sizeof(al_mirror));
            o->mirror_text = al_xrealloc(o->mirror_text, (o->n_mirrors + 1) * sizeof(char *));
            if (!parse_mirror(optarg, &o->mirrors[o->n_mirrors], &o->mirror_text[o->n_mirrors])) {
                free(o->mirror_text[o->n_mirrors]);
                return usage_error("--mirror: expected UPSTREAM=HOST[:PORT][/PREFIX] such as "
                                   "docker.io=mirror.local:5000, got \"%s\"",
                                   optarg);
            }
            o->n_mirrors++;
            break;
        case OPT_MIRROR_ONLY: o->mirror_only = true; break;
        case OPT_PLATFORM: platform_arg = optarg; break;
        case OPT_ATTEST: o->attest = true; break;
        case OPT_STORE:
            if (*optarg == '\0')
                return usage_error("--store: expected a directory, got an empty string");
            o->store_dir = optarg;
            break;
        case 'j':
            if (!parse_int(optarg, 1, 256, &v))
                return usage_error("--jobs: expected a number from 1 to 256, got \"%s\"", optarg);
            o->eopts.jobs = (int)v;
            break;
        case OPT_RETRIES:
            if (!parse_int(optarg, 0, 100, &v))
                return usage_error("--retries: expected a number from 0 to 100, got \"%s\"",
                                   optarg);
            o->eopts.max_retries = (int)v;
            break;
        case OPT_CONNECT_TIMEOUT:
            if (!parse_int(optarg, 1, 3600, &v))
                return usage_error("--connect-timeout: expected seconds (1-3600), got \"%s\"",
                                   optarg);
            o->eopts.connect_timeout = v;
            break;
        case OPT_STALL_TIMEOUT:
            if (!parse_int(optarg, 1, 3600, &v))
                return usage_error("--stall-timeout: expected seconds (1-3600), got \"%s\"",
                                   optarg);
            o->eopts.low_speed_time = v;
            break;
        case OPT_USERNAME: o->username = optarg; break;
        case OPT_PASSWORD_STDIN: o->password_stdin = true; break;
        case OPT_CA_CERT:
            if (access(optarg, R_OK) != 0)
                return usage_error("--ca-cert: cannot read \"%s\"", optarg);
            o->ca_cert = optarg;
            break;
        case OPT_CLIENT_CERT:
            if (access(optarg, R_OK) != 0)
                return usage_error("--client-cert: cannot read \"%s\"", optarg);
            o->client_cert = optarg;
            break;
        case OPT_CLIENT_KEY:
            if (access(optarg, R_OK) != 0)
                return usage_error("--client-key: cannot read \"%s\"", optarg);
            o->client_key = optarg;
            break;
        case OPT_CERTS_DIR: o->certs_dir = optarg; break;
        case OPT_INSECURE:
            if (!valid_host(optarg))
                return usage_error("--insecure-registry: invalid host \"%s\" (want HOST[:PORT])",
                                   optarg);
            o->insecure = al_xrealloc(o->insecure, (o->n_insecure + 1) * sizeof(char *));
            o->insecure[o->n_insecure++] = optarg;
            break;
        case OPT_JSON:
        case OPT_LOCK:
            if (*optarg == '\0' || strcmp(optarg, "-") == 0)
                return usage_error("--%s: expected a file name (stdout carries the results)",
                                   c == OPT_JSON ? "json" : "lock");
            *(c == OPT_JSON ? &o->json_path : &o->lock_path) = optarg;
            break;
        case OPT_PRUNE: o->prune = true; break;
        case OPT_IMPORT:
            if (*optarg == '\0')
                return usage_error("--import: expected a bundle, got an empty string");
            o->import_path = optarg;
            break;
        case OPT_DRY_RUN: o->dry_run = true; break;
        case OPT_KEEP:
            if (!parse_int(optarg, 0, 10000, &v))
                return usage_error("--keep: expected a number from 0 to 10000, got \"%s\"", optarg);
            o->keep = (int)v;
            o->keep_set = true;
            break;
        case OPT_REMOVE: {
            al_ref *r = NULL;
            al_error *e = NULL;
            if (al_ref_parse(&r, optarg, &e) < 0) {
                int rc = usage_error("--remove: %s", e->msg);
                al_error_free(e);
                return rc;
            }
            o->remove = al_xrealloc(o->remove, (o->n_remove + 1) * sizeof(char *));
            o->remove[o->n_remove++] = al_ref_full(r);
            al_ref_free(r);
            break;
        }
        case 'q': verbosity = AL_LOG_ERROR; break;
        case 'v': verbosity = AL_LOG_DEBUG; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case OPT_VERSION: puts("airlock-fetch " AL_FETCH_VERSION); return 0;
        default: fputs("Try 'airlock-fetch --help'.\n", stderr); return AL_EXIT_USAGE;
        }
    }
    al_log_set_level((al_log_level)verbosity);
    o->verbosity = verbosity;
    const char *dbg = getenv("AL_DEBUG_HTTP");
    o->eopts.debug_http = dbg != NULL && strcmp(dbg, "1") == 0;

    if (o->password_stdin && o->username == NULL)
        return usage_error("--password-stdin needs --username");
    if (o->username != NULL && !o->password_stdin)
        return usage_error("--username needs --password-stdin (passwords are never taken from "
                           "the command line)");
    for (size_t i = 0; i < o->n_mirrors; i++)
        if (o->registry != NULL && strcmp(o->mirrors[i].upstream, "docker.io") == 0)
            return usage_error("--registry and --mirror docker.io=... both say where docker.io "
                               "images come from: use one");
    if (o->mirror_only && o->n_mirrors == 0)
        return usage_error("--mirror-only needs --mirror");
    if (o->client_key != NULL && o->client_cert == NULL)
        return usage_error("--client-key needs --client-cert");
    if (o->password_stdin && stdin_list)
        return usage_error("--password-stdin and -f - both want stdin");
    if (o->n_remove > 0)
        o->prune = true; /* a removed tag's blobs go with it */
    if (o->keep_set && !o->prune)
        return usage_error("--keep needs --prune");
    if (o->dry_run && !o->prune)
        return usage_error("--dry-run needs --prune or --remove");

    if (platform_arg != NULL) {
        al_error *e = NULL;
        if (al_platform_parse_list(&o->plats, &o->n_plats, platform_arg, &e) < 0) {
            int rc = usage_error("--platform: %s", e->msg);
            al_error_free(e);
            return rc;
        }
    }

    /* Every ref and every list line is validated before any traffic. */
    al_reflist *list = &o->list;
    for (int i = optind; i < argc; i++)
        al_reflist_add_arg(list, argv[i], i - optind + 1);
    for (size_t i = 0; i < n_files; i++) {
        al_error *e = NULL;
        if (al_reflist_add_file(list, files[i], &e) < 0) {
            al_error_log("%s", e->msg);
            al_error_free(e);
            return AL_EXIT_USAGE;
        }
    }
    if (list->n_problems > 0) {
        for (size_t i = 0; i < list->n_problems; i++)
            al_error_log("%s", list->problems[i]);
        al_error_log("%zu bad reference%s: nothing fetched", list->n_problems,
                     list->n_problems == 1 ? "" : "s");
        return AL_EXIT_USAGE;
    }
    if (o->import_path != NULL && (list->n > 0 || o->prune || o->lock_path != NULL))
        return usage_error("--import BUNDLE is a run of its own: no REF, -f, --prune, --remove "
                           "or --lock with it");
    if (list->n == 0 && !o->prune && o->import_path == NULL)
        return usage_error("no images given (REF arguments or -f FILE)");
    if (list->n == 0 && o->lock_path != NULL)
        return usage_error("--lock needs images to fetch");
    return -1;
}

/* Pull quotas the registries announced (Docker Hub's RateLimit-*). */
static void print_quotas(const al_registry *reg)
{
    al_quota quotas[8];
    size_t nq = al_registry_quotas(reg, quotas, AL_ARRAY_SIZE(quotas));
    for (size_t i = 0; i < nq && i < AL_ARRAY_SIZE(quotas); i++) {
        if (quotas[i].limit >= 0)
            printf("rate limit: %s: %ld of %ld pulls left", quotas[i].host, quotas[i].remaining,
                   quotas[i].limit);
        else
            printf("rate limit: %s: %ld pulls left", quotas[i].host, quotas[i].remaining);
        if (quotas[i].window > 0)
            printf(" (window %ld s)", quotas[i].window);
        putchar('\n');
    }
}

static void print_results(const cli *o, const al_image_result *results, const al_engine *engine,
                          double elapsed)
{
    for (size_t i = 0; i < o->list.n; i++) {
        const al_image_result *r = &results[i];
        /* The last guard: a message may quote a registry, and no part of a
         * result line may start another (docs/STYLE.md, Output). */
        _cleanup_free_ char *name = al_sanitize(r->full_name, AL_SANITIZE_LINE);
        if (r->status == AL_IMG_FAILED) {
            _cleanup_free_ char *msg =
                al_sanitize(r->err ? r->err->msg : "unknown error", AL_SANITIZE_LINE);
            printf("%-9s %s  %s\n", status_word(r->status), name, msg);
            continue;
        }
        char b[32];
        _cleanup_free_ char *plats = al_sanitize(r->platforms, AL_SANITIZE_LINE);
        if (r->status == AL_IMG_MOVED)
            printf("%-9s %s  %s -> %s  %s  %d new blob%s, %s\n", status_word(r->status), name,
                   r->old_digest, r->digest, plats, r->new_blobs, r->new_blobs == 1 ? "" : "s",
                   al_format_bytes(b, sizeof(b), r->new_bytes));
        else
            printf("%-9s %s  %s  %s  %d new blob%s, %s\n", status_word(r->status), name, r->digest,
                   plats, r->new_blobs, r->new_blobs == 1 ? "" : "s",
                   al_format_bytes(b, sizeof(b), r->new_bytes));
    }
    char b[32];
    al_report_totals t;
    al_report_totals_of(&t, results, o->list.n);
    const al_engine_stats *st = al_engine_get_stats(engine);
    printf("%zu image%s: %d ok, %d failed; %d new blob%s, %s downloaded in %.1fs (%llu "
           "requests)\n",
           o->list.n, o->list.n == 1 ? "" : "s", t.ok, t.failed, t.new_blobs,
           t.new_blobs == 1 ? "" : "s", al_format_bytes(b, sizeof(b), t.bytes), elapsed,
           (unsigned long long)st->requests);
}

/* Prune lines: 'WORD  NAME  detail' like the image lines, then a summary. */
static void print_prune(const al_prune_report *p)
{
    char b[32], b2[32];
    /* Tag names come back from the database: sanitised like any text from
     * outside before they reach the terminal. */
    for (size_t i = 0; i < p->db.n_removed; i++) {
        _cleanup_free_ char *name = al_sanitize(p->db.removed[i].full_name, AL_SANITIZE_LINE);
        printf("%-9s %s  %s\n", p->dry_run ? "removable" : "removed", name,
               p->db.removed[i].digest);
    }
    for (size_t i = 0; i < p->db.n_missing; i++) {
        _cleanup_free_ char *name = al_sanitize(p->db.missing[i], AL_SANITIZE_LINE);
        printf("%-9s %s  not in the store\n", "FAILED", name);
    }
    if (p->dry_run)
        for (size_t i = 0; i < p->db.n_blobs; i++)
            printf("%-9s %s  %s\n", "prunable", p->db.blobs[i].digest,
                   al_format_bytes(b, sizeof(b), (uint64_t)p->db.blobs[i].size));
    /* So are file names found in tmp/: anyone who can write there picks them. */
    for (size_t i = 0; p->dry_run && i < p->n_tmp; i++) {
        _cleanup_free_ char *name = al_sanitize(p->tmp[i].name, AL_SANITIZE_LINE);
        printf("%-9s tmp/%s  %s  (%s)\n", "stale", name,
               al_format_bytes(b, sizeof(b), (uint64_t)p->tmp[i].size), p->tmp[i].why);
    }
    if (p->deferred)
        printf("%-9s %zu file%s, %s: an airlock-export is reading the store; the next --prune "
               "removes them\n",
               "deferred", p->n_deferred, p->n_deferred == 1 ? "" : "s",
               al_format_bytes(b, sizeof(b), (uint64_t)p->deferred_bytes));
    printf("%s%s %zu blob%s, %s; %s %zu tag%s; %s %zu earlier graph%s (--keep %d)",
           p->dry_run ? "dry run: " : "", p->dry_run ? "would prune" : "pruned", p->db.n_blobs,
           p->db.n_blobs == 1 ? "" : "s", al_format_bytes(b, sizeof(b), (uint64_t)p->db.bytes),
           p->dry_run ? "would remove" : "removed", p->db.n_removed,
           p->db.n_removed == 1 ? "" : "s", p->dry_run ? "would keep" : "kept",
           p->db.n_history_kept, p->db.n_history_kept == 1 ? "" : "s", p->keep);
    if (p->n_stray > 0)
        printf("; %zu file%s without a row (%s)", p->n_stray, p->n_stray == 1 ? "" : "s",
               al_format_bytes(b2, sizeof(b2), (uint64_t)p->stray_bytes));
    if (p->n_protected > 0)
        printf("; kept %zu recent file%s without a row (%s: an interrupted run's downloads)",
               p->n_protected, p->n_protected == 1 ? "" : "s",
               al_format_bytes(b2, sizeof(b2), (uint64_t)p->protected_bytes));
    if (p->n_tmp > 0)
        printf("; %s %zu tmp file%s (%s)", p->dry_run ? "would clear" : "cleared", p->n_tmp,
               p->n_tmp == 1 ? "" : "s", al_format_bytes(b2, sizeof(b2), (uint64_t)p->tmp_bytes));
    putchar('\n');
}

/* What --prune protects by time (docs/DESIGN.md, "Crash rules"): what
 * this run added when it fetched (the layers of an image that failed are
 * not downloaded twice), and what every run since the last completed
 * fetch added, if one of them was killed (its finished downloads may have
 * files without rows). fetched_at is this run's start when it fetched,
 * else 0. */
static int prune_since(al_db *db, int64_t run_id, double fetched_at, double *since, al_error **err)
{
    int r = al_db_prune_since(db, run_id, since, err);
    if (r < 0)
        return r;
    if (*since > 0) {
        char when[40];
        al_info("prune: a run that began %.19s was interrupted: what was added since stays "
                "until a fetch completes",
                al_format_utc(when, sizeof(when), *since));
    }
    if (*since == 0 || (fetched_at > 0 && fetched_at < *since))
        *since = fetched_at;
    return 0;
}

static int run(cli *o, int argc, char **argv)
{
    /* Declared before the first goto: cleanup must never see garbage. */
    _cleanup_free_ char *password = o->password_stdin ? read_password() : NULL;
    _cleanup_free_ char *args = NULL;
    int exit_code = 0;
    al_error *err = NULL;
    al_store *store = NULL;
    al_db *db = NULL;
    al_creds *creds = NULL;
    al_engine *engine = NULL;
    al_registry *reg = NULL;
    al_image_result *results = NULL;
    size_t n_results = 0;
    int64_t run_id = 0;
    bool run_open = false;
    al_prune_report prune_rep;
    bool pruned = false;
    double started_at = al_now(), t0 = al_mono(), elapsed = 0;
    al_report_totals tot = {0};
    al_progress *progress = NULL;

    if (o->verbosity > AL_LOG_ERROR) {
        al_progress_mode mode = al_progress_mode_for(STDERR_FILENO);
        /* curl's trace would write through the display. */
        if (o->eopts.debug_http)
            mode = AL_PROGRESS_PLAIN;
        progress = al_progress_new(mode, stderr, "airlock-fetch", o->verbosity >= AL_LOG_DEBUG);
        al_progress_attach(progress, &o->eopts);
    }
    if (al_creds_new(&creds, o->username, password, NULL, &err) < 0) {
        exit_code = AL_EXIT_USAGE;
        goto out;
    }
    if (al_store_open(&store, o->store_dir, AL_STORE_WRITE, &err) < 0 ||
        al_db_open(&db, al_store_db_path(store), false, &err) < 0) {
        exit_code = AL_EXIT_STORE;
        goto out;
    }
    args = argv_text(argc, argv);
    if (al_db_run_begin(db, args, &run_id, &err) < 0) {
        exit_code = AL_EXIT_STORE;
        goto out;
    }
    run_open = true;
    int rc = 0;
    if (o->list.n > 0) {
        if (al_engine_new(&engine, &o->eopts, &err) < 0) {
            exit_code = al_errc_exit(err->code);
            goto out;
        }
        const char *certs_dirs[] = {o->certs_dir, NULL};
        al_registry_opts ropts = {.creds = creds,
                                  .insecure_hosts = o->insecure,
                                  .n_insecure = o->n_insecure,
                                  .ca_cert = o->ca_cert,
                                  .client_cert = o->client_cert,
                                  .client_key = o->client_key,
                                  .certs_dirs = o->certs_dir ? certs_dirs : NULL};
        al_registry_new(&reg, engine, &ropts, &err);
        al_fetch_ctx ctx = {
            .store = store,
            .db = db,
            .registry = reg,
            .opts = {.registry_override = o->registry,
                     .mirrors = o->mirrors,
                     .n_mirrors = o->n_mirrors,
                     .no_fallback = o->mirror_only,
                     .platforms = o->plats,
                     .n_platforms = o->n_plats,
                     .include_attestations = o->attest},
            .run_id = run_id,
        };
        t0 = al_mono();
        rc = al_fetch_run(&ctx, &o->list, &results, &err);
        n_results = o->list.n;
        elapsed = al_mono() - t0;
        al_progress_clear(progress);
        print_results(o, results, engine, elapsed);
        print_quotas(reg);
        fflush(stdout);
        al_report_totals_of(&tot, results, n_results);
    }
    double since = 0;
    if (rc == 0 && o->prune)
        rc = prune_since(db, run_id, o->list.n > 0 ? started_at : 0, &since, &err);
    if (rc == 0 && o->prune) {
        al_prune_opts popts = {.remove = (const char *const *)o->remove,
                               .n_remove = o->n_remove,
                               .keep = o->keep,
                               .protect_since = since,
                               .dry_run = o->dry_run};
        rc = al_prune_run(store, db, &popts, &prune_rep, &err);
        if (rc == 0) {
            pruned = true;
            print_prune(&prune_rep);
            fflush(stdout);
        } else {
            al_error_wrap(&err, "prune");
        }
    }
    if (rc < 0)
        exit_code = AL_EXIT_STORE;
    else if (tot.failed > 0 || (pruned && prune_rep.db.n_missing > 0))
        exit_code = AL_EXIT_FAILED;

out:
    if (run_open) {
        al_error *fe = NULL;
        if (al_db_run_finish(db, run_id, tot.ok, tot.failed, (int64_t)tot.bytes, &fe) < 0 &&
            err == NULL) {
            err = fe;
            fe = NULL;
            exit_code = AL_EXIT_STORE;
        }
        al_error_free(fe);
    }
    al_progress_free(progress);
    if (o->json_path != NULL || o->lock_path != NULL) {
        al_report rep = {.run_id = run_id,
                         .started_at = started_at,
                         .finished_at = al_now(),
                         .t0 = t0,
                         .store_dir = o->store_dir,
                         .version = AL_FETCH_VERSION,
                         .results = results,
                         .n_results = n_results,
                         .stats = engine && n_results > 0 ? al_engine_get_stats(engine) : NULL,
                         .seconds = elapsed,
                         .exit_status = exit_code,
                         .error = err,
                         .prune = pruned ? &prune_rep : NULL};
        al_error *we = NULL;
        _cleanup_free_ char *json = o->json_path ? al_report_json(&rep) : NULL;
        if (json != NULL && al_file_write_atomic(o->json_path, json, strlen(json), &we) < 0) {
            al_error_log("--json: %s", we->msg);
            al_error_clear(&we);
            if (exit_code == 0)
                exit_code = AL_EXIT_FAILED;
        }
        /* A lock file is only worth having when the fetch itself ran. */
        _cleanup_free_ char *lock =
            o->lock_path && n_results > 0 ? al_report_lock_text(&rep) : NULL;
        if (lock != NULL && al_file_write_atomic(o->lock_path, lock, strlen(lock), &we) < 0) {
            al_error_log("--lock: %s", we->msg);
            al_error_clear(&we);
            if (exit_code == 0)
                exit_code = AL_EXIT_FAILED;
        }
    }
    if (err != NULL)
        al_error_log("%s", err->msg);
    al_error_free(err);
    if (pruned)
        al_prune_report_dispose(&prune_rep);
    al_image_results_free(results, n_results);
    al_registry_free(reg);
    al_engine_free(engine);
    al_db_free(db);
    al_store_free(store);
    al_creds_free(creds);
    if (password != NULL)
        memset(password, 0, strlen(password));
    return exit_code;
}

int main(int argc, char **argv)
{
    al_log_set_prog("airlock-fetch");
    cli o = {0};
    int exit_code = parse_cli(&o, argc, argv);
    if (exit_code < 0 && o.import_path != NULL) {
        _cleanup_free_ char *args = argv_text(argc, argv);
        al_import_opts io = {.bundle = o.import_path,
                             .store_dir = o.store_dir,
                             .json_path = o.json_path,
                             .argv_text = args,
                             .version = AL_FETCH_VERSION};
        exit_code = al_import_run(&io);
    } else if (exit_code < 0) {
        exit_code = run(&o, argc, argv);
    }
    cli_dispose(&o);
    return exit_code;
}
