#include "log.h"

#include <stdarg.h>
#include <stdio.h>

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
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s%s\n", prog, tags[lvl], line);
}
