/* airlock-export: write docker-save style tarballs from the store, offline.
 * Flags and files only; the work is in select.c and archive.c. */
#include "archive.h"
#include "bundle-plan.h"
#include "bundle-run.h"
#include "check.h"
#include "inspect.h"
#include "export-report.h"
#include "select.h"
#include "since.h"
#include "split-run.h"
#include "split.h"
#include "verify.h"
#include "../common/file.h"
#include "../common/log.h"
#include "../common/platform.h"
#include "../common/reflist.h"
#include "../common/sanitize.h"
#include "sink.h"
#include "../common/store.h"
#include "../common/util.h"
#include "../db/db.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef AL_VERSION
#define AL_VERSION "0.1.0"
#endif

#define PROG "airlock-export"
#define DEFAULT_STORE "./airlock-store"

typedef struct options {
    const char *store;
    const char **lists;
    size_t n_lists;
    bool all;
    const char *platforms;
    const char *output;
    al_export_format format;
    bool compress_set;
    al_sink_kind compress;
    int level;
    bool decompress_zstd;
    bool verify;
    bool force;
    bool skip_missing_platforms;
    bool split;             /* --split image */
    bool clean;             /* --clean */
    const char *since_path; /* --since FILE */
    const char *bundle;     /* --bundle OUT */
    uint64_t volume_size;   /* --volume-size SIZE, 0 when not given */
    bool quiet, verbose;
    /* Store tools: at most one of these modes. */
    bool list;
    const char *inspect; /* REF */
    bool verify_store;
    bool check;      /* --check ARCHIVE... */
    char **archives; /* borrowed from argv */
    size_t n_archives;
    const char *json_path; /* --json FILE: the run report, or a store tool's JSON */
} options;

/* A signal ends us: the temp file being written goes (common/file.h). */
static void on_signal(int sig)
{
    al_file_abort_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(FILE *f)
{
    fprintf(
        f, "Usage: " PROG " [OPTIONS] [REF]... -o OUT [--json FILE]\n"
           "       " PROG " [--store DIR] --list | --inspect REF | --verify-store\n"
           "                      [--json FILE]\n"
           "       " PROG " [OPTIONS] [REF]... --bundle OUT [--since FILE]\n"
           "                      [--volume-size SIZE]\n"
           "       " PROG " --check ARCHIVE... [--json FILE]\n"
           "Write the images REF (and those of -f lists, or --all) from the store as a\n"
           "tarball that docker load, ctr/k3s import and podman load read. Offline.\n"
           "\n"
           "  -o, --output OUT        tarball to write (required); '-' = stdout. With several\n"
           "                          platforms OUT must contain {arch} (images-{arch}.tar.zst).\n"
           "                          Written beside it as OUT.<random>.partial, then\n"
           "                          renamed.\n"
           "  -f, --file LIST         read refs from LIST, one per line, '#' comments; '-' =\n"
           "                          stdin. Repeatable. Same format as airlock-fetch.\n"
           "      --all               export every tag in the store\n"
           "  -p, --platform LIST     os/arch[/variant][,...] (default: this host's platform)\n"
           "      --skip-missing-platforms\n"
           "                          an image that lacks one of the platforms is left out\n"
           "                          of that platform's tarball (listed on stderr and in\n"
           "                          the report) instead of stopping the export\n"
           "      --store DIR         the store (default: $AIRLOCK_STORE, else " DEFAULT_STORE ")\n"
           "      --format FMT        hybrid (default): docker manifest.json + OCI index.json;\n"
           "                          docker: manifest.json and repositories only;\n"
           "                          oci: OCI image layout only\n"
           "      --compress KIND     none, zstd or gzip (default: from OUT's suffix: .tar none,\n"
           "                          .tar.zst/.tzst zstd, .tar.gz/.tgz gzip; stdout: none)\n"
           "      --level N           compression level (default: zstd 3, gzip 6)\n"
           "      --decompress-zstd-layers\n"
           "                          write zstd layers decompressed too, and point\n"
           "                          manifest.json at them, for docker 20.10 (default: off)\n"
           "      --no-verify         skip the sha256 of each blob (sizes are still checked;\n"
           "                          default: verify)\n"
           "      --force             replace OUT if it exists (default: refuse)\n"
           "      --split image       one archive per image in the directory -o DIR/ (with\n"
           "                          several platforms DIR contains {arch}), named\n"
           "                          NAME_TAG@<12 hex of the manifest digest>.tar.zst (zstd\n"
           "                          unless --compress); an archive already there with the\n"
           "                          same content is left untouched (k3s skips it), one it\n"
           "                          replaces is removed\n"
           "      --clean             with --split image: also remove the directory's airlock\n"
           "                          archives (files named as above) of images not exported\n"
           "      --since FILE        the far side holds the digests in FILE (a lock file of\n"
           "                          airlock-fetch, an export's --json report, a --list\n"
           "                          --json inventory): export only the images that differ\n"
           "      --json FILE         write a machine-readable report of the run to FILE\n"
           "                          (docs/export-report.schema.json), also when it fails;\n"
           "                          '-' = stdout, unless the tarball goes there\n"
           "\n"
           "Bundles (to carry the store across the gap; airlock-fetch's import applies them):\n"
           "      --bundle OUT        write the images REF (-f, --all) as a bundle OUT: their\n"
           "                          tags and every blob the far side lacks, and its manifest\n"
           "                          beside it as OUT.json (zstd when OUT ends in .zst)\n"
           "      --since FILE        with --bundle: the far side holds what FILE says (the\n"
           "                          previous bundle or its OUT.json, a --list --json\n"
           "                          inventory, a lock file, a report): carry only the blobs\n"
           "                          those digests do not reach; without it, a complete bundle\n"
           "      --volume-size SIZE  split the bundle into volumes OUT.001, OUT.002, ... each\n"
           "                          smaller than SIZE (4G suits FAT32; K, M, G, T), each one\n"
           "                          a tar that --check reads alone; a blob larger than a\n"
           "                          volume is cut into parts\n"
           "      (--force, --compress, --level, --no-verify and --json FILE apply too;\n"
           "      --json: docs/bundle-report.schema.json)\n"
           "\n"
           "Store tools (read-only, offline; output on stdout):\n"
           "      --list              one line per tag: name, digest, platforms, size (each\n"
           "                          blob once), first fetched, last changed; then a total\n"
           "                          (shared blobs counted once)\n"
           "      --inspect REF       one image: digests, media types, source, dates, every\n"
           "                          platform manifest with config and layers, and which\n"
           "                          other tags share each layer\n"
           "      --verify-store      re-hash every blob; check that airlock.db, index.json\n"
           "                          and blobs/ agree; one line per problem (exit 1 if any)\n"
           "      --json FILE         with --list, --inspect or --verify-store: write the\n"
           "                          JSON form to FILE too; '-' = JSON instead of text\n"
           "\n"
           "Archive check (offline, no store):\n"
           "      --check ARCHIVE...  read docker-save/OCI archives made by anything (plain,\n"
           "                          gzip, zstd, ...) and report what docker load and\n"
           "                          containerd import would reject: missing, extra or\n"
           "                          corrupt blobs, layers against diff_ids, names\n"
           "                          containerd would mangle, zstd windows above 32 MiB,\n"
           "                          truncation, unsafe members; one line per problem\n"
           "                          (exit 1 if any); --json FILE: the JSON report too\n"
           "\n"
           "  -q, --quiet             only errors and warnings\n"
           "  -v, --verbose           more detail\n"
           "  -h, --help              this help\n"
           "  -V, --version           print the version\n"
           "\n"
           "Exit status: 0 ok; 1 export failed (refs or platforms not in the store, corrupt\n"
           "blob, write error), --inspect REF not in the store, --verify-store or --check\n"
           "found problems; 2 usage or bad input; 3 store unusable.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": error: %s\nTry '" PROG " --help'.\n", msg);
    return AL_EXIT_USAGE;
}

static int report(al_error *err, int exit_code)
{
    al_error_log("%s", err ? err->msg : "unknown error");
    al_error_free(err);
    return exit_code;
}

enum {
    OPT_STORE = 256,
    OPT_ALL,
    OPT_FORMAT,
    OPT_COMPRESS,
    OPT_LEVEL,
    OPT_DECOMPRESS_ZSTD,
    OPT_NO_VERIFY,
    OPT_LIST,
    OPT_INSPECT,
    OPT_VERIFY_STORE,
    OPT_JSON,
    OPT_FORCE,
    OPT_CHECK,
    OPT_SKIP_MISSING,
    OPT_SPLIT,
    OPT_CLEAN,
    OPT_SINCE,
    OPT_BUNDLE,
    OPT_VOLUME_SIZE,
};

static const struct option long_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"file", required_argument, NULL, 'f'},
    {"all", no_argument, NULL, OPT_ALL},
    {"platform", required_argument, NULL, 'p'},
    {"store", required_argument, NULL, OPT_STORE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"compress", required_argument, NULL, OPT_COMPRESS},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"decompress-zstd-layers", no_argument, NULL, OPT_DECOMPRESS_ZSTD},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"list", no_argument, NULL, OPT_LIST},
    {"inspect", required_argument, NULL, OPT_INSPECT},
    {"verify-store", no_argument, NULL, OPT_VERIFY_STORE},
    {"json", required_argument, NULL, OPT_JSON},
    {"force", no_argument, NULL, OPT_FORCE},
    {"check", no_argument, NULL, OPT_CHECK},
    {"skip-missing-platforms", no_argument, NULL, OPT_SKIP_MISSING},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"clean", no_argument, NULL, OPT_CLEAN},
    {"since", required_argument, NULL, OPT_SINCE},
    {"bundle", required_argument, NULL, OPT_BUNDLE},
    {"volume-size", required_argument, NULL, OPT_VOLUME_SIZE},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Progress on a terminal: at most ten redraws a second. */
typedef struct progress {
    bool on;
    double start, last;
    const char *label;
} progress;

static void draw_progress(void *ud, uint64_t done, uint64_t total)
{
    progress *p = ud;
    double now = al_mono();
    if (done < total && now - p->last < 0.1)
        return;
    p->last = now;
    double el = now - p->start;
    double rate = el > 0.2 ? (double)done / el : 0;
    char a[32], b[32], c[32], speed[64] = "";
    if (rate > 0)
        snprintf(speed, sizeof(speed), ", %s/s, %.0f s left",
                 al_format_bytes(c, sizeof(c), (uint64_t)rate), (double)(total - done) / rate);
    fprintf(stderr, "\r\033[K%s: %3.0f%% %s / %s%s", p->label,
            total ? 100.0 * (double)done / (double)total : 100.0,
            al_format_bytes(a, sizeof(a), done), al_format_bytes(b, sizeof(b), total), speed);
    if (done >= total)
        fputs("\r\033[K", stderr);
}

/* Write one tarball to path ("-" = stdout) through common/file.h: a temp
 * file beside it, fsync, rename (never over an OUT that appeared
 * meanwhile, unless --force), fsync the directory; on failure the temp
 * file goes away. */
static int write_tarball(al_archive *a, const char *path, const options *o, progress *pg,
                         uint64_t *bytes_out, al_error **err)
{
    bool to_stdout = strcmp(path, "-") == 0;
    al_sink_kind kind = o->compress_set ? o->compress
                        : to_stdout     ? AL_SINK_PLAIN
                                        : al_sink_kind_from_path(path);
    al_file *file = NULL;
    int r = to_stdout ? 0 : al_file_begin(&file, path, o->force, err);
    al_sink *sink = NULL;
    if (r == 0)
        r = al_sink_new(&sink, to_stdout ? STDOUT_FILENO : al_file_fd(file), kind, o->level, 0,
                        err);
    if (r == 0)
        r = al_archive_write(a, sink, err);
    if (r == 0)
        r = al_sink_finish(sink, err);
    if (sink)
        *bytes_out = al_sink_bytes_out(sink);
    al_sink_free(sink);
    if (file != NULL && r == 0)
        r = al_file_commit(file, err);
    else
        al_file_abort(file);
    if (pg->on)
        fputs("\r\033[K", stderr);
    if (r < 0)
        al_error_wrap(err, "write %s", to_stdout ? "stdout" : path);
    return r;
}

/* 0 to go on, -1 when --help/--version answered, else an exit code. */
static int parse_args(options *o, al_reflist *refs, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->verify = true;
    o->lists = al_xcalloc((size_t)argc + 1, sizeof(*o->lists));
    al_error *err = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:f:p:qvhV", long_opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (*optarg == '\0')
                return usage_error("-o: expected a file name or '-', got an empty string");
            o->output = optarg;
            break;
        case 'f': o->lists[o->n_lists++] = optarg; break;
        case OPT_ALL: o->all = true; break;
        case 'p': o->platforms = optarg; break;
        case OPT_STORE:
            if (*optarg == '\0')
                return usage_error("--store: expected a directory, got an empty string");
            o->store = optarg;
            break;
        case OPT_FORMAT:
            if (al_export_format_parse(&o->format, optarg, &err) < 0) {
                int rc = usage_error("--format: %s", err->msg);
                al_error_free(err);
                return rc;
            }
            break;
        case OPT_COMPRESS:
            if (al_sink_kind_parse(&o->compress, optarg, &err) < 0) {
                int rc = usage_error("--compress: %s", err->msg);
                al_error_free(err);
                return rc;
            }
            o->compress_set = true;
            break;
        case OPT_LEVEL: {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 22)
                return usage_error("invalid --level \"%s\": expected 1..22 (gzip: 1..9)", optarg);
            o->level = (int)v;
            break;
        }
        case OPT_DECOMPRESS_ZSTD: o->decompress_zstd = true; break;
        case OPT_NO_VERIFY: o->verify = false; break;
        case OPT_LIST: o->list = true; break;
        case OPT_INSPECT: o->inspect = optarg; break;
        case OPT_VERIFY_STORE: o->verify_store = true; break;
        case OPT_JSON:
            /* "--json --list" (the flag took no value before) would make a
             * file named --list. */
            if (*optarg == '\0' || (optarg[0] == '-' && optarg[1] != '\0'))
                return usage_error("--json: expected a file name or '-', got \"%s\"", optarg);
            o->json_path = optarg;
            break;
        case OPT_FORCE: o->force = true; break;
        case OPT_CHECK: o->check = true; break;
        case OPT_SKIP_MISSING: o->skip_missing_platforms = true; break;
        case OPT_SPLIT:
            if (strcmp(optarg, "image") != 0)
                return usage_error("--split: expected \"image\", got \"%s\"", optarg);
            o->split = true;
            break;
        case OPT_CLEAN: o->clean = true; break;
        case OPT_SINCE: o->since_path = optarg; break;
        case OPT_BUNDLE:
            if (*optarg == '\0' || strcmp(optarg, "-") == 0)
                return usage_error("--bundle: expected a file name (its manifest is written "
                                   "beside it as OUT.json), got \"%s\"",
                                   optarg);
            o->bundle = optarg;
            break;
        case OPT_VOLUME_SIZE:
            if (al_bundle_parse_size(&o->volume_size, optarg, &err) < 0) {
                int rc = usage_error("%s", err->msg);
                al_error_free(err);
                return rc;
            }
            break;
        case 'q': o->quiet = true; break;
        case 'v': o->verbose = true; break;
        case 'h': usage(stdout); return -1;
        case 'V': printf(PROG " " AL_VERSION "\n"); return -1;
        case ':': {
            const char *name = optopt ? (const char[]){'-', (char)optopt, 0} : argv[optind - 1];
            return usage_error("option %s needs a value", name);
        }
        default: {
            const char *name = optopt ? (const char[]){'-', (char)optopt, 0} : argv[optind - 1];
            return usage_error("unknown option %s", name);
        }
        }
    }
    for (size_t i = 0; i < o->n_lists; i++) {
        if (al_reflist_add_file(refs, o->lists[i], &err) < 0) {
            al_error_log("%s", err->msg);
            al_error_free(err);
            return AL_EXIT_USAGE;
        }
    }
    if (o->check) {
        /* --check takes archives, not refs. */
        o->archives = argv + optind;
        o->n_archives = (size_t)(argc - optind);
        return 0;
    }
    for (int i = optind; i < argc; i++)
        al_reflist_add_arg(refs, argv[i], i - optind + 1);
    return 0;
}

/* Everything main owns, released in one place. */
typedef struct run {
    options o;
    al_reflist refs;
    al_platform *plats;
    size_t n_plats;
    al_store *store;
    al_db *db;
    al_ref **ref_arr;
    al_selection sel;
    al_export_report rep; /* with --json FILE, from the store's opening on */
    bool rep_on;
    al_export_skip *skipped; /* --skip-missing-platforms, --since: what was left out */
    size_t n_skipped;
    al_since since;        /* --since FILE */
    al_export_set *views;  /* per platform: the images to write (borrowed from sel) */
    al_selection view_sel; /* sel with views as its sets (shallow), for the report */
    al_split_files split;  /* --split image: every file written, kept or removed */
} run;

static void run_dispose(run *R)
{
    for (size_t i = 0; i < R->n_skipped; i++) {
        free(R->skipped[i].ref);
        free(R->skipped[i].reason);
    }
    free(R->skipped);
    for (size_t p = 0; R->views != NULL && p < R->sel.n_sets; p++)
        free(R->views[p].images);
    free(R->views);
    al_since_dispose(&R->since);
    al_split_files_dispose(&R->split);
    al_export_report_dispose(&R->rep);
    al_selection_dispose(&R->sel);
    free(R->ref_arr);
    if (R->db)
        al_db_free(R->db);
    if (R->store)
        al_store_free(R->store);
    free(R->plats);
    free(R->o.lists);
    al_reflist_dispose(&R->refs);
}

/* An export failure: logged once, and kept for the run report. */
static int fail(run *R, al_error *err, int exit_code)
{
    al_error_log("%s", err ? err->msg : "unknown error");
    if (R->rep_on && err != NULL)
        al_export_report_set_error(&R->rep, err);
    else
        al_error_free(err);
    return exit_code;
}

static int fail_msg(run *R, al_errc code, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_msg(run *R, al_errc code, int exit_code, const char *fmt, ...)
{
    al_error *err = NULL;
    va_list ap;
    va_start(ap, fmt);
    al_error_vset(&err, code, 0, fmt, ap);
    va_end(ap);
    return fail(R, err, exit_code);
}

/* --skip-missing-platforms: the problems that only say "this image has no
 * manifest for that platform" leave the selection's problems and become
 * skips, listed per platform on stderr; whatever else is wrong (not in the
 * store, a corrupt blob) still stops the export. */
static void take_skips(run *R)
{
    al_selection *sel = &R->sel;
    size_t kept = 0;
    for (size_t i = 0; i < sel->n_problems; i++) {
        al_select_problem *pi = &sel->problem_info[i];
        if (!pi->lacks_platform || pi->platform < 0) {
            sel->problems[kept] = sel->problems[i];
            sel->problem_info[kept++] = *pi;
            continue;
        }
        R->skipped = al_xrealloc(R->skipped, (R->n_skipped + 1) * sizeof(*R->skipped));
        R->skipped[R->n_skipped++] = (al_export_skip){.ref = pi->ref,
                                                      .platform = pi->platform,
                                                      .reason = sel->problems[i],
                                                      .why = "platform"};
    }
    sel->n_problems = kept;
    for (size_t p = 0; p < sel->n_sets; p++) {
        char buf[96];
        al_platform_format(&sel->sets[p].platform, buf, sizeof(buf));
        size_t n = 0;
        for (size_t i = 0; i < R->n_skipped; i++)
            n += R->skipped[i].platform == (int)p;
        if (n == 0)
            continue;
        al_warn("%s: skipping %zu image%s without that platform (--skip-missing-platforms):", buf,
                n, n == 1 ? "" : "s");
        for (size_t i = 0; i < R->n_skipped; i++)
            if (R->skipped[i].platform == (int)p)
                al_warn("  skipped %s", R->skipped[i].reason);
    }
    if (R->rep_on) {
        R->rep.skipped = R->skipped;
        R->rep.n_skipped = R->n_skipped;
    }
}

/* Write the tarball of one platform. Returns an exit code. */
static int export_one(run *R, const al_export_set *set, al_export_output *out)
{
    const options *o = &R->o;
    bool to_stdout = strcmp(o->output, "-") == 0;
    char pbuf[96];
    al_platform_format(&set->platform, pbuf, sizeof(pbuf));
    _cleanup_free_ char *path = al_export_output_path(o->output, &set->platform);
    const char *shown = to_stdout ? "stdout" : path;
    progress pg = {.on = !o->quiet && isatty(STDERR_FILENO), .label = shown};
    al_archive_opts ao = {
        .format = o->format,
        .decompress_zstd = o->decompress_zstd,
        .verify = o->verify,
        .mtime = 0,
        .progress = pg.on ? draw_progress : NULL,
        .progress_ud = &pg,
    };
    double t0 = al_mono();
    al_archive *a = NULL;
    al_error *err = NULL;
    if (al_archive_plan(&a, R->store, set, &ao, &err) < 0) {
        if (out != NULL) {
            out->status = AL_OUTPUT_FAILED;
            al_error_free(out->error);
            out->error = al_error_copy(err);
        }
        return fail(R, err, al_errc_exit(err->code));
    }
    if (o->format != AL_FORMAT_OCI && !o->decompress_zstd) {
        for (size_t i = 0; i < set->n_images; i++) {
            const al_export_image *im = &set->images[i];
            if (im->n_zstd_layers > 0)
                al_warn("%s (%s) has %zu zstd layer%s: docker 20.10 cannot load %s from "
                        "manifest.json (containerd and podman can); --decompress-zstd-layers "
                        "adds decompressed copies for it",
                        im->ref, pbuf, im->n_zstd_layers, im->n_zstd_layers == 1 ? "" : "s",
                        im->n_zstd_layers == 1 ? "it" : "them");
        }
    }
    char b1[32], b2[32], b3[32];
    al_debug("%s: %zu images, %zu blobs (%s), tar stream %s", shown, set->n_images,
             al_archive_n_blobs(a), al_format_bytes(b1, sizeof(b1), al_archive_blob_bytes(a)),
             al_format_bytes(b2, sizeof(b2), al_archive_tar_size(a)));
    pg.start = pg.last = al_mono();
    uint64_t out_bytes = 0;
    int wr = write_tarball(a, path, o, &pg, &out_bytes, &err);
    if (out != NULL) {
        out->status = wr == 0 ? AL_OUTPUT_WRITTEN : AL_OUTPUT_FAILED;
        out->bytes = wr == 0 ? out_bytes : 0;
        out->tar_bytes = al_archive_tar_size(a);
        out->blobs = al_archive_n_blobs(a);
        out->blob_bytes = al_archive_blob_bytes(a);
        out->images = set->n_images;
        out->seconds = al_mono() - t0;
        if (wr < 0) {
            al_error_free(out->error);
            out->error = al_error_copy(err);
        }
    }
    if (wr < 0) {
        al_archive_free(a);
        return fail(R, err, al_errc_exit(err->code));
    }
    for (size_t i = 0; i < set->n_images; i++) {
        const al_export_image *im = &set->images[i];
        uint64_t sz = (uint64_t)im->config_size;
        for (size_t k = 0; k < im->n_layers; k++)
            sz += (uint64_t)im->layers[k].size;
        al_info("exported %s (%s, %.19s, %zu layer%s, %s)", im->ref, pbuf, im->manifest_digest,
                im->n_layers, im->n_layers == 1 ? "" : "s", al_format_bytes(b1, sizeof(b1), sz));
    }
    double el = al_mono() - t0;
    al_sink_kind kind = o->compress_set ? o->compress
                        : to_stdout     ? AL_SINK_PLAIN
                                        : al_sink_kind_from_path(path);
    al_info("wrote %s: %zu image%s (%s), %zu blobs, %s in %.1f s (%s/s); output %s (%s)", shown,
            set->n_images, set->n_images == 1 ? "" : "s", pbuf, al_archive_n_blobs(a),
            al_format_bytes(b1, sizeof(b1), al_archive_blob_bytes(a)), el,
            al_format_bytes(b2, sizeof(b2),
                            el > 0 ? (uint64_t)((double)al_archive_tar_size(a) / el) : 0),
            al_format_bytes(b3, sizeof(b3), out_bytes), al_sink_kind_name(kind));
    al_archive_free(a);
    return 0;
}

static void ref_freep(al_ref **r)
{
    al_ref_free(*r);
}

static const char *store_dir_of(const options *o)
{
    const char *dir = o->store ? o->store : getenv("AIRLOCK_STORE");
    return dir != NULL && dir[0] != '\0' ? dir : DEFAULT_STORE;
}

/* A store tool's output, text or JSON, on out. */
typedef int (*tool_print_fn)(FILE *out, bool json, void *ud, al_error **err);

static int print_verify_report(FILE *out, bool json, void *ud, al_error **err)
{
    const al_verify_report *rep = ud;
    char b[32];
    al_format_bytes(b, sizeof(b), rep->bytes_hashed);
    if (json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "ok", json_boolean(rep->n_errors == 0));
        json_object_set_new(doc, "blobs", json_integer((json_int_t)rep->blobs_hashed));
        json_object_set_new(doc, "bytes", json_integer((json_int_t)rep->bytes_hashed));
        json_object_set_new(doc, "tags", json_integer((json_int_t)rep->n_tags));
        json_object_set_new(doc, "errors", json_integer((json_int_t)rep->n_errors));
        json_object_set_new(doc, "notes", json_integer((json_int_t)rep->n_infos));
        json_object_set_new(doc, "writer_active", json_boolean(rep->writer_active));
        json_t *list = json_array();
        for (size_t i = 0; i < rep->n_problems; i++) {
            const al_verify_problem *p = &rep->problems[i];
            json_t *o = json_object();
            json_object_set_new(o, "severity",
                                json_string(p->severity == AL_VERIFY_ERROR ? "error" : "info"));
            json_object_set_new(o, "kind", json_string(p->kind));
            /* Messages quote file names and database rows, which may hold
             * any bytes: sanitised, they are valid UTF-8 without controls. */
            _cleanup_free_ char *msg = al_sanitize(p->message, AL_SANITIZE_LINE);
            json_object_set_new(o, "message", json_string(msg));
            json_array_append_new(list, o);
        }
        json_object_set_new(doc, "problems", list);
        json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', out);
        json_decref(doc);
    } else {
        for (size_t i = 0; i < rep->n_problems; i++) {
            const al_verify_problem *p = &rep->problems[i];
            _cleanup_free_ char *msg = al_sanitize(p->message, AL_SANITIZE_LINE);
            fprintf(out, "%s: %s: %s\n", p->severity == AL_VERIFY_ERROR ? "error" : "info", p->kind,
                    msg);
        }
        char notes[48] = "";
        if (rep->n_infos > 0)
            snprintf(notes, sizeof(notes), "; %zu note%s", rep->n_infos,
                     rep->n_infos == 1 ? "" : "s");
        if (rep->n_errors == 0)
            fprintf(out, "store OK: %llu blobs, %llu bytes (%s) verified, %zu tags%s\n",
                    (unsigned long long)rep->blobs_hashed, (unsigned long long)rep->bytes_hashed, b,
                    rep->n_tags, notes);
        else
            fprintf(out,
                    "%zu problem%s (%zu error%s, %zu note%s); %llu blobs, %llu bytes (%s) "
                    "verified, %zu tags; airlock-fetch --repair mends damaged blobs\n",
                    rep->n_problems, rep->n_problems == 1 ? "" : "s", rep->n_errors,
                    rep->n_errors == 1 ? "" : "s", rep->n_infos, rep->n_infos == 1 ? "" : "s",
                    (unsigned long long)rep->blobs_hashed, (unsigned long long)rep->bytes_hashed, b,
                    rep->n_tags);
    }
    if (fflush(out) != 0 || ferror(out))
        return al_error_set(err, AL_E_IO, errno, "write the report");
    return 0;
}

typedef struct inspect_args {
    al_store *store;
    const al_db_snapshot *snap;
    const al_ref *ref; /* NULL: --list */
} inspect_args;

static int print_inspect(FILE *out, bool json, void *ud, al_error **err)
{
    const inspect_args *a = ud;
    return a->ref == NULL ? al_inspect_list(out, a->snap, json, err)
                          : al_inspect_image(out, a->store, a->snap, a->ref, json, err);
}

/* --json -: the JSON on stdout instead of the text. --json FILE: the text
 * on stdout as without it, and the JSON in FILE (written atomically), so
 * that one --verify-store both logs and feeds a job that alerts. */
static int tool_output(const options *o, tool_print_fn print, void *ud, al_error **err)
{
    bool json_stdout = o->json_path != NULL && strcmp(o->json_path, "-") == 0;
    int r = print(stdout, json_stdout, ud, err);
    if (r < 0 || o->json_path == NULL || json_stdout)
        return r;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (mem == NULL)
        return al_error_set(err, AL_E_IO, errno, "open_memstream");
    r = print(mem, true, ud, err);
    if (fclose(mem) != 0 && r == 0)
        r = al_error_set(err, AL_E_IO, errno, "write the JSON");
    if (r == 0)
        r = al_export_write_text(o->json_path, buf, len, err);
    free(buf);
    if (r < 0)
        al_error_wrap(err, "--json");
    return r;
}

/* --list, --inspect, --verify-store: read-only, on stdout. */
static int store_tools(run *R)
{
    const options *o = &R->o;
    int modes = (int)o->list + (o->inspect != NULL) + (int)o->verify_store;
    if (modes > 1)
        return usage_error("--list, --inspect and --verify-store are separate commands");
    if (R->refs.n > 0 || o->n_lists > 0 || o->all || o->output != NULL)
        return usage_error("%s takes no refs, -f, --all or -o", o->list      ? "--list"
                                                                : o->inspect ? "--inspect"
                                                                             : "--verify-store");
    al_error *err = NULL;
    _cleanup_(ref_freep) al_ref *ref = NULL; /* freed on every return below */
    if (o->inspect != NULL && al_ref_parse(&ref, o->inspect, &err) < 0) {
        usage_error("%s", err->msg);
        al_error_free(err);
        return AL_EXIT_USAGE;
    }
    if (al_store_open(&R->store, store_dir_of(o), AL_STORE_READONLY, &err) < 0 ||
        al_db_open(&R->db, al_store_db_path(R->store), true, &err) < 0)
        return report(err, AL_EXIT_STORE);

    if (o->verify_store) {
        progress pg = {.on = !o->quiet && isatty(STDERR_FILENO), .label = "verifying blobs"};
        pg.start = pg.last = al_mono();
        al_verify_report rep;
        if (al_verify_store(&rep, R->store, R->db, pg.on ? draw_progress : NULL, &pg, &err) < 0)
            return report(err, AL_EXIT_STORE);
        if (pg.on)
            fputs("\r\033[K", stderr);
        int r = tool_output(o, print_verify_report, &rep, &err);
        size_t n_errors = rep.n_errors;
        al_verify_report_dispose(&rep);
        if (r < 0)
            return report(err, AL_EXIT_FAILED);
        return n_errors == 0 ? 0 : AL_EXIT_FAILED;
    }

    al_db_snapshot snap;
    if (al_db_snapshot_load(R->db, &snap, &err) < 0)
        return report(err, AL_EXIT_STORE);
    inspect_args ia = {.store = R->store, .snap = &snap, .ref = o->list ? NULL : ref};
    int r = tool_output(o, print_inspect, &ia, &err);
    al_db_snapshot_dispose(&snap);
    if (r < 0)
        return report(err, al_errc_exit(r));
    return 0;
}

/* --check ARCHIVE...: no store; every archive checked, a line per problem
 * and a summary line each on stdout. */
static int check_archives(const options *o)
{
    if (o->list || o->inspect != NULL || o->verify_store || o->all || o->n_lists > 0 ||
        o->output != NULL || o->store != NULL || o->platforms != NULL)
        return usage_error("--check takes archives only (no store, refs, -f, --all, -o, -p)");
    if (o->n_archives == 0)
        return usage_error("--check: no archive given");
    if (o->json_path != NULL && strcmp(o->json_path, "-") == 0)
        return usage_error("--check --json: give the report a file name (stdout has the text)");
    al_check_result *res = al_xcalloc(o->n_archives, sizeof(*res));
    size_t bad = 0;
    size_t n = 0;
    for (size_t i = 0; i < o->n_archives; i++) {
        /* A volume of a bundle checked already (with its set) is not
         * checked twice. */
        bool done = false;
        for (size_t k = 0; k < n && !done; k++)
            done = al_check_covers(&res[k], o->archives[i]);
        if (done)
            continue;
        al_check_file(&res[n], o->archives[i], NULL);
        al_check_print(stdout, &res[n]);
        fflush(stdout);
        bad += res[n++].n_errors > 0;
    }
    int rc = bad > 0 ? AL_EXIT_FAILED : 0;
    if (n > 1)
        printf("%zu archive%s checked: %zu ok, %zu failed\n", n, n == 1 ? "" : "s", n - bad, bad);
    if (o->json_path != NULL) {
        _cleanup_free_ char *text = al_check_report_json(res, n, AL_VERSION);
        al_error *err = NULL;
        if (al_export_write_text(o->json_path, text, strlen(text), &err) < 0)
            rc = report(err, AL_EXIT_FAILED);
    }
    for (size_t i = 0; i < n; i++)
        al_check_result_dispose(&res[i]);
    free(res);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        al_error_log("write stdout: %s", strerror(errno));
        return AL_EXIT_FAILED;
    }
    return rc;
}

/* --split, --clean, --since: checked, and the --since file read, before
 * anything else happens. An exit code, or 0. */
static int check_output_flags(run *R, bool to_stdout)
{
    options *o = &R->o;
    if (o->clean && !o->split)
        return usage_error("--clean goes with --split image");
    if (o->split && to_stdout)
        return usage_error("--split image writes into a directory: -o DIR/, not stdout");
    if (o->split && !o->compress_set) {
        /* k3s reads .tar.zst; a directory name has no suffix to go by. */
        o->compress = AL_SINK_ZSTD;
        o->compress_set = true;
    }
    if (o->since_path != NULL) {
        al_error *err = NULL;
        if (al_since_load(&R->since, o->since_path, &err) < 0) {
            al_error_log("%s", err->msg);
            al_error_free(err);
            return AL_EXIT_USAGE;
        }
        al_info("--since %s (%s): %zu digests the far side holds", o->since_path, R->since.kind,
                R->since.n);
    }
    return 0;
}

static bool far_side_holds(const al_since *since, const al_export_image *im)
{
    _cleanup_free_ char *key =
        im->tag ? al_xasprintf("%s:%s", im->name, im->tag) : al_xstrdup(im->name);
    return al_since_holds(since, key, im->root_digest) ||
           al_since_holds(since, key, im->manifest_digest);
}

/* Per platform, the images to write: all of them, or with --since those
 * the far side does not hold (the others are skips, for the log and the
 * report). The views borrow the selection's images. */
static void make_views(run *R)
{
    const al_selection *sel = &R->sel;
    R->views = al_xcalloc(sel->n_sets + 1, sizeof(*R->views));
    for (size_t p = 0; p < sel->n_sets; p++) {
        const al_export_set *set = &sel->sets[p];
        al_export_set *v = &R->views[p];
        v->platform = set->platform;
        v->images = al_xcalloc(set->n_images + 1, sizeof(*v->images));
        for (size_t i = 0; i < set->n_images; i++) {
            const al_export_image *im = &set->images[i];
            if (R->o.since_path == NULL || !far_side_holds(&R->since, im)) {
                v->images[v->n_images++] = *im;
                continue;
            }
            R->skipped = al_xrealloc(R->skipped, (R->n_skipped + 1) * sizeof(*R->skipped));
            al_export_skip *k = &R->skipped[R->n_skipped++];
            *k = (al_export_skip){
                .ref = al_xstrdup(im->ref),
                .platform = (int)p,
                .reason = al_xasprintf("the far side holds %s (--since %s)", im->manifest_digest,
                                       R->o.since_path),
                .why = "since",
            };
            memcpy(k->root_digest, im->root_digest, sizeof(k->root_digest));
            memcpy(k->manifest_digest, im->manifest_digest, sizeof(k->manifest_digest));
        }
        if (R->o.since_path != NULL) {
            char buf[96];
            al_info("%s: %zu of %zu images differ from what the far side holds (--since)",
                    al_platform_format(&v->platform, buf, sizeof(buf)), v->n_images, set->n_images);
        }
    }
    R->view_sel = *sel;
    R->view_sel.sets = R->views;
    if (R->rep_on) {
        R->rep.sel = &R->view_sel;
        R->rep.skipped = R->skipped;
        R->rep.n_skipped = R->n_skipped;
    }
}

/* --split image: the writer of one image's archive (split-run.h), through
 * the one function that writes every archive (write_tarball). */
typedef struct split_ctx {
    run *R;
    al_export_output *out; /* may be NULL */
} split_ctx;

static int split_write(void *ud, const al_export_set *one, const char *path, uint64_t *bytes,
                       al_error **err)
{
    split_ctx *c = ud;
    const options *o = &c->R->o;
    progress pg = {.on = !o->quiet && isatty(STDERR_FILENO), .label = path};
    pg.start = pg.last = al_mono();
    al_archive_opts ao = {
        .format = o->format,
        .decompress_zstd = o->decompress_zstd,
        .verify = o->verify,
        .progress = pg.on ? draw_progress : NULL,
        .progress_ud = &pg,
    };
    al_archive *a = NULL;
    int r = al_archive_plan(&a, c->R->store, one, &ao, err);
    /* The directory is airlock's: an archive of the same name whose recipe
     * changed (another level, a damaged file) is replaced, never refused. */
    options replace = *o;
    replace.force = true;
    if (r == 0)
        r = write_tarball(a, path, &replace, &pg, bytes, err);
    if (r == 0) {
        al_info("wrote %s (%s, %zu blobs)", path, one->images[0].ref, al_archive_n_blobs(a));
        if (c->out != NULL) {
            c->out->tar_bytes += al_archive_tar_size(a);
            c->out->blobs += al_archive_n_blobs(a);
            c->out->blob_bytes += al_archive_blob_bytes(a);
        }
    }
    al_archive_free(a);
    return r;
}

static int export_split(run *R, size_t p)
{
    const options *o = &R->o;
    al_export_output *out = R->rep_on ? &R->rep.outputs[p] : NULL;
    _cleanup_free_ char *dir = al_export_output_path(o->output, &R->sel.sets[p].platform);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    al_split_opts so = {.format = o->format,
                        .decompress_zstd = o->decompress_zstd,
                        .kind = o->compress,
                        .level = o->level,
                        .clean = o->clean,
                        .platform = (int)p};
    split_ctx ctx = {R, out};
    al_split_writer w = {split_write, &ctx};
    size_t first = R->split.n;
    double t0 = al_mono();
    al_error *err = NULL;
    int r = al_split_platform(&R->split, dir, &R->views[p], &R->sel.sets[p], &so, &w, &err);
    size_t n[4] = {0};
    uint64_t bytes = 0, written = 0;
    for (size_t i = first; i < R->split.n; i++) {
        const al_split_file *f = &R->split.f[i];
        n[f->status]++;
        if (f->status == AL_SPLIT_WRITTEN || f->status == AL_SPLIT_UNCHANGED)
            bytes += f->bytes;
        if (f->status == AL_SPLIT_WRITTEN)
            written += f->bytes;
    }
    if (out != NULL) {
        out->status = r < 0                                             ? AL_OUTPUT_FAILED
                      : n[AL_SPLIT_WRITTEN] + n[AL_SPLIT_UNCHANGED] > 0 ? AL_OUTPUT_WRITTEN
                                                                        : AL_OUTPUT_NOT_WRITTEN;
        out->bytes = r < 0 ? 0 : bytes;
        out->images = n[AL_SPLIT_WRITTEN] + n[AL_SPLIT_UNCHANGED];
        out->seconds = al_mono() - t0;
        if (r < 0)
            al_error_set(&out->error, err->code, 0, "%s", err->msg);
    }
    if (r < 0)
        return fail(R, err, al_errc_exit(err->code));
    char b[32];
    al_info("%s: %zu archive%s written (%s), %zu unchanged, %zu replaced, %zu removed", dir,
            n[AL_SPLIT_WRITTEN], n[AL_SPLIT_WRITTEN] == 1 ? "" : "s",
            al_format_bytes(b, sizeof(b), written), n[AL_SPLIT_UNCHANGED], n[AL_SPLIT_REPLACED],
            n[AL_SPLIT_REMOVED]);
    return 0;
}

/* After the selection: the outputs, one tarball per platform or a
 * directory of archives per platform. */
static int export_all(run *R)
{
    const options *o = &R->o;
    bool to_stdout = strcmp(o->output, "-") == 0;
    make_views(R);
    /* Like skopeo's docker-archive: an existing tarball is not silently
     * replaced; --force says it may be (the nightly job into k3s' images
     * directory). Checked for every output before writing any. A --split
     * directory is airlock's to keep up to date. */
    if (!to_stdout && !o->force && !o->split) {
        for (size_t p = 0; p < R->sel.n_sets; p++) {
            _cleanup_free_ char *path = al_export_output_path(o->output, &R->sel.sets[p].platform);
            struct stat st; /* lstat: a dangling symlink at OUT counts as OUT */
            if (R->views[p].n_images > 0 && lstat(path, &st) == 0)
                return fail_msg(R, AL_E_IO, AL_EXIT_FAILED,
                                "%s exists: nothing written (--force replaces it)", path);
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    for (size_t p = 0; p < R->sel.n_sets; p++) {
        int rc;
        if (o->split) {
            rc = export_split(R, p);
        } else if (R->views[p].n_images == 0) {
            char buf[96];
            al_info("%s: nothing to write: the far side holds every image (--since)",
                    al_platform_format(&R->views[p].platform, buf, sizeof(buf)));
            rc = 0;
        } else {
            rc = export_one(R, &R->views[p], R->rep_on ? &R->rep.outputs[p] : NULL);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* --bundle OUT: the flags that make sense with it, then bundle-run.c. */
static int bundle_main(run *R)
{
    const options *o = &R->o;
    if (o->bundle == NULL)
        return usage_error("--volume-size goes with --bundle");
    if (o->output != NULL)
        return usage_error("--bundle OUT names the output: no -o");
    if (o->platforms != NULL || o->split || o->clean || o->skip_missing_platforms ||
        o->decompress_zstd || o->format != AL_FORMAT_HYBRID)
        return usage_error("--bundle carries the store's graphs as they are: no --platform, "
                           "--format, --split, --clean, --skip-missing-platforms or "
                           "--decompress-zstd-layers");
    if (R->refs.n == 0 && !o->all)
        return usage_error("no images: give refs, -f LIST or --all");
    if (o->level > 9 && o->compress_set && o->compress == AL_SINK_GZIP)
        return usage_error("gzip levels are 1..9");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    al_bundle_run_opts bo = {.store_dir = store_dir_of(o),
                             .out = o->bundle,
                             .refs = &R->refs,
                             .all = o->all,
                             .since_path = o->since_path,
                             .volume_size = o->volume_size,
                             .compress_set = o->compress_set,
                             .compress = o->compress,
                             .level = o->level,
                             .verify = o->verify,
                             .force = o->force,
                             .progress = !o->quiet && isatty(STDERR_FILENO),
                             .json_path = o->json_path,
                             .version = AL_VERSION};
    return al_bundle_run(&bo);
}

static int run_main(run *R, int argc, char **argv)
{
    options *o = &R->o;
    int rc = parse_args(o, &R->refs, argc, argv);
    if (rc != 0)
        return rc < 0 ? 0 : rc; /* -1: --help or --version done */
    if (o->quiet)
        al_log_set_level(AL_LOG_WARN);
    else if (o->verbose)
        al_log_set_level(AL_LOG_DEBUG);

    if (R->refs.n_problems > 0) {
        for (size_t i = 0; i < R->refs.n_problems; i++)
            al_error_log("%s", R->refs.problems[i]);
        return AL_EXIT_USAGE;
    }
    if (o->check)
        return check_archives(o);
    if (o->list || o->inspect != NULL || o->verify_store)
        return store_tools(R);
    if (o->bundle != NULL || o->volume_size > 0)
        return bundle_main(R);
    if (R->refs.n == 0 && !o->all)
        return usage_error("no images: give refs, -f LIST or --all");
    if (o->output == NULL)
        return usage_error("-o OUT is required ('-' for stdout)");
    if (o->level > 9 && o->compress_set && o->compress == AL_SINK_GZIP)
        return usage_error("gzip levels are 1..9");

    al_error *err = NULL;
    if (o->platforms != NULL) {
        if (al_platform_parse_list(&R->plats, &R->n_plats, o->platforms, &err) < 0) {
            usage_error("--platform: %s", err->msg);
            al_error_free(err);
            return AL_EXIT_USAGE;
        }
        if (R->n_plats == 0)
            return usage_error("empty --platform");
    } else {
        R->plats = al_xcalloc(1, sizeof(*R->plats));
        al_platform_host(&R->plats[0]);
        R->n_plats = 1;
        char buf[96];
        al_info("platform %s (host)", al_platform_format(&R->plats[0], buf, sizeof(buf)));
    }
    bool to_stdout = strcmp(o->output, "-") == 0;
    if (R->n_plats > 1 && to_stdout)
        return usage_error("several platforms need a file name with {arch}, not stdout");
    if (R->n_plats > 1 && strstr(o->output, "{arch}") == NULL)
        return usage_error("several platforms: -o needs {arch} in the file name (\"%s\")",
                           o->output);
    if (to_stdout && isatty(STDOUT_FILENO))
        return usage_error("refusing to write a tarball to a terminal");
    if (to_stdout && o->json_path != NULL && strcmp(o->json_path, "-") == 0)
        return usage_error("--json -: stdout carries the tarball; give the report a file name");
    if ((rc = check_output_flags(R, to_stdout)) != 0)
        return rc;

    /* From here on every run leaves a report (--json FILE), failed or not. */
    const char *store_dir = store_dir_of(o);
    if (o->json_path != NULL) {
        al_export_report_init(&R->rep, AL_VERSION, store_dir, o->output, R->plats, R->n_plats);
        R->rep.format = o->format;
        R->rep.compression = o->compress_set ? o->compress
                             : to_stdout     ? AL_SINK_PLAIN
                                             : al_sink_kind_from_path(o->output);
        R->rep.level = o->level;
        R->rep.decompress_zstd = o->decompress_zstd;
        R->rep.verify = o->verify;
        R->rep.all = o->all;
        R->rep.skip_missing_platforms = o->skip_missing_platforms;
        R->rep.since_path = o->since_path;
        R->rep.split = o->split ? &R->split : NULL;
        R->rep.refs = &R->refs;
        R->rep_on = true;
    }
    if (al_store_open(&R->store, store_dir, AL_STORE_READONLY, &err) < 0)
        return fail(R, err, AL_EXIT_STORE);
    if (al_db_open(&R->db, al_store_db_path(R->store), true, &err) < 0)
        return fail(R, err, AL_EXIT_STORE);

    /* Everything that concerns the refs is checked before any output. */
    R->ref_arr = al_xcalloc(R->refs.n + 1, sizeof(*R->ref_arr));
    for (size_t i = 0; i < R->refs.n; i++)
        R->ref_arr[i] = R->refs.items[i].ref;
    if (al_export_select(&R->sel, R->store, R->db, R->ref_arr, R->refs.n, o->all, R->plats,
                         R->n_plats, &err) < 0)
        return fail(R, err, al_errc_exit(err->code));
    R->rep.sel = &R->sel;
    if (o->skip_missing_platforms)
        take_skips(R);
    if (R->sel.n_problems > 0) {
        for (size_t i = 0; i < R->sel.n_problems; i++)
            al_error_log("%s", R->sel.problems[i]);
        return fail_msg(R, R->sel.problem_info[0].code, AL_EXIT_FAILED,
                        "nothing written: %zu problem%s", R->sel.n_problems,
                        R->sel.n_problems == 1 ? "" : "s");
    }
    for (size_t p = 0; p < R->sel.n_sets; p++) {
        if (R->sel.sets[p].n_images == 0) {
            char buf[96];
            return fail_msg(R, AL_E_NOT_FOUND, AL_EXIT_FAILED,
                            "the store %s holds no images for %s", store_dir,
                            al_platform_format(&R->sel.sets[p].platform, buf, sizeof(buf)));
        }
    }

    return export_all(R);
}

/* The run report, failed runs included. A report that cannot be written
 * turns success into exit 1: a nightly job alerts on its absence too. */
static int write_report(run *R, int exit_code)
{
    R->rep.finished_at = al_now();
    R->rep.exit_status = exit_code;
    _cleanup_free_ char *text = al_export_report_json(&R->rep);
    al_error *err = NULL;
    if (al_export_write_text(R->o.json_path, text, strlen(text), &err) < 0) {
        al_error_log("--json: %s", err->msg);
        al_error_free(err);
        return exit_code == 0 ? AL_EXIT_FAILED : exit_code;
    }
    return exit_code;
}

int main(int argc, char **argv)
{
    al_log_set_prog(PROG);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an EPIPE error, not a silent death */
    run R;
    memset(&R, 0, sizeof(R));
    al_reflist_init(&R.refs);
    al_selection_init(&R.sel);
    int rc = run_main(&R, argc, argv);
    if (R.rep_on)
        rc = write_report(&R, rc);
    run_dispose(&R);
    return rc;
}
