/* The delivery queue: notifications waiting for an integration (webhook,
 * Slack, PagerDuty, …), persisted in the state store so that a restart
 * during a vendor's outage loses nothing, and delivered by worker threads
 * that retry with exponential backoff and jitter on 5xx, 429 (honouring
 * Retry-After) and network errors until the integration's deadline.
 *
 * Life of a delivery:
 *
 *	pipeline (its own store transaction)      delivery workers
 *	  usher_delivery_enqueue ── row ──▶  pick due row ─▶ lookup(receiver,
 *	  usher_delivery_kick (after COMMIT)       integration, index) in the
 *	                                           current config ─▶ deliver
 *	                                           OK / FAIL: row deleted
 *	                                           RETRY: row's next attempt moved
 *
 * A row is deleted in the same step that records the vendor's answer, so
 * an acknowledged notification is never sent again; a crash in the middle
 * of an attempt repeats that attempt at the next start with the same
 * idempotency key (PagerDuty dedup_key, Opsgenie alias). */
#ifndef USHER_NOTIFY_DELIVERY_H
#define USHER_NOTIFY_DELIVERY_H

#include <stdint.h>

#include "core/err.h"
#include "core/log.h"
#include "metrics/registry.h"
#include "notify/integration.h"
#include "store/store.h"

/* Creates the queue's tables in st (module "delivery") or brings them to
 * the newest version. usher_delivery_new does it too; call this first when
 * something enqueues before the engine exists. Not inside a transaction. */
enum usher_err usher_delivery_migrate(struct usher_store *st, struct usher_error *err);

/* Queues one notification for one integration of a receiver: the entry
 * number index (0-based) of the receiver's `<integration>_configs`. key is
 * the notification's stable idempotency key (the group key, or a hash of
 * it: it becomes PagerDuty's dedup_key after sha256, Opsgenie's alias);
 * data_json is the notification (Alertmanager's webhook v4 JSON, see
 * integration.h). Two enqueues of the same receiver, integration, index
 * and key keep both: a newer notification of a group does not replace
 * an older one still pending (they are sent in order).
 *
 * Meant to run inside the caller's transaction (usher_store_lock + BEGIN
 * IMMEDIATE … COMMIT), so the notification log and the queue change
 * together; it runs single statements and neither begins nor commits.
 * Wake the workers with usher_delivery_kick after COMMIT. The tables must
 * exist (usher_delivery_migrate). USHER_ERR_INVALID for a NULL or empty
 * argument or an index < 0; USHER_ERR_IO (sqlite's message in err). */
enum usher_err usher_delivery_enqueue(struct usher_store *st, const char *receiver,
				      const char *integration, int index, const char *key,
				      const char *data_json, struct usher_error *err);

/* How the engine finds an integration's configuration at each attempt, so
 * a reload applies to pending deliveries. lookup returns the entry, or
 * NULL when the receiver, the type or the index no longer exists (the
 * delivery is then dropped with one log line). It is called from the
 * worker threads, possibly at once, and what it returns must stay valid
 * until release(arg) is called: the engine calls release once it has
 * replaced this set (usher_delivery_set_receivers, usher_delivery_free)
 * and no attempt still uses it — from any thread, never under the
 * caller's locks. release may be NULL (arg then outlives the engine). */
struct usher_delivery_receivers {
	const struct usher_integration_conf *(*lookup)(void *arg, const char *receiver,
						       const char *integration, int index);
	void (*release)(void *arg);
	void *arg;
};

/* The engine's tunables; zero fields take the defaults. */
struct usher_delivery_conf {
	int workers;                  /* worker threads (default 4) */
	int64_t min_backoff_ms;       /* first retry delay (default 1 s) */
	int64_t max_backoff_ms;       /* backoff ceiling (default 5 min) */
	int64_t default_timeout_ms;   /* an attempt, when the type has no limits (10 s) */
	int64_t default_retry_for_ms; /* the deadline, when the type has no limits (1 h) */
};

struct usher_delivery;

/* A new engine over st (migrated here), logging to log, publishing
 * usher_notifications_total{receiver,integration,outcome} and
 * usher_notification_latency_seconds{receiver,integration} (enqueue to
 * the vendor's acknowledgement) in reg (either may be NULL). conf may be
 * NULL for the defaults. The workers start at once and deliver whatever
 * a previous run left pending, as soon as receivers are set. Returns NULL
 * with err set when the store cannot be migrated or a thread not started.
 * st, log and reg are borrowed and must outlive the engine. */
struct usher_delivery *usher_delivery_new(struct usher_store *st, struct usher_log *log,
					  struct usher_registry *reg,
					  const struct usher_delivery_conf *conf,
					  struct usher_error *err);

/* Gives the engine the receivers of the current config (copied; the
 * previous set is released once no attempt uses it). Until the first call
 * nothing is delivered. */
void usher_delivery_set_receivers(struct usher_delivery *d,
				  const struct usher_delivery_receivers *r);

/* Called once per notification outcome that a person may want on record:
 * delivered (USHER_DELIVERY_OK), refused or given up (USHER_DELIVERY_FAIL),
 * and the first failed attempt of one that will be retried
 * (USHER_DELIVERY_RETRY). group_key is the notification's key (the
 * alert group's key); detail is the error, NULL on success. Runs on a
 * delivery worker under the engine's lock: it must be quick and must not
 * call back into the engine. The incident timeline is fed this way. */
typedef void usher_delivery_observer_fn(void *arg, const char *group_key, const char *receiver,
					const char *integration, int outcome, const char *detail);
void usher_delivery_set_observer(struct usher_delivery *d, usher_delivery_observer_fn *fn,
				 void *arg);

/* Wakes the workers: something was enqueued (call after COMMIT). */
void usher_delivery_kick(struct usher_delivery *d);

/* Rows waiting (pending or backing off). */
int64_t usher_delivery_pending(struct usher_delivery *d);

/* Stops the workers (waiting for attempts in flight, each bounded by its
 * timeout), releases the receivers and frees the engine. Pending rows stay
 * in the store for the next start. NULL ok. */
void usher_delivery_free(struct usher_delivery *d);

/* The delay before retry number attempt (1, 2, …): min doubling up to
 * max, with ±20% jitter from rnd (a uniform value in [0, 1)). A vendor's
 * Retry-After, when longer, wins (capped at one hour). Exposed for tests. */
int64_t usher_delivery_backoff_ms(const struct usher_delivery_conf *conf, int attempt,
				  int64_t retry_after_ms, double rnd);

#endif
