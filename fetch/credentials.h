/* Registry credentials. Looked up per registry host in this order:
 *   1. --username with --password-stdin (applies to every registry of the run)
 *   2. docker's config.json ($DOCKER_CONFIG/config.json, else
 *      ~/.docker/config.json): "auths" entries with "auth" (base64
 *      user:password) or "username"/"password".
 * Docker Hub's entries are found under any of its usual keys
 * ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
 * "registry-1.docker.io"). Secrets never leave this module except inside
 * an Authorization header. */
#ifndef AL_CREDENTIALS_H
#define AL_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct al_creds al_creds;

/* user/password may be NULL (no command-line credentials). config_path
 * NULL means the default location; a missing default file is not an
 * error, a named one that cannot be read or parsed is (AL_E_USAGE). */
int al_creds_new(al_creds **out, const char *user, const char *password, const char *config_path,
                 al_error **err);
void al_creds_free(al_creds *c);

/* Credentials for host ("127.0.0.1:5000", "registry-1.docker.io").
 * Returns false when none. The strings are borrowed. */
bool al_creds_lookup(const al_creds *c, const char *host, const char **user, const char **password);

/* "Basic base64(user:password)" (malloc'd). */
char *al_creds_basic_header(const char *user, const char *password);

/* Parse a docker config.json buffer (exposed for tests and fuzzing). */
int al_creds_parse_docker_config(al_creds *c, const char *buf, size_t len, const char *origin,
                                 al_error **err);

#endif
