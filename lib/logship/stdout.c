/* The stdout sink: each event as one write() of an ECS JSON line or, with
 * logging.format text (or --log-format text), a text line. The default
 * sink when logging.sinks is not set. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/mem.h"
#include "logship/sink.h"

struct out {
	int fd;
	enum usher_log_format fmt;
	struct usher_log_sink_stats *stats;
};

static enum usher_err out_init(const struct usher_log_sink_conf *sc,
			       const struct usher_log_sink_env *env, void **ctx,
			       struct usher_error *err)
{
	struct out *o = usher_calloc(1, sizeof(*o));

	(void)sc;
	(void)err;
	o->fd = STDOUT_FILENO;
	o->fmt = env->stdout_format;
	o->stats = env->stats;
	*ctx = o;
	return USHER_OK;
}

static bool out_wants_text(void *ctx)
{
	const struct out *o = ctx;

	return o->fmt == USHER_LOG_FORMAT_TEXT;
}

static void out_write(void *ctx, const struct usher_log_entry *e)
{
	struct out *o = ctx;
	const char *p = o->fmt == USHER_LOG_FORMAT_TEXT ? e->text : e->ecs;
	size_t n = o->fmt == USHER_LOG_FORMAT_TEXT ? e->text_len : e->ecs_len;

	while (n) {
		ssize_t w = write(o->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			atomic_fetch_add_explicit(&o->stats->failed, 1, memory_order_relaxed);
			return; /* nowhere left to report it but the counter */
		}
		p += w;
		n -= (size_t)w;
	}
	atomic_fetch_add_explicit(&o->stats->delivered, 1, memory_order_relaxed);
}

static void out_free(void *ctx)
{
	free(ctx);
}

const struct usher_log_sink_type usher_log_sink_stdout = {
    .name = "stdout",
    .help = "standard output (ECS JSON lines, or text with logging.format text)",
    .init = out_init,
    .wants_text = out_wants_text,
    .write = out_write,
    .free = out_free,
};
