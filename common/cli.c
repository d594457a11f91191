/* Command-line helpers shared by the programs (see cli.h). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

int al_cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = al_xvasprintf(fmt, ap);
    va_end(ap);
    al_error_log("%s", msg);
    fprintf(stderr, "Try '%s --help'.\n", al_log_get_prog());
    return AL_EXIT_USAGE;
}

int al_cli_platforms(const char *arg, al_platform **plats, size_t *n)
{
    al_error *e = NULL;
    if (arg == NULL || al_platform_parse_list(plats, n, arg, &e) >= 0)
        return -1;
    int rc = al_cli_usage_error("--platform: %s", e->msg);
    al_error_free(e);
    return rc;
}

bool al_cli_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool al_cli_parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (end != s && *end != '\0' && end[1] == '\0') {
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: return false;
        }
        end++;
    }
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

const char *al_cli_store_dir(const char *dir)
{
    if (dir == NULL || *dir == '\0')
        dir = getenv("AIRLOCK_STORE");
    return dir != NULL && *dir != '\0' ? dir : AL_CLI_DEFAULT_STORE;
}

int al_cli_read_refs(al_reflist *l, char **argv, int first, int argc, char *const *files,
                     size_t n_files)
{
    for (int i = first; i < argc; i++)
        al_reflist_add_arg(l, argv[i], i - first + 1);
    for (size_t i = 0; i < n_files; i++) {
        al_error *e = NULL;
        if (al_reflist_add_file(l, files[i], &e) < 0) {
            al_error_log("%s", e->msg);
            al_error_free(e);
            return AL_EXIT_USAGE;
        }
    }
    if (l->n_problems == 0)
        return 0;
    for (size_t i = 0; i < l->n_problems; i++)
        al_error_log("%s", l->problems[i]);
    al_error_log("%zu bad reference%s: nothing done", l->n_problems, l->n_problems == 1 ? "" : "s");
    return AL_EXIT_USAGE;
}
