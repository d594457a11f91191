/* A JSON document as a file holds it: indented by two, keys in the order
 * they were set, reals to six significant digits, one trailing newline.
 * What the run reports (--json) and the tools' JSON files are written as. */
#ifndef AL_JSONDOC_H
#define AL_JSONDOC_H

#include <jansson.h>

/* The text of root (malloc'd); root is released. Aborts only when memory
 * runs out, as every allocation does. */
char *al_json_document(json_t *root);

#endif
