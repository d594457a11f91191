/* airlock-fetch: the command line; the work is in plan.c (the fetch),
 * prune.c and repair.c. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
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
#include "repair.h"
#include "report.h"
#include "sanitize.h"
#include "store.h"
#include "target.h"
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
    "      --repair               re-hash every blob of the graphs of REF (or of every tag\n"
    "                             in the store when no REF is given), move the damaged ones\n"
    "                             to STORE/tmp/quarantine-* and fetch them again\n"
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
    "      --max-wait SEC         longest Retry-After to wait; a registry asking for more\n"
    "                             fails the image at once (default: 60)\n"
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
    OPT_FILE = 'f',
    OPT_JOBS = 'j',
    OPT_QUIET = 'q',
    OPT_VERBOSE = 'v',
    OPT_HELP = 'h',
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
    OPT_MAX_WAIT,
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
    OPT_REPAIR,
    OPT_IMPORT,
};

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
    if (!al_target_host_valid(t) || !al_target_host_valid(host) ||
        (prefix != NULL && !al_target_prefix_valid(prefix)))
        return false;
    m->upstream = strcmp(t, "index.docker.io") == 0 ? "docker.io" : t;
    m->host = host;
    m->prefix = prefix;
    return true;
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
    const char *platform_arg;
    al_platform *plats;
    size_t n_plats;
    char **files; /* -f lists, borrowed from argv */
    size_t n_files;
    bool stdin_list;
    al_reflist list;
    al_mirror *mirrors; /* strings point into mirror_text */
    char **mirror_text;
    size_t n_mirrors;
    bool mirror_only;
    /* Report, lock file, prune, repair. */
    const char *json_path, *lock_path;
    bool prune, dry_run, keep_set, repair;
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
    free(o->files);
    al_reflist_dispose(&o->list);
    for (size_t i = 0; i < o->n_remove; i++)
        free(o->remove[i]);
    free(o->remove);
}

/* --- options, by group of the help text -------------------------------------------
 * Each returns 0 when it took the option, 1 when the option is another
 * group's, or the exit code of a usage error. */

static int opt_images(cli *o, int c, const char *arg)
{
    switch (c) {
    case OPT_FILE:
        o->files = al_xrealloc(o->files, (o->n_files + 1) * sizeof(char *));
        o->files[o->n_files++] = (char *)arg;
        o->stdin_list |= strcmp(arg, "-") == 0;
        return 0;
    case OPT_REGISTRY:
        if (!al_target_host_valid(arg))
            return al_cli_usage_error("--registry: invalid registry host \"%s\" (want "
                                      "HOST[:PORT])",
                                      arg);
        o->registry = arg;
        return 0;
    case OPT_MIRROR:
        o->mirrors = al_xrealloc(o->mirrors, (o->n_mirrors + 1) * sizeof(al_mirror));
        o->mirror_text = al_xrealloc(o->mirror_text, (o->n_mirrors + 1) * sizeof(char *));
        if (!parse_mirror(arg, &o->mirrors[o->n_mirrors], &o->mirror_text[o->n_mirrors])) {
            free(o->mirror_text[o->n_mirrors]);
            return al_cli_usage_error("--mirror: expected UPSTREAM=HOST[:PORT][/PREFIX] such as "
                                      "docker.io=mirror.local:5000, got \"%s\"",
                                      arg);
        }
        o->n_mirrors++;
        return 0;
    case OPT_MIRROR_ONLY: o->mirror_only = true; return 0;
    case OPT_PLATFORM: o->platform_arg = arg; return 0;
    case OPT_ATTEST: o->attest = true; return 0;
    default: return 1;
    }
}

static int opt_store(cli *o, int c, const char *arg)
{
    long v;
    switch (c) {
    case OPT_STORE:
        if (*arg == '\0')
            return al_cli_usage_error("--store: expected a directory, got an empty string");
        o->store_dir = arg;
        return 0;
    case OPT_PRUNE: o->prune = true; return 0;
    case OPT_DRY_RUN: o->dry_run = true; return 0;
    case OPT_REPAIR: o->repair = true; return 0;
    case OPT_IMPORT:
        if (*arg == '\0')
            return al_cli_usage_error("--import: expected a bundle, got an empty string");
        o->import_path = arg;
        return 0;
    case OPT_KEEP:
        if (!al_cli_parse_long(arg, 0, 10000, &v))
            return al_cli_usage_error("--keep: expected a number from 0 to 10000, got \"%s\"", arg);
        o->keep = (int)v;
        o->keep_set = true;
        return 0;
    case OPT_REMOVE: {
        al_ref *r = NULL;
        al_error *e = NULL;
        if (al_ref_parse(&r, arg, &e) < 0) {
            int rc = al_cli_usage_error("--remove: %s", e->msg);
            al_error_free(e);
            return rc;
        }
        o->remove = al_xrealloc(o->remove, (o->n_remove + 1) * sizeof(char *));
        o->remove[o->n_remove++] = al_ref_full(r);
        al_ref_free(r);
        return 0;
    }
    default: return 1;
    }
}

static int opt_transfers(cli *o, int c, const char *arg)
{
    static const struct {
        int opt;
        const char *name;
        long lo, hi;
    } ranges[] = {
        {OPT_JOBS, "--jobs", 1, 256},
        {OPT_RETRIES, "--retries", 0, 100},
        {OPT_CONNECT_TIMEOUT, "--connect-timeout", 1, 3600},
        {OPT_STALL_TIMEOUT, "--stall-timeout", 1, 3600},
        {OPT_MAX_WAIT, "--max-wait", 0, 86400},
    };
    for (size_t i = 0; i < AL_ARRAY_SIZE(ranges); i++) {
        long v;
        if (ranges[i].opt != c)
            continue;
        if (!al_cli_parse_long(arg, ranges[i].lo, ranges[i].hi, &v))
            return al_cli_usage_error("%s: expected a number from %ld to %ld, got \"%s\"",
                                      ranges[i].name, ranges[i].lo, ranges[i].hi, arg);
        switch (c) {
        case OPT_JOBS: o->eopts.jobs = (int)v; break;
        case OPT_RETRIES: o->eopts.max_retries = (int)v; break;
        case OPT_CONNECT_TIMEOUT: o->eopts.connect_timeout = v; break;
        case OPT_STALL_TIMEOUT: o->eopts.low_speed_time = v; break;
        default: o->eopts.max_wait = (double)v; break;
        }
        return 0;
    }
    return 1;
}

/* A file named by a flag must be readable now, not at the first request. */
static int readable(const char *flag, const char *path, const char **slot)
{
    if (access(path, R_OK) != 0)
        return al_cli_usage_error("%s: cannot read \"%s\"", flag, path);
    *slot = path;
    return 0;
}

static int opt_access(cli *o, int c, const char *arg)
{
    switch (c) {
    case OPT_USERNAME: o->username = arg; return 0;
    case OPT_PASSWORD_STDIN: o->password_stdin = true; return 0;
    case OPT_CA_CERT: return readable("--ca-cert", arg, &o->ca_cert);
    case OPT_CLIENT_CERT: return readable("--client-cert", arg, &o->client_cert);
    case OPT_CLIENT_KEY: return readable("--client-key", arg, &o->client_key);
    case OPT_CERTS_DIR: o->certs_dir = arg; return 0;
    case OPT_INSECURE:
        if (!al_target_host_valid(arg))
            return al_cli_usage_error("--insecure-registry: invalid host \"%s\" (want "
                                      "HOST[:PORT])",
                                      arg);
        o->insecure = al_xrealloc(o->insecure, (o->n_insecure + 1) * sizeof(char *));
        o->insecure[o->n_insecure++] = (char *)arg;
        return 0;
    default: return 1;
    }
}

static int opt_output(cli *o, int c, const char *arg)
{
    switch (c) {
    case OPT_JSON:
    case OPT_LOCK:
        if (*arg == '\0' || strcmp(arg, "-") == 0)
            return al_cli_usage_error("--%s: expected a file name (stdout carries the results)",
                                      c == OPT_JSON ? "json" : "lock");
        *(c == OPT_JSON ? &o->json_path : &o->lock_path) = arg;
        return 0;
    case OPT_QUIET: o->verbosity = AL_LOG_ERROR; return 0;
    case OPT_VERBOSE: o->verbosity = AL_LOG_DEBUG; return 0;
    case OPT_HELP: fputs(usage_text, stdout); return -2;
    case OPT_VERSION: puts("airlock-fetch " AL_FETCH_VERSION); return -2;
    default: return 1;
    }
}

/* Flags that only make sense together. */
static int check_cli(cli *o)
{
    if (o->password_stdin && o->username == NULL)
        return al_cli_usage_error("--password-stdin needs --username");
    if (o->username != NULL && !o->password_stdin)
        return al_cli_usage_error("--username needs --password-stdin (passwords are never taken "
                                  "from the command line)");
    for (size_t i = 0; i < o->n_mirrors; i++)
        if (o->registry != NULL && strcmp(o->mirrors[i].upstream, "docker.io") == 0)
            return al_cli_usage_error("--registry and --mirror docker.io=... both say where "
                                      "docker.io images come from: use one");
    if (o->mirror_only && o->n_mirrors == 0)
        return al_cli_usage_error("--mirror-only needs --mirror");
    if (o->client_key != NULL && o->client_cert == NULL)
        return al_cli_usage_error("--client-key needs --client-cert");
    if (o->password_stdin && o->stdin_list)
        return al_cli_usage_error("--password-stdin and -f - both want stdin");
    if (o->n_remove > 0)
        o->prune = true; /* a removed tag's blobs go with it */
    if (o->keep_set && !o->prune)
        return al_cli_usage_error("--keep needs --prune");
    if (o->dry_run && !o->prune)
        return al_cli_usage_error("--dry-run needs --prune or --remove");
    if (o->platform_arg != NULL) {
        al_error *e = NULL;
        if (al_platform_parse_list(&o->plats, &o->n_plats, o->platform_arg, &e) < 0) {
            int rc = al_cli_usage_error("--platform: %s", e->msg);
            al_error_free(e);
            return rc;
        }
    }
    return -1;
}

/* Every long option: its name, whether it takes a value, the id (or
 * short option) its group's handler knows it by, and that handler. The
 * groups follow the help text. */
typedef int (*take_fn)(cli *o, int c, const char *arg);
static const struct fetch_option {
    const char *name;
    int has_arg;
    int id;
    take_fn take;
} options[] = {
    {"file", required_argument, OPT_FILE, opt_images},
    {"registry", required_argument, OPT_REGISTRY, opt_images},
    {"mirror", required_argument, OPT_MIRROR, opt_images},
    {"mirror-only", no_argument, OPT_MIRROR_ONLY, opt_images},
    {"platform", required_argument, OPT_PLATFORM, opt_images},
    {"include-attestations", no_argument, OPT_ATTEST, opt_images},
    {"store", required_argument, OPT_STORE, opt_store},
    {"prune", no_argument, OPT_PRUNE, opt_store},
    {"keep", required_argument, OPT_KEEP, opt_store},
    {"remove", required_argument, OPT_REMOVE, opt_store},
    {"dry-run", no_argument, OPT_DRY_RUN, opt_store},
    {"repair", no_argument, OPT_REPAIR, opt_store},
    {"import", required_argument, OPT_IMPORT, opt_store},
    {"jobs", required_argument, OPT_JOBS, opt_transfers},
    {"retries", required_argument, OPT_RETRIES, opt_transfers},
    {"connect-timeout", required_argument, OPT_CONNECT_TIMEOUT, opt_transfers},
    {"stall-timeout", required_argument, OPT_STALL_TIMEOUT, opt_transfers},
    {"max-wait", required_argument, OPT_MAX_WAIT, opt_transfers},
    {"username", required_argument, OPT_USERNAME, opt_access},
    {"password-stdin", no_argument, OPT_PASSWORD_STDIN, opt_access},
    {"ca-cert", required_argument, OPT_CA_CERT, opt_access},
    {"client-cert", required_argument, OPT_CLIENT_CERT, opt_access},
    {"client-key", required_argument, OPT_CLIENT_KEY, opt_access},
    {"certs-dir", required_argument, OPT_CERTS_DIR, opt_access},
    {"insecure-registry", required_argument, OPT_INSECURE, opt_access},
    {"json", required_argument, OPT_JSON, opt_output},
    {"lock", required_argument, OPT_LOCK, opt_output},
    {"quiet", no_argument, OPT_QUIET, opt_output},
    {"verbose", no_argument, OPT_VERBOSE, opt_output},
    {"help", no_argument, OPT_HELP, opt_output},
    {"version", no_argument, OPT_VERSION, opt_output},
};

/* The table as getopt_long wants it. */
static const struct option *long_options(void)
{
    static struct option out[AL_ARRAY_SIZE(options) + 1];
    for (size_t i = 0; i < AL_ARRAY_SIZE(options); i++)
        out[i] = (struct option){options[i].name, options[i].has_arg, NULL, options[i].id};
    return out;
}

static int take_option(cli *o, int c, const char *arg)
{
    for (size_t i = 0; i < AL_ARRAY_SIZE(options); i++)
        if (options[i].id == c)
            return options[i].take(o, c, arg);
    fputs("Try 'airlock-fetch --help'.\n", stderr); /* getopt said what was wrong */
    return AL_EXIT_USAGE;
}

/* Returns -1 to go on, or the exit code. */
static int parse_cli(cli *o, int argc, char **argv)
{
    o->keep = 1;
    o->verbosity = AL_LOG_INFO;
    al_engine_opts_default(&o->eopts);
    al_reflist_init(&o->list);
    int c;
    const struct option *long_opts = long_options();
    while ((c = getopt_long(argc, argv, "f:j:qvh", long_opts, NULL)) != -1) {
        int rc = take_option(o, c, optarg);
        if (rc == -2)
            return 0; /* --help, --version */
        if (rc != 0)
            return rc;
    }
    o->store_dir = al_cli_store_dir(o->store_dir);
    al_log_set_level((al_log_level)o->verbosity);
    const char *dbg = getenv("AL_DEBUG_HTTP");
    o->eopts.debug_http = dbg != NULL && strcmp(dbg, "1") == 0;
    int rc = check_cli(o);
    if (rc >= 0)
        return rc;
    /* Every ref and every list line is validated before any traffic. */
    if ((rc = al_cli_read_refs(&o->list, argv, optind, argc, o->files, o->n_files)) != 0)
        return rc;
    if (o->import_path != NULL && (o->list.n > 0 || o->prune || o->repair || o->lock_path != NULL))
        return al_cli_usage_error("--import BUNDLE is a run of its own: no REF, -f, --prune, "
                                  "--remove, --repair or --lock with it");
    if (o->list.n == 0 && !o->prune && !o->repair && o->import_path == NULL)
        return al_cli_usage_error("no images given (REF arguments or -f FILE)");
    if (o->list.n == 0 && o->lock_path != NULL && !o->repair)
        return al_cli_usage_error("--lock needs images to fetch");
    return -1;
}

/* --- output ----------------------------------------------------------------------------- */

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

static void print_result(const al_image_result *r)
{
    char b[32];
    /* The last guard: a message may quote a registry, and no part of a
     * result line may start another (docs/STYLE.md, Output). */
    _cleanup_free_ char *name = al_sanitize(r->full_name, AL_SANITIZE_LINE);
    if (r->status == AL_IMG_FAILED) {
        _cleanup_free_ char *msg =
            al_sanitize(r->err ? r->err->msg : "unknown error", AL_SANITIZE_LINE);
        printf("%-9s %s  %s\n", status_word(r->status), name, msg);
        return;
    }
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

static void print_results(const al_image_result *results, size_t n, const al_engine *engine,
                          double elapsed)
{
    for (size_t i = 0; i < n; i++)
        print_result(&results[i]);
    char b[32];
    al_report_totals t;
    al_report_totals_of(&t, results, n);
    const al_engine_stats *st = al_engine_get_stats(engine);
    printf("%zu image%s: %d ok, %d failed; %d new blob%s, %s downloaded in %.1fs (%llu "
           "requests)\n",
           n, n == 1 ? "" : "s", t.ok, t.failed, t.new_blobs, t.new_blobs == 1 ? "" : "s",
           al_format_bytes(b, sizeof(b), t.bytes), elapsed, (unsigned long long)st->requests);
}

/* Prune lines: 'WORD  NAME  detail' like the image lines. Tag names come
 * back from the database and file names from tmp/ (anyone who can write
 * there picks them): sanitised like any text from outside. */
static void print_prune_lines(const al_prune_report *p)
{
    char b[32];
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
}

/* ...then a summary. */
static void print_prune(const al_prune_report *p)
{
    char b[32], b2[32];
    print_prune_lines(p);
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

static void print_repair(const al_repair_report *r)
{
    char b[32];
    printf("repair: %zu blob%s of %zu image%s re-hashed (%s); %zu damaged, moved to "
           "tmp/quarantine-* and fetched again\n",
           r->blobs, r->blobs == 1 ? "" : "s", r->tags, r->tags == 1 ? "" : "s",
           al_format_bytes(b, sizeof(b), r->bytes), r->damaged);
}

/* --- the run ---------------------------------------------------------------------------- */

/* Everything a run holds, released in one place. */
typedef struct session {
    cli *o;
    char *password;
    al_store *store;
    al_db *db;
    al_creds *creds;
    al_engine *engine;
    al_registry *reg;
    al_image_result *results;
    size_t n_results;
    int64_t run_id;
    bool run_open;
    al_prune_report prune_rep;
    bool pruned;
    al_repair_report repair_rep;
    double started_at, t0, elapsed;
    al_report_totals tot;
    al_progress *progress;
    al_error *err;
    int exit_code;
} session;

static int open_store(session *S, int argc, char **argv)
{
    cli *o = S->o;
    if (al_creds_new(&S->creds, o->username, S->password, NULL, &S->err) < 0)
        return S->exit_code = AL_EXIT_USAGE;
    if (al_store_open(&S->store, o->store_dir, AL_STORE_WRITE, &S->err) < 0 ||
        al_db_open(&S->db, al_store_db_path(S->store), false, &S->err) < 0)
        return S->exit_code = AL_EXIT_STORE;
    _cleanup_free_ char *args = argv_text(argc, argv);
    if (al_db_run_begin(S->db, args, &S->run_id, &S->err) < 0)
        return S->exit_code = AL_EXIT_STORE;
    S->run_open = true;
    return 0;
}

/* --repair: the refs given, else every tag of the store; their damaged
 * blobs are moved aside, and the fetch that follows gets them again. */
static int repair_refs(session *S)
{
    cli *o = S->o;
    if (o->list.n == 0) {
        al_tag *tags = NULL;
        size_t n = 0;
        if (al_db_tags_list(S->db, &tags, &n, &S->err) < 0)
            return AL_EXIT_STORE;
        for (size_t i = 0; i < n; i++)
            al_reflist_add_arg(&o->list, tags[i].full_name, (int)i + 1);
        al_tags_free(tags, n);
    }
    char **names = al_xcalloc(o->list.n + 1, sizeof(char *));
    for (size_t i = 0; i < o->list.n; i++)
        names[i] = al_ref_full(o->list.items[i].ref);
    int rc = al_repair_check(S->store, S->db, names, o->list.n, &S->repair_rep, &S->err);
    for (size_t i = 0; i < o->list.n; i++)
        free(names[i]);
    free(names);
    if (rc < 0)
        return AL_EXIT_STORE;
    print_repair(&S->repair_rep);
    return 0;
}

static int fetch_images(session *S)
{
    cli *o = S->o;
    if (al_engine_new(&S->engine, &o->eopts, &S->err) < 0)
        return al_errc_exit(S->err->code);
    const char *certs_dirs[] = {o->certs_dir, NULL};
    al_registry_opts ropts = {.creds = S->creds,
                              .insecure_hosts = o->insecure,
                              .n_insecure = o->n_insecure,
                              .ca_cert = o->ca_cert,
                              .client_cert = o->client_cert,
                              .client_key = o->client_key,
                              .certs_dirs = o->certs_dir ? certs_dirs : NULL};
    if (al_registry_new(&S->reg, S->engine, &ropts, &S->err) < 0)
        return AL_EXIT_FAILED;
    al_fetch_ctx ctx = {
        .store = S->store,
        .db = S->db,
        .registry = S->reg,
        .opts = {.registry_override = o->registry,
                 .mirrors = o->mirrors,
                 .n_mirrors = o->n_mirrors,
                 .no_fallback = o->mirror_only,
                 .platforms = o->plats,
                 .n_platforms = o->n_plats,
                 .include_attestations = o->attest,
                 .rewalk = o->repair},
        .run_id = S->run_id,
    };
    S->t0 = al_mono();
    int rc = al_fetch_run(&ctx, &o->list, &S->results, &S->err);
    S->n_results = o->list.n;
    S->elapsed = al_mono() - S->t0;
    al_progress_clear(S->progress);
    print_results(S->results, S->n_results, S->engine, S->elapsed);
    print_quotas(S->reg);
    fflush(stdout);
    al_report_totals_of(&S->tot, S->results, S->n_results);
    return rc < 0 ? AL_EXIT_STORE : 0;
}

static int prune_store(session *S)
{
    cli *o = S->o;
    double since = 0;
    if (prune_since(S->db, S->run_id, o->list.n > 0 ? S->started_at : 0, &since, &S->err) < 0)
        return AL_EXIT_STORE;
    al_prune_opts popts = {.remove = (const char *const *)o->remove,
                           .n_remove = o->n_remove,
                           .keep = o->keep,
                           .protect_since = since,
                           .dry_run = o->dry_run};
    if (al_prune_run(S->store, S->db, &popts, &S->prune_rep, &S->err) < 0) {
        al_error_wrap(&S->err, "prune");
        return AL_EXIT_STORE;
    }
    S->pruned = true;
    print_prune(&S->prune_rep);
    fflush(stdout);
    return 0;
}

/* --json and --lock, written whatever happened. */
static void write_reports(session *S)
{
    cli *o = S->o;
    al_report rep = {.run_id = S->run_id,
                     .started_at = S->started_at,
                     .finished_at = al_now(),
                     .t0 = S->t0,
                     .store_dir = o->store_dir,
                     .version = AL_FETCH_VERSION,
                     .results = S->results,
                     .n_results = S->n_results,
                     .stats = S->engine && S->n_results > 0 ? al_engine_get_stats(S->engine) : NULL,
                     .seconds = S->elapsed,
                     .exit_status = S->exit_code,
                     .error = S->err,
                     .prune = S->pruned ? &S->prune_rep : NULL};
    al_error *we = NULL;
    _cleanup_free_ char *json = o->json_path ? al_report_json(&rep) : NULL;
    if (json != NULL && al_file_write_atomic(o->json_path, json, strlen(json), &we) < 0) {
        al_error_log("--json: %s", we->msg);
        al_error_clear(&we);
        if (S->exit_code == 0)
            S->exit_code = AL_EXIT_FAILED;
    }
    /* A lock file is only worth having when the fetch itself ran. */
    _cleanup_free_ char *lock = o->lock_path && S->n_results > 0 ? al_report_lock_text(&rep) : NULL;
    if (lock != NULL && al_file_write_atomic(o->lock_path, lock, strlen(lock), &we) < 0) {
        al_error_log("--lock: %s", we->msg);
        al_error_clear(&we);
        if (S->exit_code == 0)
            S->exit_code = AL_EXIT_FAILED;
    }
}

static void finish_run(session *S)
{
    if (S->run_open) {
        al_error *fe = NULL;
        if (al_db_run_finish(S->db, S->run_id, S->tot.ok, S->tot.failed, (int64_t)S->tot.bytes,
                             &fe) < 0 &&
            S->err == NULL) {
            S->err = al_steal_ptr(&fe);
            S->exit_code = AL_EXIT_STORE;
        }
        al_error_free(fe);
    }
    al_progress_free(S->progress);
    S->progress = NULL;
    if (S->o->json_path != NULL || S->o->lock_path != NULL)
        write_reports(S);
    if (S->err != NULL)
        al_error_log("%s", S->err->msg);
}

static void session_dispose(session *S)
{
    al_error_free(S->err);
    if (S->pruned)
        al_prune_report_dispose(&S->prune_rep);
    al_registry_free(S->reg); /* joins its worker thread */
    al_engine_free(S->engine);
    al_image_results_free(S->results, S->n_results);
    al_db_free(S->db);
    al_store_free(S->store); /* releases the store's lock */
    al_creds_free(S->creds);
    al_free_secret(S->password);
}

static int run(cli *o, int argc, char **argv)
{
    session S = {.o = o, .started_at = al_now(), .t0 = al_mono()};
    S.password = o->password_stdin ? al_creds_read_stdin() : NULL;
    if (o->verbosity > AL_LOG_ERROR) {
        al_progress_mode mode = al_progress_mode_for(STDERR_FILENO);
        /* curl's trace would write through the display. */
        if (o->eopts.debug_http)
            mode = AL_PROGRESS_PLAIN;
        S.progress = al_progress_new(mode, stderr, "airlock-fetch", o->verbosity >= AL_LOG_DEBUG);
        al_progress_attach(S.progress, &o->eopts);
    }
    int rc = open_store(&S, argc, argv);
    if (rc == 0 && o->repair)
        rc = S.exit_code = repair_refs(&S);
    if (rc == 0 && o->list.n > 0)
        rc = S.exit_code = fetch_images(&S);
    if (rc == 0 && o->prune)
        rc = S.exit_code = prune_store(&S);
    if (rc == 0 && (S.tot.failed > 0 || (S.pruned && S.prune_rep.db.n_missing > 0)))
        S.exit_code = AL_EXIT_FAILED;
    finish_run(&S);
    int exit_code = S.exit_code;
    session_dispose(&S);
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
