/* airlock-push: the command line; the work is in push-select.c (what to
 * push), push-run.c and push-blobs.c (the transfers), push-config.c (the
 * cluster's registries.yaml and hosts.toml) and push-report.c (--json). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "credentials.h"
#include "db.h"
#include "engine.h"
#include "file.h"
#include "log.h"
#include "platform.h"
#include "progress.h"
#include "push-config.h"
#include "push-report.h"
#include "push.h"
#include "reflist.h"
#include "registry.h"
#include "sanitize.h"
#include "store.h"
#include "target.h"
#include "util.h"

#define AL_PUSH_VERSION "0.1.0"

static const char usage_text[] =
    "Usage: airlock-push [OPTIONS] --to HOST[:PORT][/PREFIX] [REF]... | --all\n"
    "Push images from an airlock store into a registry, byte for byte: the target keeps\n"
    "upstream's digests.\n"
    "\n"
    "Images:\n"
    "  REF                        an image of the store (busybox:1.36, rancher/pause:3.6, ...)\n"
    "  -f, --file FILE            read refs from FILE, one per line ('-' = stdin; repeatable)\n"
    "      --all                  every tag in the store\n"
    "      --to HOST[:PORT][/PREFIX]\n"
    "                             the target registry; an image keeps its upstream path, under\n"
    "                             PREFIX/ when given: docker.io/rancher/pause:3.6 goes to\n"
    "                             HOST/PREFIX/rancher/pause:3.6\n"
    "      --platform LIST        only these platforms, e.g. linux/amd64 (default: every\n"
    "                             platform the store holds); an index is then pushed with\n"
    "                             those entries only, under a new digest\n"
    "      --partial-index        when the store lacks some entries an index lists (platforms\n"
    "                             not fetched, attestations), push an index of the entries\n"
    "                             held, under a new digest (default: refuse the image)\n"
    "\n"
    "Store:\n"
    "      --store DIR            the store (default: $AIRLOCK_STORE, else ./airlock-store)\n"
    "\n"
    "Transfers:\n"
    "  -j, --jobs N               concurrent requests (default: 8)\n"
    "      --chunk-size SIZE      largest body of one upload request (default: 16M); a larger\n"
    "                             blob goes in chunks, resumable after a cut\n"
    "      --retries N            retries of a transient failure (default: 4)\n"
    "      --connect-timeout SEC  connection timeout (default: 30)\n"
    "      --stall-timeout SEC    cut a transfer slower than 1 kB/s for SEC (default: 60)\n"
    "      --max-wait SEC         longest Retry-After to wait (default: 60)\n"
    "\n"
    "Registry access:\n"
    "      --username USER        user name for the target (needs --password-stdin)\n"
    "      --password-stdin       read the password from stdin\n"
    "      --ca-cert FILE         trust the CA certificates in FILE (PEM) as well as the system's\n"
    "      --client-cert FILE     client certificate (PEM) for a registry that requires one\n"
    "      --client-key FILE      its private key (default: in the --client-cert file)\n"
    "      --certs-dir DIR        per-registry TLS files DIR/HOST[:PORT]/{*.crt,client.cert,\n"
    "                             client.key} (default: /etc/docker/certs.d and\n"
    "                             /etc/containers/certs.d)\n"
    "      --insecure-registry HOST[:PORT]\n"
    "                             allow plain HTTP or unverified TLS for HOST; localhost,\n"
    "                             127.0.0.0/8 and ::1 may use plain HTTP without it\n"
    "  Without --username, credentials come from containers auth.json, then docker's\n"
    "  config.json, as for airlock-fetch.\n"
    "\n"
    "Cluster configuration (for the images pushed, under their original names):\n"
    "      --registries-yaml FILE write k3s/RKE2 registries.yaml: the target as the mirror of\n"
    "                             each upstream registry, with a rewrite for PREFIX\n"
    "      --hosts-dir DIR        write containerd's DIR/UPSTREAM/hosts.toml for each upstream\n"
    "                             registry (ctr --hosts-dir, config_path)\n"
    "\n"
    "Output:\n"
    "      --json FILE            write a machine-readable report of the run to FILE\n"
    "                             (docs/push-report.schema.json)\n"
    "  -q, --quiet                errors only on stderr\n"
    "  -v, --verbose              more detail on stderr (AL_DEBUG_HTTP=1 traces HTTP)\n"
    "  -h, --help                 this help\n"
    "      --version              print the version\n"
    "  Results go to stdout, one line per image, then a summary; progress to stderr.\n"
    "\n"
    "Exit status: 0 every image pushed or unchanged, 1 some failed (nothing is tagged\n"
    "for those), 2 usage or input error (nothing sent), 3 store unusable.\n";

enum {
    OPT_FILE = 'f',
    OPT_JOBS = 'j',
    OPT_QUIET = 'q',
    OPT_VERBOSE = 'v',
    OPT_HELP = 'h',
    OPT_ALL = 256,
    OPT_TO,
    OPT_PLATFORM,
    OPT_PARTIAL,
    OPT_STORE,
    OPT_CHUNK,
    OPT_RETRIES,
    OPT_CONNECT_TIMEOUT,
    OPT_STALL_TIMEOUT,
    OPT_MAX_WAIT,
    OPT_USERNAME,
    OPT_PASSWORD_STDIN,
    OPT_CA_CERT,
    OPT_CLIENT_CERT,
    OPT_CLIENT_KEY,
    OPT_CERTS_DIR,
    OPT_INSECURE,
    OPT_REGISTRIES_YAML,
    OPT_HOSTS_DIR,
    OPT_JSON,
    OPT_VERSION,
};

/* Everything the command line asks for; owned pointers are freed by
 * cli_dispose. */
typedef struct cli {
    const char *store_dir, *username, *ca_cert, *client_cert, *client_key, *certs_dir;
    char *host, *prefix; /* --to */
    bool all, partial, password_stdin, stdin_list;
    char **files; /* borrowed from argv */
    size_t n_files;
    char **insecure; /* borrowed from argv */
    size_t n_insecure;
    const char *platform_arg;
    al_platform *plats;
    size_t n_plats;
    int64_t chunk;
    al_engine_opts eopts;
    const char *registries_yaml, *hosts_dir, *json_path;
    int verbosity;
    al_reflist list;
} cli;

static void cli_dispose(cli *o)
{
    free(o->host);
    free(o->prefix);
    free(o->files);
    free(o->insecure);
    free(o->plats);
    al_reflist_dispose(&o->list);
}

/* --- options, by group of the help text ---------------------------------------------------
 * Each returns 0 when it took the option, 1 when it is another group's,
 * or the exit code of a usage error. */

static int opt_images(cli *o, int c, const char *arg)
{
    switch (c) {
    case OPT_FILE:
        o->files = al_xrealloc(o->files, (o->n_files + 1) * sizeof(char *));
        o->files[o->n_files++] = (char *)arg;
        o->stdin_list |= strcmp(arg, "-") == 0;
        return 0;
    case OPT_ALL: o->all = true; return 0;
    case OPT_TO:
        free(o->host);
        free(o->prefix);
        o->host = o->prefix = NULL;
        if (!al_target_parse(arg, &o->host, &o->prefix))
            return al_cli_usage_error("--to: expected HOST[:PORT][/PREFIX] such as "
                                      "registry.local:5000/mirror, got \"%s\"",
                                      arg);
        return 0;
    case OPT_PLATFORM: o->platform_arg = arg; return 0;
    case OPT_PARTIAL: o->partial = true; return 0;
    case OPT_STORE:
        if (*arg == '\0')
            return al_cli_usage_error("--store: expected a directory, got an empty string");
        o->store_dir = arg;
        return 0;
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
    uint64_t size = 0;
    if (c == OPT_CHUNK) {
        if (!al_cli_parse_size(arg, &size) || size < 64 * 1024 || size > (uint64_t)1 << 32)
            return al_cli_usage_error("--chunk-size: expected a size from 64K to 4G (16M, "
                                      "1048576), got \"%s\"",
                                      arg);
        o->chunk = (int64_t)size;
        return 0;
    }
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
    case OPT_REGISTRIES_YAML:
    case OPT_HOSTS_DIR:
    case OPT_JSON:
        if (*arg == '\0' || strcmp(arg, "-") == 0)
            return al_cli_usage_error("--%s: expected a %s name (stdout carries the results)",
                                      c == OPT_JSON              ? "json"
                                      : c == OPT_REGISTRIES_YAML ? "registries-yaml"
                                                                 : "hosts-dir",
                                      c == OPT_HOSTS_DIR ? "directory" : "file");
        *(c == OPT_JSON        ? &o->json_path
          : c == OPT_HOSTS_DIR ? &o->hosts_dir
                               : &o->registries_yaml) = arg;
        return 0;
    case OPT_QUIET: o->verbosity = AL_LOG_ERROR; return 0;
    case OPT_VERBOSE: o->verbosity = AL_LOG_DEBUG; return 0;
    case OPT_HELP: fputs(usage_text, stdout); return -2;
    case OPT_VERSION: puts("airlock-push " AL_PUSH_VERSION); return -2;
    default: return 1;
    }
}

typedef int (*take_fn)(cli *o, int c, const char *arg);
static const struct push_option {
    const char *name;
    int has_arg;
    int id;
    take_fn take;
} options[] = {
    {"file", required_argument, OPT_FILE, opt_images},
    {"all", no_argument, OPT_ALL, opt_images},
    {"to", required_argument, OPT_TO, opt_images},
    {"platform", required_argument, OPT_PLATFORM, opt_images},
    {"partial-index", no_argument, OPT_PARTIAL, opt_images},
    {"store", required_argument, OPT_STORE, opt_images},
    {"jobs", required_argument, OPT_JOBS, opt_transfers},
    {"chunk-size", required_argument, OPT_CHUNK, opt_transfers},
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
    {"registries-yaml", required_argument, OPT_REGISTRIES_YAML, opt_output},
    {"hosts-dir", required_argument, OPT_HOSTS_DIR, opt_output},
    {"json", required_argument, OPT_JSON, opt_output},
    {"quiet", no_argument, OPT_QUIET, opt_output},
    {"verbose", no_argument, OPT_VERBOSE, opt_output},
    {"help", no_argument, OPT_HELP, opt_output},
    {"version", no_argument, OPT_VERSION, opt_output},
};

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
    fputs("Try 'airlock-push --help'.\n", stderr); /* getopt said what was wrong */
    return AL_EXIT_USAGE;
}

/* Flags that only make sense together. */
static int check_cli(cli *o)
{
    if (o->host == NULL)
        return al_cli_usage_error("no target: --to HOST[:PORT][/PREFIX] says where to push");
    if (o->password_stdin && o->username == NULL)
        return al_cli_usage_error("--password-stdin needs --username");
    if (o->username != NULL && !o->password_stdin)
        return al_cli_usage_error("--username needs --password-stdin (passwords are never taken "
                                  "from the command line)");
    if (o->password_stdin && o->stdin_list)
        return al_cli_usage_error("--password-stdin and -f - both want stdin");
    if (o->client_key != NULL && o->client_cert == NULL)
        return al_cli_usage_error("--client-key needs --client-cert");
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

/* Returns -1 to go on, or the exit code. */
static int parse_cli(cli *o, int argc, char **argv)
{
    o->verbosity = AL_LOG_INFO;
    o->chunk = AL_PUSH_CHUNK_DEFAULT;
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
    /* Every ref and every list line is validated before anything else. */
    if ((rc = al_cli_read_refs(&o->list, argv, optind, argc, o->files, o->n_files)) != 0)
        return rc;
    if (o->list.n == 0 && !o->all)
        return al_cli_usage_error("no images given (REF arguments, -f FILE or --all)");
    return -1;
}

/* --- output ------------------------------------------------------------------------------- */

/* "2 blobs pushed, 1 mounted, 3 present, 1.2 MB" and what was unusual. */
static char *counts_text(const al_push_result *r)
{
    char b[32];
    return al_xasprintf("%d blob%s pushed, %d mounted, %d present, %s%s", r->blobs_pushed,
                        r->blobs_pushed == 1 ? "" : "s", r->blobs_mounted, r->blobs_present,
                        al_format_bytes(b, sizeof(b), r->bytes),
                        r->restarts > 0 ? "; an upload the registry lost started again" : "");
}

static void print_result(const al_push_result *r)
{
    /* The last guard: a message may quote a registry, and no part of a
     * result line may start another (docs/STYLE.md, Output). */
    _cleanup_free_ char *name = al_sanitize(r->ref, AL_SANITIZE_LINE);
    _cleanup_free_ char *target = al_sanitize(r->target, AL_SANITIZE_LINE);
    if (r->status == AL_PUSH_FAILED) {
        _cleanup_free_ char *msg =
            al_sanitize(r->err ? r->err->msg : "unknown error", AL_SANITIZE_LINE);
        printf("%-9s %s -> %s  %s\n", "FAILED", name, target, msg);
        return;
    }
    _cleanup_free_ char *plats = al_sanitize(r->platforms, AL_SANITIZE_LINE);
    if (r->status == AL_PUSH_UNCHANGED) {
        printf("%-9s %s -> %s  %s  %s\n", "unchanged", name, target, r->digest, plats);
        return;
    }
    _cleanup_free_ char *counts = counts_text(r);
    _cleanup_free_ char *rewritten =
        strcmp(r->digest, r->stored_digest) == 0
            ? al_xstrdup("")
            : al_xasprintf(" (a new index without %s; the store's is %s)",
                           r->left_out ? r->left_out : "some entries", r->stored_digest);
    printf("%-9s %s -> %s  %s%s  %s  %s\n", "pushed", name, target, r->digest, rewritten, plats,
           counts);
}

static void print_results(const al_push_result *res, size_t n, const al_engine *engine,
                          double elapsed)
{
    for (size_t i = 0; i < n; i++)
        print_result(&res[i]);
    char b[32];
    al_push_totals t;
    al_push_totals_of(&t, res, n);
    const al_engine_stats *st = engine ? al_engine_get_stats(engine) : NULL;
    printf("%zu image%s: %d pushed, %d unchanged, %d failed; %d blob%s pushed (%d mounted, %d "
           "present), %s uploaded in %.1fs (%llu requests)\n",
           n, n == 1 ? "" : "s", t.pushed, t.unchanged, t.failed, t.blobs_pushed,
           t.blobs_pushed == 1 ? "" : "s", t.blobs_mounted, t.blobs_present,
           al_format_bytes(b, sizeof(b), t.bytes), elapsed,
           (unsigned long long)(st ? st->requests : 0));
    fflush(stdout);
}

/* --- the run --------------------------------------------------------------------------------- */

/* Everything a run holds, released in one place. */
typedef struct session {
    cli *o;
    char *password;
    al_store *store;
    al_db *db;
    al_creds *creds;
    al_engine *engine;
    al_registry *reg;
    al_progress *progress;
    al_push_plan *plan;
    al_push_result *results;
    size_t n_results;
    double started_at, t0, elapsed;
    const char *wrote_yaml, *wrote_hosts;
    al_error *err;
    int exit_code;
} session;

static int open_store(session *S)
{
    if (al_creds_new(&S->creds, S->o->username, S->password, NULL, &S->err) < 0)
        return S->exit_code = AL_EXIT_USAGE;
    if (al_store_open(&S->store, S->o->store_dir, AL_STORE_READONLY, &S->err) < 0 ||
        al_db_open(&S->db, al_store_db_path(S->store), true, &S->err) < 0)
        return S->exit_code = AL_EXIT_STORE;
    return 0;
}

static int select_images(session *S)
{
    cli *o = S->o;
    al_push_opts po = {.host = o->host,
                       .prefix = o->prefix,
                       .platforms = o->plats,
                       .n_platforms = o->n_plats,
                       .partial_index = o->partial,
                       .chunk = o->chunk};
    if (al_push_select(&S->plan, S->store, S->db, &o->list, o->all, &po, &S->err) < 0)
        return S->exit_code = S->err->code == AL_E_USAGE ? AL_EXIT_USAGE : AL_EXIT_STORE;
    return 0;
}

static int push_images(session *S)
{
    cli *o = S->o;
    if (al_engine_new(&S->engine, &o->eopts, &S->err) < 0)
        return S->exit_code = al_errc_exit(S->err->code);
    const char *certs_dirs[] = {o->certs_dir, NULL};
    al_registry_opts ropts = {.creds = S->creds,
                              .insecure_hosts = o->insecure,
                              .n_insecure = o->n_insecure,
                              .ca_cert = o->ca_cert,
                              .client_cert = o->client_cert,
                              .client_key = o->client_key,
                              .certs_dirs = o->certs_dir ? certs_dirs : NULL};
    if (al_registry_new(&S->reg, S->engine, &ropts, &S->err) < 0)
        return S->exit_code = AL_EXIT_FAILED;
    S->t0 = al_mono();
    S->n_results = al_push_plan_count(S->plan);
    al_push_run(S->plan, S->reg, &S->results);
    S->elapsed = al_mono() - S->t0;
    al_progress_clear(S->progress);
    print_results(S->results, S->n_results, S->engine, S->elapsed);
    al_push_totals t;
    al_push_totals_of(&t, S->results, S->n_results);
    return S->exit_code = t.failed > 0 ? AL_EXIT_FAILED : 0;
}

/* --- the cluster's configuration ---------------------------------------------------------------
 */

/* An absolute path for a file the cluster's nodes will read (NULL stays). */
static char *absolute(const char *path)
{
    if (path == NULL)
        return NULL;
    char buf[PATH_MAX];
    return realpath(path, buf) != NULL ? al_xstrdup(buf) : al_xstrdup(path);
}

/* The upstream registries of the images the target now holds, each once. */
static size_t pushed_upstreams(const session *S, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < S->n_results; i++) {
        const al_push_result *r = &S->results[i];
        bool seen = r->status == AL_PUSH_FAILED;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], r->upstream) == 0;
        if (!seen)
            out[n++] = r->upstream;
    }
    return n;
}

static int write_config(session *S, const al_push_site *site, const char **ups, size_t n)
{
    cli *o = S->o;
    al_error *e = NULL;
    if (o->registries_yaml != NULL) {
        _cleanup_free_ char *yaml = al_push_registries_yaml(site, ups, n);
        if (al_file_write_atomic(o->registries_yaml, yaml, strlen(yaml), &e) < 0)
            goto fail;
        S->wrote_yaml = o->registries_yaml;
        al_info("wrote %s: %zu upstream registr%s mirrored by %s", o->registries_yaml, n,
                n == 1 ? "y" : "ies", o->host);
    }
    if (o->hosts_dir != NULL) {
        if (al_push_write_hosts_dir(o->hosts_dir, site, ups, n, &e) < 0)
            goto fail;
        S->wrote_hosts = o->hosts_dir;
        al_info("wrote %zu hosts.toml file%s in %s", n, n == 1 ? "" : "s", o->hosts_dir);
    }
    return 0;
fail:
    al_error_log("%s", e->msg);
    al_error_free(e);
    return S->exit_code = AL_EXIT_FAILED;
}

static int cluster_config(session *S)
{
    cli *o = S->o;
    if (o->registries_yaml == NULL && o->hosts_dir == NULL)
        return 0;
    const char **ups = al_xcalloc(S->n_results + 1, sizeof(char *));
    size_t n = pushed_upstreams(S, ups);
    _cleanup_free_ char *ca = absolute(o->ca_cert);
    _cleanup_free_ char *cert = absolute(o->client_cert);
    _cleanup_free_ char *key = absolute(o->client_key);
    bool plain = al_registry_plain_http(S->reg, o->host);
    al_push_site site = {.host = o->host,
                         .prefix = o->prefix,
                         .plain_http = plain,
                         .skip_verify = !plain && al_registry_is_insecure(S->reg, o->host),
                         .ca_file = ca,
                         .client_cert = cert,
                         .client_key = key};
    int rc = 0;
    if (n == 0)
        al_warn("no image is at %s: --registries-yaml and --hosts-dir not written", o->host);
    else
        rc = write_config(S, &site, ups, n);
    free(ups);
    return rc;
}

/* --json, written whatever happened. */
static void write_report(session *S)
{
    cli *o = S->o;
    if (o->json_path == NULL)
        return;
    bool spoke =
        S->reg != NULL && S->engine != NULL && al_engine_get_stats(S->engine)->requests > 0;
    al_push_report rep = {
        .version = AL_PUSH_VERSION,
        .store_dir = o->store_dir,
        .host = o->host,
        .prefix = o->prefix,
        .scheme = !spoke                                    ? NULL
                  : al_registry_plain_http(S->reg, o->host) ? "http"
                                                            : "https",
        .started_at = S->started_at,
        .finished_at = al_now(),
        .t0 = S->t0,
        .seconds = S->elapsed,
        .results = S->results,
        .n_results = S->n_results,
        .stats = S->engine ? al_engine_get_stats(S->engine) : NULL,
        .registries_yaml = S->wrote_yaml,
        .hosts_dir = S->wrote_hosts,
        .exit_status = S->exit_code,
        .error = S->err,
    };
    _cleanup_free_ char *json = al_push_report_json(&rep);
    al_error *we = NULL;
    if (al_file_write_atomic(o->json_path, json, strlen(json), &we) < 0) {
        al_error_log("--json: %s", we->msg);
        al_error_free(we);
        if (S->exit_code == 0)
            S->exit_code = AL_EXIT_FAILED;
    }
}

static void session_dispose(session *S)
{
    al_error_free(S->err);
    al_push_results_free(S->results, S->n_results);
    al_push_plan_free(S->plan);
    al_registry_free(S->reg); /* joins its worker thread */
    al_engine_free(S->engine);
    al_progress_free(S->progress);
    al_db_free(S->db);
    al_store_free(S->store); /* releases the GC lock */
    al_creds_free(S->creds);
    al_free_secret(S->password);
}

static int run(cli *o)
{
    session S = {.o = o, .started_at = al_now(), .t0 = al_mono()};
    S.password = o->password_stdin ? al_creds_read_stdin() : NULL;
    if (o->verbosity > AL_LOG_ERROR) {
        al_progress_mode mode = al_progress_mode_for(STDERR_FILENO);
        if (o->eopts.debug_http)
            mode = AL_PROGRESS_PLAIN; /* curl's trace would write through the display */
        S.progress = al_progress_new(mode, stderr, "airlock-push", o->verbosity >= AL_LOG_DEBUG);
        al_progress_attach(S.progress, &o->eopts);
    }
    int rc = open_store(&S);
    if (rc == 0)
        rc = select_images(&S);
    if (rc == 0)
        rc = push_images(&S);
    if (rc == 0 || rc == AL_EXIT_FAILED)
        cluster_config(&S);
    if (S.err != NULL && S.err->code == AL_E_USAGE)
        al_cli_usage_error("%s", S.err->msg);
    else if (S.err != NULL)
        al_error_log("%s", S.err->msg);
    write_report(&S);
    int exit_code = S.exit_code;
    session_dispose(&S);
    return exit_code;
}

int main(int argc, char **argv)
{
    al_log_set_prog("airlock-push");
    cli o = {0};
    int exit_code = parse_cli(&o, argc, argv);
    if (exit_code < 0)
        exit_code = run(&o);
    cli_dispose(&o);
    return exit_code;
}
