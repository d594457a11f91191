/* The command line airlock-fetch and airlock-push share: the refs (REF
 * arguments, -f lists, --platform), --store, the transfer flags (-j,
 * --retries, the timeouts), registry access (credentials, TLS files,
 * --insecure-registry) and output (--json, -q, -v, --help, --version).
 * One module owns those flags' option ids, ranges, checks and help lines,
 * the getopt loop and the engine and registry client the flags describe,
 * so that the two programs take them alike and cannot drift apart. Each
 * program adds its own flags as a table of handlers. */
#ifndef AL_CMDLINE_H
#define AL_CMDLINE_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "credentials.h"
#include "engine.h"
#include "error.h"
#include "platform.h"
#include "progress.h"
#include "reflist.h"
#include "registry.h"

/* A program's own option ids run from 256 to 511; the shared ones are
 * 512 and up, and the letters f, j, q, v, h. */
#define AL_CMDLINE_OWN_FIRST 256

/* Help lines of the shared flags, for the programs' usage texts. */
#define AL_CMDLINE_HELP_FILE                                                                       \
    "  -f, --file FILE            read refs from FILE, one per line ('-' = stdin; repeatable)\n"
#define AL_CMDLINE_HELP_STORE                                                                      \
    "      --store DIR            the store (default: $AIRLOCK_STORE, else ./airlock-store)\n"
#define AL_CMDLINE_HELP_TRANSFERS                                                                  \
    "  -j, --jobs N               concurrent requests (default: 8)\n"                              \
    "      --retries N            retries of a transient failure (default: 4)\n"                   \
    "      --connect-timeout SEC  connection timeout (default: 30)\n"                              \
    "      --stall-timeout SEC    cut a transfer slower than 1 kB/s for SEC (default: 60)\n"       \
    "      --max-wait SEC         longest Retry-After to wait; a registry asking for more\n"       \
    "                             fails the image at once (default: 60)\n"
#define AL_CMDLINE_HELP_TLS                                                                        \
    "      --ca-cert FILE         trust the CA certificates in FILE (PEM) as well as the "         \
    "system's\n"                                                                                   \
    "      --client-cert FILE     client certificate (PEM) for registries that require one\n"      \
    "      --client-key FILE      its private key (default: in the --client-cert file)\n"          \
    "      --certs-dir DIR        per-registry TLS files DIR/HOST[:PORT]/{*.crt,client.cert,\n"    \
    "                             client.key} (default: /etc/docker/certs.d and\n"                 \
    "                             /etc/containers/certs.d)\n"                                      \
    "      --insecure-registry HOST[:PORT]\n"                                                      \
    "                             allow plain HTTP or unverified TLS for HOST (repeatable);\n"     \
    "                             localhost, 127.0.0.0/8 and ::1 may use plain HTTP without it\n"
#define AL_CMDLINE_HELP_VERBOSITY                                                                  \
    "  -q, --quiet                errors only on stderr\n"                                         \
    "  -v, --verbose              more detail on stderr (AL_DEBUG_HTTP=1 traces HTTP)\n"           \
    "  -h, --help                 this help\n"                                                     \
    "      --version              print the version\n"

/* What the shared flags asked for. Strings are borrowed from argv; the
 * arrays are owned. */
typedef struct al_cmdline {
    const char *store_dir; /* --store, else $AIRLOCK_STORE, else the default */
    char **files;          /* -f lists */
    size_t n_files;
    bool stdin_list; /* -f - */
    al_reflist list; /* every ref, validated */
    const char *platform_arg;
    al_platform *plats; /* --platform, parsed */
    size_t n_plats;
    al_engine_opts eopts;
    const char *username, *ca_cert, *client_cert, *client_key, *certs_dir;
    bool password_stdin;
    char **insecure;
    size_t n_insecure;
    const char *json_path;
    int verbosity; /* an al_log_level */
} al_cmdline;

/* One of a program's own options: its handler returns 0 when it took the
 * option, or the exit code of a usage error (already told). prog is the
 * program's own state, as given to al_cmdline_parse. */
typedef int (*al_cmdline_take_fn)(void *prog, int c, const char *arg);
typedef struct al_cmdline_option {
    const char *name;
    int has_arg;
    int id;
    al_cmdline_take_fn take;
} al_cmdline_option;

typedef struct al_cmdline_program {
    const char *name;    /* "airlock-fetch" */
    const char *version; /* printed by --version after the name */
    const char *usage;   /* printed by --help */
    const al_cmdline_option *options;
    size_t n_options;
    /* The program's checks of flags used together, after the shared
     * ones and before the refs are read: -1 to go on, or an exit code. */
    int (*check)(void *prog);
} al_cmdline_program;

void al_cmdline_init(al_cmdline *c);
void al_cmdline_dispose(al_cmdline *c);

/* Parse argv: the options, the shared checks, the program's, then every
 * ref of the arguments and -f lists (each one checked before anything is
 * done). Returns -1 to go on, 0 after --help or --version, else the exit
 * code of a usage error (already told). */
int al_cmdline_parse(al_cmdline *c, const al_cmdline_program *p, void *prog, int argc, char **argv);

/* A program's own flag that names an output file: not empty and not "-"
 * (stdout carries the results). what: "file" or "directory". */
int al_cmdline_output_path(const char *flag, const char *what, const char *arg, const char **slot);

/* Write text to path atomically for output flag ("--json"): when that
 * fails, say so and turn a successful *exit_code into AL_EXIT_FAILED (the
 * run's other results stand). Nothing when text is NULL. */
void al_cmdline_write_output(const char *flag, const char *path, const char *text, int *exit_code);

/* The network side of a run, released together. */
typedef struct al_cmdline_net {
    char *password;        /* read from stdin for --password-stdin; wiped when freed */
    al_creds *creds;       /* --username, else the auth and docker config files */
    al_progress *progress; /* the display on stderr; NULL when quiet */
    al_engine *engine;
    al_registry *reg;
    const char *certs_dirs[2]; /* --certs-dir, NULL-terminated: the registry keeps a pointer */
} al_cmdline_net;

/* The password, the progress display at the run's verbosity (attached to
 * the engine's options) and the credentials. Returns 0, or the exit code
 * (*err set). */
int al_cmdline_net_begin(al_cmdline_net *n, al_cmdline *c, const char *prog, al_error **err);

/* The engine and the registry client the flags describe. Returns 0, or
 * the exit code (*err set). */
int al_cmdline_net_connect(al_cmdline_net *n, const al_cmdline *c, al_error **err);

/* Free it all, the registry first (it joins its worker threads, which may
 * still write to the store: call this before the store is freed). */
void al_cmdline_net_end(al_cmdline_net *n);

#endif
