/* fetch/stage: blobs made durable in groups on worker threads. Many blobs
 * staged at once share directory fsyncs; each owner is told only once its
 * file is in blobs/sha256 (and the digest is no longer pending then); a
 * blob that fails its digest leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "engine.h"
#include "stage.h"
#include "store.h"
#include "test-helpers.h"
#include "util.h"
#include "worker.h"

enum { N = 40 };

typedef struct {
    char *tmp;
    al_store *store;
    al_engine *engine;
    al_worker *worker;
    al_stage *stage;
} fixture;

typedef struct {
    fixture *f;
    char digest[AL_DIGEST_BUF];
    bool done;
    bool present_at_done; /* the file was in blobs/sha256 when the owner heard */
    bool pending_at_done;
    al_errc code;
} owner;

static int setup(void **state)
{
    fixture *f = al_xcalloc(1, sizeof(*f));
    f->tmp = th_mkdtemp();
    al_error *err = NULL;
    char *dir = al_xasprintf("%s/store", f->tmp);
    if (al_store_open(&f->store, dir, AL_STORE_WRITE, &err) != 0)
        fail_msg("al_store_open: %s", err->msg);
    free(dir);
    al_engine_opts o;
    al_engine_opts_default(&o);
    assert_int_equal(al_engine_new(&f->engine, &o, &err), 0);
    f->worker = al_worker_new(f->engine, 2);
    f->stage = al_stage_new(f->store, f->engine, f->worker);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    al_worker_free(f->worker);
    al_stage_free(f->stage);
    al_engine_free(f->engine);
    al_store_free(f->store);
    th_rm_rf(f->tmp);
    free(f->tmp);
    free(f);
    return 0;
}

static void on_done(void *user, al_error *err)
{
    owner *o = user;
    o->done = true;
    o->present_at_done = al_store_has_blob(o->f->store, o->digest, NULL);
    o->pending_at_done = al_stage_pending(o->f->stage, o->digest);
    o->code = err ? err->code : AL_OK;
    al_error_free(err);
}

static size_t tmp_entries(fixture *f)
{
    char *dir = al_xasprintf("%s/store/tmp", f->tmp);
    DIR *d = opendir(dir);
    free(dir);
    size_t n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static void test_groups(void **state)
{
    fixture *f = *state;
    static owner os[N];
    char body[N][32];
    for (int i = 0; i < N; i++) {
        os[i] = (owner){.f = f};
        snprintf(body[i], sizeof(body[i]), "blob number %d", i);
        al_digest_bytes(os[i].digest, body[i], strlen(body[i]));
        al_stage_buffer(f->stage, os[i].digest, body[i], strlen(body[i]), on_done, &os[i]);
        assert_true(al_stage_pending(f->stage, os[i].digest));
        assert_false(os[i].done);
    }
    al_engine_run(f->engine);
    for (int i = 0; i < N; i++) {
        assert_true(os[i].done);
        assert_int_equal(os[i].code, AL_OK);
        assert_true(os[i].present_at_done);
        assert_false(os[i].pending_at_done);
    }
    /* Blobs published while a directory fsync ran waited for the next:
     * fewer fsyncs of blobs/sha256 than blobs. */
    size_t groups = al_stage_groups(f->stage);
    assert_true(groups >= 1);
    assert_true(groups < N);
    assert_int_equal(tmp_entries(f), 0);
}

static void test_bad_digest(void **state)
{
    fixture *f = *state;
    owner o = {.f = f};
    al_digest_bytes(o.digest, "something else", 14);
    al_stage_buffer(f->stage, o.digest, "a body", 6, on_done, &o);
    al_engine_run(f->engine);
    assert_true(o.done);
    assert_int_equal(o.code, AL_E_DIGEST);
    assert_false(o.present_at_done);
    assert_false(al_stage_pending(f->stage, o.digest));
    assert_int_equal(tmp_entries(f), 0);
    assert_int_equal(al_stage_groups(f->stage), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_digest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
