/* Where a registry is named on the command line: HOST[:PORT] as the
 * reference grammar accepts a registry ("localhost", a dotted or ported
 * name; a bare word would be read as a docker.io path), and
 * HOST[:PORT][/PREFIX] (--mirror's target, airlock-push --to), PREFIX being
 * repository path components. */
#ifndef AL_TARGET_H
#define AL_TARGET_H

#include <stdbool.h>

bool al_target_host_valid(const char *s);
bool al_target_prefix_valid(const char *prefix);
/* HOST[:PORT][/PREFIX] into *host and *prefix (malloc'd; *prefix NULL when
 * none); false when either part is not valid. */
bool al_target_parse(const char *arg, char **host, char **prefix);

#endif
