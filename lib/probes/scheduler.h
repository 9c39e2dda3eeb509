/* The probe scheduler: runs every configured probe each interval, start
 * times spread across the interval, never overlapping itself and bounded by
 * its timeout, and publishes each run's samples to the registry. It lives on
 * the loop thread; a min-heap of wake-up times keeps a tick O(log n). */
#ifndef USHER_PROBES_SCHEDULER_H
#define USHER_PROBES_SCHEDULER_H

#include <stdint.h>

#include "config/config.h"
#include "core/log.h"
#include "metrics/registry.h"
#include "probes/loop.h"

struct usher_sched;

/* loop, reg and log are borrowed and must outlive the scheduler. */
struct usher_sched *usher_sched_new(struct usher_loop *loop, struct usher_registry *reg,
				    struct usher_log *log);
/* Cancels runs in flight, removes every probe's samples, frees. NULL ok. */
void usher_sched_free(struct usher_sched *s);

/* Replaces the probe set with cfg's probes; the scheduler keeps a
 * reference to cfg (usher_config_ref) while it needs it. A probe that keeps its
 * name and type keeps its counters and its phase. If any new probe fails to
 * initialise, nothing changes and err says which. */
enum usher_err usher_sched_apply(struct usher_sched *s, struct usher_config *cfg,
				 struct usher_error *err);

/* Collects the runs workers finished, starts the runs that are due and
 * ends the ones past their deadline. */
void usher_sched_tick(struct usher_sched *s, int64_t now_mono_ms);
/* Milliseconds until the next tick is needed (0 when now), at most max_ms. */
int usher_sched_wait_ms(const struct usher_sched *s, int64_t now_mono_ms, int max_ms);

/* Counts for tests and self metrics. */
size_t usher_sched_count(const struct usher_sched *s);
size_t usher_sched_running(const struct usher_sched *s);

#endif
