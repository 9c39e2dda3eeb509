/* The alert model of the notification pipeline, as Alertmanager has it:
 * label sets with their fingerprint (FNV-1a 64 over the sorted pairs, as
 * prometheus/common's model.LabelSet.Fingerprint), alerts with start and
 * end times in nanoseconds, Alertmanager's merge of a re-sent alert, and
 * the JSON of API v2's postableAlert and the webhook's alert. */
#ifndef USHER_NOTIFY_ALERT_H
#define USHER_NOTIFY_ALERT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "metrics/registry.h" /* usher_label_name_valid */

/* Go's zero time.Time ("0001-01-01T00:00:00Z"), Alertmanager's "not set". */
#define USHER_TIME_ZERO INT64_MIN

struct usher_am_label {
	char *name;
	char *value;
};

/* A label set: names unique, sorted bytewise. Owns its strings. */
struct usher_am_labels {
	size_t n;
	struct usher_am_label *v;
};

/* Sets name to value (copies both), keeping the order. An empty value
 * removes the label (Prometheus' rule: empty means absent). */
void usher_am_labels_set(struct usher_am_labels *l, const char *name, const char *value);
/* The value of name, or NULL. */
const char *usher_am_labels_get(const struct usher_am_labels *l, const char *name);
void usher_am_labels_copy(struct usher_am_labels *dst, const struct usher_am_labels *src);
bool usher_am_labels_equal(const struct usher_am_labels *a, const struct usher_am_labels *b);
void usher_am_labels_free(struct usher_am_labels *l);
/* model.LabelSet.Fingerprint. */
uint64_t usher_am_labels_fingerprint(const struct usher_am_labels *l);
/* model.LabelSet.Before: the order Alertmanager sorts alerts by. */
int usher_am_labels_compare(const struct usher_am_labels *a, const struct usher_am_labels *b);
/* model.LabelSet.String(): {a="1", b="2"} with Go-quoted values, appended
 * to a malloc'd string returned. */
char *usher_am_labels_string(const struct usher_am_labels *l);
/* {"name":"value",…} in name order. */
json_t *usher_am_labels_json(const struct usher_am_labels *l);
/* Fills l from a JSON object of strings; USHER_ERR_INVALID (err names the
 * field what) for anything else or an invalid label name when check_names. */
enum usher_err usher_am_labels_from_json(struct usher_am_labels *l, const json_t *obj,
					 const char *what, bool check_names,
					 struct usher_error *err);

/* Go's strconv.Quote of s appended to out (malloc'd, grows): used in
 * matcher and label set strings, hence in group keys. Returns the new
 * string; frees the old one. */
char *usher_go_quote_append(char *out, const char *s);

/* One alert. Times in ns since the epoch; ends_at USHER_TIME_ZERO when not
 * set. timeout: ends_at was not given but set to now + resolve_timeout. */
struct usher_am_alert {
	struct usher_am_labels labels;
	struct usher_am_labels annotations;
	char *generator_url; /* never NULL */
	int64_t starts_at;
	int64_t ends_at;
	int64_t updated_at;
	bool timeout;
	uint64_t fp;
};

/* Parses one postableAlert (labels, annotations, startsAt, endsAt,
 * generatorURL) received at now_ns, as Alertmanager's API does: startsAt
 * defaults to now, a missing endsAt becomes now + resolve_timeout_ms (with
 * timeout set), endsAt before startsAt is an error, labels must not be
 * empty. Returns a new alert or NULL with err set (USHER_ERR_INVALID). */
struct usher_am_alert *usher_am_alert_from_json(const json_t *j, int64_t now_ns,
						int64_t resolve_timeout_ms,
						struct usher_error *err);
struct usher_am_alert *usher_am_alert_dup(const struct usher_am_alert *a);
void usher_am_alert_free(struct usher_am_alert *a);
/* Whether a is resolved at now_ns: ends_at set and not after now. */
bool usher_am_alert_resolved(const struct usher_am_alert *a, int64_t now_ns);
/* Alertmanager's Alert.Merge: merges o (taken: freed) into *a; the younger
 * (by updated_at) wins, keeping the earliest start and the latest explicit
 * end. */
void usher_am_alert_merge(struct usher_am_alert *a, struct usher_am_alert *o, int64_t now_ns);
/* types.AlertSlice's order: job, then instance, then the label sets. */
int usher_am_alert_compare(const struct usher_am_alert *a, const struct usher_am_alert *b);

/* The alert as the webhook (template data) has it: status, labels,
 * annotations, startsAt, endsAt (zero time while firing), generatorURL,
 * fingerprint. */
json_t *usher_am_alert_webhook_json(const struct usher_am_alert *a, int64_t now_ns);

/* Formats ns as Go's time.RFC3339Nano in UTC (trailing zeros of the
 * fraction dropped); USHER_TIME_ZERO as "0001-01-01T00:00:00Z". len >= 40. */
void usher_time_format_nano(int64_t ns, char *out, size_t len);
/* Parses RFC 3339 (with an optional fraction and a Z or ±hh:mm offset)
 * into ns; "0001-01-01T00:00:00Z" gives USHER_TIME_ZERO. */
enum usher_err usher_time_parse_rfc3339(const char *s, int64_t *ns);
/* The fingerprint as 16 lowercase hex digits (out: 17 bytes). */
void usher_fp_format(uint64_t fp, char out[17]);

#endif
