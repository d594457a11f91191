/* A JSON document as a file holds it: indented by two, keys in the order
 * they were set, reals to six significant digits, one trailing newline.
 * What the run reports (--json) and the tools' JSON files are written as;
 * and the values every such document writes the same way. */
#ifndef AL_JSONDOC_H
#define AL_JSONDOC_H

#include <jansson.h>

#include "error.h"

/* The text of root (malloc'd); root is released. Aborts only when memory
 * runs out, as every allocation does. */
char *al_json_document(json_t *root);

/* s, or null for NULL, "" and text that is not UTF-8. */
json_t *al_json_str_or_null(const char *s);

/* The instant t (epoch seconds) as "2024-01-02T03:04:05Z". */
json_t *al_json_utc(double t);

/* null for NULL; else {"message": the message sanitised for one line,
 * "code": al_errc_name of its code}. */
json_t *al_json_error(const al_error *e);

/* A comma-separated list ("a,b" or "a, b"; NULL is empty) as an array of
 * strings; empty items are left out. */
json_t *al_json_list(const char *list);

#endif
