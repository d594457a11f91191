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
    "      --insecure-registry HOST[:PORT]\n"
    "                             allow plain HTTP or unverified TLS for HOST (repeatable)\n"
    "  Without --username, credentials come from docker's config.json ($DOCKER_CONFIG,\n"
    "  else ~/.docker/config.json, \"auths\" entries).\n"
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
};

static const struct option long_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"registry", required_argument, NULL, OPT_REGISTRY},
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

int main(int argc, char **argv)
{
    al_log_set_prog("airlock-fetch");
    const char *store_dir = getenv("AIRLOCK_STORE");
    if (store_dir == NULL || *store_dir == '\0')
        store_dir = "./airlock-store";
    const char *registry = NULL, *platform_arg = NULL, *username = NULL, *ca_cert = NULL;
    bool password_stdin = false, attest = false, stdin_list = false;
    char **files = NULL, **insecure = NULL;
    size_t n_files = 0, n_insecure = 0;
    al_engine_opts eopts;
    al_engine_opts_default(&eopts);
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
            registry = optarg;
            break;
        case OPT_PLATFORM: platform_arg = optarg; break;
        case OPT_ATTEST: attest = true; break;
        case OPT_STORE: store_dir = optarg; break;
        case 'j':
            if (!parse_int(optarg, 1, 256, &v))
                return usage_error("--jobs: expected a number from 1 to 256, got \"%s\"", optarg);
            eopts.jobs = (int)v;
            break;
        case OPT_RETRIES:
            if (!parse_int(optarg, 0, 100, &v))
                return usage_error("--retries: expected a number from 0 to 100, got \"%s\"",
                                   optarg);
            eopts.max_retries = (int)v;
            break;
        case OPT_CONNECT_TIMEOUT:
            if (!parse_int(optarg, 1, 3600, &v))
                return usage_error("--connect-timeout: expected seconds (1-3600), got \"%s\"",
                                   optarg);
            eopts.connect_timeout = v;
            break;
        case OPT_STALL_TIMEOUT:
            if (!parse_int(optarg, 1, 3600, &v))
                return usage_error("--stall-timeout: expected seconds (1-3600), got \"%s\"",
                                   optarg);
            eopts.low_speed_time = v;
            break;
        case OPT_USERNAME: username = optarg; break;
        case OPT_PASSWORD_STDIN: password_stdin = true; break;
        case OPT_CA_CERT:
            if (access(optarg, R_OK) != 0)
                return usage_error("--ca-cert: cannot read \"%s\"", optarg);
            ca_cert = optarg;
            break;
        case OPT_INSECURE:
            if (!valid_host(optarg))
                return usage_error("--insecure-registry: invalid host \"%s\" (want HOST[:PORT])",
                                   optarg);
            insecure = al_xrealloc(insecure, (n_insecure + 1) * sizeof(char *));
            insecure[n_insecure++] = optarg;
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
    eopts.debug_http = dbg != NULL && strcmp(dbg, "1") == 0;
    eopts.ca_cert = ca_cert;

    if (password_stdin && username == NULL)
        return usage_error("--password-stdin needs --username");
    if (username != NULL && !password_stdin)
        return usage_error("--username needs --password-stdin (passwords are never taken from "
                           "the command line)");
    if (password_stdin && stdin_list)
        return usage_error("--password-stdin and -f - both want stdin");

    al_platform *plats = NULL;
    size_t n_plats = 0;
    if (platform_arg != NULL) {
        al_error *e = NULL;
        if (al_platform_parse_list(&plats, &n_plats, platform_arg, &e) < 0) {
            int rc = usage_error("--platform: %s", e->msg);
            al_error_free(e);
            return rc;
        }
    }

    /* Every ref and every list line is validated before any traffic. */
    al_reflist list;
    al_reflist_init(&list);
    for (int i = optind; i < argc; i++)
        al_reflist_add_arg(&list, argv[i], i - optind + 1);
    for (size_t i = 0; i < n_files; i++) {
        al_error *e = NULL;
        if (al_reflist_add_file(&list, files[i], &e) < 0) {
            al_error_log("%s", e->msg);
            al_error_free(e);
            return EXIT_USAGE;
        }
    }
    if (list.n_problems > 0) {
        for (size_t i = 0; i < list.n_problems; i++)
            al_error_log("%s", list.problems[i]);
        al_error_log("%zu bad reference%s: nothing fetched", list.n_problems,
                     list.n_problems == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    if (list.n == 0)
        return usage_error("no images given (REF arguments or -f FILE)");

    _cleanup_free_ char *password = password_stdin ? read_password() : NULL;
    int exit_code = 0;
    al_error *err = NULL;
    al_store *store = NULL;
    al_db *db = NULL;
    al_creds *creds = NULL;
    al_engine *engine = NULL;
    al_registry *reg = NULL;
    al_image_result *results = NULL;
    int64_t run_id = 0;
    /* Declared before the first goto: jumping past a cleanup variable's
     * initialisation would free an indeterminate pointer at return. */
    _cleanup_free_ char *args = NULL;

    if (al_creds_new(&creds, username, password, NULL, &err) < 0) {
        exit_code = EXIT_USAGE;
        goto out;
    }
    if (al_store_open(&store, store_dir, AL_STORE_WRITE, &err) < 0 ||
        al_db_open(&db, al_store_db_path(store), false, &err) < 0) {
        exit_code = EXIT_STORE;
        goto out;
    }
    args = argv_text(argc, argv);
    if (al_db_run_begin(db, args, &run_id, &err) < 0) {
        exit_code = EXIT_STORE;
        goto out;
    }
    if (al_engine_new(&engine, &eopts, &err) < 0) {
        exit_code = EXIT_PARTIAL;
        goto out;
    }
    al_registry_opts ropts = {.creds = creds, .insecure_hosts = insecure, .n_insecure = n_insecure};
    al_registry_new(&reg, engine, &ropts, &err);
    al_fetch_ctx ctx = {
        .store = store,
        .db = db,
        .registry = reg,
        .opts = {.registry_override = registry,
                 .platforms = plats,
                 .n_platforms = n_plats,
                 .include_attestations = attest},
        .run_id = run_id,
    };
    double t0 = al_mono();
    int rc = al_fetch_run(&ctx, &list, &results, &err);
    double elapsed = al_mono() - t0;

    int ok = 0, failed = 0, new_blobs = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < list.n; i++) {
        al_image_result *r = &results[i];
        if (r->status == AL_IMG_FAILED) {
            failed++;
            printf("%-9s %s: %s\n", status_word(r->status), r->full_name,
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
           list.n, list.n == 1 ? "" : "s", ok, failed, new_blobs, new_blobs == 1 ? "" : "s",
           al_format_bytes(b, sizeof(b), bytes), elapsed,
           (unsigned long long)st->requests);
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
    al_image_results_free(results, list.n);
    al_registry_free(reg);
    al_engine_free(engine);
    al_db_free(db);
    al_store_free(store);
    al_creds_free(creds);
    al_reflist_dispose(&list);
    free(plats);
    free(files);
    free(insecure);
    if (password != NULL)
        memset(password, 0, strlen(password));
    return exit_code;
}
