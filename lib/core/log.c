/* ECS JSON and text event logging, and complaint rate limiting. */
#include "core/log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define LOG_LINE_MAX (64 * 1024)

struct usher_log {
	int fd;
	enum usher_log_format fmt;
	enum usher_log_level min;
	char *service;
	char hostname[256];
	pthread_mutex_t lock;
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

struct usher_log *usher_log_new(int fd, enum usher_log_format fmt, enum usher_log_level min,
				const char *service)
{
	struct usher_log *l = usher_calloc(1, sizeof(*l));

	l->fd = fd;
	l->fmt = fmt;
	l->min = min;
	l->service = usher_strdup(service);
	if (gethostname(l->hostname, sizeof(l->hostname) - 1) != 0)
		l->hostname[0] = '\0';
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

void usher_log_free(struct usher_log *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->service);
	free(l);
}

void usher_log_set_level(struct usher_log *l, enum usher_log_level min) { l->min = min; }
void usher_log_set_format(struct usher_log *l, enum usher_log_format fmt) { l->fmt = fmt; }

bool usher_log_enabled(const struct usher_log *l, enum usher_log_level lvl)
{
	return l && lvl >= l->min;
}

enum usher_err usher_log_level_parse(const char *s, enum usher_log_level *lvl)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*lvl = (enum usher_log_level)i;
			return USHER_OK;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*lvl = USHER_LOG_WARN;
		return USHER_OK;
	}
	return USHER_ERR_INVALID;
}

const char *usher_log_level_name(enum usher_log_level lvl)
{
	return level_names[lvl];
}

enum usher_err usher_json_escape(struct usher_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	enum usher_err rc = USHER_OK;

	for (; *p && !rc; p++) {
		switch (*p) {
		case '"': rc = usher_buf_add(b, "\\\"", 2); break;
		case '\\': rc = usher_buf_add(b, "\\\\", 2); break;
		case '\n': rc = usher_buf_add(b, "\\n", 2); break;
		case '\r': rc = usher_buf_add(b, "\\r", 2); break;
		case '\t': rc = usher_buf_add(b, "\\t", 2); break;
		default:
			if (*p < 0x20)
				rc = usher_buf_addf(b, "\\u%04x", *p);
			else
				rc = usher_buf_addc(b, (char)*p);
		}
	}
	return rc;
}

static void add_json_field(struct usher_buf *b, const struct usher_log_field *f)
{
	usher_buf_addstr(b, ",\"");
	usher_json_escape(b, f->key);
	usher_buf_addstr(b, "\":");
	switch (f->type) {
	case USHER_LF_STR:
		usher_buf_addc(b, '"');
		usher_json_escape(b, f->s);
		usher_buf_addc(b, '"');
		break;
	case USHER_LF_INT:
		usher_buf_addf(b, "%lld", (long long)f->i);
		break;
	case USHER_LF_DOUBLE:
		if (isfinite(f->d))
			usher_buf_addf(b, "%.17g", f->d);
		else
			usher_buf_addstr(b, "null");
		break;
	case USHER_LF_BOOL:
		usher_buf_addstr(b, f->i ? "true" : "false");
		break;
	}
}

static void add_text_field(struct usher_buf *b, const struct usher_log_field *f)
{
	usher_buf_addf(b, " %s=", f->key);
	switch (f->type) {
	case USHER_LF_STR:
		if (strpbrk(f->s, " \"=") || !*f->s) {
			usher_buf_addc(b, '"');
			usher_json_escape(b, f->s);
			usher_buf_addc(b, '"');
		} else {
			usher_buf_addstr(b, f->s);
		}
		break;
	case USHER_LF_INT: usher_buf_addf(b, "%lld", (long long)f->i); break;
	case USHER_LF_DOUBLE: usher_buf_addf(b, "%g", f->d); break;
	case USHER_LF_BOOL: usher_buf_addstr(b, f->i ? "true" : "false"); break;
	}
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* nowhere left to report a failing log */
		}
		p += w;
		n -= (size_t)w;
	}
}

void usher_log_event(struct usher_log *l, enum usher_log_level lvl,
		     const struct usher_log_field *fields, size_t n, const char *fmt, ...)
{
	struct usher_buf b, msg;
	char ts[32];
	va_list ap;
	size_t i;

	if (!usher_log_enabled(l, lvl))
		return;
	usher_buf_init(&msg, LOG_LINE_MAX / 2);
	va_start(ap, fmt);
	if (usher_buf_vaddf(&msg, fmt, ap) == USHER_ERR_TOOBIG)
		usher_buf_addstr(&msg, "(message too long)");
	va_end(ap);

	usher_buf_init(&b, LOG_LINE_MAX);
	usher_time_format_rfc3339(usher_now_ms(), ts, sizeof(ts));
	if (l->fmt == USHER_LOG_FORMAT_ECS) {
		usher_buf_addf(&b, "{\"@timestamp\":\"%s\",\"log.level\":\"%s\",\"message\":\"", ts,
			       level_names[lvl]);
		usher_json_escape(&b, usher_buf_str(&msg));
		usher_buf_addf(&b, "\",\"ecs.version\":\"%s\",\"service.name\":\"", USHER_ECS_VERSION);
		usher_json_escape(&b, l->service);
		usher_buf_addstr(&b, "\",\"host.hostname\":\"");
		usher_json_escape(&b, l->hostname);
		usher_buf_addc(&b, '"');
		for (i = 0; i < n; i++)
			if (fields[i].type != USHER_LF_STR || fields[i].s)
				add_json_field(&b, &fields[i]);
		usher_buf_addstr(&b, "}\n");
	} else {
		usher_buf_addf(&b, "%s %-5s %s", ts, level_names[lvl], usher_buf_str(&msg));
		for (i = 0; i < n; i++)
			if (fields[i].type != USHER_LF_STR || fields[i].s)
				add_text_field(&b, &fields[i]);
		usher_buf_addc(&b, '\n');
	}
	if (b.len && b.data[b.len - 1] != '\n') {
		/* the line hit LOG_LINE_MAX: end it so the next event parses */
		b.data[b.len - 1] = '\n';
	}
	pthread_mutex_lock(&l->lock);
	write_all(l->fd, usher_buf_str(&b), b.len);
	pthread_mutex_unlock(&l->lock);
	usher_buf_free(&b);
	usher_buf_free(&msg);
}

bool usher_complain(struct usher_complain *c, int64_t now_ms, uint64_t *held)
{
	int64_t interval = c->interval_ms > 0 ? c->interval_ms : 10 * 60 * 1000;

	if (!c->failing || now_ms >= c->next_ms) {
		*held = c->suppressed;
		c->suppressed = 0;
		c->failing = true;
		c->next_ms = now_ms + interval;
		return true;
	}
	c->suppressed++;
	return false;
}

bool usher_complain_release(struct usher_complain *c)
{
	bool was = c->failing;

	c->failing = false;
	c->suppressed = 0;
	c->next_ms = 0;
	return was;
}
