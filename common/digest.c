/* Digests: validation of sha256 strings and streaming SHA-256 (see digest.h). */
#include "digest.h"
#include "util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool al_digest_valid(const char *s)
{
    if (s == NULL || strncmp(s, "sha256:", 7) != 0)
        return false;
    for (size_t i = 0; i < AL_DIGEST_HEX_LEN; i++)
        if (!is_lower_hex(s[7 + i]))
            return false;
    return s[AL_DIGEST_LEN] == '\0';
}

/* The first 80 bytes of s, with anything but printable ASCII as '?'. A
 * digest comes from a registry's JSON, and its bytes must not reach the
 * user's terminal as escape sequences. */
#define SHOWN_MAX 80
static const char *shown(char out[SHOWN_MAX + 1], const char *s)
{
    size_t n = strnlen(s, SHOWN_MAX);
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[n] = '\0';
    return out;
}

int al_digest_check(const char *s, al_error **err)
{
    if (s == NULL || *s == '\0')
        return al_error_set(err, AL_E_PARSE, 0, "invalid digest \"\": empty");
    if (al_digest_valid(s))
        return 0;
    char buf[SHOWN_MAX + 1];
    const char *q = shown(buf, s);
    const char *colon = strchr(s, ':');
    if (colon == NULL)
        return al_error_set(err, AL_E_PARSE, 0, "invalid digest \"%s\": missing algorithm", q);
    size_t alg_len = (size_t)(colon - s);
    if (alg_len != 6 || strncmp(s, "sha256", 6) != 0) {
        /* OCI algorithm grammar: [a-z0-9]+([+._-][a-z0-9]+)* */
        bool well_formed = alg_len > 0;
        for (size_t i = 0; i < alg_len; i++)
            if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
                  strchr("+._-", s[i])))
                well_formed = false;
        if (well_formed && (strncmp(s, "sha512:", 7) == 0 || strncmp(s, "sha384:", 7) == 0))
            return al_error_set(
                err, AL_E_UNSUPPORTED, 0,
                "unsupported digest algorithm \"%.*s\" in \"%s\": only sha256 is supported",
                (int)alg_len, s, q);
        return al_error_set(err, AL_E_PARSE, 0, "invalid digest \"%s\": algorithm must be sha256",
                            q);
    }
    const char *hex = colon + 1;
    size_t n = strlen(hex);
    for (size_t i = 0; i < n; i++) {
        if (hex[i] >= 'A' && hex[i] <= 'F')
            return al_error_set(err, AL_E_PARSE, 0, "invalid digest \"%s\": hex must be lowercase",
                                q);
        if (!is_lower_hex(hex[i]))
            return al_error_set(err, AL_E_PARSE, 0,
                                "invalid digest \"%s\": '%c' is not a hex digit", q,
                                hex[i] >= 32 && hex[i] < 127 ? hex[i] : '?');
    }
    return al_error_set(err, AL_E_PARSE, 0,
                        "invalid digest \"%s\": sha256 needs 64 hex digits, got %zu", q, n);
}

const char *al_digest_hex(const char *digest)
{
    return digest + 7;
}

struct al_hasher {
    EVP_MD_CTX *ctx;
    uint64_t size;
};

al_hasher *al_hasher_new(void)
{
    al_hasher *h = al_xcalloc(1, sizeof(*h));
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL)
        abort();
    al_hasher_reset(h);
    return h;
}

void al_hasher_reset(al_hasher *h)
{
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        abort();
    h->size = 0;
}

void al_hasher_update(al_hasher *h, const void *buf, size_t len)
{
    if (len == 0)
        return;
    if (EVP_DigestUpdate(h->ctx, buf, len) != 1)
        abort();
    h->size += len;
}

uint64_t al_hasher_size(const al_hasher *h)
{
    return h->size;
}

void al_hasher_final(al_hasher *h, char out[AL_DIGEST_BUF])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != 32)
        abort();
    static const char hexd[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++) {
        out[7 + 2 * i] = hexd[md[i] >> 4];
        out[7 + 2 * i + 1] = hexd[md[i] & 15];
    }
    out[AL_DIGEST_LEN] = '\0';
    al_hasher_reset(h);
}

void al_hasher_copy(al_hasher *dst, const al_hasher *src)
{
    if (EVP_MD_CTX_copy_ex(dst->ctx, src->ctx) != 1)
        abort();
    dst->size = src->size;
}

void al_hasher_free(al_hasher *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void al_digest_bytes(char out[AL_DIGEST_BUF], const void *buf, size_t len)
{
    al_hasher *h = al_hasher_new();
    al_hasher_update(h, buf, len);
    al_hasher_final(h, out);
    al_hasher_free(h);
}
