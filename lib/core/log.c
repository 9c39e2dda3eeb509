/* ECS JSON and text event logging, and complaint rate limiting. */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ecs.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define LOG_LINE_MAX (64 * 1024)

struct usher_log {
	int fd;
	enum usher_log_format fmt;
	enum usher_log_level min;
	char *service;
	char hostname[256];
	pthread_mutex_t lock; /* one write() at a time on fd */
	/* the output, when set; held for reading while an event is in it */
	pthread_rwlock_t out_lock;
	usher_log_output_fn *out_fn;
	void *out_arg;
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
	pthread_rwlock_init(&l->out_lock, NULL);
	return l;
}

void usher_log_free(struct usher_log *l)
{
	if (!l)
		return;
	pthread_rwlock_destroy(&l->out_lock);
	pthread_mutex_destroy(&l->lock);
	free(l->service);
	free(l);
}

void usher_log_set_level(struct usher_log *l, enum usher_log_level min)
{
	l->min = min;
}
void usher_log_set_format(struct usher_log *l, enum usher_log_format fmt)
{
	l->fmt = fmt;
}

bool usher_log_enabled(const struct usher_log *l, enum usher_log_level lvl)
{
	return l && lvl >= l->min;
}

void usher_log_set_output(struct usher_log *l, usher_log_output_fn *fn, void *arg)
{
	pthread_rwlock_wrlock(&l->out_lock);
	l->out_fn = fn;
	l->out_arg = arg;
	pthread_rwlock_unlock(&l->out_lock);
}

const char *usher_log_hostname(const struct usher_log *l)
{
	return l->hostname;
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
	return usher_ecs_escape(b, s, strlen(s));
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

/* Without an output: the line goes to the fd. */
static void write_fd(struct usher_log *l, const struct usher_log_record *r)
{
	struct usher_buf b;

	usher_buf_init(&b, LOG_LINE_MAX);
	if (l->fmt == USHER_LOG_FORMAT_ECS)
		usher_ecs_encode(&b, r, NULL);
	else
		usher_text_encode(&b, r);
	if (b.len && b.data[b.len - 1] != '\n') {
		/* the line hit LOG_LINE_MAX: end it so the next event parses */
		b.data[b.len - 1] = '\n';
	}
	pthread_mutex_lock(&l->lock);
	write_all(l->fd, usher_buf_str(&b), b.len);
	pthread_mutex_unlock(&l->lock);
	usher_buf_free(&b);
}

#define FIELDS_ON_STACK 32

void usher_log_event(struct usher_log *l, enum usher_log_level lvl,
		     const struct usher_log_field *fields, size_t n, const char *fmt, ...)
{
	struct usher_log_field stack[FIELDS_ON_STACK], *kept = stack;
	struct usher_log_record r;
	struct usher_buf msg;
	va_list ap;
	size_t i, k = 0;

	if (!usher_log_enabled(l, lvl))
		return;
	r.ts_ns = usher_now_ns();
	usher_buf_init(&msg, LOG_LINE_MAX / 2);
	va_start(ap, fmt);
	if (usher_buf_vaddf(&msg, fmt, ap) == USHER_ERR_TOOBIG)
		usher_buf_addstr(&msg, "(message too long)");
	va_end(ap);

	if (n > FIELDS_ON_STACK)
		kept = usher_malloc(n * sizeof(*kept));
	for (i = 0; i < n; i++)
		if (fields[i].type != USHER_LF_STR || fields[i].s)
			kept[k++] = fields[i];
	r.level = lvl;
	r.message = usher_buf_str(&msg);
	r.fields = kept;
	r.nfields = k;
	r.service = l->service;
	r.hostname = l->hostname[0] ? l->hostname : NULL;

	pthread_rwlock_rdlock(&l->out_lock);
	if (l->out_fn)
		l->out_fn(l->out_arg, &r);
	else
		write_fd(l, &r);
	pthread_rwlock_unlock(&l->out_lock);
	if (kept != stack)
		free(kept);
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
