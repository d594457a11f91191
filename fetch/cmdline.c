/* The command line airlock-fetch and airlock-push share (see cmdline.h). */
#include "cmdline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "file.h"
#include "log.h"
#include "target.h"
#include "util.h"

enum {
    C_FILE = 'f',
    C_JOBS = 'j',
    C_QUIET = 'q',
    C_VERBOSE = 'v',
    C_HELP = 'h',
    C_PLATFORM = 512, /* above every program's own ids (AL_CMDLINE_OWN_FIRST...) */
    C_STORE,
    C_RETRIES,
    C_CONNECT_TIMEOUT,
    C_STALL_TIMEOUT,
    C_MAX_WAIT,
    C_USERNAME,
    C_PASSWORD_STDIN,
    C_CA_CERT,
    C_CLIENT_CERT,
    C_CLIENT_KEY,
    C_CERTS_DIR,
    C_INSECURE,
    C_JSON,
    C_VERSION,
};

/* --help and --version: printed, the run ends with 0. */
#define TAKEN_FINAL (-2)

typedef int (*shared_take_fn)(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg);
static int take_images(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg);
static int take_number(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg);
static int take_access(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg);
static int take_output(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg);

/* The shared options, by group of the help texts (test_help reads this
 * table for both programs). */
static const struct shared_option {
    const char *name;
    int has_arg;
    int id;
    shared_take_fn take;
} options[] = {
    {"file", required_argument, C_FILE, take_images},
    {"platform", required_argument, C_PLATFORM, take_images},
    {"store", required_argument, C_STORE, take_images},
    {"jobs", required_argument, C_JOBS, take_number},
    {"retries", required_argument, C_RETRIES, take_number},
    {"connect-timeout", required_argument, C_CONNECT_TIMEOUT, take_number},
    {"stall-timeout", required_argument, C_STALL_TIMEOUT, take_number},
    {"max-wait", required_argument, C_MAX_WAIT, take_number},
    {"username", required_argument, C_USERNAME, take_access},
    {"password-stdin", no_argument, C_PASSWORD_STDIN, take_access},
    {"ca-cert", required_argument, C_CA_CERT, take_access},
    {"client-cert", required_argument, C_CLIENT_CERT, take_access},
    {"client-key", required_argument, C_CLIENT_KEY, take_access},
    {"certs-dir", required_argument, C_CERTS_DIR, take_access},
    {"insecure-registry", required_argument, C_INSECURE, take_access},
    {"json", required_argument, C_JSON, take_output},
    {"quiet", no_argument, C_QUIET, take_output},
    {"verbose", no_argument, C_VERBOSE, take_output},
    {"help", no_argument, C_HELP, take_output},
    {"version", no_argument, C_VERSION, take_output},
};

void al_cmdline_init(al_cmdline *c)
{
    memset(c, 0, sizeof(*c));
    c->verbosity = AL_LOG_INFO;
    al_reflist_init(&c->list);
    al_engine_opts_default(&c->eopts);
}

void al_cmdline_dispose(al_cmdline *c)
{
    free(c->files);
    free(c->plats);
    free(c->insecure);
    al_reflist_dispose(&c->list);
    memset(c, 0, sizeof(*c));
}

/* --- the shared options, by group ------------------------------------------ */

static int take_images(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg)
{
    (void)p;
    switch (id) {
    case C_FILE:
        c->files = al_xrealloc(c->files, (c->n_files + 1) * sizeof(char *));
        c->files[c->n_files++] = (char *)arg;
        c->stdin_list |= strcmp(arg, "-") == 0;
        return 0;
    case C_PLATFORM: c->platform_arg = arg; return 0;
    default: /* C_STORE */
        if (*arg == '\0')
            return al_cli_usage_error("--store: expected a directory, got an empty string");
        c->store_dir = arg;
        return 0;
    }
}

/* The whole-number flags and their ranges. */
static int take_number(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg)
{
    static const struct {
        int id;
        const char *name;
        long lo, hi;
    } ranges[] = {
        {C_JOBS, "--jobs", 1, 256},
        {C_RETRIES, "--retries", 0, 100},
        {C_CONNECT_TIMEOUT, "--connect-timeout", 1, 3600},
        {C_STALL_TIMEOUT, "--stall-timeout", 1, 3600},
        {C_MAX_WAIT, "--max-wait", 0, 86400},
    };
    (void)p;
    long v = 0;
    size_t i = 0;
    while (ranges[i].id != id)
        i++; /* the table above holds every id this handler is given */
    if (!al_cli_parse_long(arg, ranges[i].lo, ranges[i].hi, &v))
        return al_cli_usage_error("%s: expected a number from %ld to %ld, got \"%s\"",
                                  ranges[i].name, ranges[i].lo, ranges[i].hi, arg);
    switch (id) {
    case C_JOBS: c->eopts.jobs = (int)v; break;
    case C_RETRIES: c->eopts.max_retries = (int)v; break;
    case C_CONNECT_TIMEOUT: c->eopts.connect_timeout = v; break;
    case C_STALL_TIMEOUT: c->eopts.low_speed_time = v; break;
    default: c->eopts.max_wait = (double)v; break;
    }
    return 0;
}

/* A file named by a flag must be readable now, not at the first request. */
static int readable(const char *flag, const char *path, const char **slot)
{
    if (access(path, R_OK) != 0)
        return al_cli_usage_error("%s: cannot read \"%s\"", flag, path);
    *slot = path;
    return 0;
}

static int take_access(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg)
{
    (void)p;
    switch (id) {
    case C_USERNAME: c->username = arg; return 0;
    case C_PASSWORD_STDIN: c->password_stdin = true; return 0;
    case C_CA_CERT: return readable("--ca-cert", arg, &c->ca_cert);
    case C_CLIENT_CERT: return readable("--client-cert", arg, &c->client_cert);
    case C_CLIENT_KEY: return readable("--client-key", arg, &c->client_key);
    case C_CERTS_DIR: c->certs_dir = arg; return 0;
    default: /* C_INSECURE */
        if (!al_target_host_valid(arg))
            return al_cli_usage_error("--insecure-registry: invalid host \"%s\" (want "
                                      "HOST[:PORT])",
                                      arg);
        c->insecure = al_xrealloc(c->insecure, (c->n_insecure + 1) * sizeof(char *));
        c->insecure[c->n_insecure++] = (char *)arg;
        return 0;
    }
}

int al_cmdline_output_path(const char *flag, const char *what, const char *arg, const char **slot)
{
    if (*arg == '\0' || strcmp(arg, "-") == 0)
        return al_cli_usage_error("%s: expected a %s name (stdout carries the results)", flag,
                                  what);
    *slot = arg;
    return 0;
}

static int take_output(al_cmdline *c, const al_cmdline_program *p, int id, const char *arg)
{
    switch (id) {
    case C_JSON: return al_cmdline_output_path("--json", "file", arg, &c->json_path);
    case C_QUIET: c->verbosity = AL_LOG_ERROR; return 0;
    case C_VERBOSE: c->verbosity = AL_LOG_DEBUG; return 0;
    case C_HELP: fputs(p->usage, stdout); return TAKEN_FINAL;
    default: printf("%s %s\n", p->name, p->version); return TAKEN_FINAL;
    }
}

/* --- parsing ------------------------------------------------------------------ */

/* The program's options, then the shared ones, as getopt_long wants them
 * (the caller frees). */
static struct option *getopt_table(const al_cmdline_program *p)
{
    size_t n = p->n_options;
    struct option *out = al_xcalloc(n + AL_ARRAY_SIZE(options) + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = (struct option){p->options[i].name, p->options[i].has_arg, NULL, p->options[i].id};
    for (size_t i = 0; i < AL_ARRAY_SIZE(options); i++)
        out[n + i] = (struct option){options[i].name, options[i].has_arg, NULL, options[i].id};
    return out;
}

static int take(al_cmdline *c, const al_cmdline_program *p, void *prog, int id, const char *arg)
{
    for (size_t i = 0; i < p->n_options; i++)
        if (p->options[i].id == id)
            return p->options[i].take(prog, id, arg);
    for (size_t i = 0; i < AL_ARRAY_SIZE(options); i++)
        if (options[i].id == id)
            return options[i].take(c, p, id, arg);
    fprintf(stderr, "Try '%s --help'.\n", p->name); /* getopt said what was wrong */
    return AL_EXIT_USAGE;
}

/* The shared flags that only make sense together; --platform parsed. */
static int check_shared(al_cmdline *c)
{
    const char *dbg = getenv("AL_DEBUG_HTTP");
    c->eopts.debug_http = dbg != NULL && strcmp(dbg, "1") == 0;
    if (c->password_stdin && c->username == NULL)
        return al_cli_usage_error("--password-stdin needs --username");
    if (c->username != NULL && !c->password_stdin)
        return al_cli_usage_error("--username needs --password-stdin (passwords are never taken "
                                  "from the command line)");
    if (c->password_stdin && c->stdin_list)
        return al_cli_usage_error("--password-stdin and -f - both want stdin");
    if (c->client_key != NULL && c->client_cert == NULL)
        return al_cli_usage_error("--client-key needs --client-cert");
    return al_cli_platforms(c->platform_arg, &c->plats, &c->n_plats);
}

int al_cmdline_parse(al_cmdline *c, const al_cmdline_program *p, void *prog, int argc, char **argv)
{
    _cleanup_free_ struct option *table = getopt_table(p);
    int id;
    while ((id = getopt_long(argc, argv, "f:j:qvh", table, NULL)) != -1) {
        int rc = take(c, p, prog, id, optarg);
        if (rc == TAKEN_FINAL)
            return 0;
        if (rc != 0)
            return rc;
    }
    c->store_dir = al_cli_store_dir(c->store_dir);
    al_log_set_level((al_log_level)c->verbosity);
    int rc = check_shared(c);
    if (rc < 0 && p->check != NULL)
        rc = p->check(prog);
    if (rc >= 0)
        return rc;
    /* Every ref and every list line is validated before anything else. */
    rc = al_cli_read_refs(&c->list, argv, optind, argc, c->files, c->n_files);
    return rc != 0 ? rc : -1;
}

void al_cmdline_write_output(const char *flag, const char *path, const char *text, int *exit_code)
{
    al_error *e = NULL;
    if (text == NULL || al_file_write_atomic(path, text, strlen(text), &e) == 0)
        return;
    al_error_log("%s: %s", flag, e->msg);
    al_error_free(e);
    if (*exit_code == 0)
        *exit_code = AL_EXIT_FAILED;
}

int al_cmdline_net_begin(al_cmdline_net *n, al_cmdline *c, const char *prog, al_error **err)
{
    memset(n, 0, sizeof(*n));
    n->password = c->password_stdin ? al_creds_read_stdin() : NULL;
    if (c->verbosity > AL_LOG_ERROR) {
        al_progress_mode mode = al_progress_mode_for(STDERR_FILENO);
        if (c->eopts.debug_http)
            mode = AL_PROGRESS_PLAIN; /* curl's trace would write through the display */
        n->progress = al_progress_new(mode, stderr, prog, c->verbosity >= AL_LOG_DEBUG);
        al_progress_attach(n->progress, &c->eopts);
    }
    if (al_creds_new(&n->creds, c->username, n->password, NULL, err) < 0)
        return AL_EXIT_USAGE;
    return 0;
}

int al_cmdline_net_connect(al_cmdline_net *n, const al_cmdline *c, al_error **err)
{
    if (al_engine_new(&n->engine, &c->eopts, err) < 0)
        return al_errc_exit((*err)->code);
    n->certs_dirs[0] = c->certs_dir;
    al_registry_opts ropts = {.creds = n->creds,
                              .insecure_hosts = c->insecure,
                              .n_insecure = c->n_insecure,
                              .ca_cert = c->ca_cert,
                              .client_cert = c->client_cert,
                              .client_key = c->client_key,
                              .certs_dirs = c->certs_dir ? n->certs_dirs : NULL};
    if (al_registry_new(&n->reg, n->engine, &ropts, err) < 0)
        return AL_EXIT_FAILED;
    return 0;
}

void al_cmdline_net_end(al_cmdline_net *n)
{
    al_registry_free(n->reg);
    al_engine_free(n->engine);
    al_progress_free(n->progress);
    al_creds_free(n->creds);
    al_free_secret(n->password);
    memset(n, 0, sizeof(*n));
}
