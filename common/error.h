/* One error idiom for the whole project (see STYLE.md).
 *
 * A failing function returns a negative al_errc and fills `al_error **err`
 * (its last parameter). Callers add context on the way up with
 * al_error_wrap(); main reports the message once. */
#ifndef AL_ERROR_H
#define AL_ERROR_H

#include <stdarg.h>

typedef enum {
    AL_OK = 0,
    AL_E_USAGE = -1,
    AL_E_IO = -2,
    AL_E_NET = -3,
    AL_E_HTTP = -4,
    AL_E_AUTH = -5,
    AL_E_NOT_FOUND = -6,
    AL_E_DIGEST = -7,
    AL_E_SIZE = -8,
    AL_E_PARSE = -9,
    AL_E_DB = -10,
    AL_E_UNSUPPORTED = -11,
    AL_E_BUSY = -12, /* store locked by another writer */
} al_errc;

typedef struct al_error {
    al_errc code;
    int sys_errno; /* errno at the failure, 0 if none */
    char *msg;     /* full message, outermost context first */
} al_error;

/* Record a failure and return `code` (negative). When `errnum` is nonzero,
 * ": strerror(errnum)" is appended. `err` may be NULL: the code is still
 * returned. If *err is already set, it is replaced. */
int al_error_set(al_error **err, al_errc code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with a va_list, for functions that take a format themselves. */
int al_error_vset(al_error **err, al_errc code, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Prefix the message of *err with "context: " and return its code. Call it
 * only on a real failure: *err NULL is a bug (asserted). With err NULL (the
 * caller wants no details) it returns AL_E_IO. */
int al_error_wrap(al_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void al_error_free(al_error *e);
void al_error_clear(al_error **err);

/* A copy of e with the same code, errno and message (NULL for NULL): one
 * failure that ends several calls, each owning its error. */
al_error *al_error_copy(const al_error *e);

/* Demote *err to a warning: log its message on stderr ("warning: ...") and
 * clear it. For a failure that does not stop the work (a tag skipped).
 * Nothing happens when *err is NULL. */
void al_error_demote(al_error **err);

/* Short upper-case name of a code ("IO", "AUTH", ...). */
const char *al_errc_name(al_errc code);

/* Exit status of every program (README, "Exit status"; docs/DESIGN.md). */
enum {
    AL_EXIT_OK = 0,     /* everything succeeded */
    AL_EXIT_FAILED = 1, /* some images (or an output) failed; the rest is done and recorded */
    AL_EXIT_USAGE = 2,  /* usage or input error (a flag, a ref, a list line): nothing done */
    AL_EXIT_STORE = 3,  /* the store is unusable: locked by a writer, corrupt, or newer */
};

/* The one mapping from an error code to an exit status, used by every
 * program: AL_E_USAGE -> 2, AL_E_DB and AL_E_BUSY -> 3, any other failure
 * -> 1, AL_OK -> 0. A step that makes the store unusable whatever its code
 * (opening it) exits AL_EXIT_STORE by name. */
int al_errc_exit(al_errc code);

#endif
