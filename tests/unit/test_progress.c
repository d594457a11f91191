/* fetch/progress: the terminal display (bytes, rate, ETA, active
 * transfers, at most ten frames a second), plain lines without control
 * characters, and quiet. Driven by hand-made engine events and a fake
 * clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "util.h"

static double fake_now;
static double fake_clock(void)
{
    return fake_now;
}

static al_request *blob_req(const char *repo, const char *seed, int64_t size)
{
    char d[AL_DIGEST_BUF];
    al_digest_bytes(d, seed, strlen(seed));
    char *url = al_xasprintf("http://r:5000/v2/%s/blobs/%s", repo, d);
    al_request *r = al_request_new(url);
    free(url);
    r->blob_download = true;
    snprintf(r->blob_digest, sizeof(r->blob_digest), "%s", d);
    r->blob_size = size;
    return r;
}

typedef struct capture {
    char *buf;
    size_t len;
    FILE *f;
} capture;

static void cap_open(capture *c)
{
    memset(c, 0, sizeof(*c));
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
}

static void cap_close(capture *c)
{
    fclose(c->f);
    free(c->buf);
}

static size_t occurrences(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void ev(al_progress *p, al_xfer_event e, al_request *r, uint64_t have)
{
    al_progress_on_event(p, e, r, have);
}

static void test_format_eta(void **state)
{
    (void)state;
    static const struct {
        double s;
        const char *want;
    } cases[] = {
        {0, "0s"},       {0.2, "1s"},     {1, "1s"},    {59, "59s"},
        {59.5, "1:00"},  {60, "1:00"},    {65, "1:05"}, {3599, "59:59"},
        {3600, "1h00m"}, {7500, "2h05m"}, {-1, "--"},   {1e12, "--"},
    };
    char buf[32];
    for (size_t i = 0; i < AL_ARRAY_SIZE(cases); i++)
        assert_string_equal(al_progress_format_eta(buf, sizeof(buf), cases[i].s), cases[i].want);
}

static void test_mode_for(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(al_progress_mode_for(fds[1]), AL_PROGRESS_PLAIN);
    close(fds[0]);
    close(fds[1]);
}

static void test_off_attaches_nothing(void **state)
{
    (void)state;
    al_engine_opts o;
    al_engine_opts_default(&o);
    al_progress *p = al_progress_new(AL_PROGRESS_OFF, stderr, "t", false);
    al_progress_attach(p, &o);
    assert_null(o.progress);
    al_progress_free(p);
    p = al_progress_new(AL_PROGRESS_PLAIN, stderr, "t", false);
    al_progress_attach(p, &o);
    assert_non_null(o.progress);
    assert_ptr_equal(o.progress_user, p);
    al_progress_free(p);
}

static void test_tty_display(void **state)
{
    (void)state;
    capture c;
    cap_open(&c);
    al_progress *p = al_progress_new(AL_PROGRESS_TTY, c.f, "t", false);
    al_progress_set_clock(p, fake_clock);
    al_progress_set_width(p, 120);
    al_request *a = blob_req("library/big", "a", 100000000);
    al_request *b = blob_req("library/big", "b", 20000000);
    fake_now = 10.0;
    ev(p, AL_XFER_QUEUED, a, 0);
    ev(p, AL_XFER_QUEUED, b, 0);
    ev(p, AL_XFER_START, a, 0);
    ev(p, AL_XFER_TICK, NULL, 0);
    fflush(c.f);
    assert_non_null(strstr(c.buf, "0 B / 120.0 MB (0%)"));
    assert_non_null(strstr(c.buf, "--/s  ETA --"));
    assert_non_null(strstr(c.buf, "0 of 2 blobs"));
    assert_non_null(strstr(c.buf, "  library/big "));
    assert_int_equal(occurrences(c.buf, "\033[J"), 1);

    /* 50 ms later: no new frame (ten a second at most). */
    fake_now = 10.05;
    ev(p, AL_XFER_DATA, a, 5000000);
    ev(p, AL_XFER_TICK, NULL, 0);
    fflush(c.f);
    assert_int_equal(occurrences(c.buf, "\033[J"), 1);

    /* One second at 10 MB/s: rate and ETA appear. */
    for (int i = 1; i <= 10; i++) {
        fake_now = 10.0 + 0.1 * i;
        ev(p, AL_XFER_DATA, a, (uint64_t)i * 1000000);
        ev(p, AL_XFER_TICK, NULL, 0);
    }
    fflush(c.f);
    assert_true(occurrences(c.buf, "\033[J") >= 9);
    const char *last = c.buf;
    for (const char *q; (q = strstr(last + 1, "MB / 120.0 MB")) != NULL;)
        last = q;
    assert_non_null(strstr(last, "(8%)  10.0 MB/s  ETA 11s"));
    assert_non_null(strstr(last, "10.0 MB / 100.0 MB  10%"));
    /* Each frame starts by going back up over the previous one (2 lines). */
    assert_non_null(strstr(c.buf, "\033[2A\r"));

    /* a finishes: it counts whole; the active line goes. */
    a->status = 200;
    fake_now = 11.5;
    ev(p, AL_XFER_DONE, a, 100000000);
    ev(p, AL_XFER_TICK, NULL, 0);
    fflush(c.f);
    last = strrchr(c.buf, '\r');
    assert_non_null(strstr(last, "100.0 MB / 120.0 MB (83%)"));
    assert_non_null(strstr(last, "1 of 2 blobs"));
    assert_null(strstr(last, "  library/big "));

    /* The end of a batch erases the block (one line drawn now). */
    ev(p, AL_XFER_IDLE, NULL, 0);
    fflush(c.f);
    size_t n = strlen(c.buf);
    assert_true(n > 8);
    assert_string_equal(c.buf + n - 8, "\033[1A\r\033[J");
    al_progress_free(p);
    al_request_free(a);
    al_request_free(b);
    cap_close(&c);
}

static void test_tty_lines_never_wrap(void **state)
{
    (void)state;
    capture c;
    cap_open(&c);
    al_progress *p = al_progress_new(AL_PROGRESS_TTY, c.f, "t", false);
    al_progress_set_clock(p, fake_clock);
    al_progress_set_width(p, 24);
    al_request *a = blob_req("a/very/long/repository/name/indeed", "a", 1000);
    fake_now = 1;
    ev(p, AL_XFER_QUEUED, a, 0);
    ev(p, AL_XFER_START, a, 0);
    ev(p, AL_XFER_TICK, NULL, 0);
    fflush(c.f);
    /* Every line: "\033[K" + at most 23 characters + "\n". */
    for (char *line = strstr(c.buf, "\033[K"); line != NULL; line = strstr(line + 1, "\033[K")) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl - (line + 3) <= 23);
    }
    al_progress_free(p);
    al_request_free(a);
    cap_close(&c);
}

static void test_plain_lines(void **state)
{
    (void)state;
    capture c;
    cap_open(&c);
    al_progress *p = al_progress_new(AL_PROGRESS_PLAIN, c.f, "airlock-fetch", false);
    al_progress_set_clock(p, fake_clock);
    al_request *a = blob_req("library/big", "a", 50000000);
    al_request *m = al_request_new("http://r:5000/v2/library/big/manifests/1");
    fake_now = 5;
    ev(p, AL_XFER_QUEUED, a, 0);
    ev(p, AL_XFER_QUEUED, m, 0);
    ev(p, AL_XFER_START, m, 0);
    m->status = 200;
    ev(p, AL_XFER_DONE, m, 0);
    ev(p, AL_XFER_START, a, 0);
    for (int i = 1; i <= 20; i++) {
        fake_now = 5 + 0.1 * i;
        ev(p, AL_XFER_DATA, a, (uint64_t)i * 2500000);
        ev(p, AL_XFER_TICK, NULL, 0);
    }
    a->status = 200;
    ev(p, AL_XFER_DONE, a, 50000000);
    ev(p, AL_XFER_IDLE, NULL, 0);
    al_progress_free(p);
    fflush(c.f);
    char d[AL_DIGEST_BUF];
    al_digest_bytes(d, "a", 1);
    char *want = al_xasprintf("airlock-fetch: fetched blob %.12s of library/big: 50.0 MB in 2.0s "
                              "(25.0 MB/s)\n",
                              d + 7);
    /* Only the blob: a manifest is not worth a line without -v. */
    assert_string_equal(c.buf, want);
    free(want);
    for (const char *q = c.buf; *q; q++)
        assert_true(*q == '\n' || (*q >= 0x20 && *q < 0x7f));
    al_request_free(a);
    al_request_free(m);
    cap_close(&c);
}

static void test_plain_verbose_and_failures(void **state)
{
    (void)state;
    capture c;
    cap_open(&c);
    al_progress *p = al_progress_new(AL_PROGRESS_PLAIN, c.f, "x", true);
    al_progress_set_clock(p, fake_clock);
    al_request *m = al_request_new("http://u:pw@r:5000/v2/a/manifests/1?token=secret");
    al_request *a = blob_req("a", "a", 10);
    fake_now = 1;
    ev(p, AL_XFER_START, m, 0);
    m->status = 404;
    m->bytes = 12;
    ev(p, AL_XFER_DONE, m, 12);
    /* A blob that fails or is retried gets no "fetched" line. */
    ev(p, AL_XFER_START, a, 0);
    ev(p, AL_XFER_RETRY, a, 0);
    ev(p, AL_XFER_START, a, 0);
    a->status = 500;
    ev(p, AL_XFER_DONE, a, 0);
    fflush(c.f);
    assert_string_equal(c.buf, "x: GET http://r:5000/v2/a/manifests/1: HTTP 404, 12 B\n");
    al_progress_free(p);
    al_request_free(a);
    al_request_free(m);
    cap_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_eta),
        cmocka_unit_test(test_mode_for),
        cmocka_unit_test(test_off_attaches_nothing),
        cmocka_unit_test(test_tty_display),
        cmocka_unit_test(test_tty_lines_never_wrap),
        cmocka_unit_test(test_plain_lines),
        cmocka_unit_test(test_plain_verbose_and_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
