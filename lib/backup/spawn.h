/* Child processes for the backup tools (pg_dump, pg_restore): posix_spawn
 * with an explicit path and argv, no shell; secrets only in the child's
 * environment; stdout and stderr read through pipes in one poll loop. */
#ifndef USHER_BACKUP_SPAWN_H
#define USHER_BACKUP_SPAWN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/err.h"

#define USHER_CHILD_STDERR_MAX (64 * 1024)

struct usher_child {
	pid_t pid;
	int out_fd; /* -1 when stdout is not captured */
	int err_fd;
	char *name;           /* for messages: "pg_dump" */
	struct usher_buf err; /* the first USHER_CHILD_STDERR_MAX bytes of stderr */
};

/* Called with each piece of the child's stdout. */
typedef enum usher_err usher_child_out_fn(void *ctx, const void *p, size_t n,
					  struct usher_error *err);

/* Starts path with argv (argv[0] names it), its environment being ours
 * without PGPASSWORD, plus PGPASSWORD=password when password is not NULL.
 * stdin is /dev/null; stdout is piped when capture_out, else /dev/null. */
enum usher_err usher_child_spawn(const char *path, char *const argv[], const char *password,
				 bool capture_out, struct usher_child *c, struct usher_error *err);
/* Reads stdout (to fn) and stderr until both close, then reaps the child.
 * A nonzero exit or a signal is USHER_ERR_PROTOCOL with the first line of
 * stderr worth showing. When fn fails or *stop becomes nonzero the child is
 * terminated and reaped and that failure returned. */
enum usher_err usher_child_finish(struct usher_child *c, usher_child_out_fn *fn, void *ctx,
				  volatile sig_atomic_t *stop, struct usher_error *err);
/* Kills (SIGTERM, then SIGKILL after 5 s) and reaps a child not finished
 * yet, and frees what c holds. Safe after usher_child_finish. */
void usher_child_free(struct usher_child *c);

/* The path of PostgreSQL tool (pg_dump, pg_restore) for a server of major
 * version major: $USHER_PG_BIN/tool, else /usr/lib/postgresql/<major>/bin,
 * else the lowest newer version there, else the first on $PATH. */
enum usher_err usher_pg_tool(const char *tool, int major, char *out, size_t len,
			     struct usher_error *err);

#endif
