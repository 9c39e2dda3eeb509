/* The seam between the alert pipeline (routing, grouping, silences,
 * inhibition, the notification log: lib/notify/dispatch*) and the
 * integrations that deliver a notification (webhook, Slack, PagerDuty,
 * Opsgenie, e-mail, Alertmanager, tickets: lib/notify/integration_*.c).
 *
 * A notification is Alertmanager's template data, held as the JSON object
 * Alertmanager's webhook (version 4) sends:
 *
 *	{"version":"4","groupKey":…,"truncatedAlerts":0,"status":"firing",
 *	 "receiver":…,"groupLabels":{…},"commonLabels":{…},
 *	 "commonAnnotations":{…},"externalURL":…,
 *	 "alerts":[{"status","labels","annotations","startsAt","endsAt",
 *	            "generatorURL","fingerprint"}…]}
 *
 * The pipeline builds it when a group flushes, records the flush in the
 * notification log and enqueues one delivery per integration of the
 * receiver in the same state-store transaction; from then on the delivery
 * queue owns it: retries with backoff until the integration's deadline,
 * survives restarts, per-URL rate limits. So the pipeline never waits on
 * a vendor, and a notification enqueued is never lost or sent twice by
 * the pipeline (an integration whose delivery is retried after a crash
 * mid-request sends with the same idempotency key: PagerDuty dedup_key,
 * Opsgenie alias). */
#ifndef USHER_NOTIFY_INTEGRATION_H
#define USHER_NOTIFY_INTEGRATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "core/arena.h"
#include "core/err.h"

/* What one delivery attempt came to. */
enum usher_delivery_outcome {
	USHER_DELIVERY_OK,    /* accepted by the vendor */
	USHER_DELIVERY_RETRY, /* 5xx, 429, network error, timeout: try again */
	USHER_DELIVERY_FAIL,  /* a 4xx other than 429, a payload refused: give up, log once */
};

struct usher_delivery_result {
	enum usher_delivery_outcome outcome;
	int64_t retry_after_ms; /* RETRY: the vendor's Retry-After, else 0 */
	long status;            /* the HTTP status or SMTP reply code; 0 when none */
	struct usher_error err; /* why, for the log; never a secret */
};

/* One kind of integration: the `<name>_configs` list of a receiver. */
struct usher_integration_type {
	const char *name;                   /* "webhook", "slack", "pagerduty", … */
	const struct usher_option *options; /* the keys of one entry */
	size_t opts_size;                   /* its options struct */
	/* Cross-option checks and template parsing once the table has filled
	 * opts, so a broken template fails at load. May be NULL. */
	enum usher_err (*check)(struct usher_cfgctx *ctx, void *opts, const struct usher_ynode *node);
	/* Whether resolved notifications go out (the entry's send_resolved). */
	bool (*send_resolved)(const void *opts);
	/* One delivery attempt of notification data (the JSON above), blocking
	 * on a delivery worker, bounded by timeout_ms. key is a stable
	 * idempotency key for this notification (the same on every retry). */
	void (*deliver)(const void *opts, const json_t *data, const char *key, int64_t timeout_ms,
			struct usher_delivery_result *res);
	/* Rate limiting: deliveries with the same non-NULL queue key go out one
	 * at a time, at most rate_per_s per second (Slack: the webhook URL,
	 * one per second). NULL: no limit. */
	const char *(*queue_key)(const void *opts);
	double rate_per_s;
	void (*free)(void *opts); /* releases what check built; may be NULL */
	/* The entry's per-attempt timeout and how long the delivery queue
	 * keeps retrying one notification (its `timeout` and `retry_for`
	 * keys). May be NULL: the queue's defaults. */
	void (*limits)(const void *opts, int64_t *timeout_ms, int64_t *retry_for_ms);
};

/* Every integration type, NULL-terminated (lib/notify/integrations.c). */
extern const struct usher_integration_type *const usher_integration_types[];
const struct usher_integration_type *usher_integration_type_find(const char *name);

/* One configured integration of a receiver (an entry of <name>_configs). */
struct usher_integration_conf {
	const struct usher_integration_type *type;
	void *opts;
	int index; /* its position among the receiver's entries of this type */
	int line, col;
};

#endif
