/* Spawning pg_dump / pg_restore: posix_spawn, pipes, a poll loop, reaping. */
#include "backup/spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timeutil.h"

extern char **environ;

#define PIPE_READ (256 * 1024)

/* A pipe whose ends are not inherited (dup2 in the child clears it). */
static int pipe_cloexec(int p[2])
{
	if (pipe(p) != 0)
		return -1;
	if (fcntl(p[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(p[1], F_SETFD, FD_CLOEXEC) != 0) {
		close(p[0]);
		close(p[1]);
		p[0] = p[1] = -1;
		return -1;
	}
	return 0;
}

static char **child_env(const char *password)
{
	size_t n = 0, i, j = 0;
	char **env;

	while (environ[n])
		n++;
	env = usher_calloc(n + 2, sizeof(*env));
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "PGPASSWORD=", 11) != 0)
			env[j++] = usher_strdup(environ[i]);
	if (password) {
		size_t l = strlen(password) + 12;

		env[j] = usher_malloc(l);
		snprintf(env[j], l, "PGPASSWORD=%s", password);
		j++;
	}
	env[j] = NULL;
	return env;
}

static void env_free(char **env)
{
	size_t i;

	for (i = 0; env[i]; i++) {
		if (strncmp(env[i], "PGPASSWORD=", 11) == 0)
			memset(env[i], 0, strlen(env[i]));
		free(env[i]);
	}
	free(env);
}

enum usher_err usher_child_spawn(const char *path, char *const argv[], const char *password,
				 bool capture_out, struct usher_child *c, struct usher_error *err)
{
	posix_spawn_file_actions_t fa;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, rc;
	char **env;

	memset(c, 0, sizeof(*c));
	c->pid = -1;
	c->out_fd = c->err_fd = -1;
	c->name = usher_strdup(argv[0]);
	usher_buf_init(&c->err, USHER_CHILD_STDERR_MAX);
	if ((capture_out && pipe_cloexec(outp) != 0) || pipe_cloexec(errp) != 0) {
		rc = errno;
		if (outp[0] >= 0) {
			close(outp[0]);
			close(outp[1]);
		}
		return usher_fail(err, USHER_ERR_IO, "pipe: %s", strerror(rc));
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (capture_out)
		posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	env = child_env(password);
	rc = posix_spawn(&c->pid, path, &fa, NULL, argv, env);
	env_free(env);
	posix_spawn_file_actions_destroy(&fa);
	if (capture_out)
		close(outp[1]);
	close(errp[1]);
	if (rc != 0) {
		c->pid = -1;
		if (capture_out)
			close(outp[0]);
		close(errp[0]);
		return usher_fail(err, USHER_ERR_IO, "cannot run %s: %s", path, strerror(rc));
	}
	c->out_fd = capture_out ? outp[0] : -1;
	c->err_fd = errp[0];
	return USHER_OK;
}

/* The most telling line of a tool's stderr: the first "error:" line, else
 * the first line. */
static void stderr_summary(const char *s, char *out, size_t len)
{
	const char *p = strstr(s, "error: ");
	const char *start = p ? p : s, *end;

	while (*start == '\n')
		start++;
	end = strchr(start, '\n');
	snprintf(out, len, "%.*s", (int)(end ? (size_t)(end - start) : strlen(start)), start);
}

static void reap(struct usher_child *c, int *status)
{
	int64_t deadline = usher_mono_ms() + 5000;
	bool killed = false;

	*status = 0;
	if (c->pid <= 0)
		return;
	for (;;) {
		pid_t r = waitpid(c->pid, status, killed ? 0 : WNOHANG);

		if (r == c->pid || (r < 0 && errno != EINTR))
			break;
		if (r == 0 && usher_mono_ms() >= deadline) {
			kill(c->pid, SIGKILL);
			killed = true;
			continue;
		}
		if (r == 0) {
			struct timespec ts = {0, 20 * 1000000L};

			nanosleep(&ts, NULL);
		}
	}
	c->pid = -1;
}

enum usher_err usher_child_finish(struct usher_child *c, usher_child_out_fn *fn, void *ctx,
				  volatile sig_atomic_t *stop, struct usher_error *err)
{
	char *buf = usher_malloc(PIPE_READ);
	enum usher_err rc = USHER_OK;
	int status = 0;

	while (c->out_fd >= 0 || c->err_fd >= 0) {
		struct pollfd pfd[2];
		nfds_t n = 0;
		int i;

		if (stop && *stop) {
			rc = usher_fail(err, USHER_ERR_IO, "interrupted by a signal");
			break;
		}
		if (c->out_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = c->out_fd, .events = POLLIN};
		if (c->err_fd >= 0)
			pfd[n++] = (struct pollfd){.fd = c->err_fd, .events = POLLIN};
		if (poll(pfd, n, 500) < 0) {
			if (errno == EINTR)
				continue;
			rc = usher_fail(err, USHER_ERR_IO, "poll: %s", strerror(errno));
			break;
		}
		for (i = 0; i < (int)n && !rc; i++) {
			ssize_t k;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			k = read(pfd[i].fd, buf, PIPE_READ);
			if (k < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (k <= 0) {
				close(pfd[i].fd);
				if (pfd[i].fd == c->out_fd)
					c->out_fd = -1;
				else
					c->err_fd = -1;
				continue;
			}
			if (pfd[i].fd == c->out_fd) {
				if (fn)
					rc = fn(ctx, buf, (size_t)k, err);
			} else if (c->err.len < USHER_CHILD_STDERR_MAX) {
				size_t room = USHER_CHILD_STDERR_MAX - c->err.len;

				usher_buf_add(&c->err, buf, (size_t)k < room ? (size_t)k : room);
			}
		}
		if (rc)
			break;
	}
	free(buf);
	if (rc) {
		usher_child_free(c);
		return rc;
	}
	reap(c, &status);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return USHER_OK;
	{
		char line[400];

		stderr_summary(usher_buf_str(&c->err), line, sizeof(line));
		if (WIFSIGNALED(status))
			return usher_fail(err, USHER_ERR_PROTOCOL, "%s was killed by signal %d%s%s",
					  c->name, WTERMSIG(status), *line ? ": " : "", line);
		return usher_fail(err, USHER_ERR_PROTOCOL, "%s failed (exit %d)%s%s", c->name,
				  WEXITSTATUS(status), *line ? ": " : "", line);
	}
}

void usher_child_free(struct usher_child *c)
{
	int status;

	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->err_fd >= 0)
		close(c->err_fd);
	c->out_fd = c->err_fd = -1;
	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		reap(c, &status);
	}
	usher_buf_free(&c->err);
	free(c->name);
	c->name = NULL;
}

static bool executable(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

enum usher_err usher_pg_tool(const char *tool, int major, char *out, size_t len,
			     struct usher_error *err)
{
	const char *env = getenv("USHER_PG_BIN"), *path = getenv("PATH");
	int best = 0;
	DIR *d;
	struct dirent *de;

	if (env && *env) {
		snprintf(out, len, "%s/%s", env, tool);
		if (executable(out))
			return USHER_OK;
		return usher_fail(err, USHER_ERR_NOTFOUND, "%s not found in USHER_PG_BIN=%s", tool,
				  env);
	}
	snprintf(out, len, "/usr/lib/postgresql/%d/bin/%s", major, tool);
	if (executable(out))
		return USHER_OK;
	/* a newer pg_dump dumps older servers; an older one refuses newer ones */
	d = opendir("/usr/lib/postgresql");
	while (d && (de = readdir(d))) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		char p[512];

		if (*end || v < major || (best && v >= best))
			continue;
		snprintf(p, sizeof(p), "/usr/lib/postgresql/%ld/bin/%s", v, tool);
		if (executable(p))
			best = (int)v;
	}
	if (d)
		closedir(d);
	if (best) {
		snprintf(out, len, "/usr/lib/postgresql/%d/bin/%s", best, tool);
		return USHER_OK;
	}
	while (path && *path) {
		const char *colon = strchr(path, ':');
		size_t n = colon ? (size_t)(colon - path) : strlen(path);

		snprintf(out, len, "%.*s/%s", (int)n, path, tool);
		if (n && executable(out))
			return USHER_OK;
		path = colon ? colon + 1 : NULL;
	}
	return usher_fail(err, USHER_ERR_NOTFOUND,
			  "%s for PostgreSQL %d not found: install postgresql-client-%d "
			  "(or set USHER_PG_BIN)",
			  tool, major, major);
}
