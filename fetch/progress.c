/* Progress of a fetch run on stderr: the terminal display and plain lines (see progress.h). */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "strmap.h"
#include "util.h"

#define REDRAW_INTERVAL 0.1 /* seconds: at most ten frames a second */
#define RATE_WINDOW 5.0     /* seconds of samples behind the rate */
#define RATE_MIN_SPAN 0.5   /* below this, the rate is not shown yet */
#define N_SAMPLES 64        /* > RATE_WINDOW / REDRAW_INTERVAL */
#define MAX_ACTIVE_LINES 8

/* One blob of the run, by digest: a blob may be requested more than once
 * (auth round trips, redirects, retries, mirror fallback) but counts once
 * towards the total. */
typedef struct blob {
    char digest[AL_DIGEST_BUF];
    char *label; /* repository, from the first URL that named it; may be NULL */
    int64_t size;
    uint64_t have;
    bool done;
    bool upload; /* pushed, not fetched */
    /* An upload is several requests (chunks): its line counts from the
     * first one's start. */
    bool started;
    double first_start;
    uint64_t first_have;
} blob;

/* A blob transfer in flight. */
typedef struct active {
    const al_request *r; /* borrowed */
    size_t blob;         /* index into blobs */
    double started;
    uint64_t start_have;
} active;

typedef struct sample {
    double t;
    uint64_t done;
} sample;

struct al_progress {
    al_progress_mode mode;
    FILE *out;
    const char *prog;
    bool verbose;
    double (*now)(void);
    int width; /* 0: ask the terminal */

    blob *blobs;
    size_t n_blobs, cap_blobs;
    al_strmap *blob_at;   /* digest -> index + 1 into blobs: a run may have thousands */
    uint64_t total, done; /* bytes over all blobs (done counts partial ones) */
    size_t n_done_blobs;
    active *act;
    size_t n_act, cap_act;
    uint64_t requests_done, requests_active; /* everything but blob downloads */

    sample samples[N_SAMPLES];
    size_t sample_head, n_samples;
    int drawn_lines;
    double last_draw;
};

al_progress_mode al_progress_mode_for(int fd)
{
    const char *term = getenv("TERM");
    if (!isatty(fd) || (term != NULL && strcmp(term, "dumb") == 0))
        return AL_PROGRESS_PLAIN;
    return AL_PROGRESS_TTY;
}

al_progress *al_progress_new(al_progress_mode mode, FILE *out, const char *prog, bool verbose)
{
    al_progress *p = al_xmalloc(sizeof(*p));
    *p = (al_progress){.mode = mode,
                       .out = out,
                       .prog = prog,
                       .verbose = verbose,
                       .now = al_mono,
                       .last_draw = -1,
                       .blob_at = al_strmap_new()};
    return p;
}

void al_progress_free(al_progress *p)
{
    if (p == NULL)
        return;
    al_progress_clear(p);
    for (size_t i = 0; i < p->n_blobs; i++)
        free(p->blobs[i].label);
    free(p->blobs);
    al_strmap_free(p->blob_at);
    free(p->act);
    free(p);
}

void al_progress_attach(al_progress *p, al_engine_opts *o)
{
    if (p == NULL || p->mode == AL_PROGRESS_OFF)
        return;
    o->progress = al_progress_on_event;
    o->progress_user = p;
}

void al_progress_set_clock(al_progress *p, double (*now)(void))
{
    p->now = now;
}

void al_progress_set_width(al_progress *p, int columns)
{
    p->width = columns;
}

char *al_progress_format_eta(char *buf, size_t len, double s)
{
    if (!isfinite(s) || s < 0 || s > 99 * 3600.0) {
        snprintf(buf, len, "--");
        return buf;
    }
    long t = (long)s;
    if ((double)t < s)
        t++; /* round up: "1s" until it is done */
    if (t < 60)
        snprintf(buf, len, "%lds", t);
    else if (t < 3600)
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
    else
        snprintf(buf, len, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    return buf;
}

/* --- bookkeeping ---------------------------------------------------------- */

/* A blob's bytes moving: a download into the store, or an upload's
 * chunk or whole PUT. */
static bool is_blob_transfer(const al_request *r)
{
    return (r->blob_download || r->blob_upload) && !r->head && r->blob_digest[0] != '\0';
}

/* "library/busybox" out of ".../v2/library/busybox/blobs/sha256:..."; NULL
 * for other URLs (a redirect to object storage, say). */
static char *repo_of_url(const char *url)
{
    const char *v2 = strstr(url, "/v2/");
    const char *blobs = v2 ? strstr(v2 + 4, "/blobs/") : NULL;
    if (blobs == NULL || blobs == v2 + 4)
        return NULL;
    return al_xstrndup(v2 + 4, (size_t)(blobs - (v2 + 4)));
}

static size_t blob_index(al_progress *p, const al_request *r)
{
    uintptr_t at = (uintptr_t)al_strmap_get(p->blob_at, r->blob_digest);
    if (at > 0) {
        size_t i = at - 1;
        if (p->blobs[i].label == NULL)
            p->blobs[i].label = repo_of_url(r->url);
        return i;
    }
    if (p->n_blobs == p->cap_blobs) {
        p->cap_blobs = p->cap_blobs ? 2 * p->cap_blobs : 32;
        p->blobs = al_xrealloc(p->blobs, p->cap_blobs * sizeof(*p->blobs));
    }
    blob *b = &p->blobs[p->n_blobs];
    memset(b, 0, sizeof(*b));
    snprintf(b->digest, sizeof(b->digest), "%s", r->blob_digest);
    b->label = repo_of_url(r->url);
    b->upload = r->blob_upload;
    b->size = r->blob_size;
    if (b->size > 0)
        p->total += (uint64_t)b->size;
    al_strmap_put(p->blob_at, b->digest, (void *)(uintptr_t)(p->n_blobs + 1));
    return p->n_blobs++;
}

static void set_have(al_progress *p, blob *b, uint64_t have)
{
    if (b->done)
        return;
    if (b->size >= 0 && have > (uint64_t)b->size)
        have = (uint64_t)b->size;
    p->done = p->done - b->have + have;
    b->have = have;
}

static active *find_active(al_progress *p, const al_request *r)
{
    for (size_t i = 0; i < p->n_act; i++)
        if (p->act[i].r == r)
            return &p->act[i];
    return NULL;
}

static void drop_active(al_progress *p, active *a)
{
    size_t i = (size_t)(a - p->act);
    memmove(&p->act[i], &p->act[i + 1], (p->n_act - i - 1) * sizeof(*p->act));
    p->n_act--;
}

static void add_sample(al_progress *p, double t)
{
    if (p->n_samples > 0) {
        const sample *last = &p->samples[(p->sample_head + N_SAMPLES - 1) % N_SAMPLES];
        if (t - last->t < REDRAW_INTERVAL)
            return;
    }
    p->samples[p->sample_head] = (sample){.t = t, .done = p->done};
    p->sample_head = (p->sample_head + 1) % N_SAMPLES;
    if (p->n_samples < N_SAMPLES)
        p->n_samples++;
}

/* Bytes per second over the last RATE_WINDOW seconds; < 0 when unknown. */
static double rate(const al_progress *p, double t)
{
    const sample *oldest = NULL;
    for (size_t k = 0; k < p->n_samples; k++) {
        const sample *s = &p->samples[(p->sample_head + N_SAMPLES - p->n_samples + k) % N_SAMPLES];
        if (t - s->t <= RATE_WINDOW) {
            oldest = s;
            break;
        }
    }
    if (oldest == NULL || t - oldest->t < RATE_MIN_SPAN || p->done < oldest->done)
        return -1;
    return (double)(p->done - oldest->done) / (t - oldest->t);
}

/* --- output ---------------------------------------------------------------- */

static int columns(const al_progress *p)
{
    if (p->width > 0)
        return p->width;
    struct winsize ws;
    if (ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

static void short_digest(char out[20], const char *digest)
{
    const char *hex = strchr(digest, ':');
    snprintf(out, 20, "%.12s", hex ? hex + 1 : digest);
}

/* A plain line: no control characters, whole lines only. */
static void plain_line(al_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void plain_line(al_progress *p, const char *fmt, ...)
{
    fprintf(p->out, "%s: ", p->prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    fflush(p->out);
}

void al_progress_clear(al_progress *p)
{
    if (p == NULL || p->drawn_lines == 0)
        return;
    /* Up to the first line of the block, then erase to the end of screen. */
    fprintf(p->out, "\033[%dA\r\033[J", p->drawn_lines);
    fflush(p->out);
    p->drawn_lines = 0;
}

static void add_line(char **buf, size_t *len, int *n, int width, const char *text)
{
    /* Never let a line wrap: the cursor-up count would be wrong. */
    size_t w = width > 1 ? (size_t)width - 1 : 1;
    size_t tl = strlen(text);
    if (tl > w)
        tl = w;
    *buf = al_xrealloc(*buf, *len + tl + 8);
    memcpy(*buf + *len, "\033[K", 3);
    memcpy(*buf + *len + 3, text, tl);
    (*buf)[*len + 3 + tl] = '\n';
    *len += tl + 4;
    (*n)++;
}

static void draw(al_progress *p, double t)
{
    int width = columns(p);
    char *buf = NULL;
    size_t len = 0;
    int n = 0;
    char b1[32], b2[32], b3[32], eta[32];
    _cleanup_free_ char *head = NULL;
    if (p->total == 0) {
        head = al_xasprintf("resolving: %llu requests done, %llu in flight",
                            (unsigned long long)p->requests_done,
                            (unsigned long long)p->requests_active);
    } else {
        double r = rate(p, t);
        uint64_t left = p->total > p->done ? p->total - p->done : 0;
        head = al_xasprintf("%s / %s (%d%%)  %s/s  ETA %s  %zu of %zu blobs",
                            al_format_bytes(b1, sizeof(b1), p->done),
                            al_format_bytes(b2, sizeof(b2), p->total),
                            (int)(100.0 * (double)p->done / (double)p->total),
                            r >= 0 ? al_format_bytes(b3, sizeof(b3), (uint64_t)r) : "--",
                            al_progress_format_eta(eta, sizeof(eta),
                                                   r > 0  ? (double)left / r
                                                   : left ? -1
                                                          : 0),
                            p->n_done_blobs, p->n_blobs);
    }
    add_line(&buf, &len, &n, width, head);
    for (size_t i = 0; i < p->n_act && i < MAX_ACTIVE_LINES; i++) {
        const blob *bl = &p->blobs[p->act[i].blob];
        char sd[20];
        short_digest(sd, bl->digest);
        _cleanup_free_ char *line = NULL;
        if (bl->size > 0)
            line = al_xasprintf("  %s %s  %s / %s  %d%%", bl->label ? bl->label : "blob", sd,
                                al_format_bytes(b1, sizeof(b1), bl->have),
                                al_format_bytes(b2, sizeof(b2), (uint64_t)bl->size),
                                (int)(100.0 * (double)bl->have / (double)bl->size));
        else
            line = al_xasprintf("  %s %s  %s", bl->label ? bl->label : "blob", sd,
                                al_format_bytes(b1, sizeof(b1), bl->have));
        add_line(&buf, &len, &n, width, line);
    }
    if (p->n_act > MAX_ACTIVE_LINES) {
        _cleanup_free_ char *more = al_xasprintf("  ... and %zu more", p->n_act - MAX_ACTIVE_LINES);
        add_line(&buf, &len, &n, width, more);
    }
    /* Back to the top of the previous block, draw, clear what is left. */
    if (p->drawn_lines > 0)
        fprintf(p->out, "\033[%dA\r", p->drawn_lines);
    fwrite(buf, 1, len, p->out);
    fputs("\033[J", p->out);
    fflush(p->out);
    free(buf);
    p->drawn_lines = n;
    p->last_draw = t;
}

/* A finished blob download or upload, as a line. */
static void blob_line(al_progress *p, const blob *b, const active *a, double t)
{
    char sd[20], b1[32], b2[32];
    short_digest(sd, b->digest);
    double from = b->upload ? b->first_start : a != NULL ? a->started : t;
    uint64_t had = b->upload ? b->first_have : a != NULL ? a->start_have : 0;
    double secs = t - from;
    uint64_t got = b->have >= had ? b->have - had : b->have;
    if (p->mode == AL_PROGRESS_TTY)
        al_progress_clear(p);
    const char *verb = b->upload ? "pushed" : "fetched";
    if (secs >= 0.05)
        plain_line(p, "%s blob %s%s%s: %s in %.1fs (%s/s)", verb, sd, b->label ? " of " : "",
                   b->label ? b->label : "", al_format_bytes(b1, sizeof(b1), got), secs,
                   al_format_bytes(b2, sizeof(b2), (uint64_t)((double)got / secs)));
    else
        plain_line(p, "%s blob %s%s%s: %s", verb, sd, b->label ? " of " : "",
                   b->label ? b->label : "", al_format_bytes(b1, sizeof(b1), got));
}

/* --- the hook --------------------------------------------------------------- */

static void on_done(al_progress *p, const al_request *r, bool retry, double t)
{
    bool ok = r->err == NULL && r->status >= 200 && r->status <= 299;
    if (!is_blob_transfer(r)) {
        if (p->requests_active > 0)
            p->requests_active--;
        if (!retry)
            p->requests_done++;
        if (p->verbose && p->mode == AL_PROGRESS_PLAIN && !retry) {
            _cleanup_free_ char *url = al_url_redact(r->url);
            char b[32];
            if (r->err != NULL)
                plain_line(p, "%s", r->err->msg); /* it names the request */
            else
                plain_line(p, "%s %s: HTTP %ld, %s", al_request_method(r), url, r->status,
                           al_format_bytes(b, sizeof(b), r->bytes));
        }
        return;
    }
    active *a = find_active(p, r);
    if (a == NULL)
        return;
    blob *b = &p->blobs[a->blob];
    /* A 2xx that committed is the blob, whole (for an upload, its last
     * request's: a chunk's is a step); a 3xx is a redirect whose next
     * request carries on. */
    if (!retry && ok && !b->done && (r->blob_download || r->blob_final)) {
        set_have(p, b, b->size >= 0 ? (uint64_t)b->size : b->have);
        b->done = true;
        p->n_done_blobs++;
        if (p->mode == AL_PROGRESS_PLAIN || p->verbose)
            blob_line(p, b, a, t);
    } else if (retry && p->mode == AL_PROGRESS_TTY) {
        /* The engine may log the retry: no display under that line. */
        al_progress_clear(p);
    }
    drop_active(p, a);
}

void al_progress_on_event(void *user, al_xfer_event ev, const al_request *r, uint64_t have)
{
    al_progress *p = user;
    if (p == NULL || p->mode == AL_PROGRESS_OFF)
        return;
    double t = p->now();
    switch (ev) {
    case AL_XFER_QUEUED:
        if (is_blob_transfer(r))
            blob_index(p, r);
        break;
    case AL_XFER_START:
        if (!is_blob_transfer(r)) {
            p->requests_active++;
            break;
        }
        if (p->n_act == p->cap_act) {
            p->cap_act = p->cap_act ? 2 * p->cap_act : 16;
            p->act = al_xrealloc(p->act, p->cap_act * sizeof(*p->act));
        }
        size_t bi = blob_index(p, r);
        set_have(p, &p->blobs[bi], have);
        if (!p->blobs[bi].started) {
            p->blobs[bi].started = true;
            p->blobs[bi].first_start = t;
            p->blobs[bi].first_have = have;
        }
        p->act[p->n_act++] = (active){.r = r, .blob = bi, .started = t, .start_have = have};
        break;
    case AL_XFER_DATA: {
        active *a = find_active(p, r);
        if (a != NULL)
            set_have(p, &p->blobs[a->blob], have);
        break;
    }
    case AL_XFER_RETRY:
    case AL_XFER_DONE: on_done(p, r, ev == AL_XFER_RETRY, t); break;
    case AL_XFER_TICK:
        add_sample(p, t);
        if (p->mode == AL_PROGRESS_TTY &&
            (p->last_draw < 0 || t - p->last_draw >= REDRAW_INTERVAL - 1e-9))
            draw(p, t);
        break;
    case AL_XFER_IDLE:
        if (p->mode == AL_PROGRESS_TTY)
            al_progress_clear(p);
        break;
    }
}
