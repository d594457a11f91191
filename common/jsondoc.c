/* JSON documents as text (see jsondoc.h). */
#include "jsondoc.h"

#include <stdlib.h>

#include "util.h"

char *al_json_document(json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (text == NULL)
        abort(); /* only on allocation failure */
    char *out = al_xasprintf("%s\n", text);
    free(text);
    return out;
}
