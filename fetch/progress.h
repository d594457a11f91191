/* Progress of a fetch run on stderr (STYLE.md "Output").
 *
 * The engine reports every request through its progress hook
 * (al_engine_opts.progress); this module turns that into:
 *   - on a terminal, a block redrawn at most ten times a second: overall
 *     bytes (done / total, the total known from the descriptor sizes of
 *     the blobs queued), rate, ETA, and one line per active blob transfer
 *     (repository, digest, bytes, percentage). The block is erased when a
 *     batch of requests ends and before the results are printed;
 *   - elsewhere, one plain line per finished blob ("fetched blob ..."), no
 *     control characters; with verbose, one per other request too;
 *   - with --quiet, nothing.
 * Only blob downloads into the store (layers) count as blobs here;
 * manifests and configs are small and show up as requests. */
#ifndef AL_PROGRESS_H
#define AL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"

typedef enum {
    AL_PROGRESS_OFF,   /* --quiet */
    AL_PROGRESS_PLAIN, /* not a terminal: plain lines */
    AL_PROGRESS_TTY,   /* a terminal: the redrawn block */
} al_progress_mode;

/* TTY when fd is a terminal and TERM is not "dumb", else PLAIN. */
al_progress_mode al_progress_mode_for(int fd);

typedef struct al_progress al_progress;

/* out: where lines and the display go (borrowed; stderr in the program).
 * prog prefixes plain lines like al_log does (borrowed). verbose (-v):
 * plain lines for every request, and on a terminal a line per finished
 * blob above the display. */
al_progress *al_progress_new(al_progress_mode mode, FILE *out, const char *prog, bool verbose);
/* Erases the display. Accepts NULL. */
void al_progress_free(al_progress *p);

/* Point the engine options at p (OFF leaves them without a hook). */
void al_progress_attach(al_progress *p, al_engine_opts *o);
/* The hook (user is the al_progress). */
void al_progress_on_event(void *user, al_xfer_event ev, const struct al_request *r, uint64_t have);
/* Erase the display now (it is drawn again on the next tick). */
void al_progress_clear(al_progress *p);

/* For tests: the clock (monotonic seconds; default al_mono) and the
 * terminal width (default: asked of out's terminal, else 80). */
void al_progress_set_clock(al_progress *p, double (*now)(void));
void al_progress_set_width(al_progress *p, int columns);

/* "12s", "4:05", "2h05m"; "--" when unknown (negative or not finite). */
char *al_progress_format_eta(char *buf, size_t len, double seconds);

#endif
