/* Registry credentials, looked up per registry host the way skopeo, podman
 * and docker do, in this order:
 *   1. --username with --password-stdin (every registry of the run);
 *   2. containers auth.json: $REGISTRY_AUTH_FILE, else
 *      $XDG_RUNTIME_DIR/containers/auth.json ("auths" entries);
 *   3. docker's config.json: $DOCKER_CONFIG/config.json, else
 *      ~/.docker/config.json: "credHelpers" for the host, then
 *      "credsStore", then "auths" entries ("auth" = base64 user:password,
 *      or "username"/"password", or "identitytoken").
 * A credential helper is run as `docker-credential-NAME get` with the
 * server on stdin. Docker Hub's entries are found under any of its usual
 * keys ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
 * "registry-1.docker.io"). Secrets leave this module only inside an
 * Authorization header or a token request body. */
#ifndef AL_CREDENTIALS_H
#define AL_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct al_creds al_creds;

typedef struct al_cred {
    char *user; /* NULL with an identity token alone */
    char *password;
    char *identity_token; /* OAuth2 refresh token (docker login with SSO), or NULL */
    char *origin; /* where it came from, for messages: "--username", "/root/.docker/config.json" */
} al_cred;

/* user/password: command-line credentials, or NULL. docker_config:
 * explicit config.json path, or NULL for the default. A missing default
 * file is not an error; a file that exists but cannot be read or parsed
 * is (AL_E_USAGE, "FILE:LINE: ..."). */
int al_creds_new(al_creds **out, const char *user, const char *password, const char *docker_config,
                 al_error **err);
void al_creds_free(al_creds *c);

/* Credentials for host ("127.0.0.1:5000", "registry-1.docker.io"):
 * *out is NULL when there are none. Results (helper output included) are
 * cached per host. Fails when a configured helper is missing or fails
 * (AL_E_AUTH, naming the helper). *out is borrowed from c. */
int al_creds_get(al_creds *c, const char *host, const al_cred **out, al_error **err);

/* --password-stdin: all of stdin, without its trailing newline (malloc'd;
 * a secret: al_free_secret). Passwords are never taken from argv. */
char *al_creds_read_stdin(void);

/* "Basic base64(user:password)" (malloc'd). */
char *al_creds_basic_header(const char *user, const char *password);

/* Parse a docker config.json or containers auth.json buffer (exposed for
 * tests and fuzzing). `origin` names it in messages and in al_cred. */
int al_creds_parse_docker_config(al_creds *c, const char *buf, size_t len, const char *origin,
                                 al_error **err);

#endif
