/* Fuzz target for WWW-Authenticate headers: al_challenge_parse. Checks the
 * header's promises (a Bearer challenge has a realm; a failure leaves
 * nothing behind) and that the parameters survive a round trip: written
 * back as quoted strings, with '"' and '\' escaped, they parse to the same
 * values. */
#include "fuzz-helpers.h"

#include "challenge.h"

#define MAX_HEADER 8192

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Append `name="value"` (escaped) to the header being built. */
static size_t put_param(char *out, size_t pos, const char *name, const char *value)
{
    if (value == NULL)
        return pos;
    pos += (size_t)sprintf(out + pos, ",%s=\"", name);
    for (const char *v = value; *v; v++) {
        if (*v == '"' || *v == '\\')
            out[pos++] = '\\';
        out[pos++] = *v;
    }
    out[pos++] = '"';
    out[pos] = '\0';
    return pos;
}

static void check_round_trip(const al_challenge *c)
{
    size_t need = 32;
    const char *vals[] = {c->realm, c->service, c->scope};
    for (size_t i = 0; i < AL_ARRAY_SIZE(vals); i++)
        need += vals[i] ? 2 * strlen(vals[i]) + 16 : 0;
    _cleanup_free_ char *h = al_xmalloc(need);
    size_t pos = (size_t)sprintf(h, "%s ", c->scheme == AL_AUTH_SCHEME_BEARER ? "Bearer" : "Basic");
    pos = put_param(h, pos, "realm", c->realm);
    pos = put_param(h, pos, "service", c->service);
    pos = put_param(h, pos, "scope", c->scope);
    if (pos > MAX_HEADER)
        return;
    al_challenge again;
    al_error *err = NULL;
    int rc = al_challenge_parse(&again, h, &err);
    FUZZ_CHECK(rc == 0, "rebuilt header \"%s\" fails: %s", h, err ? err->msg : "?");
    FUZZ_CHECK(again.scheme == c->scheme && str_eq(again.realm, c->realm) &&
                   str_eq(again.service, c->service) && str_eq(again.scope, c->scope),
               "rebuilt header \"%s\" parses differently", h);
    al_challenge_dispose(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *s = fuzz_cstr(data, size);
    al_challenge c;
    al_error *err = NULL;
    int rc = al_challenge_parse(&c, s, &err);
    if (rc < 0) {
        FUZZ_CHECK(err != NULL && err->code == rc, "failure %d without its error", rc);
        FUZZ_CHECK(rc == AL_E_PARSE || rc == AL_E_AUTH, "code %d", rc);
        FUZZ_CHECK(c.scheme == 0 && !c.realm && !c.service && !c.scope, "failure left fields set");
        al_error_free(err);
        return 0;
    }
    FUZZ_CHECK(err == NULL, "success with an error");
    FUZZ_CHECK(c.scheme == AL_AUTH_SCHEME_BASIC || c.scheme == AL_AUTH_SCHEME_BEARER, "scheme %d",
               c.scheme);
    FUZZ_CHECK(c.scheme != AL_AUTH_SCHEME_BEARER || (c.realm && *c.realm), "Bearer without realm");
    check_round_trip(&c);
    al_challenge_dispose(&c);
    al_challenge_dispose(&c); /* dispose leaves a reusable, empty struct */
    return 0;
}
