/* URL pieces the registry client needs (all malloc'd, NULL when the URL
 * does not parse): the host a URL names, where a Location leads, whether
 * two URLs share an origin, and a form fit for messages. */
#ifndef AL_URL_H
#define AL_URL_H

#include <stdbool.h>

/* "host[:port]" of a URL. */
char *al_url_hostport(const char *url);
/* loc (absolute or relative) resolved against base. */
char *al_url_resolve(const char *base, const char *loc);
/* Same scheme, host and port (default ports filled in). */
bool al_url_same_origin(const char *a, const char *b);

#endif
