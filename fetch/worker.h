/* Work kept off the transfer loop: re-hashing a big partial download,
 * fsyncing finished files. A job's work() runs on a worker thread; its
 * done() then runs on the loop's thread (al_engine_post), so a state
 * machine never sees another thread. Jobs run in submission order per
 * thread; the loop keeps running (al_engine_hold) until every job is done.
 * work() must touch nothing but its argument. */
#ifndef AL_WORKER_H
#define AL_WORKER_H

#include "engine.h"

typedef struct al_worker al_worker;

al_worker *al_worker_new(al_engine *e, int threads);
/* Waits for the jobs still queued, then joins the threads. Accepts NULL. */
void al_worker_free(al_worker *w);

void al_worker_submit(al_worker *w, void (*work)(void *), void (*done)(void *), void *arg);

#endif
