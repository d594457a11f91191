/* Fuzz target for the bundle manifest and volume header parsers
 * (common/bundle.c): the bytes as a manifest, then as a volume header.
 * Checks that what parses is well formed (valid digests and ids, parts
 * that add up, a checksum that matches) and survives a round trip to the
 * same bytes, and that every refusal's message is printable. */
#include "fuzz-helpers.h"

#include "bundle.h"

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

static void check_manifest(const al_bundle_manifest *m)
{
    FUZZ_CHECK(m->format >= 1 && m->format <= AL_BUNDLE_FORMAT, "format %d", m->format);
    FUZZ_CHECK(al_bundle_id_valid(m->id) && al_bundle_id_valid(m->source_store), "ids");
    FUZZ_CHECK(m->base[0] == '\0' || al_bundle_id_valid(m->base), "base id");
    FUZZ_CHECK(m->volumes >= 1, "volumes");
    char sum[AL_DIGEST_BUF];
    al_bundle_checksum(m, sum);
    FUZZ_CHECK(strcmp(sum, m->checksum) == 0, "checksum accepted but wrong");
    for (size_t i = 0; i < m->n_blobs; i++) {
        const al_bundle_blob *b = &m->blobs[i];
        FUZZ_CHECK(al_digest_valid(b->digest), "blob digest");
        uint64_t total = 0;
        for (size_t k = 0; k < b->n_parts; k++) {
            FUZZ_CHECK(al_digest_valid(b->parts[k].digest) && b->parts[k].size > 0, "part");
            total += b->parts[k].size;
        }
        FUZZ_CHECK(b->n_parts == 0 || total == b->size, "parts add up");
    }
    for (size_t i = 0; i < m->n_tags; i++)
        FUZZ_CHECK(printable(m->tags[i].name) && al_digest_valid(m->tags[i].digest), "tag");
    for (size_t i = 0; i < m->n_omitted; i++)
        FUZZ_CHECK(al_digest_valid(m->omitted[i].digest), "omitted digest");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    al_bundle_manifest m;
    al_error *err = NULL;
    if (al_bundle_manifest_parse(&m, (const char *)data, size, &err) == 0) {
        check_manifest(&m);
        size_t len = 0;
        char *text = al_bundle_manifest_json(&m, &len);
        al_bundle_manifest back;
        FUZZ_CHECK(al_bundle_manifest_parse(&back, text, len, NULL) == 0, "own output refused");
        char *again = al_bundle_manifest_json(&back, NULL);
        FUZZ_CHECK(strcmp(text, again) == 0, "round trip changed the manifest");
        free(again);
        free(text);
        al_bundle_manifest_dispose(&back);
        al_bundle_manifest_dispose(&m);
    } else {
        FUZZ_CHECK(err != NULL && printable(err->msg), "message not printable");
        al_error_clear(&err);
    }
    al_bundle_volume v;
    if (al_bundle_volume_parse(&v, (const char *)data, size, &err) == 0) {
        FUZZ_CHECK(v.volume >= 1 && v.volume <= v.volumes && v.volumes >= 1, "numbers");
        FUZZ_CHECK(al_bundle_id_valid(v.bundle_id), "id");
        for (size_t i = 0; i < v.n_members; i++)
            FUZZ_CHECK(al_digest_valid(v.members[i].digest), "member digest");
        al_bundle_volume_dispose(&v);
    } else {
        FUZZ_CHECK(err != NULL && printable(err->msg), "message not printable");
        al_error_clear(&err);
    }
    return 0;
}
