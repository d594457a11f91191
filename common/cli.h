/* What the programs' command lines have in common: the one way a usage
 * error is told ("PROG: error: ...", then where help is, exit 2), whole
 * numbers in a range, the store's directory ($AIRLOCK_STORE, else
 * ./airlock-store), and refs from arguments and -f lists, all checked
 * before anything else is done. */
#ifndef AL_CLI_H
#define AL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform.h"
#include "reflist.h"

#define AL_CLI_DEFAULT_STORE "./airlock-store"

/* Log "error: MSG" and "Try 'PROG --help'." on stderr; returns 2. The
 * program name is al_log's (al_log_set_prog). */
int al_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A decimal integer in [lo, hi], the whole string. */
bool al_cli_parse_long(const char *s, long lo, long hi, long *out);

/* A size: bytes, or a number with K, M, G or T (powers of 1024), the whole
 * string ("4G", "700M", "1048576"). */
bool al_cli_parse_size(const char *s, uint64_t *out);

/* dir when given and not empty, else $AIRLOCK_STORE, else the default. */
const char *al_cli_store_dir(const char *dir);

/* --platform LIST into *plats (n of them) when arg is not NULL. Returns
 * -1 to go on, or the exit code of a usage error (already told). */
int al_cli_platforms(const char *arg, al_platform **plats, size_t *n);

/* Add refs given as arguments (argv[first..argc)) and the lists named by
 * files (n of them) to l. Every problem is logged ("FILE:LINE: reason")
 * and the count of bad refs said: returns 2 then, or when a list cannot
 * be read; 0 when every ref is good. */
int al_cli_read_refs(al_reflist *l, char **argv, int first, int argc, char *const *files,
                     size_t n_files);

#endif
