/* Fuzz target for platform lists: al_platform_parse_list. Checks that the
 * result has no duplicates, that each entry is normalised and printed in a
 * form al_platform_parse reads back to the same entry, that the printed
 * list parses to the same list, and that a string al_platform_parse
 * accepts is a one-entry list. */
#include "fuzz-helpers.h"

#include "platform.h"

static bool part_ok(const char *s, bool allow_empty)
{
    if (*s == '\0')
        return allow_empty;
    if (*s == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '.'))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *s = fuzz_cstr(data, size);
    _cleanup_free_ al_platform *list = NULL;
    size_t n = 0;
    al_error *err = NULL;
    int rc = al_platform_parse_list(&list, &n, s, &err);

    al_platform single;
    al_error *serr = NULL;
    if (al_platform_parse(&single, s, &serr) == 0) {
        FUZZ_CHECK(rc == 0 && n == 1 && al_platform_equal(&list[0], &single),
                   "\"%s\" parses alone but not as a list", s);
    }
    al_error_free(serr);

    if (rc < 0) {
        FUZZ_CHECK(list == NULL && n == 0, "failure left a list");
        FUZZ_CHECK(err != NULL && err->code == AL_E_USAGE && rc == AL_E_USAGE, "code %d", rc);
        FUZZ_CHECK(strlen(err->msg) < 512, "message of %zu bytes", strlen(err->msg));
        al_error_free(err);
        return 0;
    }
    FUZZ_CHECK(err == NULL && list != NULL && n >= 1, "success without entries");

    size_t cap = n * 96 + 1;
    _cleanup_free_ char *joined = al_xmalloc(cap);
    joined[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const al_platform *p = &list[i];
        FUZZ_CHECK(part_ok(p->os, false) && part_ok(p->arch, false) && part_ok(p->variant, true),
                   "entry %zu has a bad part", i);
        for (size_t k = 0; k < i; k++)
            FUZZ_CHECK(!al_platform_equal(p, &list[k]), "duplicate entry %zu", i);

        char buf[96];
        al_platform_format(p, buf, sizeof(buf));
        al_platform again;
        al_error *aerr = NULL;
        FUZZ_CHECK(al_platform_parse(&again, buf, &aerr) == 0, "\"%s\" does not parse: %s", buf,
                   aerr ? aerr->msg : "?");
        FUZZ_CHECK(al_platform_equal(&again, p), "\"%s\" parses to another platform", buf);

        char tag[64];
        al_platform_arch_tag(p, tag, sizeof(tag));
        FUZZ_CHECK(strchr(tag, '/') == NULL && tag[0] != '.', "arch tag \"%s\"", tag);
        strcat(joined, i ? "," : "");
        strcat(joined, buf);
    }

    _cleanup_free_ al_platform *list2 = NULL;
    size_t n2 = 0;
    FUZZ_CHECK(al_platform_parse_list(&list2, &n2, joined, NULL) == 0 && n2 == n,
               "printed list \"%s\" parses differently", joined);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(al_platform_equal(&list[i], &list2[i]), "entry %zu changes on reparse", i);
    return 0;
}
