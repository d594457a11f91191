/* airlock-fetch: the command line; the work is in plan.c (the fetch),
 * prune.c and repair.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmdline.h"
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

/* The help text laid out as it prints, the lines both programs share by name. */
/* clang-format off */
static const char usage_text[] =
    "Usage: airlock-fetch [OPTIONS] [REF]...\n"
    "Mirror container images from Docker/OCI registries into an airlock store.\n"
    "\n"
    "Images:\n"
    "  REF                        image reference (busybox, rancher/pause:3.6, quay.io/a/b@sha256:...)\n"
    AL_CMDLINE_HELP_FILE
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
    AL_CMDLINE_HELP_STORE
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
    AL_CMDLINE_HELP_TRANSFERS
    "\n"
    "Registry access:\n"
    "      --username USER        user name for every registry of this run\n"
    "      --password-stdin       read the password from stdin (with --username)\n"
    AL_CMDLINE_HELP_TLS
    "  Without --username, credentials come from containers auth.json ($REGISTRY_AUTH_FILE,\n"
    "  else $XDG_RUNTIME_DIR/containers/auth.json), then docker's config.json ($DOCKER_CONFIG,\n"
    "  else ~/.docker/config.json: credHelpers, credsStore, auths).\n"
    "\n"
    "Output:\n"
    "      --json FILE            write a machine-readable report of the run to FILE\n"
    "                             (docs/fetch-report.schema.json)\n"
    "      --lock FILE            write every ref of the run pinned by the digest fetched\n"
    "                             (NAME:TAG@DIGEST) to FILE: a list for airlock-export -f\n"
    AL_CMDLINE_HELP_VERBOSITY
    "  Results go to stdout, one line per image, then a summary. Progress goes to stderr:\n"
    "  a display redrawn ten times a second on a terminal, else one line per blob.\n"
    "\n"
    "Exit status: 0 all images fetched, 1 some failed (the others are stored),\n"
    "2 usage or input error (nothing fetched), 3 store unusable (busy, corrupt, newer).\n";
/* clang-format on */

enum {
    OPT_REGISTRY = AL_CMDLINE_OWN_FIRST,
    OPT_ATTEST,
    OPT_MIRROR,
    OPT_MIRROR_ONLY,
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

/* The word of a result line: the report's name, FAILED in capitals so
 * that it stands out in a long list. */
static const char *status_word(al_image_status s)
{
    return s == AL_IMG_FAILED ? "FAILED" : al_report_status_name(s);
}

/* Everything the command line asks for. Owned pointers are freed by
 * cli_dispose, so parse_cli can return from anywhere. */
typedef struct cli {
    al_cmdline cmd; /* refs, store, transfers, registry access, output */
    const char *registry;
    bool attest;
    al_mirror *mirrors; /* strings point into mirror_text */
    char **mirror_text;
    size_t n_mirrors;
    bool mirror_only;
    /* Lock file, prune, repair, import. */
    const char *lock_path;
    bool prune, dry_run, keep_set, repair;
    int keep;
    char **remove; /* full names, owned */
    size_t n_remove;
    const char *import_path; /* --import BUNDLE */
} cli;

static void cli_dispose(cli *o)
{
    for (size_t i = 0; i < o->n_mirrors; i++)
        free(o->mirror_text[i]);
    free(o->mirror_text);
    free(o->mirrors);
    al_cmdline_dispose(&o->cmd);
    for (size_t i = 0; i < o->n_remove; i++)
        free(o->remove[i]);
    free(o->remove);
}

/* --- options, by group of the help text -------------------------------------------
 * Each takes one of this program's own options (cmdline.c takes the
 * shared ones): 0, or the exit code of a usage error. */

static int opt_images(void *prog, int c, const char *arg)
{
    cli *o = prog;
    switch (c) {
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
    default: o->attest = true; return 0; /* OPT_ATTEST */
    }
}

static int opt_store(void *prog, int c, const char *arg)
{
    cli *o = prog;
    long v;
    switch (c) {
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
    default: { /* OPT_REMOVE */
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
    }
}

static int opt_lock(void *prog, int c, const char *arg)
{
    (void)c;
    return al_cmdline_output_path("--lock", "file", arg, &((cli *)prog)->lock_path);
}

/* This program's flags that only make sense together (the shared ones
 * are checked first). */
static int check_cli(void *prog)
{
    cli *o = prog;
    for (size_t i = 0; i < o->n_mirrors; i++)
        if (o->registry != NULL && strcmp(o->mirrors[i].upstream, "docker.io") == 0)
            return al_cli_usage_error("--registry and --mirror docker.io=... both say where "
                                      "docker.io images come from: use one");
    if (o->mirror_only && o->n_mirrors == 0)
        return al_cli_usage_error("--mirror-only needs --mirror");
    if (o->n_remove > 0)
        o->prune = true; /* a removed tag's blobs go with it */
    if (o->keep_set && !o->prune)
        return al_cli_usage_error("--keep needs --prune");
    if (o->dry_run && !o->prune)
        return al_cli_usage_error("--dry-run needs --prune or --remove");
    return -1;
}

/* This program's own long options: name, whether it takes a value, the
 * id its group's handler knows it by, and that handler. The groups follow
 * the help text; cmdline.c holds the shared ones. */
static const al_cmdline_option options[] = {
    {"registry", required_argument, OPT_REGISTRY, opt_images},
    {"mirror", required_argument, OPT_MIRROR, opt_images},
    {"mirror-only", no_argument, OPT_MIRROR_ONLY, opt_images},
    {"include-attestations", no_argument, OPT_ATTEST, opt_images},
    {"prune", no_argument, OPT_PRUNE, opt_store},
    {"keep", required_argument, OPT_KEEP, opt_store},
    {"remove", required_argument, OPT_REMOVE, opt_store},
    {"dry-run", no_argument, OPT_DRY_RUN, opt_store},
    {"repair", no_argument, OPT_REPAIR, opt_store},
    {"import", required_argument, OPT_IMPORT, opt_store},
    {"lock", required_argument, OPT_LOCK, opt_lock},
};

static const al_cmdline_program program = {"airlock-fetch", AL_FETCH_VERSION,       usage_text,
                                           options,         AL_ARRAY_SIZE(options), check_cli};

/* Returns -1 to go on, or the exit code. */
static int parse_cli(cli *o, int argc, char **argv)
{
    o->keep = 1;
    al_cmdline_init(&o->cmd);
    int rc = al_cmdline_parse(&o->cmd, &program, o, argc, argv);
    if (rc >= 0)
        return rc;
    size_t n = o->cmd.list.n;
    if (o->import_path != NULL && (n > 0 || o->prune || o->repair || o->lock_path != NULL))
        return al_cli_usage_error("--import BUNDLE is a run of its own: no REF, -f, --prune, "
                                  "--remove, --repair or --lock with it");
    if (n == 0 && !o->prune && !o->repair && o->import_path == NULL)
        return al_cli_usage_error("no images given (REF arguments or -f FILE)");
    if (n == 0 && o->lock_path != NULL && !o->repair)
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
    al_cmdline_net net; /* password, credentials, progress, engine, registry */
    al_store *store;
    al_db *db;
    al_image_result *results;
    size_t n_results;
    int64_t run_id;
    bool run_open;
    al_prune_report prune_rep;
    bool pruned;
    al_repair_report repair_rep;
    double started_at, t0, elapsed;
    al_report_totals tot;
    al_error *err;
    int exit_code;
} session;

static int open_store(session *S, int argc, char **argv)
{
    cli *o = S->o;
    if (al_store_open(&S->store, o->cmd.store_dir, AL_STORE_WRITE, &S->err) < 0 ||
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
    if (o->cmd.list.n == 0) {
        al_tag *tags = NULL;
        size_t n = 0;
        if (al_db_tags_list(S->db, &tags, &n, &S->err) < 0)
            return AL_EXIT_STORE;
        for (size_t i = 0; i < n; i++)
            al_reflist_add_arg(&o->cmd.list, tags[i].full_name, (int)i + 1);
        al_tags_free(tags, n);
    }
    char **names = al_xcalloc(o->cmd.list.n + 1, sizeof(char *));
    for (size_t i = 0; i < o->cmd.list.n; i++)
        names[i] = al_ref_full(o->cmd.list.items[i].ref);
    int rc = al_repair_check(S->store, S->db, names, o->cmd.list.n, &S->repair_rep, &S->err);
    for (size_t i = 0; i < o->cmd.list.n; i++)
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
    int rc = al_cmdline_net_connect(&S->net, &o->cmd, &S->err);
    if (rc != 0)
        return rc;
    al_fetch_ctx ctx = {
        .store = S->store,
        .db = S->db,
        .registry = S->net.reg,
        .opts = {.registry_override = o->registry,
                 .mirrors = o->mirrors,
                 .n_mirrors = o->n_mirrors,
                 .no_fallback = o->mirror_only,
                 .platforms = o->cmd.plats,
                 .n_platforms = o->cmd.n_plats,
                 .include_attestations = o->attest,
                 .rewalk = o->repair},
        .run_id = S->run_id,
    };
    S->t0 = al_mono();
    rc = al_fetch_run(&ctx, &o->cmd.list, &S->results, &S->err);
    S->n_results = o->cmd.list.n;
    S->elapsed = al_mono() - S->t0;
    al_progress_clear(S->net.progress);
    print_results(S->results, S->n_results, S->net.engine, S->elapsed);
    print_quotas(S->net.reg);
    fflush(stdout);
    al_report_totals_of(&S->tot, S->results, S->n_results);
    return rc < 0 ? AL_EXIT_STORE : 0;
}

static int prune_store(session *S)
{
    cli *o = S->o;
    double since = 0;
    if (prune_since(S->db, S->run_id, o->cmd.list.n > 0 ? S->started_at : 0, &since, &S->err) < 0)
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
                     .store_dir = o->cmd.store_dir,
                     .version = AL_FETCH_VERSION,
                     .results = S->results,
                     .n_results = S->n_results,
                     .stats = S->net.engine && S->n_results > 0 ? al_engine_get_stats(S->net.engine)
                                                                : NULL,
                     .seconds = S->elapsed,
                     .exit_status = S->exit_code,
                     .error = S->err,
                     .prune = S->pruned ? &S->prune_rep : NULL};
    _cleanup_free_ char *json = o->cmd.json_path ? al_report_json(&rep) : NULL;
    al_cmdline_write_output("--json", o->cmd.json_path, json, &S->exit_code);
    /* A lock file is only worth having when the fetch itself ran. */
    _cleanup_free_ char *lock = o->lock_path && S->n_results > 0 ? al_report_lock_text(&rep) : NULL;
    al_cmdline_write_output("--lock", o->lock_path, lock, &S->exit_code);
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
    al_progress_free(S->net.progress);
    S->net.progress = NULL;
    if (S->o->cmd.json_path != NULL || S->o->lock_path != NULL)
        write_reports(S);
    if (S->err != NULL)
        al_error_log("%s", S->err->msg);
}

static void session_dispose(session *S)
{
    al_error_free(S->err);
    if (S->pruned)
        al_prune_report_dispose(&S->prune_rep);
    al_cmdline_net_end(&S->net); /* before the store: it joins the worker threads */
    al_image_results_free(S->results, S->n_results);
    al_db_free(S->db);
    al_store_free(S->store); /* releases the store's lock */
}

static int run(cli *o, int argc, char **argv)
{
    session S = {.o = o, .started_at = al_now(), .t0 = al_mono()};
    int rc = S.exit_code = al_cmdline_net_begin(&S.net, &o->cmd, "airlock-fetch", &S.err);
    if (rc == 0)
        rc = open_store(&S, argc, argv);
    if (rc == 0 && o->repair)
        rc = S.exit_code = repair_refs(&S);
    if (rc == 0 && o->cmd.list.n > 0)
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
                             .store_dir = o.cmd.store_dir,
                             .json_path = o.cmd.json_path,
                             .argv_text = args,
                             .version = AL_FETCH_VERSION};
        exit_code = al_import_run(&io);
    } else if (exit_code < 0) {
        exit_code = run(&o, argc, argv);
    }
    cli_dispose(&o);
    return exit_code;
}
