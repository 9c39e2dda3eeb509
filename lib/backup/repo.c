/* The backup repository: listing, locks (flock), ids, atomic completion and
 * removal of backups, and the retention rules of `usher backup expire`. */
#include "backup/repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timeutil.h"

#define PATH_LEN 4096

bool usher_repo_target_valid(const char *s)
{
	size_t n = 0;

	if (!s || *s == '.' || !*s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == ':'))
			return false;
	}
	return n <= 100;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct usher_repo_entry *x = a, *y = b;

	if (x->m->start_ms != y->m->start_ms)
		return x->m->start_ms < y->m->start_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

enum usher_err usher_repo_list(const char *repo, const char *target, struct usher_repo_list *out,
			       struct usher_error *err)
{
	DIR *d = opendir(repo);
	struct dirent *de;
	size_t cap = 0, bcap = 0;

	memset(out, 0, sizeof(*out));
	if (!d) {
		if (errno == ENOENT)
			return USHER_OK;
		return usher_fail(err, USHER_ERR_IO, "repository %s: %s", repo, strerror(errno));
	}
	while ((de = readdir(d))) {
		char path[PATH_LEN];
		struct usher_manifest *m;
		struct usher_error e = {{0}};
		struct stat st;

		if (de->d_name[0] == '.' || strcmp(de->d_name, "locks") == 0 ||
		    ends_with(de->d_name, ".partial") || ends_with(de->d_name, ".deleting"))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", repo, de->d_name) >= sizeof(path) ||
		    stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s/manifest.json", repo, de->d_name) >=
		    sizeof(path))
			continue;
		if (usher_manifest_load(path, &m, &e)) {
			if (out->nbad == bcap) {
				bcap = bcap ? 2 * bcap : 4;
				out->bad = usher_realloc(out->bad, bcap * sizeof(*out->bad));
			}
			out->bad[out->nbad] = usher_malloc(strlen(de->d_name) + strlen(e.msg) + 3);
			snprintf(out->bad[out->nbad], strlen(de->d_name) + strlen(e.msg) + 3, "%s: %s",
				 de->d_name, e.msg);
			out->nbad++;
			continue;
		}
		if (strcmp(m->id, de->d_name) != 0 || (target && strcmp(m->target, target) != 0)) {
			usher_manifest_free(m);
			continue;
		}
		if (out->n == cap) {
			cap = cap ? 2 * cap : 16;
			out->v = usher_realloc(out->v, cap * sizeof(*out->v));
		}
		out->v[out->n].id = usher_strdup(de->d_name);
		snprintf(path, sizeof(path), "%s/%s", repo, de->d_name);
		out->v[out->n].dir = usher_strdup(path);
		out->v[out->n].m = m;
		out->n++;
	}
	closedir(d);
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), entry_cmp);
	return USHER_OK;
}

void usher_repo_list_free(struct usher_repo_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].dir);
		usher_manifest_free(l->v[i].m);
	}
	for (i = 0; i < l->nbad; i++)
		free(l->bad[i]);
	free(l->v);
	free(l->bad);
	memset(l, 0, sizeof(*l));
}

const struct usher_repo_entry *usher_repo_find(const struct usher_repo_list *l, const char *id)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].id, id) == 0)
			return &l->v[i];
	return NULL;
}

static enum usher_err mkdir_one(const char *path, struct usher_error *err)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return usher_fail(err, USHER_ERR_IO, "cannot create %s: %s", path, strerror(errno));
	return USHER_OK;
}

enum usher_err usher_repo_init(const char *repo, struct usher_error *err)
{
	char path[PATH_LEN];
	size_t i, n = strlen(repo);
	enum usher_err rc;

	if (n == 0 || n >= sizeof(path) - 16)
		return usher_fail(err, USHER_ERR_INVALID, "bad repository path \"%s\"", repo);
	/* mkdir -p */
	memcpy(path, repo, n + 1);
	for (i = 1; i < n; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		rc = mkdir_one(path, err);
		path[i] = '/';
		if (rc)
			return rc;
	}
	rc = mkdir_one(repo, err);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/locks", repo);
	return mkdir_one(path, err);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

enum usher_err usher_repo_lock(const char *repo, const char *target, int64_t wait_ms, int *fdp,
			       struct usher_error *err)
{
	char path[PATH_LEN], pid[32];
	int64_t deadline = usher_mono_ms() + wait_ms;
	ssize_t n;
	int fd;

	*fdp = -1;
	snprintf(path, sizeof(path), "%s/locks/%s.lock", repo, target);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "lock %s: %s", path, strerror(errno));
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			usher_fail(err, USHER_ERR_IO, "lock %s: %s", path, strerror(errno));
			close(fd);
			return USHER_ERR_IO;
		}
		if (usher_mono_ms() >= deadline) {
			n = pread(fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			close(fd);
			return usher_fail(err, USHER_ERR_TIMEOUT,
					  "a backup of %s is already running (pid %s, lock %s)%s",
					  target, *pid ? pid : "unknown", path,
					  wait_ms ? "" : "; --lock-wait DURATION waits for it");
		}
		sleep_ms(100);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is only for messages: the flock is what counts */
	}
	*fdp = fd;
	return USHER_OK;
}

void usher_repo_unlock(int fd)
{
	if (fd < 0)
		return;
	if (ftruncate(fd, 0) != 0) {
		/* the next holder rewrites it */
	}
	close(fd);
}

void usher_repo_new_id(const char *repo, const char *target, int64_t now_ms, char *id, size_t len)
{
	time_t t = (time_t)(now_ms / 1000);

	for (;; t++) {
		char path[PATH_LEN];
		struct tm tm;
		struct stat st;

		gmtime_r(&t, &tm);
		snprintf(id, len, "%s_%04d%02d%02dT%02d%02d%02dZ", target, tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		snprintf(path, sizeof(path), "%s/%s", repo, id);
		if (stat(path, &st) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s.partial", repo, id);
		if (stat(path, &st) == 0)
			continue;
		return;
	}
}

enum usher_err usher_repo_rmdir(const char *dir, struct usher_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	enum usher_err rc = USHER_OK;

	if (!d)
		return errno == ENOENT ? USHER_OK
				       : usher_fail(err, USHER_ERR_IO, "%s: %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		char path[PATH_LEN];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0 && errno != ENOENT)
			rc = usher_fail(err, USHER_ERR_IO, "cannot remove %s: %s", path,
					strerror(errno));
	}
	closedir(d);
	if (!rc && rmdir(dir) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
	return rc;
}

size_t usher_repo_clean_leftovers(const char *repo, const char *target)
{
	DIR *d = opendir(repo);
	struct dirent *de;
	size_t tl = strlen(target), n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[PATH_LEN];
		const char *us;

		if (!ends_with(de->d_name, ".partial") && !ends_with(de->d_name, ".deleting"))
			continue;
		/* "<target>_<stamp>.partial": the target is what precedes the last '_' */
		us = strrchr(de->d_name, '_');
		if (!us || (size_t)(us - de->d_name) != tl || strncmp(de->d_name, target, tl) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", repo, de->d_name);
		if (usher_repo_rmdir(path, NULL) == USHER_OK)
			n++;
	}
	closedir(d);
	return n;
}

enum usher_err usher_fsync_dir(const char *dir, struct usher_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	enum usher_err rc = USHER_OK;

	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "%s: %s", dir, strerror(errno));
	if (fsync(fd) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "fsync %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

enum usher_err usher_repo_remove(const char *repo, const char *id, struct usher_error *err)
{
	char from[PATH_LEN], to[PATH_LEN];

	snprintf(from, sizeof(from), "%s/%s", repo, id);
	snprintf(to, sizeof(to), "%s/%s.deleting", repo, id);
	if (rename(from, to) != 0)
		return usher_fail(err, USHER_ERR_IO, "cannot remove %s: %s", from, strerror(errno));
	usher_fsync_dir(repo, NULL);
	return usher_repo_rmdir(to, err);
}

/* ------------------------------------------------------------ retention */

bool usher_retention_set(const struct usher_backup_retention_conf *r)
{
	return r->keep_last > 0 || r->keep_daily > 0 || r->keep_weekly > 0 || r->keep_monthly > 0;
}

/* The calendar bucket of t for a rule: day, ISO week or month number. */
static int64_t bucket(int64_t ms, unsigned rule)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char w[16];

	gmtime_r(&t, &tm);
	switch (rule) {
	case USHER_KEEP_DAILY: return (int64_t)(tm.tm_year + 1900) * 1000 + tm.tm_yday;
	case USHER_KEEP_WEEKLY:
		/* ISO 8601 week-based year and week */
		strftime(w, sizeof(w), "%G%V", &tm);
		return strtoll(w, NULL, 10);
	default: return (int64_t)(tm.tm_year + 1900) * 100 + tm.tm_mon;
	}
}

/* Keeps the newest backup of each of the first count distinct buckets. */
static void keep_buckets(const int64_t *times_ms, size_t n, int64_t count, unsigned rule,
			 unsigned *keep)
{
	int64_t last = 0, seen = 0;
	size_t i;

	for (i = 0; i < n && seen < count; i++) {
		int64_t b = bucket(times_ms[i], rule);

		if (i > 0 && b == last)
			continue;
		keep[i] |= rule;
		last = b;
		seen++;
	}
}

void usher_retention_apply(const struct usher_backup_retention_conf *r, const int64_t *times_ms,
			   size_t n, unsigned *keep)
{
	size_t i;

	memset(keep, 0, n * sizeof(*keep));
	for (i = 0; i < n && (int64_t)i < r->keep_last; i++)
		keep[i] |= USHER_KEEP_LAST;
	if (r->keep_daily > 0)
		keep_buckets(times_ms, n, r->keep_daily, USHER_KEEP_DAILY, keep);
	if (r->keep_weekly > 0)
		keep_buckets(times_ms, n, r->keep_weekly, USHER_KEEP_WEEKLY, keep);
	if (r->keep_monthly > 0)
		keep_buckets(times_ms, n, r->keep_monthly, USHER_KEEP_MONTHLY, keep);
}
