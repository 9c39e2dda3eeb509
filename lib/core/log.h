/* The event logger: one ECS JSON object per line (Elastic Common Schema's
 * logging format: @timestamp, log.level, message first, dotted keys), or a
 * plain text line for people. Thread-safe; each event is a single write().
 * An output (lib/logship: stdout, file, journald, Elasticsearch, Logstash)
 * can take the events instead of the fd. */
#ifndef USHER_CORE_LOG_H
#define USHER_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define USHER_ECS_VERSION "8.11.0"

enum usher_log_level {
	USHER_LOG_DEBUG,
	USHER_LOG_INFO,
	USHER_LOG_WARN,
	USHER_LOG_ERROR,
};

enum usher_log_format {
	USHER_LOG_FORMAT_ECS,
	USHER_LOG_FORMAT_TEXT,
};

enum usher_log_ftype { USHER_LF_STR, USHER_LF_INT, USHER_LF_DOUBLE, USHER_LF_BOOL };

/* One extra field of an event: an ECS dotted key ("event.action",
 * "usher.probe") and its value. Build them with the USHER_LF_* macros. */
struct usher_log_field {
	const char *key;
	enum usher_log_ftype type;
	const char *s;
	int64_t i;
	double d;
};

#define USHER_LFS(k, v) ((struct usher_log_field){.key = (k), .type = USHER_LF_STR, .s = (v)})
#define USHER_LFI(k, v) ((struct usher_log_field){.key = (k), .type = USHER_LF_INT, .i = (v)})
#define USHER_LFD(k, v) ((struct usher_log_field){.key = (k), .type = USHER_LF_DOUBLE, .d = (v)})
#define USHER_LFB(k, v) ((struct usher_log_field){.key = (k), .type = USHER_LF_BOOL, .i = (v)})

struct usher_log;

/* One event as the logger hands it to its output; everything is borrowed
 * for the duration of the call. */
struct usher_log_record {
	int64_t ts_ns; /* wall clock */
	enum usher_log_level level;
	const char *message; /* formatted */
	const struct usher_log_field *fields;
	size_t nfields; /* fields with a NULL string value are already left out */
	const char *service;  /* service.name */
	const char *hostname; /* host.hostname */
};

/* Receives every enabled event. Called on the thread that logs, possibly
 * on several at once; it must not block for long and must not log. */
typedef void usher_log_output_fn(void *arg, const struct usher_log_record *rec);

/* A logger writing to fd (not taken: the caller keeps it open). service is
 * the service.name of every event ("usherd", "usher"). */
struct usher_log *usher_log_new(int fd, enum usher_log_format fmt, enum usher_log_level min,
				const char *service);
void usher_log_free(struct usher_log *l);
void usher_log_set_level(struct usher_log *l, enum usher_log_level min);
void usher_log_set_format(struct usher_log *l, enum usher_log_format fmt);
bool usher_log_enabled(const struct usher_log *l, enum usher_log_level lvl);
/* Sends every event to fn(arg, record) instead of the fd; fn NULL goes back
 * to the fd. Once this returns, no thread is still inside the previous
 * output, so it may be freed. */
void usher_log_set_output(struct usher_log *l, usher_log_output_fn *fn, void *arg);
/* The hostname events carry (host.hostname). */
const char *usher_log_hostname(const struct usher_log *l);

/* Logs one event. fields (n of them) may be NULL. Fields whose value is a
 * NULL string are left out. l may be NULL (the event goes nowhere). */
void usher_log_event(struct usher_log *l, enum usher_log_level lvl,
		     const struct usher_log_field *fields, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Convenience for events with no extra fields. */
#define usher_log_info(l, ...) usher_log_event((l), USHER_LOG_INFO, NULL, 0, __VA_ARGS__)
#define usher_log_warn(l, ...) usher_log_event((l), USHER_LOG_WARN, NULL, 0, __VA_ARGS__)
#define usher_log_error(l, ...) usher_log_event((l), USHER_LOG_ERROR, NULL, 0, __VA_ARGS__)
#define usher_log_debug(l, ...) usher_log_event((l), USHER_LOG_DEBUG, NULL, 0, __VA_ARGS__)

enum usher_err usher_log_level_parse(const char *s, enum usher_log_level *lvl);
const char *usher_log_level_name(enum usher_log_level lvl);

/* Rate-limits the complaints about one failing thing (collectd's
 * c_complain): the first failure is logged, then at most one line per
 * interval with the count of the ones held back; the recovery once. */
struct usher_complain {
	int64_t interval_ms; /* 0 means 10 minutes */
	int64_t next_ms;     /* when the next complaint may be logged */
	uint64_t suppressed; /* failures held back since the last line */
	bool failing;
};

/* True when this failure should be logged now; *held gets the number of
 * failures held back before it (to say "and N more"). */
bool usher_complain(struct usher_complain *c, int64_t now_ms, uint64_t *held);
/* True when the thing was failing, i.e. its recovery should be logged. */
bool usher_complain_release(struct usher_complain *c);

/* Appends s to a JSON string body (no quotes), escaped per RFC 8259;
 * bytes that are not UTF-8 become U+FFFD. */
struct usher_buf;
enum usher_err usher_json_escape(struct usher_buf *b, const char *s);

#endif
