/* Blobs of a push shared by its images (push-private.h). One task per
 * repository and digest, whatever the number of images that need it:
 * HEAD first (present: nothing to send), then a mount or an upload. Per
 * digest, over the whole registry, the run remembers a repository that
 * holds it (found there, or pushed or mounted there in this run): another
 * repository then mounts it from there instead of receiving it again. An
 * upload of a digest already on its way to another repository is waited
 * for, so that the mount can follow it: each blob crosses the link once.
 * A blob found corrupt in the store fails every task of that digest. */
#include "push-private.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

typedef enum { T_CHECKING, T_WAITING, T_SENDING, T_DONE, T_FAILED } task_state;
typedef enum { HOW_PRESENT, HOW_PUSHED, HOW_MOUNTED } task_how;

typedef struct waiter {
    push_image *im;
    struct waiter *next;
} waiter;

typedef struct task {
    push_run *run;
    char digest[AL_DIGEST_BUF];
    int64_t size;
    char *repo;
    task_state state;
    waiter *waiters;
    push_image *credit; /* the image whose calls these are */
    al_error *err;
    bool store_fault;          /* err is the store copy's */
    struct task *next_waiting; /* on its digest's list, for a mount after another's upload */
} task;

/* A digest over the whole registry. */
typedef struct holder {
    char *repo;          /* a repository that holds it, or NULL */
    task *sending;       /* its upload in flight, or NULL */
    task *waiting;       /* tasks waiting for that upload */
    al_error *store_err; /* the store's copy is unusable: every task fails with this */
} holder;

static void free_task(void *value)
{
    task *t = value;
    while (t->waiters != NULL) {
        waiter *w = t->waiters;
        t->waiters = w->next;
        free(w);
    }
    free(t->repo);
    al_error_free(t->err);
    free(t);
}

static void free_holder(void *value)
{
    holder *h = value;
    free(h->repo);
    al_error_free(h->store_err);
    free(h);
}

void al_push_blobs_free(push_run *run)
{
    al_strmap_free_with(run->tasks, free_task);
    al_strmap_free_with(run->holders, free_holder);
    run->tasks = run->holders = NULL;
}

static holder *holder_of(push_run *run, const char *digest)
{
    holder *h = al_strmap_get(run->holders, digest);
    if (h == NULL) {
        h = al_xcalloc(1, sizeof(*h));
        al_strmap_put(run->holders, digest, h);
    }
    return h;
}

/* The task is settled: every image waiting for it hears, the one it is
 * credited to counts how it went, the others count it present. */
static void settle(task *t, task_state state, al_error *e, task_how how)
{
    t->state = state;
    t->err = e;
    waiter *list = t->waiters;
    t->waiters = NULL;
    while (list != NULL) {
        waiter *w = list;
        list = w->next;
        al_push_result *r = w->im->res;
        if (state == T_DONE)
            *(w->im != t->credit || how == HOW_PRESENT ? &r->blobs_present
              : how == HOW_MOUNTED                     ? &r->blobs_mounted
                                                       : &r->blobs_pushed) += 1;
        push_image *im = w->im;
        free(w);
        al_push_image_blob_done(im, state == T_FAILED ? t->err : NULL, t->store_fault);
    }
}

static void start_send(task *t, const char *mount_from);

/* Send t: mount it from a repository that holds it, wait for an upload of
 * it to another repository, or upload it. */
static void send_or_wait(task *t)
{
    holder *h = holder_of(t->run, t->digest);
    if (h->store_err != NULL) {
        t->store_fault = true;
        settle(t, T_FAILED, al_error_copy(h->store_err), HOW_PRESENT);
    } else if (h->repo != NULL && strcmp(h->repo, t->repo) != 0) {
        start_send(t, h->repo);
    } else if (h->sending != NULL && h->sending != t) {
        t->state = T_WAITING;
        t->next_waiting = h->waiting;
        h->waiting = t;
    } else {
        h->sending = t;
        start_send(t, NULL);
    }
}

/* An upload ended: the tasks waiting for it mount from here now, or, when
 * it failed for a reason of its own, one of them uploads. */
static void wake_waiting(push_run *run, task *t, bool ok, bool store_fault)
{
    holder *h = holder_of(run, t->digest);
    if (h->sending == t)
        h->sending = NULL;
    if (ok && h->repo == NULL)
        h->repo = al_xstrdup(t->repo);
    /* The store's copy failed (corrupt, missing, the wrong size): sending
     * it to another repository would fail the same way. */
    if (!ok && store_fault && h->store_err == NULL)
        h->store_err = al_error_copy(t->err);
    task *list = h->waiting;
    h->waiting = NULL;
    while (list != NULL) {
        task *next = list->next_waiting;
        list->next_waiting = NULL;
        send_or_wait(list);
        list = next;
    }
}

static void on_sent(al_call *c, void *user)
{
    task *t = user;
    push_run *run = t->run;
    bool ok = al_call_ok(c);
    bool store_fault = al_call_source_failed(c);
    t->store_fault = store_fault;
    /* What the registry took is counted, also for an upload that failed
     * later: it crossed the link. */
    t->credit->res->bytes += al_call_bytes(c);
    t->credit->res->restarts += al_call_restarts(c);
    if (ok)
        settle(t, T_DONE, NULL, al_call_mounted(c) ? HOW_MOUNTED : HOW_PUSHED);
    else
        settle(t, T_FAILED, al_call_take_error(c), HOW_PRESENT);
    al_call_free(c);
    wake_waiting(run, t, ok, store_fault);
}

static void start_send(task *t, const char *mount_from)
{
    t->state = T_SENDING;
    al_call *c = al_push_call(t->credit, AL_CALL_BLOB_UPLOAD, t->digest);
    al_call_set_upload(c, t->run->plan->store, t->size, t->run->plan->opts.chunk, mount_from);
    al_call_start(c, on_sent, t);
}

static void on_head(al_call *c, void *user)
{
    task *t = user;
    if (!al_call_ok(c)) {
        settle(t, T_FAILED, al_call_take_error(c), HOW_PRESENT);
    } else if (al_call_found(c)) {
        holder *h = holder_of(t->run, t->digest);
        if (h->repo == NULL)
            h->repo = al_xstrdup(t->repo);
        settle(t, T_DONE, NULL, HOW_PRESENT);
    } else {
        send_or_wait(t);
    }
    al_call_free(c);
}

void al_push_blob_need(push_run *run, push_image *im, const push_blob_ref *b)
{
    _cleanup_free_ char *key = al_xasprintf("%s@%s", im->repo, b->digest);
    task *t = al_strmap_get(run->tasks, key);
    im->pending++;
    if (t != NULL && (t->state == T_DONE || t->state == T_FAILED)) {
        if (t->state == T_DONE)
            im->res->blobs_present++;
        al_push_image_blob_done(im, t->err, t->store_fault);
        return;
    }
    waiter *w = al_xcalloc(1, sizeof(*w));
    w->im = im;
    if (t != NULL) {
        w->next = t->waiters;
        t->waiters = w;
        return;
    }
    t = al_xcalloc(1, sizeof(*t));
    t->run = run;
    snprintf(t->digest, sizeof(t->digest), "%s", b->digest);
    t->size = b->size;
    t->repo = al_xstrdup(im->repo);
    t->credit = im;
    t->waiters = w;
    al_strmap_put(run->tasks, key, t);
    al_call *c = al_push_call(im, AL_CALL_BLOB_HEAD, b->digest);
    al_call_set_absent_ok(c);
    al_call_start(c, on_head, t);
}
