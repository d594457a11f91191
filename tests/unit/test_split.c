/* Unit tests of --split image's names and state (split.c) and of --since's
 * readers (since.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "since.h"
#include "split.h"
#include "test-helpers.h"
#include "util.h"

#define D1 "sha256:1f2e3d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef"
#define D2 "sha256:9a8b7c6d5e4f30210123456789abcdef0123456789abcdef0123456789abcdef"

static al_export_image image(char *name, char *tag, const char *digest)
{
    al_export_image im;
    memset(&im, 0, sizeof(im));
    im.name = name;
    im.tag = tag;
    im.ref = tag ? al_xasprintf("%s:%s", name, tag) : al_xasprintf("%s@%s", name, digest);
    snprintf(im.manifest_digest, sizeof(im.manifest_digest), "%s", digest);
    snprintf(im.root_digest, sizeof(im.root_digest), "%s", digest);
    return im;
}

static void test_names(void **state)
{
    (void)state;
    al_export_image a = image("docker.io/rancher/mirrored-pause", "3.6", D1);
    char *n = al_split_name(&a, ".tar.zst");
    assert_string_equal("docker.io_rancher_mirrored-pause_3.6@1f2e3d4c5b6a.tar.zst", n);
    assert_true(al_split_is_ours(n));
    free(n);
    al_export_image b = image("127.0.0.1:5000/x/y", NULL, D2);
    n = al_split_name(&b, ".tar");
    assert_string_equal("127.0.0.1_5000_x_y@9a8b7c6d5e4f.tar", n);
    assert_true(al_split_is_ours(n));
    free(n);
    static const char *not_ours[] = {
        "airlock-amd64.tar.zst",
        "x@1f2e3d4c5b6a.tar.xz",
        "x@1F2E3D4C5B6A.tar",
        "x@1f2e3d4c5b6.tar",
        "@1f2e3d4c5b6a.tar",
        "a b@1f2e3d4c5b6a.tar",
        "x@1f2e3d4c5b6a.tar.zst.partial",
        ".airlock-split.json",
    };
    for (size_t i = 0; i < sizeof(not_ours) / sizeof(*not_ours); i++)
        assert_false(al_split_is_ours(not_ours[i]));
    /* The recipe changes with what changes the bytes, and only with that. */
    char r1[AL_DIGEST_BUF], r2[AL_DIGEST_BUF];
    al_split_recipe(r1, &a, AL_FORMAT_HYBRID, false, AL_SINK_ZSTD, 3);
    al_split_recipe(r2, &a, AL_FORMAT_HYBRID, false, AL_SINK_ZSTD, 3);
    assert_string_equal(r1, r2);
    al_split_recipe(r2, &a, AL_FORMAT_HYBRID, false, AL_SINK_ZSTD, 19);
    assert_string_not_equal(r1, r2);
    al_split_recipe(r2, &a, AL_FORMAT_DOCKER, false, AL_SINK_ZSTD, 3);
    assert_string_not_equal(r1, r2);
    al_split_recipe(r1, &a, AL_FORMAT_OCI, false, AL_SINK_PLAIN, 3);
    al_split_recipe(r2, &a, AL_FORMAT_OCI, true, AL_SINK_PLAIN, 9); /* neither matters here */
    assert_string_equal(r1, r2);
    free(a.ref);
    free(b.ref);
}

static void test_state(void **state)
{
    (void)state;
    char *dir = th_mkdtemp();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    const char *file = "x@1f2e3d4c5b6a.tar";
    _cleanup_free_ char *path = al_xasprintf("%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    fputs("archive", f);
    fclose(f);
    struct stat st;
    assert_int_equal(0, stat(path, &st));
    al_split_state s;
    al_split_state_load(&s, dfd); /* none yet: empty */
    assert_int_equal(0, s.n);
    assert_false(al_split_unchanged(&s, dfd, file, D1));
    al_split_state_set(&s, file, "docker.io/library/x:1", D1, &st);
    assert_int_equal(0, al_split_state_save(&s, dir, NULL));
    al_split_state_dispose(&s);

    al_split_state_load(&s, dfd);
    assert_int_equal(1, s.n);
    assert_true(al_split_unchanged(&s, dfd, file, D1));
    assert_false(al_split_unchanged(&s, dfd, file, D2)); /* another recipe */
    /* Touched: same size, another mtime. */
    struct timespec ts[2] = {{0, UTIME_OMIT}, {1000, 0}};
    assert_int_equal(0, utimensat(dfd, file, ts, 0));
    assert_false(al_split_unchanged(&s, dfd, file, D1));
    /* Replaced by another inode with the same size and mtime. */
    assert_int_equal(0, stat(path, &st));
    al_split_state_set(&s, file, "docker.io/library/x:1", D1, &st);
    assert_true(al_split_unchanged(&s, dfd, file, D1));
    _cleanup_free_ char *other = al_xasprintf("%s/other", dir);
    f = fopen(other, "w");
    fputs("ARCHIVE", f);
    fclose(f);
    assert_int_equal(0, utimensat(AT_FDCWD, other, ts, 0));
    assert_int_equal(0, rename(other, path));
    assert_false(al_split_unchanged(&s, dfd, file, D1));
    al_split_state_remove(&s, file);
    assert_int_equal(0, s.n);
    al_split_state_dispose(&s);
    close(dfd);
    th_rm_rf(dir);
    free(dir);
}

static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *p = al_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_since(void **state)
{
    (void)state;
    char *dir = th_mkdtemp();
    al_since s;
    al_error *err = NULL;

    _cleanup_free_ char *lock =
        write_tmp(dir, "night.lock",
                  "# airlock-fetch lock file\nbusybox:1.36@" D1 "\n# FAILED x:1: gone\n"
                  "quay.io/a/b@" D2 "\n");
    assert_int_equal(0, al_since_load(&s, lock, &err));
    assert_string_equal("lock", s.kind);
    assert_true(al_since_holds(&s, "docker.io/library/busybox:1.36", D1));
    assert_false(al_since_holds(&s, "docker.io/library/busybox:1.37", D1)); /* another name */
    assert_false(al_since_holds(&s, "docker.io/library/busybox:1.36", D2));
    assert_true(al_since_holds(&s, "quay.io/a/b", D2));
    al_since_dispose(&s);

    _cleanup_free_ char *list = write_tmp(dir, "list.txt", "busybox:1.36\n");
    assert_int_equal(AL_E_USAGE, al_since_load(&s, list, &err));
    assert_non_null(strstr(err->msg, "list.txt:1"));
    assert_non_null(strstr(err->msg, "has no digest"));
    al_error_clear(&err);

    _cleanup_free_ char *report = write_tmp(
        dir, "report.json",
        "{\"tool\": \"airlock-export\", \"outputs\": [], \"images\": ["
        "{\"name\": \"docker.io/library/x:1\", \"status\": \"exported\", \"root_digest\": \"" D1
        "\", \"manifest_digest\": null},"
        "{\"name\": \"docker.io/library/y:1\", \"status\": \"failed\", \"root_digest\": \"" D2
        "\"}], \"skipped\": [{\"name\": \"docker.io/library/z:1\", \"why\": \"since\", "
        "\"root_digest\": \"" D2 "\", \"manifest_digest\": \"" D1 "\"}]}");
    assert_int_equal(0, al_since_load(&s, report, &err));
    assert_string_equal("report", s.kind);
    assert_true(al_since_holds(&s, "docker.io/library/x:1", D1));
    assert_false(al_since_holds(&s, "docker.io/library/y:1", D2)); /* failed: not carried */
    assert_true(al_since_holds(&s, "docker.io/library/z:1", D2));
    assert_true(al_since_holds(&s, "docker.io/library/z:1", D1));
    al_since_dispose(&s);

    _cleanup_free_ char *inv =
        write_tmp(dir, "inventory.json",
                  "{\"tags\": [{\"name\": \"docker.io/library/x:1\", \"digest\": \"" D1
                  "\", \"complete\": true}, {\"name\": \"docker.io/library/y:1\", \"digest\": \"" D2
                  "\", \"complete\": false}]}");
    assert_int_equal(0, al_since_load(&s, inv, &err));
    assert_string_equal("inventory", s.kind);
    assert_true(al_since_holds(&s, "docker.io/library/x:1", D1));
    assert_false(al_since_holds(&s, "docker.io/library/y:1", D2)); /* incomplete there */
    al_since_dispose(&s);

    _cleanup_free_ char *other = write_tmp(dir, "other.json", "{\"hello\": 1}");
    assert_int_equal(AL_E_USAGE, al_since_load(&s, other, &err));
    assert_non_null(strstr(err->msg, "a JSON file airlock does not know"));
    al_error_clear(&err);
    th_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_since),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
