/* The error idiom (see error.h): set, wrap, copy, demote, and the exit status. */
#include "error.h"
#include "log.h"
#include "util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int al_error_set(al_error **err, al_errc code, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = al_error_vset(err, code, errnum, fmt, ap);
    va_end(ap);
    return r;
}

int al_error_vset(al_error **err, al_errc code, int errnum, const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;
    char *base = al_xvasprintf(fmt, ap);
    char *msg = base;
    if (errnum != 0) {
        msg = al_xasprintf("%s: %s", base, strerror(errnum));
        free(base);
    }
    al_error_free(*err);
    al_error *e = al_xcalloc(1, sizeof(*e));
    e->code = code;
    e->sys_errno = errnum;
    e->msg = msg;
    *err = e;
    return code;
}

int al_error_wrap(al_error **err, const char *fmt, ...)
{
    /* A caller that passed err NULL wants no details and only tests < 0:
     * any failure code will do, and it must not read as the user's usage
     * error. Wrapping a success is a caller's bug. */
    if (err == NULL)
        return AL_E_IO;
    assert(*err != NULL);
    va_list ap;
    va_start(ap, fmt);
    char *ctx = al_xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = al_xasprintf("%s: %s", ctx, (*err)->msg);
    free(ctx);
    free((*err)->msg);
    (*err)->msg = msg;
    return (*err)->code;
}

void al_error_free(al_error *e)
{
    if (e == NULL)
        return;
    free(e->msg);
    free(e);
}

void al_error_clear(al_error **err)
{
    if (err == NULL)
        return;
    al_error_free(*err);
    *err = NULL;
}

al_error *al_error_copy(const al_error *e)
{
    if (e == NULL)
        return NULL;
    al_error *c = al_xcalloc(1, sizeof(*c));
    c->code = e->code;
    c->sys_errno = e->sys_errno;
    c->msg = al_xstrdup(e->msg);
    return c;
}

void al_error_demote(al_error **err)
{
    if (err == NULL || *err == NULL)
        return;
    al_warn("%s", (*err)->msg);
    al_error_clear(err);
}

const char *al_errc_name(al_errc code)
{
    switch (code) {
    case AL_OK: return "OK";
    case AL_E_USAGE: return "USAGE";
    case AL_E_IO: return "IO";
    case AL_E_NET: return "NET";
    case AL_E_HTTP: return "HTTP";
    case AL_E_AUTH: return "AUTH";
    case AL_E_NOT_FOUND: return "NOT_FOUND";
    case AL_E_DIGEST: return "DIGEST";
    case AL_E_SIZE: return "SIZE";
    case AL_E_PARSE: return "PARSE";
    case AL_E_DB: return "DB";
    case AL_E_UNSUPPORTED: return "UNSUPPORTED";
    case AL_E_BUSY: return "BUSY";
    }
    return "UNKNOWN";
}

int al_errc_exit(al_errc code)
{
    switch (code) {
    case AL_OK: return AL_EXIT_OK;
    case AL_E_USAGE: return AL_EXIT_USAGE;
    case AL_E_DB:
    case AL_E_BUSY: return AL_EXIT_STORE;
    default: return AL_EXIT_FAILED;
    }
}
