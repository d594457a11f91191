/* Worker threads for the transfer loop (see worker.h). */
#include "worker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util.h"

typedef struct job {
    void (*work)(void *);
    void (*done)(void *);
    void *arg;
    struct job *next;
} job;

struct al_worker {
    al_engine *engine;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    bool stopping;
};

static void *thread_main(void *arg)
{
    al_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->cond, &w->lock);
        job *j = w->head;
        if (j != NULL) {
            w->head = j->next;
            if (w->head == NULL)
                w->tail = NULL;
        }
        pthread_mutex_unlock(&w->lock);
        if (j == NULL)
            return NULL; /* stopping, queue empty */
        j->work(j->arg);
        al_engine_post(w->engine, j->done, j->arg);
        free(j);
    }
}

al_worker *al_worker_new(al_engine *e, int threads)
{
    al_worker *w = al_xcalloc(1, sizeof(*w));
    w->engine = e;
    w->n_threads = threads < 1 ? 1 : threads;
    w->threads = al_xcalloc((size_t)w->n_threads, sizeof(pthread_t));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    for (int i = 0; i < w->n_threads; i++)
        if (pthread_create(&w->threads[i], NULL, thread_main, w) != 0)
            abort(); /* like an allocation failure: nothing sensible to do */
    return w;
}

void al_worker_free(al_worker *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->threads);
    free(w);
}

void al_worker_submit(al_worker *w, void (*work)(void *), void (*done)(void *), void *arg)
{
    job *j = al_xcalloc(1, sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    al_engine_hold(w->engine);
    pthread_mutex_lock(&w->lock);
    if (w->tail != NULL)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}
