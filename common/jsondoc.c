/* JSON documents as text (see jsondoc.h). */
#include "jsondoc.h"

#include <stdlib.h>
#include <string.h>

#include "sanitize.h"
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

/* json_string() refuses invalid UTF-8 (a hand-edited database can hold any
 * bytes): null then, rather than a NULL that would fail the whole document. */
json_t *al_json_str_or_null(const char *s)
{
    json_t *j = s != NULL && *s != '\0' ? json_string(s) : NULL;
    return j != NULL ? j : json_null();
}

json_t *al_json_utc(double t)
{
    char buf[40];
    return json_string(al_format_utc(buf, sizeof(buf), t));
}

/* Messages may quote a registry: a report holds them sanitised, so that
 * `jq -r` of a report never prints a control byte either. */
json_t *al_json_error(const al_error *e)
{
    if (e == NULL)
        return json_null();
    _cleanup_free_ char *msg = al_sanitize(e->msg, AL_SANITIZE_LINE);
    return json_pack("{s:s, s:s}", "message", msg, "code", al_errc_name(e->code));
}

json_t *al_json_list(const char *list)
{
    json_t *a = json_array();
    for (const char *p = list; p != NULL && *p != '\0';) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, ",");
        if (n > 0)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    return a;
}
