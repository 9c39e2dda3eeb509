/* The ECS event model: how one log event becomes an Elastic Common Schema
 * JSON line or a text line, the catalogue of event actions (kind, category,
 * type), label-key sanitising and the deterministic event id. */
#ifndef USHER_CORE_ECS_H
#define USHER_CORE_ECS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/log.h"

/* The length of an event id (usher_ecs_event_id), without the NUL. */
#define USHER_ECS_ID_LEN 22

/* What the encoder adds to a record besides its own fields. */
struct usher_ecs_meta {
	bool has_seq; /* write event.sequence */
	uint64_t seq;
	const char *id; /* event.id; NULL leaves it out */
	long pid;       /* process.pid; 0 leaves it out */
	/* fields added to every event unless the event has the same key
	 * (global.external_labels as labels.*); may be NULL */
	const struct usher_log_field *extra;
	size_t nextra;
};

/* Appends r as one ECS JSON line (newline included): @timestamp, log.level
 * and message first, then ecs.version, service.*, host.*, process.pid,
 * event.dataset, event.kind/category/type (the caller's, else the
 * catalogue's), the caller's fields in order, extra fields, and
 * event.sequence and event.id. A key given twice is written once (the
 * first); keys under "labels." are sanitised and their values written as
 * strings; event.category and event.type are arrays (a comma-separated
 * value gives several). Strings that are not UTF-8 get U+FFFD. m may be
 * NULL. Returns USHER_ERR_TOOBIG when b's maximum is reached; b then holds
 * a partial line the caller discards. */
enum usher_err usher_ecs_encode(struct usher_buf *b, const struct usher_log_record *r,
				const struct usher_ecs_meta *m);

/* Appends r as one text line for people ("<ts> <level> <message> k=v ..."),
 * newline included. */
enum usher_err usher_text_encode(struct usher_buf *b, const struct usher_log_record *r);

/* How an event action is classified in ECS. Fields are comma-separated
 * lists where ECS has arrays; NULL when the catalogue has no opinion. */
struct usher_ecs_class {
	const char *kind;
	const char *category;
	const char *type;
};

/* One entry of the action catalogue (docs/logging.md lists them). */
struct usher_ecs_action {
	const char *action;
	struct usher_ecs_class cls;
	/* for probe-* actions: the category comes from usher.probe.type */
	bool by_probe_type;
	const char *summary;
};

/* Every known action, ending with {NULL}. */
extern const struct usher_ecs_action usher_ecs_actions[];

/* The classification of an event with action (may be NULL) of a probe of
 * probe_type (may be NULL): kind is always set ("event" by default). */
struct usher_ecs_class usher_ecs_classify(const char *action, const char *probe_type);

/* Writes the ECS-safe form of a label key into out (len bytes, NUL
 * included; longer keys are cut): every byte that is not a letter, digit,
 * '_' or '-' becomes '_' (dots would make ES nest the label), an empty key
 * is "_". Returns out. */
char *usher_ecs_label_key(const char *key, char *out, size_t len);

/* The deterministic id of an event: 128 bits of a hash of host, service,
 * the timestamp and the sequence, base64url without padding, into
 * out[USHER_ECS_ID_LEN + 1]. The same inputs always give the same id, so a
 * retried or replayed event is recognised by Elasticsearch (a 409). */
void usher_ecs_event_id(const char *host, const char *service, int64_t ts_ns, uint64_t seq,
			char *out);

/* Appends s as the body of a JSON string (no quotes): RFC 8259 escaping,
 * invalid UTF-8 replaced by U+FFFD. n bytes of s are read. */
enum usher_err usher_ecs_escape(struct usher_buf *b, const char *s, size_t n);

#endif
