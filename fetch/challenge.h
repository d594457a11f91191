/* WWW-Authenticate challenges (RFC 7235) as registries send them:
 *   Bearer
 * realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:x:pull" Basic
 * realm="Registry Realm" Only the first challenge of the header is read. */
#ifndef AL_CHALLENGE_H
#define AL_CHALLENGE_H

#include "error.h"

typedef enum { AL_AUTH_SCHEME_BASIC = 1, AL_AUTH_SCHEME_BEARER = 2 } al_auth_scheme;

typedef struct al_challenge {
    al_auth_scheme scheme;
    char *realm;   /* NULL when absent */
    char *service; /* NULL when absent */
    char *scope;   /* NULL when absent */
} al_challenge;

/* AL_E_AUTH "unsupported authentication scheme ..." or AL_E_PARSE on a
 * malformed header. A Bearer challenge must carry a realm. */
int al_challenge_parse(al_challenge *out, const char *header, al_error **err);
void al_challenge_dispose(al_challenge *c);

#endif
