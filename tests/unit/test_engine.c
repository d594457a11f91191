/* Unit tests for fetch/engine.c: header values are checked before anything is sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "util.h"

/* A listening socket on 127.0.0.1 that never accepts: a request sent to it
 * would connect (the kernel completes the handshake), which is what the
 * test must not see. Its URL goes into *url. */
static int listener(char **url)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *url = al_xasprintf("http://127.0.0.1:%d/v2/library/x/manifests/1", ntohs(a.sin_port));
    return fd;
}

static void done(al_request *r, void *user)
{
    (void)r;
    (*(int *)user)++;
}

/* Send one request and run the loop until it has ended. */
static void run_one(al_engine *e, al_request *r)
{
    int n = 0;
    al_engine_send(e, r, done, &n);
    al_engine_run(e);
    assert_int_equal(n, 1);
}

static void test_control_bytes_refused(void **state)
{
    (void)state;
    char *url = NULL;
    int lfd = listener(&url);
    al_engine_opts o;
    al_engine_opts_default(&o);
    o.max_retries = 0;
    o.connect_timeout = 2;
    al_engine *e = NULL;
    assert_int_equal(al_engine_new(&e, &o, NULL), 0);

    static const struct {
        const char *accept, *authorization, *header;
    } cases[] = {
        {NULL, "Bearer abc\r\nX-Injected: 1", "Authorization"},
        {NULL, "Bearer abc\nX-Injected: 1", "Authorization"},
        {NULL, "Bearer abc\x7f", "Authorization"},
        {"application/json\r\nX-Injected: 1", NULL, "Accept"},
        {"a\x01", "Bearer ok", "Accept"},
    };
    /* (Range is made by the call from a number; checked all the same.) */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        al_request *r = al_request_new(url);
        r->accept = cases[i].accept ? al_xstrdup(cases[i].accept) : NULL;
        r->authorization = cases[i].authorization ? al_xstrdup(cases[i].authorization) : NULL;
        run_one(e, r);
        assert_non_null(r->err);
        assert_int_equal(r->err->code, AL_E_HTTP);
        if (strstr(r->err->msg, "not sent") == NULL || strstr(r->err->msg, cases[i].header) == NULL)
            fail_msg("case %zu: %s", i, r->err->msg);
        /* The token is not in the message. */
        assert_null(strstr(r->err->msg, "abc"));
        assert_false(r->connected);
        assert_int_equal(r->status, 0);
        al_request_free(r);
    }
    assert_int_equal(al_engine_get_stats(e)->requests, 0);
    /* Nothing connected: the listener's queue is empty. */
    struct timeval tv = {0, 0};
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(lfd, &fds);
    assert_int_equal(select(lfd + 1, &fds, NULL, NULL, &tv), 0);

    /* A tab is allowed (header whitespace), and a clean request is sent. */
    al_request *ok = al_request_new(url);
    ok->accept = al_xstrdup("a,\tb");
    ok->authorization = al_xstrdup("Bearer abc.def");
    close(lfd); /* now the connection is refused: a transport error, after an attempt */
    run_one(e, ok);
    assert_non_null(ok->err);
    assert_int_equal(ok->err->code, AL_E_NET); /* it was sent, and refused */
    assert_non_null(strstr(ok->err->msg, "onnect"));
    al_request_free(ok);
    al_engine_free(e);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_bytes_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
