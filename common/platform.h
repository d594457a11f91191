/* Platforms: "os/arch[/variant]", normalised the way containerd does so
 * that comparisons are plain equality:
 *   arch aliases: x86_64|x86-64 -> amd64, aarch64 -> arm64, armhf|armel -> arm, i386|i686 -> 386
 *   arm64 variant v8 -> "" (arm64 == arm64/v8)
 *   arm without variant -> v7 ; "arm/7" -> v7 (a leading 'v' is added)
 *   amd64 variant v1 -> ""
 * os/arch "unknown/unknown" marks attestation manifests (buildx). */
#ifndef AL_PLATFORM_H
#define AL_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct al_platform {
    char os[32];
    char arch[32];
    char variant[16]; /* "" when none */
} al_platform;

/* Parse "os/arch[/variant]" and normalise. Lower-case letters, digits, '_'
 * and '.' only; every part non-empty; AL_E_USAGE with the reason otherwise. */
int al_platform_parse(al_platform *out, const char *s, al_error **err);

/* Parse a comma-separated list ("linux/amd64,linux/arm64"); *out is a
 * malloc'd array of *n_out entries, duplicates removed. */
int al_platform_parse_list(al_platform **out, size_t *n_out, const char *s, al_error **err);

/* Build from raw fields as found in JSON (any may be NULL), truncating
 * nothing: returns false if a field is too long. Normalises. */
bool al_platform_set(al_platform *out, const char *os, const char *arch, const char *variant);

void al_platform_normalize(al_platform *p);

/* Both sides already normalised: equal os, arch and variant. */
bool al_platform_equal(const al_platform *a, const al_platform *b);

/* True when p is an attestation / unknown entry ("unknown/unknown"). */
bool al_platform_is_unknown(const al_platform *p);

/* "linux/arm/v7" into buf. Returns buf. */
char *al_platform_format(const al_platform *p, char *buf, size_t len);

/* The file-name form used by export's {arch}: "amd64", "arm64", "arm-v7". */
char *al_platform_arch_tag(const al_platform *p, char *buf, size_t len);

/* The platform this binary runs on (uname machine; os "linux"). */
void al_platform_host(al_platform *out);

#endif
