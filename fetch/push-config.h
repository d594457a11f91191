/* What a cluster needs to pull the pushed images under their original
 * names: k3s/RKE2's registries.yaml (--registries-yaml FILE) and
 * containerd's hosts.toml files (--hosts-dir DIR). For each upstream
 * registry of the pushed images (docker.io, quay.io, ...) the target is its
 * mirror; with a PREFIX, k3s is told to rewrite the repository path
 * ("rewrite"), containerd to use the host's path as it is ("override_path"
 * on HOST/v2/PREFIX). TLS material the push used (--ca-cert,
 * --client-cert/--client-key, --insecure-registry) is named by path;
 * credentials are never written. */
#ifndef AL_PUSH_CONFIG_H
#define AL_PUSH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct al_push_site {
    const char *host;        /* HOST[:PORT] */
    const char *prefix;      /* PREFIX or NULL */
    bool plain_http;         /* the registry is spoken to in plain HTTP */
    bool skip_verify;        /* --insecure-registry on HTTPS */
    const char *ca_file;     /* absolute path, or NULL */
    const char *client_cert; /* absolute paths, or NULL */
    const char *client_key;
} al_push_site;

/* The texts (malloc'd); upstreams: distinct registry names, in order. */
char *al_push_registries_yaml(const al_push_site *site, const char *const *upstreams, size_t n);
char *al_push_hosts_toml(const al_push_site *site, const char *upstream);

/* DIR/<upstream>/hosts.toml for each upstream (DIR and the directories
 * made as needed; each file written whole by rename). */
int al_push_write_hosts_dir(const char *dir, const al_push_site *site, const char *const *upstreams,
                            size_t n, al_error **err);

#endif
