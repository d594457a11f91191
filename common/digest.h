/* Digests: validation of "sha256:<64 lowercase hex>" strings, and a
 * streaming SHA-256 (OpenSSL EVP) that also counts bytes. Only sha256 is
 * supported; a digest string is always validated before it becomes a path. */
#ifndef AL_DIGEST_H
#define AL_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define AL_DIGEST_HEX_LEN 64
#define AL_DIGEST_LEN (7 + AL_DIGEST_HEX_LEN) /* "sha256:" + hex */
#define AL_DIGEST_BUF (AL_DIGEST_LEN + 1)

/* True when s is exactly "sha256:" followed by 64 lowercase hex digits. */
bool al_digest_valid(const char *s);

/* Like al_digest_valid, but fills err (AL_E_PARSE, or AL_E_UNSUPPORTED for
 * a well-formed digest of another algorithm such as sha512) with the reason:
 * "invalid digest \"sha256:../x\": ...". */
int al_digest_check(const char *s, al_error **err);

/* Pointer to the hex part of a valid digest. */
const char *al_digest_hex(const char *digest);

/* Digest of a buffer, written to out (AL_DIGEST_BUF bytes). */
void al_digest_bytes(char out[AL_DIGEST_BUF], const void *buf, size_t len);

typedef struct al_hasher al_hasher;
al_hasher *al_hasher_new(void);
void al_hasher_update(al_hasher *h, const void *buf, size_t len);
/* Bytes fed so far. */
uint64_t al_hasher_size(const al_hasher *h);
/* Finish: out gets "sha256:<hex>". The hasher may be reset and reused after. */
void al_hasher_final(al_hasher *h, char out[AL_DIGEST_BUF]);
void al_hasher_reset(al_hasher *h);
/* Make dst hash what src has hashed so far (a resume point to go back
 * to). */
void al_hasher_copy(al_hasher *dst, const al_hasher *src);
void al_hasher_free(al_hasher *h);

#endif
