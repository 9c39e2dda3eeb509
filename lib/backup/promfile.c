/* Textfile writer for the freshness metrics of backups and drills. */
#include "backup/promfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/repo.h"
#include "backup/stream.h"
#include "core/buf.h"

#define PROMFILE_MAX (1024 * 1024)

void usher_promfile_name(const char *kind, const char *target, char *out, size_t len)
{
	size_t i, n;

	snprintf(out, len, "usher_%s_%s.prom", kind, target);
	n = strlen(out) - 5;
	for (i = 0; i < n; i++) {
		char c = out[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			out[i] = '_';
	}
}

static void add_label_value(struct usher_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			usher_buf_addc(b, '\\');
		if (*s == '\n')
			usher_buf_addstr(b, "\\n");
		else
			usher_buf_addc(b, *s);
	}
}

enum usher_err usher_promfile_write(const char *dir, const char *file, const char *target,
				    const struct usher_promfile_gauge *g, size_t n,
				    struct usher_error *err)
{
	char path[4096], tmp[4096];
	struct usher_buf b;
	enum usher_err rc;
	size_t i;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%ld.tmp", dir, file, (long)getpid());
	usher_buf_init(&b, PROMFILE_MAX);
	for (i = 0; i < n; i++) {
		usher_buf_addf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s{target=\"", g[i].name,
			       g[i].help, g[i].name, g[i].name);
		add_label_value(&b, target);
		if (isnan(g[i].value))
			usher_buf_addstr(&b, "\"} NaN\n");
		else
			usher_buf_addf(&b, "\"} %.17g\n", g[i].value);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		usher_buf_free(&b);
		return usher_fail(err, USHER_ERR_IO, "textfile %s: %s", tmp, strerror(errno));
	}
	rc = usher_write_all(fd, usher_buf_str(&b), b.len, "the textfile", err);
	if (!rc && fsync(fd) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && !rc)
		rc = usher_fail(err, USHER_ERR_IO, "close %s: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "rename to %s: %s", path, strerror(errno));
	if (rc)
		unlink(tmp);
	else
		usher_fsync_dir(dir, NULL);
	usher_buf_free(&b);
	return rc;
}

double usher_promfile_read(const char *dir, const char *file, const char *name, double def)
{
	char path[4096], buf[16384];
	size_t len = 0, nl = strlen(name);
	const char *p;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return def;
	for (;;) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		const char *sp;
		char *end;
		double v;

		if (strncmp(p, name, nl) != 0 || p[nl] != '{')
			continue;
		sp = strstr(p, "} ");
		if (!sp)
			return def;
		v = strtod(sp + 2, &end);
		return end == sp + 2 ? def : v;
	}
	return def;
}
