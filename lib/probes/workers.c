/* The blocking-probe worker pool: a mutex-protected FIFO of jobs in, and a
 * list of finished runs out. */
#include "probes/workers.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/mem.h"

struct job {
	struct job *next;
	usher_worker_fn *fn;
	void *ctx;
	struct usher_probe_run *run;
};

struct usher_workers {
	struct usher_loop *loop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *queue, **queue_tail; /* to run */
	struct job *done;                /* finished, any order */
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
};

static void *worker_main(void *arg)
{
	struct usher_workers *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct job *j;

		while (!w->queue && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->stopping)
			break;
		j = w->queue;
		w->queue = j->next;
		if (!w->queue)
			w->queue_tail = &w->queue;
		pthread_mutex_unlock(&w->lock);

		j->fn(j->ctx, j->run);

		pthread_mutex_lock(&w->lock);
		j->next = w->done;
		w->done = j;
		usher_loop_wakeup(w->loop);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct usher_workers *usher_workers_new(unsigned nthreads, struct usher_loop *loop)
{
	struct usher_workers *w = usher_calloc(1, sizeof(*w));
	sigset_t all, old;
	unsigned i;

	w->loop = loop;
	w->queue_tail = &w->queue;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->threads = usher_calloc(nthreads, sizeof(*w->threads));
	/* signals belong to the loop thread's signalfd, never to a worker */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	w->nthreads = i;
	return w;
}

static void free_list(struct job *j)
{
	while (j) {
		struct job *next = j->next;

		free(j);
		j = next;
	}
}

void usher_workers_free(struct usher_workers *w)
{
	unsigned i;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	free_list(w->queue);
	free_list(w->done);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->threads);
	free(w);
}

void usher_workers_submit(struct usher_workers *w, usher_worker_fn *fn, void *ctx,
			  struct usher_probe_run *run)
{
	struct job *j = usher_malloc(sizeof(*j));

	j->next = NULL;
	j->fn = fn;
	j->ctx = ctx;
	j->run = run;
	pthread_mutex_lock(&w->lock);
	*w->queue_tail = j;
	w->queue_tail = &j->next;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void usher_workers_collect(struct usher_workers *w, void (*done)(struct usher_probe_run *run))
{
	struct job *list, *j;

	pthread_mutex_lock(&w->lock);
	list = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->lock);
	for (j = list; j; j = j->next)
		done(j->run);
	free_list(list);
}
