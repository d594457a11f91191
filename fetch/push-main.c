/* airlock-push: the command line; the work is in push-select.c (what to
 * push), push-run.c and push-blobs.c (the transfers), push-config.c (the
 * cluster's registries.yaml and hosts.toml) and push-report.c (--json). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmdline.h"
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

/* The help text laid out as it prints, the lines both programs share by name. */
/* clang-format off */
static const char usage_text[] =
    "Usage: airlock-push [OPTIONS] --to HOST[:PORT][/PREFIX] [REF]... | --all\n"
    "Push images from an airlock store into a registry, byte for byte: the target keeps\n"
    "upstream's digests.\n"
    "\n"
    "Images:\n"
    "  REF                        an image of the store (busybox:1.36, rancher/pause:3.6, ...)\n"
    AL_CMDLINE_HELP_FILE
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
    AL_CMDLINE_HELP_STORE
    "\n"
    "Transfers:\n"
    AL_CMDLINE_HELP_TRANSFERS
    "      --chunk-size SIZE      largest body of one upload request (default: 16M); a larger\n"
    "                             blob goes in chunks, resumable after a cut\n"
    "\n"
    "Registry access:\n"
    "      --username USER        user name for the target (needs --password-stdin)\n"
    "      --password-stdin       read the password from stdin\n"
    AL_CMDLINE_HELP_TLS
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
    AL_CMDLINE_HELP_VERBOSITY
    "  Results go to stdout, one line per image, then a summary; progress to stderr.\n"
    "\n"
    "Exit status: 0 every image pushed or unchanged, 1 some failed (nothing is tagged\n"
    "for those), 2 usage or input error (nothing sent), 3 store unusable.\n";
/* clang-format on */

enum {
    OPT_ALL = AL_CMDLINE_OWN_FIRST,
    OPT_TO,
    OPT_PARTIAL,
    OPT_CHUNK,
    OPT_REGISTRIES_YAML,
    OPT_HOSTS_DIR,
};

/* Everything the command line asks for; owned pointers are freed by
 * cli_dispose. */
typedef struct cli {
    al_cmdline cmd;      /* refs, store, transfers, registry access, output */
    char *host, *prefix; /* --to */
    bool all, partial;
    int64_t chunk;
    const char *registries_yaml, *hosts_dir;
} cli;

static void cli_dispose(cli *o)
{
    free(o->host);
    free(o->prefix);
    al_cmdline_dispose(&o->cmd);
}

/* --- options ------------------------------------------------------------------------------
 * The handlers of airlock-push's own flags (cmdline.c has the shared
 * ones) return 0, or the exit code of a usage error. */

static int opt_images(void *prog, int c, const char *arg)
{
    cli *o = prog;
    switch (c) {
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
    default: o->partial = true; return 0; /* OPT_PARTIAL */
    }
}

static int opt_chunk(void *prog, int c, const char *arg)
{
    uint64_t size = 0;
    (void)c;
    if (!al_cli_parse_size(arg, &size) || size < 64 * 1024 || size > (uint64_t)1 << 32)
        return al_cli_usage_error("--chunk-size: expected a size from 64K to 4G (16M, "
                                  "1048576), got \"%s\"",
                                  arg);
    ((cli *)prog)->chunk = (int64_t)size;
    return 0;
}

static int opt_config(void *prog, int c, const char *arg)
{
    cli *o = prog;
    if (c == OPT_HOSTS_DIR)
        return al_cmdline_output_path("--hosts-dir", "directory", arg, &o->hosts_dir);
    return al_cmdline_output_path("--registries-yaml", "file", arg, &o->registries_yaml);
}

/* This program's own long options (cmdline.c holds the shared ones). */
static const al_cmdline_option options[] = {
    {"all", no_argument, OPT_ALL, opt_images},
    {"to", required_argument, OPT_TO, opt_images},
    {"partial-index", no_argument, OPT_PARTIAL, opt_images},
    {"chunk-size", required_argument, OPT_CHUNK, opt_chunk},
    {"registries-yaml", required_argument, OPT_REGISTRIES_YAML, opt_config},
    {"hosts-dir", required_argument, OPT_HOSTS_DIR, opt_config},
};

static int check_cli(void *prog)
{
    if (((cli *)prog)->host == NULL)
        return al_cli_usage_error("no target: --to HOST[:PORT][/PREFIX] says where to push");
    return -1;
}

static const al_cmdline_program program = {"airlock-push", AL_PUSH_VERSION,        usage_text,
                                           options,        AL_ARRAY_SIZE(options), check_cli};

/* Returns -1 to go on, or the exit code. */
static int parse_cli(cli *o, int argc, char **argv)
{
    o->chunk = AL_PUSH_CHUNK_DEFAULT;
    al_cmdline_init(&o->cmd);
    int rc = al_cmdline_parse(&o->cmd, &program, o, argc, argv);
    if (rc >= 0)
        return rc;
    if (o->cmd.list.n == 0 && !o->all)
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

/* The summary line after the images' lines. */
static void print_summary(const al_push_totals *tp, size_t n, const al_engine *engine,
                          double elapsed)
{
    const al_push_totals t = *tp;
    const al_engine_stats *st = engine ? al_engine_get_stats(engine) : NULL;
    char b[32];
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
    al_cmdline_net net; /* password, credentials, progress, engine, registry */
    al_store *store;
    al_db *db;
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
    if (al_store_open(&S->store, S->o->cmd.store_dir, AL_STORE_READONLY, &S->err) < 0 ||
        al_db_open(&S->db, al_store_db_path(S->store), true, &S->err) < 0)
        return S->exit_code = AL_EXIT_STORE;
    return 0;
}

static int select_images(session *S)
{
    cli *o = S->o;
    al_push_opts po = {.host = o->host,
                       .prefix = o->prefix,
                       .platforms = o->cmd.plats,
                       .n_platforms = o->cmd.n_plats,
                       .partial_index = o->partial,
                       .chunk = o->chunk};
    if (al_push_select(&S->plan, S->store, S->db, &o->cmd.list, o->all, &po, &S->err) < 0)
        return S->exit_code = S->err->code == AL_E_USAGE ? AL_EXIT_USAGE : AL_EXIT_STORE;
    return 0;
}

static int push_images(session *S)
{
    int rc = al_cmdline_net_connect(&S->net, &S->o->cmd, &S->err);
    if (rc != 0)
        return S->exit_code = rc;
    S->t0 = al_mono();
    S->n_results = al_push_plan_count(S->plan);
    al_push_run(S->plan, S->net.reg, &S->results);
    S->elapsed = al_mono() - S->t0;
    al_progress_clear(S->net.progress);
    for (size_t i = 0; i < S->n_results; i++)
        print_result(&S->results[i]);
    al_push_totals t;
    al_push_totals_of(&t, S->results, S->n_results);
    print_summary(&t, S->n_results, S->net.engine, S->elapsed);
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
    _cleanup_free_ char *ca = absolute(o->cmd.ca_cert);
    _cleanup_free_ char *cert = absolute(o->cmd.client_cert);
    _cleanup_free_ char *key = absolute(o->cmd.client_key);
    bool plain = al_registry_plain_http(S->net.reg, o->host);
    al_push_site site = {.host = o->host,
                         .prefix = o->prefix,
                         .plain_http = plain,
                         .skip_verify = !plain && al_registry_is_insecure(S->net.reg, o->host),
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
    if (o->cmd.json_path == NULL)
        return;
    bool spoke = S->net.reg != NULL && S->net.engine != NULL &&
                 al_engine_get_stats(S->net.engine)->requests > 0;
    al_push_report rep = {
        .version = AL_PUSH_VERSION,
        .store_dir = o->cmd.store_dir,
        .host = o->host,
        .prefix = o->prefix,
        .scheme = !spoke                                        ? NULL
                  : al_registry_plain_http(S->net.reg, o->host) ? "http"
                                                                : "https",
        .started_at = S->started_at,
        .finished_at = al_now(),
        .t0 = S->t0,
        .seconds = S->elapsed,
        .results = S->results,
        .n_results = S->n_results,
        .stats = S->net.engine ? al_engine_get_stats(S->net.engine) : NULL,
        .registries_yaml = S->wrote_yaml,
        .hosts_dir = S->wrote_hosts,
        .exit_status = S->exit_code,
        .error = S->err,
    };
    _cleanup_free_ char *json = al_push_report_json(&rep);
    al_cmdline_write_output("--json", o->cmd.json_path, json, &S->exit_code);
}

/* Release everything; the run's exit code. */
static int session_close(session *S)
{
    al_error_free(S->err);
    al_push_results_free(S->results, S->n_results);
    al_push_plan_free(S->plan);
    al_cmdline_net_end(&S->net);
    al_db_free(S->db);
    al_store_free(S->store); /* releases the GC lock */
    return S->exit_code;
}

static int run(cli *o)
{
    session S = {.o = o, .started_at = al_now(), .t0 = al_mono()};
    int rc = S.exit_code = al_cmdline_net_begin(&S.net, &o->cmd, "airlock-push", &S.err);
    if (rc == 0)
        rc = open_store(&S);
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
    return session_close(&S);
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
