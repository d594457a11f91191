/* One sanitiser for text that came from outside: a registry's error body,
 * a realm, a token server's answer, a header value, a name read back from
 * the database. Such text may hold ESC sequences that drive the terminal,
 * or a newline that forges a result line ("FAKE: ok ..."); passed through
 * al_sanitize it is one line of printable text (docs/STYLE.md, Output). */
#ifndef AL_SANITIZE_H
#define AL_SANITIZE_H

#include <stddef.h>

/* Cap for a whole printed line (log line, result line, lock comment). */
#define AL_SANITIZE_LINE 4096

/* A copy of s (malloc'd) in which every control byte (C0, DEL), every C1
 * control (U+0080..U+009F) and every byte that is not part of valid UTF-8
 * is written as "\xNN", and that is cut after at most max bytes (whole
 * characters and escapes only) with "..." appended. Valid UTF-8 text
 * without controls comes back unchanged. s NULL gives "". */
char *al_sanitize(const char *s, size_t max);
/* The same for len bytes that may hold NUL bytes (a response body). */
char *al_sanitize_n(const char *s, size_t len, size_t max);

#endif
