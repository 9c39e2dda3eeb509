/* The file sink: ECS JSON lines appended to a file, one write() per event
 * (O_APPEND, so several writers never interleave inside a line), reopened
 * on SIGUSR1 after logrotate has moved it. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "logship/sink.h"

struct file_opts {
	const char *path;
};

static const struct usher_option file_options[] = {
    {"path", USHER_OPT_STR, offsetof(struct file_opts, path), NULL, USHER_OPT_REQUIRED,
     "the file events are appended to; reopened on SIGUSR1 (logrotate)"},
    USHER_OPT_END,
};

struct file {
	char *path;
	int fd;
	struct usher_log_sink_stats *stats;
	bool complained; /* about a failing write, since the last success */
};

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

static enum usher_err file_init(const struct usher_log_sink_conf *sc,
				const struct usher_log_sink_env *env, void **ctx,
				struct usher_error *err)
{
	const struct file_opts *o = sc->opts;
	struct file *f;
	int fd = open_log(o->path);

	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "log sink %s: cannot open %s: %s", sc->name,
				  o->path, strerror(errno));
	f = usher_calloc(1, sizeof(*f));
	f->path = usher_strdup(o->path);
	f->fd = fd;
	f->stats = env->stats;
	*ctx = f;
	return USHER_OK;
}

static void file_write(void *ctx, const struct usher_log_entry *e)
{
	struct file *f = ctx;
	const char *p = e->ecs;
	size_t n = e->ecs_len;

	while (n) {
		ssize_t w = write(f->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* the logger's own lock is held: stderr is the one place
			 * left, once until the next success */
			if (!f->complained)
				fprintf(stderr, "usher: log sink file %s: %s\n", f->path,
					strerror(w < 0 ? errno : ENOSPC));
			f->complained = true;
			atomic_fetch_add_explicit(&f->stats->failed, 1, memory_order_relaxed);
			return;
		}
		p += w;
		n -= (size_t)w;
	}
	f->complained = false;
	atomic_fetch_add_explicit(&f->stats->delivered, 1, memory_order_relaxed);
}

static void file_reopen(void *ctx)
{
	struct file *f = ctx;
	int fd = open_log(f->path);

	if (fd < 0) {
		/* keep writing to the old file rather than nowhere */
		fprintf(stderr, "usher: log sink file: cannot reopen %s: %s\n", f->path,
			strerror(errno));
		return;
	}
	close(f->fd);
	f->fd = fd;
}

static void file_free(void *ctx)
{
	struct file *f = ctx;

	if (!f)
		return;
	close(f->fd);
	free(f->path);
	free(f);
}

const struct usher_log_sink_type usher_log_sink_file = {
    .name = "file",
    .help = "ECS JSON lines appended to a file; SIGUSR1 reopens it",
    .options = file_options,
    .opts_size = sizeof(struct file_opts),
    .init = file_init,
    .write = file_write,
    .reopen = file_reopen,
    .free = file_free,
};
