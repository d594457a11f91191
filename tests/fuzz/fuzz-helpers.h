/* Shared by the fuzz targets: the libFuzzer entry points, a check that
 * aborts (so that libFuzzer and the replay driver both treat a broken
 * invariant as a crash), and a NUL-terminated copy of the input for
 * parsers that take C strings. Header-only so each target stays one file. */
#ifndef AL_FUZZ_HELPERS_H
#define AL_FUZZ_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant, not an input check: a failure is a bug in the parser. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a C string. Inner NUL bytes are kept: the parser then sees
 * a shorter string, which is what a C caller would hand it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = al_xmalloc(size + 1);
    if (size > 0)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
