/* airlock-fetch: flags only; the work is in plan.c. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credentials.h"
#include "db.h"
#include "engine.h"
#include "log.h"
#include "plan.h"
#include "platform.h"
#include "ref.h"
#include "reflist.h"
#include "registry.h"
#include "store.h"
#include "util.h"

#define EXIT_PARTIAL 1
#define EXIT_USAGE 2
#define EXIT_STORE 3

static const char usage_text[] =
    "Usage: airlock-fetch [OPTIONS] [REF]...\n"
    "Mirror container images from Docker/OCI registries into an airlock store.\n"
    "\n"
    "Images:\n"
    "  REF                        image reference (busybox, rancher/pause:3.6, quay.io/a/b@sha256:...)\n"
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
    "                             allow plain HTTP or unverified TLS for HOST (repeatable)\n"
    "  Without --username, credentials come from containers auth.json ($REGISTRY_AUTH_FILE,\n"
    "  else $XDG_RUNTIME_DIR/containers/auth.json), then docker's config.json ($DOCKER_CONFIG,\n"
    "  else ~/.docker/config.json: credHelpers, credsStore, auths).\n"
    "\n"
    "Output:\n"
    "  -q, --quiet                errors only on stderr\n"
    "  -v, --verbose              more detail on stderr (AL_DEBUG_HTTP=1 traces HTTP)\n"
    "  -h, --help                 this help\n"
    "      --version              print the version\n"
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
    return EXIT_USAGE;
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
}

/* Returns -1 to go on, or the exit code. */
static int parse_cli(cli *o, int argc, char **argv)
{
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
                return usage_error("--registry: invalid o->registry host \"%s\" (want HOST[:PORT])",
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
        case OPT_STORE: o->store_dir = optarg; break;
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
                return usage_error("--insecure-o->registry: invalid host \"%s\" (want HOST[:PORT])",
                                   optarg);
            o->insecure = al_xrealloc(o->insecure, (o->n_insecure + 1) * sizeof(char *));
            o->insecure[o->n_insecure++] = optarg;
            break;
        case 'q': verbosity = AL_LOG_ERROR; break;
        case 'v': verbosity = AL_LOG_DEBUG; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case OPT_VERSION: puts("airlock-fetch 0.1.0"); return 0;
        default: fputs("Try 'airlock-fetch --help'.\n", stderr); return EXIT_USAGE;
        }
    }
    al_log_set_level((al_log_level)verbosity);
    const char *dbg = getenv("AL_DEBUG_HTTP");
    o->eopts.debug_http = dbg != NULL && strcmp(dbg, "1") == 0;

    if (o->password_stdin && o->username == NULL)
        return usage_error("--password-stdin needs --o->username");
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
            return EXIT_USAGE;
        }
    }
    if (list->n_problems > 0) {
        for (size_t i = 0; i < list->n_problems; i++)
            al_error_log("%s", list->problems[i]);
        al_error_log("%zu bad reference%s: nothing fetched", list->n_problems,
                     list->n_problems == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    if (list->n == 0)
        return usage_error("no images given (REF arguments or -f FILE)");
    return -1;
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
    int64_t run_id = 0;

    if (al_creds_new(&creds, o->username, password, NULL, &err) < 0) {
        exit_code = EXIT_USAGE;
        goto out;
    }
    if (al_store_open(&store, o->store_dir, AL_STORE_WRITE, &err) < 0 ||
        al_db_open(&db, al_store_db_path(store), false, &err) < 0) {
        exit_code = EXIT_STORE;
        goto out;
    }
    args = argv_text(argc, argv);
    if (al_db_run_begin(db, args, &run_id, &err) < 0) {
        exit_code = EXIT_STORE;
        goto out;
    }
    if (al_engine_new(&engine, &o->eopts, &err) < 0) {
        exit_code = EXIT_PARTIAL;
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
    double t0 = al_mono();
    int rc = al_fetch_run(&ctx, &o->list, &results, &err);
    double elapsed = al_mono() - t0;

    int ok = 0, failed = 0, new_blobs = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < o->list.n; i++) {
        al_image_result *r = &results[i];
        if (r->status == AL_IMG_FAILED) {
            failed++;
            printf("%-9s %s  %s\n", status_word(r->status), r->full_name,
                   r->err ? r->err->msg : "unknown error");
            continue;
        }
        ok++;
        new_blobs += r->new_blobs;
        bytes += r->new_bytes;
        char b[32];
        if (r->status == AL_IMG_MOVED)
            printf("%-9s %s  %s -> %s  %s  %d new blob%s, %s\n", status_word(r->status),
                   r->full_name, r->old_digest, r->digest, r->platforms, r->new_blobs,
                   r->new_blobs == 1 ? "" : "s", al_format_bytes(b, sizeof(b), r->new_bytes));
        else
            printf("%-9s %s  %s  %s  %d new blob%s, %s\n", status_word(r->status), r->full_name,
                   r->digest, r->platforms, r->new_blobs, r->new_blobs == 1 ? "" : "s",
                   al_format_bytes(b, sizeof(b), r->new_bytes));
    }
    char b[32];
    const al_engine_stats *st = al_engine_get_stats(engine);
    printf("%zu image%s: %d ok, %d failed; %d new blob%s, %s downloaded in %.1fs (%llu "
           "requests)\n",
           o->list.n, o->list.n == 1 ? "" : "s", ok, failed, new_blobs, new_blobs == 1 ? "" : "s",
           al_format_bytes(b, sizeof(b), bytes), elapsed,
           (unsigned long long)st->requests);
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
    fflush(stdout);
    al_error *fe = NULL;
    if (al_db_run_finish(db, run_id, ok, failed, (int64_t)bytes, &fe) < 0 && rc == 0) {
        err = fe;
        fe = NULL;
        rc = -1;
    }
    al_error_free(fe);
    if (rc < 0)
        exit_code = EXIT_STORE;
    else if (failed > 0)
        exit_code = EXIT_PARTIAL;

out:
    if (err != NULL)
        al_error_log("%s", err->msg);
    al_error_free(err);
    al_image_results_free(results, o->list.n);
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
    if (exit_code < 0)
        exit_code = run(&o, argc, argv);
    cli_dispose(&o);
    return exit_code;
}
