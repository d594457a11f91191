/* stderr logging: one line per message, prefixed with the program name. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sanitize.h"

static al_log_level level = AL_LOG_INFO;
static const char *prog = "airlock";

void al_log_set_level(al_log_level lvl)
{
    level = lvl;
}
al_log_level al_log_get_level(void)
{
    return level;
}
const char *al_log_get_prog(void)
{
    return prog;
}

void al_log_set_prog(const char *p)
{
    prog = p;
}

void al_log(al_log_level lvl, const char *fmt, ...)
{
    static const char *tags[] = {"error: ", "warning: ", "", "debug: "};
    if (lvl > level)
        return;
    /* One fprintf per line keeps lines whole when several processes share stderr. */
    char line[AL_SANITIZE_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* The last guard: a message may quote a registry or a database, and
     * neither may drive the terminal or start a line of its own. */
    char *safe = al_sanitize(line, sizeof(line));
    fprintf(stderr, "%s: %s%s\n", prog, tags[lvl], safe);
    free(safe);
}
