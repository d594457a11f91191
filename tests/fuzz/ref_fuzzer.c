/* Fuzz target for the reference parser: al_ref_parse, then the printers on
 * success. Beyond crashes it checks that printing is a fixed point of
 * parsing: the full form parses back to the same ref, and so does the
 * familiar form, which users and docker-save tarballs see. */
#include "fuzz-helpers.h"

#include "digest.h"
#include "ref.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN 128
/* Messages quote at most 100 bytes of the input; anything near this
 * bound echoes input it should have cut. */
#define MSG_MAX_LEN 600

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* Parse `s` again and compare with `r` field by field. */
static void check_reparses(const al_ref *r, const char *s, const char *what)
{
    al_ref *again = NULL;
    al_error *err = NULL;
    int rc = al_ref_parse(&again, s, &err);
    FUZZ_CHECK(rc == 0, "%s form \"%s\" does not parse: %s", what, s, err ? err->msg : "?");
    FUZZ_CHECK(str_eq(again->domain, r->domain) && str_eq(again->path, r->path) &&
                   str_eq(again->tag, r->tag) && str_eq(again->digest, r->digest),
               "%s form \"%s\" parses to %s/%s:%s@%s, not %s/%s:%s@%s", what, s, again->domain,
               again->path, again->tag ? again->tag : "-", again->digest ? again->digest : "-",
               r->domain, r->path, r->tag ? r->tag : "-", r->digest ? r->digest : "-");
    al_ref_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *s = fuzz_cstr(data, size);
    al_ref *r = NULL;
    al_error *err = NULL;
    int rc = al_ref_parse(&r, s, &err);
    if (rc < 0) {
        FUZZ_CHECK(r == NULL, "failure left a ref");
        FUZZ_CHECK(err != NULL && err->code == AL_E_USAGE && rc == AL_E_USAGE, "failure code %d",
                   rc);
        FUZZ_CHECK(printable(err->msg) && strlen(err->msg) < MSG_MAX_LEN,
                   "message not printable or too long (%zu bytes)", strlen(err->msg));
        al_error_free(err);
        return 0;
    }
    FUZZ_CHECK(rc == 0 && r != NULL && err == NULL, "success without a ref, rc %d", rc);
    FUZZ_CHECK(r->domain && *r->domain && r->path && *r->path, "empty domain or path");
    FUZZ_CHECK(r->tag != NULL || r->digest != NULL, "neither tag nor digest");
    FUZZ_CHECK(r->tag == NULL || (*r->tag && strlen(r->tag) <= TAG_MAX_LEN), "bad tag length");
    FUZZ_CHECK(r->digest == NULL || al_digest_valid(r->digest), "invalid digest kept");

    _cleanup_free_ char *name = al_ref_name(r);
    FUZZ_CHECK(strlen(name) <= NAME_MAX_LEN, "name of %zu characters", strlen(name));
    _cleanup_free_ char *full = al_ref_full(r);
    FUZZ_CHECK(strncmp(full, name, strlen(name)) == 0, "full \"%s\" does not start with the name",
               full);
    check_reparses(r, full, "full");
    _cleanup_free_ char *familiar = al_ref_familiar(r);
    check_reparses(r, familiar, "familiar");

    /* A normalised ref is its own normal form. */
    al_ref *dup = al_ref_dup(r);
    _cleanup_free_ char *full_dup = al_ref_full(dup);
    FUZZ_CHECK(strcmp(full, full_dup) == 0, "dup prints \"%s\", not \"%s\"", full_dup, full);
    al_ref_free(dup);

    const char *host = al_ref_endpoint_host(r);
    FUZZ_CHECK(host != NULL && *host != '\0', "empty endpoint host");
    al_ref_free(r);
    return 0;
}
