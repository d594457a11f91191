/* URL pieces the registry client needs (malloc'd, NULL when the URL does
 * not parse): where a Location leads, whether two URLs share an origin.
 * (The host a URL names: al_url_hostport in hostpolicy.h.) */
#ifndef AL_URL_H
#define AL_URL_H

#include <stdbool.h>

/* loc (absolute or relative) resolved against base. */
char *al_url_resolve(const char *base, const char *loc);
/* Same scheme, host and port (default ports filled in). */
bool al_url_same_origin(const char *a, const char *b);

#endif
