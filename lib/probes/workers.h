/* A small pool of threads for probe types whose client library blocks
 * (libpq, hiredis): the loop thread submits runs, a worker executes the
 * type's .run, and the finished run is handed back to the loop thread,
 * which it wakes with usher_loop_wakeup. */
#ifndef USHER_PROBES_WORKERS_H
#define USHER_PROBES_WORKERS_H

#include "probes/loop.h"

struct usher_probe_run;

typedef void usher_worker_fn(void *ctx, struct usher_probe_run *run);

struct usher_workers;

/* nthreads threads (started at once); loop is borrowed and woken whenever
 * a run finishes. */
struct usher_workers *usher_workers_new(unsigned nthreads, struct usher_loop *loop);
/* Waits for the runs in progress (they are bounded by their timeouts),
 * drops the queued ones without running them, and frees. NULL ok. */
void usher_workers_free(struct usher_workers *w);

/* Queues fn(ctx, run). run must stay valid until it comes back through
 * usher_workers_collect. */
void usher_workers_submit(struct usher_workers *w, usher_worker_fn *fn, void *ctx,
			  struct usher_probe_run *run);
/* On the loop thread: calls done(run) for every finished run. */
void usher_workers_collect(struct usher_workers *w, void (*done)(struct usher_probe_run *run));

#endif
