/* Fuzz target for docker's config.json: al_creds_parse_docker_config on a
 * fresh al_creds made from an empty DOCKER_CONFIG directory (so that no
 * file of the machine is read). Checks, for JSON that jansson accepts,
 * that every "auths" entry with usable credentials can be looked up under
 * its own key, and that a failure message never contains a secret. */
#include "fuzz-helpers.h"

#include <jansson.h>
#include <unistd.h>

#include "credentials.h"

#define ORIGIN "fuzz-config.json"

static char empty_dir[] = "/tmp/airlock-fuzz-XXXXXX";

static void remove_empty_dir(void)
{
    rmdir(empty_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (mkdtemp(empty_dir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_empty_dir);
    setenv("DOCKER_CONFIG", empty_dir, 1);
    unsetenv("REGISTRY_AUTH_FILE"); /* no credentials but the input */
    unsetenv("XDG_RUNTIME_DIR");
    return 0;
}

/* The fixed text of the parser's messages, which a short secret may
 * happen to match. */
static const char *const fixed_texts[] = {
    ORIGIN ": auths entry for \"",
    "\" has an invalid \"auth\" value",
    ORIGIN ": \"auths\" is not an object",
    ORIGIN ": not a JSON object",
};

/* A failure message names the entry's key, and nothing else of the input
 * (the JSON is valid here, so no parser excerpt). With each quoted key
 * blanked out, no "auth" or "password" string long enough not to match by
 * chance may remain in it. */
static void check_no_secret(const json_t *auths, const char *msg)
{
    size_t len = strlen(msg);
    _cleanup_free_ char *masked = al_xstrdup(msg);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)auths, key, val)
    {
        _cleanup_free_ char *quoted = al_xasprintf("\"%.200s\"", key);
        char *at = memmem(masked, len, quoted, strlen(quoted));
        if (at != NULL)
            memset(at, 0, strlen(quoted));
    }
    json_object_foreach((json_t *)auths, key, val)
    {
        const char *secrets[] = {json_string_value(json_object_get(val, "auth")),
                                 json_string_value(json_object_get(val, "password"))};
        for (size_t i = 0; i < AL_ARRAY_SIZE(secrets); i++) {
            if (secrets[i] == NULL || strlen(secrets[i]) < 8 ||
                memmem(masked, len, secrets[i], strlen(secrets[i])) == NULL)
                continue;
            bool fixed = false;
            for (size_t k = 0; k < AL_ARRAY_SIZE(fixed_texts) && !fixed; k++)
                fixed = strstr(fixed_texts[k], secrets[i]) != NULL;
            FUZZ_CHECK(fixed, "message shows a secret: %s", msg);
        }
    }
}

/* Every entry that the parser must have kept is found under its key. */
static void check_lookups(al_creds *c, const json_t *auths)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)auths, key, val)
    {
        if (!json_is_object(val))
            continue;
        const char *auth = json_string_value(json_object_get(val, "auth"));
        const char *u = json_string_value(json_object_get(val, "username"));
        const char *p = json_string_value(json_object_get(val, "password"));
        if (!(auth != NULL && *auth != '\0') && !(u != NULL && p != NULL))
            continue;
        const al_cred *cr = NULL;
        FUZZ_CHECK(al_creds_get(c, key, &cr, NULL) == 0 && cr != NULL, "no credentials for \"%s\"",
                   key);
        FUZZ_CHECK(cr->user != NULL && cr->password != NULL, "lookup gave NULL strings");
        _cleanup_free_ char *h = al_creds_basic_header(cr->user, cr->password);
        FUZZ_CHECK(strncmp(h, "Basic ", 6) == 0 && strlen(h) > 6, "header \"%s\"", h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly `size` bytes: the parser takes a length, not a string. */
    _cleanup_free_ char *buf = al_xmalloc(size ? size : 1);
    if (size > 0)
        memcpy(buf, data, size);

    al_creds *c = NULL;
    al_error *err = NULL;
    if (al_creds_new(&c, NULL, NULL, NULL, &err) < 0) {
        fprintf(stderr, "al_creds_new: %s\n", err ? err->msg : "?");
        abort();
    }
    int rc = al_creds_parse_docker_config(c, buf, size, ORIGIN, &err);

    json_t *root = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *auths = json_is_object(root) ? json_object_get(root, "auths") : NULL;
    if (rc < 0) {
        FUZZ_CHECK(err != NULL && err->code == AL_E_USAGE && rc == AL_E_USAGE, "code %d", rc);
        FUZZ_CHECK(strncmp(err->msg, ORIGIN, strlen(ORIGIN)) == 0, "message \"%s\"", err->msg);
        if (json_is_object(auths))
            check_no_secret(auths, err->msg);
        al_error_free(err);
    } else {
        FUZZ_CHECK(err == NULL, "success with an error");
        FUZZ_CHECK(root != NULL, "JSON that jansson refuses was accepted");
        /* With a credential helper named, lookups would run programs:
         * not in a fuzzer. Without one, lookups are pure. */
        bool helpers = json_object_get(root, "credsStore") != NULL ||
                       json_object_get(root, "credHelpers") != NULL;
        if (json_is_object(auths) && !helpers)
            check_lookups(c, auths);
        /* No command-line credentials, no default file: a made-up host has none. */
        const al_cred *cr = NULL;
        if (!helpers && (auths == NULL || json_object_size(auths) == 0))
            FUZZ_CHECK(al_creds_get(c, "fuzz.invalid", &cr, NULL) == 0 && cr == NULL,
                       "credentials from nowhere");
    }
    json_decref(root);
    al_creds_free(c);
    return 0;
}
