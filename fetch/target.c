/* Registries named on the command line (see target.h): checked by the
 * reference grammar itself, so that what is accepted here parses there. */
#include "target.h"

#include <stdlib.h>
#include <string.h>

#include "ref.h"
#include "util.h"

bool al_target_host_valid(const char *s)
{
    if (*s == '\0' || strchr(s, '/') != NULL || strlen(s) > 255)
        return false;
    _cleanup_free_ char *probe = al_xasprintf("%s/x/y", s);
    al_ref *r = NULL;
    bool ok = al_ref_parse(&r, probe, NULL) == 0 && strcmp(r->domain, s) == 0;
    al_ref_free(r);
    return ok;
}

bool al_target_prefix_valid(const char *prefix)
{
    if (*prefix == '\0')
        return false;
    _cleanup_free_ char *probe = al_xasprintf("localhost/%s/x", prefix);
    al_ref *r = NULL;
    _cleanup_free_ char *want = al_xasprintf("%s/x", prefix);
    bool ok = al_ref_parse(&r, probe, NULL) == 0 && strcmp(r->path, want) == 0;
    al_ref_free(r);
    return ok;
}

bool al_target_parse(const char *arg, char **host, char **prefix)
{
    const char *slash = strchr(arg, '/');
    _cleanup_free_ char *h = slash ? al_xstrndup(arg, (size_t)(slash - arg)) : al_xstrdup(arg);
    if (!al_target_host_valid(h) || (slash != NULL && !al_target_prefix_valid(slash + 1)))
        return false;
    *host = al_steal_ptr(&h);
    *prefix = slash ? al_xstrdup(slash + 1) : NULL;
    return true;
}
