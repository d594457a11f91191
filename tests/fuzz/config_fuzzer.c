/* Fuzz target for image configs: al_image_config_parse. Checks the limits,
 * that every diff_id kept is a valid digest, that a platform is present
 * only with os and architecture and is already normalised, and that
 * messages stay printable and bounded (configs come from registries). */
#include "fuzz-helpers.h"

#include "manifest.h"

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *buf = al_xmalloc(size ? size : 1);
    if (size > 0)
        memcpy(buf, data, size);

    al_image_config *c = NULL;
    al_error *err = NULL;
    int rc = al_image_config_parse(&c, buf, size, &err);
    if (rc < 0) {
        FUZZ_CHECK(c == NULL, "failure left a config");
        FUZZ_CHECK(err != NULL && err->code == rc, "failure %d without its error", rc);
        FUZZ_CHECK(rc == AL_E_PARSE || rc == AL_E_SIZE || rc == AL_E_UNSUPPORTED, "code %d", rc);
        FUZZ_CHECK(printable(err->msg) && strlen(err->msg) < 1024,
                   "message not printable or too long (%zu bytes)", strlen(err->msg));
        al_error_free(err);
        return 0;
    }
    FUZZ_CHECK(rc == 0 && c != NULL && err == NULL, "success without a config");
    FUZZ_CHECK(c->n_diff_ids <= AL_MANIFEST_MAX_LAYERS, "%zu diff_ids", c->n_diff_ids);
    for (size_t i = 0; i < c->n_diff_ids; i++)
        FUZZ_CHECK(al_digest_valid(c->diff_ids[i]), "invalid diff_id kept");
    if (c->has_platform) {
        const al_platform *p = &c->platform;
        FUZZ_CHECK(p->os[0] && p->arch[0], "platform without os or arch");
        FUZZ_CHECK(!strchr(p->os, '/') && !strchr(p->arch, '/') && !strchr(p->variant, '/'),
                   "'/' in a platform field");
        al_platform again;
        FUZZ_CHECK(al_platform_set(&again, p->os, p->arch, p->variant[0] ? p->variant : NULL),
                   "normalised platform refused");
        FUZZ_CHECK(al_platform_equal(&again, p), "normalising is not idempotent");
    }
    al_image_config_free(c);
    return 0;
}
