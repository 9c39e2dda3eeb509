/* The delivery machinery shared by the network sinks (Elasticsearch,
 * Logstash): a bounded in-memory queue that the logging threads append to
 * without blocking, a spooler thread that moves the queue into the disk
 * spool, and a sender thread that reads batches from the spool, hands them
 * to the sink's transport, retries what failed with exponential backoff
 * and jitter, writes refused events to a dead-letter file, and
 * acknowledges the spool once a batch is done. */
#ifndef USHER_LOGSHIP_SHIPPER_H
#define USHER_LOGSHIP_SHIPPER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/log.h"
#include "logship/sink.h"

enum usher_ship_state {
	USHER_SHIP_PENDING,   /* to be sent */
	USHER_SHIP_DELIVERED, /* the server has it (for Elasticsearch: 2xx or 409) */
	USHER_SHIP_RETRY,     /* try again later (429, 5xx) */
	USHER_SHIP_DEAD,      /* refused for good (400): to the dead-letter file */
	USHER_SHIP_SETTLED,   /* counted by the shipper; not sent again */
};

/* One event of a batch. */
struct usher_ship_item {
	const char *id; /* event.id */
	size_t id_len;
	const char *doc; /* the ECS JSON, without the newline */
	size_t doc_len;
	enum usher_ship_state state;
	int status;             /* the server's status for it, when known */
	const char *err_type;   /* DEAD: the server's error type and reason, */
	const char *err_reason; /* valid until the next send */
};

/* A sink's way of delivering. */
struct usher_ship_transport {
	/* Sends the items in state PENDING and sets each to DELIVERED, RETRY
	 * or DEAD. Returns an error (with err) when the attempt failed as a
	 * whole: then every item it was given stays PENDING and is retried
	 * after a backoff. Must return soon once *stop is set. Runs on the
	 * sender thread. */
	enum usher_err (*send)(void *arg, struct usher_ship_item *items, size_t n,
			       const atomic_bool *stop, struct usher_error *err);
	void *arg;
};

struct usher_shipper_conf {
	const char *name; /* the sink's name, for logs */
	const char *dir;  /* spool and dead-letter file */
	uint64_t spool_max_bytes;
	uint64_t batch_max_bytes;
	int64_t flush_interval_ms;
	int64_t max_backoff_ms;
	uint64_t queue_max_bytes;
};

struct usher_shipper;

/* A shipper that has not started: pushes queue up until usher_shipper_start.
 * t, log and stats are borrowed and must outlive it. */
struct usher_shipper *usher_shipper_new(const struct usher_shipper_conf *c,
					const struct usher_ship_transport *t, struct usher_log *log,
					struct usher_log_sink_stats *stats);
/* Opens the spool and starts the threads. */
enum usher_err usher_shipper_start(struct usher_shipper *sh, struct usher_error *err);
/* Queues one event; never blocks on I/O. A full queue drops it (counted). */
void usher_shipper_push(struct usher_shipper *sh, const struct usher_log_entry *e);
/* Sends what is spooled now instead of at the flush interval. */
void usher_shipper_flush(struct usher_shipper *sh);
/* Bytes queued or spooled and not yet acknowledged. */
uint64_t usher_shipper_pending(struct usher_shipper *sh);
/* Stops the threads (an attempt in flight is abandoned, to be repeated at
 * the next start), moves the queue to the spool, syncs it and frees. NULL ok. */
void usher_shipper_free(struct usher_shipper *sh);

/* The backoff before retry number attempt (1, 2, ...): 250 ms doubling up
 * to max_ms, then a random point in its upper half (jitter). rnd is the
 * caller's random state. */
int64_t usher_ship_backoff_ms(unsigned attempt, int64_t max_ms, uint64_t *rnd);

#endif
