/* Verified copies of store blobs into a tar stream (blobcopy.h). */
#include "blobcopy.h"
#include "../common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* The hashing thread reads this much at a time: small enough to stay in
 * the L2 cache between the read and the hash. */
#define HASH_STEP (256u * 1024u)
/* A kernel copy of a big blob goes in pieces of this size, so progress
 * moves. */
#define COPY_PIECE (32u << 20)
/* At most this many fds wait for the verifier. */
#define VERIFY_QUEUE 64

int al_blobcopy_open(al_store *store, const char *digest, uint64_t want_size, const char *owner,
                     int *fd_out, al_error **err)
{
    int64_t size = 0;
    int fd = al_store_blob_open(store, digest, &size, err);
    if (fd == AL_E_NOT_FOUND)
        return al_error_set(err, AL_E_NOT_FOUND, ENOENT, "blob %s of %s is missing from the store",
                            digest, owner);
    if (fd < 0)
        return al_error_wrap(err, "%s", owner);
    if ((uint64_t)size != want_size) {
        close(fd);
        return al_error_set(err, AL_E_SIZE, 0,
                            "blob %s of %s is corrupt: %llu bytes in the store, expected %llu",
                            digest, owner, (unsigned long long)size, (unsigned long long)want_size);
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *fd_out = fd;
    return 0;
}

int al_blobcopy_check(al_hasher *h, const char *want, const char *what, const char *owner,
                      al_error **err)
{
    char got[AL_DIGEST_BUF];
    al_hasher_final(h, got);
    if (strcmp(got, want) != 0)
        return al_error_set(err, AL_E_DIGEST, 0, "%s %s of %s is corrupt: content hashes to %s",
                            what, want, owner, got);
    return 0;
}

/* "blob X" for a whole blob, "part X of blob Y" for a range. */
static char *what_of(const al_blobcopy_item *it)
{
    if (strcmp(it->want, it->digest) == 0)
        return al_xstrdup("blob");
    return al_xasprintf("part (bytes %llu-%llu of blob %s)", (unsigned long long)it->offset,
                        (unsigned long long)(it->offset + it->len - 1), it->digest);
}

static int size_changed(const al_blobcopy_item *it, al_error **err)
{
    return al_error_set(err, AL_E_SIZE, 0,
                        "blob %s of %s is corrupt: its size changed while it was read", it->digest,
                        it->owner);
}

/* The verifier --------------------------------------------------------- */

typedef struct queued {
    al_blobcopy_item it;
    int fd;
} queued;

struct al_blobcopy {
    al_store *store; /* borrowed */
    al_tar *tar;     /* borrowed */
    bool copy;       /* plain output: the kernel copies, the thread hashes */
    bool verify;
    void (*tick)(void *ud);
    void *ud;
    unsigned char *buf; /* AL_BLOBCOPY_CHUNK, for reads through user space */
    /* The verifying thread, with copy and verify. */
    bool threaded; /* else the writer hashes each range itself, after its copy */
    pthread_t th;
    unsigned char *vbuf; /* HASH_STEP */
    al_error *verr;      /* the thread's first failure */
    atomic_bool stop;    /* the writer gave up: stop too */
    atomic_bool failed;  /* verr is set: the writer may give up */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    queued q[VERIFY_QUEUE];
    size_t head, n; /* ring of queued ranges */
    bool closed;    /* the writer queues no more */
};

/* Hash the range of fd with pread (the fd's offset stays the writer's).
 * For a range that ends the blob, one byte more is asked for, to see a
 * file that grew. */
static int verify_fd(unsigned char *buf, const al_blobcopy_item *it, int fd, al_error **err)
{
    al_hasher *h = al_hasher_new();
    bool to_end = it->offset + it->len == it->size;
    uint64_t want = it->len + (to_end ? 1 : 0), got = 0;
    int r = 0;
    while (got < want) {
        uint64_t left = want - got;
        ssize_t n =
            pread(fd, buf, left < HASH_STEP ? (size_t)left : HASH_STEP, (off_t)(it->offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = al_error_set(err, AL_E_IO, errno, "blob %s of %s: read", it->digest, it->owner);
            break;
        }
        if (n == 0)
            break;
        al_hasher_update(h, buf, (size_t)n);
        got += (uint64_t)n;
    }
    if (r == 0 && got != it->len)
        r = size_changed(it, err);
    if (r == 0) {
        _cleanup_free_ char *what = what_of(it);
        r = al_blobcopy_check(h, it->want, what, it->owner, err);
    }
    al_hasher_free(h);
    return r;
}

/* Writer side: hand the range's fd (a duplicate, owned by the queue) over. */
static int verify_queue(al_blobcopy *c, const al_blobcopy_item *it, int fd, al_error **err)
{
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return al_error_set(err, AL_E_IO, errno, "blob %s of %s: dup", it->digest, it->owner);
    pthread_mutex_lock(&c->mu);
    while (c->n == VERIFY_QUEUE && !atomic_load(&c->failed))
        pthread_cond_wait(&c->cv, &c->mu);
    if (c->n < VERIFY_QUEUE) {
        size_t i = (c->head + c->n++) % VERIFY_QUEUE;
        c->q[i].it = *it;
        c->q[i].fd = dfd;
        dfd = -1;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (dfd >= 0)
        close(dfd); /* the verifier has failed and stopped taking */
    return 0;
}

/* Thread side: the next queued range, or false when none is to come. */
static bool verify_next(al_blobcopy *c, queued *out)
{
    pthread_mutex_lock(&c->mu);
    while (c->n == 0 && !c->closed && !atomic_load(&c->stop))
        pthread_cond_wait(&c->cv, &c->mu);
    bool got = c->n > 0 && !atomic_load(&c->stop);
    if (got) {
        *out = c->q[c->head];
        c->head = (c->head + 1) % VERIFY_QUEUE;
        c->n--;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return got;
}

static void *verify_all(void *ud)
{
    al_blobcopy *c = ud;
    queued q;
    while (verify_next(c, &q)) {
        int r = verify_fd(c->vbuf, &q.it, q.fd, &c->verr);
        close(q.fd);
        if (r < 0) {
            pthread_mutex_lock(&c->mu);
            atomic_store(&c->failed, true);
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            break;
        }
    }
    return NULL;
}

al_blobcopy *al_blobcopy_new(al_store *store, al_tar *tar, bool plain, bool verify,
                             void (*tick)(void *ud), void *ud)
{
    al_blobcopy *c = al_xcalloc(1, sizeof(*c));
    c->store = store;
    c->tar = tar;
    c->verify = verify;
    c->tick = tick;
    c->ud = ud;
    c->buf = al_xmalloc(AL_BLOBCOPY_CHUNK);
    c->copy = plain;
    if (c->copy && verify) {
        c->vbuf = al_xmalloc(HASH_STEP);
        pthread_mutex_init(&c->mu, NULL);
        pthread_cond_init(&c->cv, NULL);
        c->threaded = pthread_create(&c->th, NULL, verify_all, c) == 0;
        if (!c->threaded) {
            pthread_cond_destroy(&c->cv);
            pthread_mutex_destroy(&c->mu);
        }
    }
    return c;
}

bool al_blobcopy_failed(const al_blobcopy *c)
{
    return c->threaded && atomic_load(&((al_blobcopy *)c)->failed);
}

/* Writing -------------------------------------------------------------- */

static void tick(al_blobcopy *c)
{
    if (c->tick != NULL)
        c->tick(c->ud);
}

/* Read, hash, write: for compressing sinks, which need the bytes in user
 * space anyway. One pass over the range. */
static int write_read(al_blobcopy *c, const al_blobcopy_item *it, int fd, al_error **err)
{
    al_hasher *h = c->verify ? al_hasher_new() : NULL;
    bool to_end = it->offset + it->len == it->size;
    uint64_t left = it->len, pos = it->offset;
    int r = 0;
    while (r == 0) {
        /* Ask for one byte past the end of the blob to see a file that grew. */
        size_t want =
            left < AL_BLOBCOPY_CHUNK ? (size_t)left + (to_end ? 1 : 0) : AL_BLOBCOPY_CHUNK;
        if (want == 0)
            break;
        ssize_t n = pread(fd, c->buf, want, (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = al_error_set(err, AL_E_IO, errno, "blob %s of %s: read", it->digest, it->owner);
            break;
        }
        if ((uint64_t)n > left || (n == 0 && left > 0)) {
            r = size_changed(it, err);
            break;
        }
        if (n == 0)
            break;
        if (h)
            al_hasher_update(h, c->buf, (size_t)n);
        r = al_tar_file_write(c->tar, c->buf, (size_t)n, err);
        tick(c);
        left -= (uint64_t)n;
        pos += (uint64_t)n;
    }
    if (r == 0 && h) {
        _cleanup_free_ char *what = what_of(it);
        r = al_blobcopy_check(h, it->want, what, it->owner, err);
    }
    al_hasher_free(h);
    return r;
}

static int write_copy(al_blobcopy *c, const al_blobcopy_item *it, int fd, al_error **err)
{
    int r = 0;
    uint64_t end = it->offset + it->len;
    for (uint64_t off = it->offset; off < end && r == 0;) {
        uint64_t n = end - off < COPY_PIECE ? end - off : COPY_PIECE;
        r = al_tar_file_copy_fd(c->tar, fd, off, n, err);
        off += n;
        tick(c);
    }
    if (r == AL_E_SIZE)
        r = size_changed(it, err);
    else if (r < 0)
        al_error_wrap(err, "blob %s of %s", it->digest, it->owner);
    return r;
}

int al_blobcopy_write(al_blobcopy *c, const al_blobcopy_item *it, al_error **err)
{
    int fd = -1;
    int r = al_blobcopy_open(c->store, it->digest, it->size, it->owner, &fd, err);
    if (r < 0)
        return r;
    if (c->threaded && c->verify)
        r = verify_queue(c, it, fd, err);
    if (r == 0)
        r = c->copy ? write_copy(c, it, fd, err) : write_read(c, it, fd, err);
    if (r == 0 && c->copy && c->verify && !c->threaded)
        r = verify_fd(c->buf, it, fd, err); /* no thread to be had: right after the copy */
    close(fd);
    return r;
}

int al_blobcopy_finish(al_blobcopy *c, int r, al_error **err)
{
    if (c == NULL)
        return r;
    if (c->threaded) {
        pthread_mutex_lock(&c->mu);
        c->closed = true;
        if (r < 0)
            atomic_store(&c->stop, true);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->th, NULL);
        for (; c->n > 0; c->n--, c->head = (c->head + 1) % VERIFY_QUEUE)
            close(c->q[c->head].fd);
        if (r == 0 && c->verr != NULL) {
            r = c->verr->code;
            if (err != NULL) {
                al_error_clear(err);
                *err = c->verr;
                c->verr = NULL;
            }
        }
        al_error_free(c->verr);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
    }
    free(c->vbuf);
    free(c->buf);
    free(c);
    return r;
}
