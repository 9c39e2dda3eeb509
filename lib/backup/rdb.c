/* Redis RDB snapshots over the replication handshake (SYNC), as
 * `redis-cli --rdb` takes them: no access to the server's disk needed. */
#include "backup/rdb.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define IO_BUF (256 * 1024)
#define REPLY_MAX (4 * 1024 * 1024)

struct conn {
	int fd;
	unsigned char *buf;
	size_t len, pos;
	int64_t idle_ms;
	volatile sig_atomic_t *stop;
};

enum usher_err usher_redis_src_parse(struct usher_arena *a, const char *dsn,
				     struct usher_redis_src *out, struct usher_error *err)
{
	const char *p = dsn, *at;
	char why[200];

	memset(out, 0, sizeof(*out));
	out->idle_timeout_ms = 60000;
	if (strncmp(p, "redis://", 8) == 0) {
		p += 8;
		at = strrchr(p, '@');
		if (at) {
			const char *colon = memchr(p, ':', (size_t)(at - p));

			if (colon) {
				if (colon > p)
					out->username = usher_arena_strndup(a, p, (size_t)(colon - p));
				out->password =
				    usher_arena_strndup(a, colon + 1, (size_t)(at - colon - 1));
			} else {
				out->password = usher_arena_strndup(a, p, (size_t)(at - p));
			}
			p = at + 1;
		}
		/* redis://[auth@]host:port[/db] or redis://[auth@]unix:/path */
		if (strncmp(p, "unix:", 5) != 0)
			p = usher_arena_strndup(a, p, strcspn(p, "/?"));
	}
	if (usher_netaddr_parse(p, 6379, &out->addr, why, sizeof(why)))
		return usher_fail(err, USHER_ERR_INVALID, "bad redis address \"%s\": %s", p, why);
	return USHER_OK;
}

static enum usher_err wait_fd(struct conn *c, short ev, struct usher_error *err)
{
	int64_t deadline = usher_mono_ms() + c->idle_ms;

	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = ev};
		int64_t left = deadline - usher_mono_ms();
		int r;

		if (c->stop && *c->stop)
			return usher_fail(err, USHER_ERR_IO, "interrupted by a signal");
		if (left <= 0)
			return usher_fail(err, USHER_ERR_TIMEOUT,
					  "redis sent nothing for %lld s",
					  (long long)(c->idle_ms / 1000));
		r = poll(&pfd, 1, left < 500 ? (int)left : 500);
		if (r < 0 && errno != EINTR)
			return usher_fail(err, USHER_ERR_NETWORK, "poll: %s", strerror(errno));
		if (r > 0)
			return USHER_OK;
	}
}

static enum usher_err send_all(struct conn *c, const char *s, size_t n, struct usher_error *err)
{
	while (n) {
		ssize_t w;
		enum usher_err rc = wait_fd(c, POLLOUT, err);

		if (rc)
			return rc;
		w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (w < 0)
			return usher_fail(err, USHER_ERR_NETWORK, "redis: send: %s", strerror(errno));
		s += w;
		n -= (size_t)w;
	}
	return USHER_OK;
}

static enum usher_err fill(struct conn *c, struct usher_error *err)
{
	for (;;) {
		ssize_t k;
		enum usher_err rc = wait_fd(c, POLLIN, err);

		if (rc)
			return rc;
		k = recv(c->fd, c->buf, IO_BUF, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k < 0)
			return usher_fail(err, USHER_ERR_NETWORK, "redis: recv: %s", strerror(errno));
		if (k == 0)
			return usher_fail(err, USHER_ERR_NETWORK, "redis closed the connection");
		c->len = (size_t)k;
		c->pos = 0;
		return USHER_OK;
	}
}

/* One line without its CRLF into b. */
static enum usher_err read_line(struct conn *c, struct usher_buf *b, struct usher_error *err)
{
	usher_buf_reset(b);
	for (;;) {
		enum usher_err rc;

		while (c->pos < c->len) {
			char ch = (char)c->buf[c->pos++];

			if (ch == '\n') {
				if (b->len && b->data[b->len - 1] == '\r')
					b->data[--b->len] = '\0';
				return USHER_OK;
			}
			if (usher_buf_addc(b, ch))
				return usher_fail(err, USHER_ERR_PROTOCOL, "redis: reply line too long");
		}
		rc = fill(c, err);
		if (rc)
			return rc;
	}
}

/* Reads n payload bytes, to fn when given, else into b. */
static enum usher_err read_bytes(struct conn *c, uint64_t n, usher_child_out_fn *fn, void *ctx,
				 struct usher_buf *b, struct usher_error *err)
{
	while (n) {
		size_t take;
		enum usher_err rc;

		if (c->pos == c->len) {
			rc = fill(c, err);
			if (rc)
				return rc;
		}
		take = c->len - c->pos < n ? c->len - c->pos : (size_t)n;
		rc = fn ? fn(ctx, c->buf + c->pos, take, err) : usher_buf_add(b, c->buf + c->pos, take);
		if (rc)
			return fn ? rc : usher_fail(err, rc, "redis: reply too large");
		c->pos += take;
		n -= take;
	}
	return USHER_OK;
}

/* Sends a command and reads a simple or bulk reply into b. */
static enum usher_err command(struct conn *c, const char *const *argv, int argc,
			      struct usher_buf *b, struct usher_error *err)
{
	struct usher_buf req;
	enum usher_err rc;
	int i;

	usher_buf_init(&req, 64 * 1024);
	usher_buf_addf(&req, "*%d\r\n", argc);
	for (i = 0; i < argc; i++)
		usher_buf_addf(&req, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
	rc = send_all(c, req.data, req.len, err);
	usher_buf_free(&req);
	if (rc)
		return rc;
	rc = read_line(c, b, err);
	if (rc)
		return rc;
	if (b->len && b->data[0] == '-')
		return usher_fail(err, strstr(b->data, "NOAUTH") || strstr(b->data, "WRONGPASS")
					       ? USHER_ERR_AUTH
					       : USHER_ERR_PROTOCOL,
				  "redis %s: %s", argv[0], b->data + 1);
	if (b->len && b->data[0] == '$') {
		char *end;
		long long n = strtoll(b->data + 1, &end, 10);

		if (*end || n < 0 || n > REPLY_MAX)
			return usher_fail(err, USHER_ERR_PROTOCOL, "redis %s: bad reply", argv[0]);
		usher_buf_reset(b);
		rc = read_bytes(c, (uint64_t)n + 2, NULL, NULL, b, err);
		if (!rc && b->len >= 2)
			b->data[b->len -= 2] = '\0';
	}
	return rc;
}

static enum usher_err dial(const struct usher_redis_src *s, int *fd, struct usher_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	int rc, last = 0;

	if (s->addr.is_unix) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (*fd < 0)
			return usher_fail(err, USHER_ERR_IO, "socket: %s", strerror(errno));
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", s->addr.path);
		if (connect(*fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
			last = errno;
			close(*fd);
			return usher_fail(err, USHER_ERR_NETWORK, "cannot connect to unix:%s: %s",
					  s->addr.path, strerror(last));
		}
		return USHER_OK;
	}
	rc = getaddrinfo(s->addr.host, s->addr.port, &hints, &res);
	if (rc)
		return usher_fail(err, USHER_ERR_NETWORK, "cannot resolve %s: %s", s->addr.host,
				  gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		*fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (*fd < 0)
			continue;
		if (connect(*fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			freeaddrinfo(res);
			return USHER_OK;
		}
		last = errno;
		close(*fd);
	}
	freeaddrinfo(res);
	*fd = -1;
	return usher_fail(err, USHER_ERR_NETWORK, "cannot connect to %s:%s: %s", s->addr.host,
			  s->addr.port, strerror(last));
}

/* Picks redis_version and the dbN:keys=... lines out of INFO. */
static void parse_info(struct usher_manifest *m, const char *text)
{
	const char *p;
	size_t cap = 16;

	m->tables = usher_arena_zalloc(m->arena, cap * sizeof(*m->tables));
	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		size_t n = strcspn(p, "\r\n");

		if (strncmp(p, "redis_version:", 14) == 0)
			m->server_version = usher_arena_strndup(m->arena, p + 14, n - 14);
		if (strncmp(p, "db", 2) == 0 && p[2] >= '0' && p[2] <= '9' && m->ntables < cap) {
			const char *colon = memchr(p, ':', n);

			if (colon && strncmp(colon + 1, "keys=", 5) == 0) {
				m->tables[m->ntables].schema = "redis";
				m->tables[m->ntables].name =
				    usher_arena_strndup(m->arena, p, (size_t)(colon - p));
				m->tables[m->ntables].rows = strtoll(colon + 6, NULL, 10);
				m->ntables++;
			}
		}
	}
}

enum usher_err usher_redis_dump(const struct usher_redis_src *s, struct usher_manifest *m,
				usher_child_out_fn *fn, void *ctx, volatile sig_atomic_t *stop,
				struct usher_error *err)
{
	struct conn c = {.fd = -1, .idle_ms = s->idle_timeout_ms, .stop = stop};
	struct usher_buf b;
	enum usher_err rc;
	long long len;
	char *end;

	usher_buf_init(&b, REPLY_MAX + 2);
	c.buf = usher_malloc(IO_BUF);
	rc = dial(s, &c.fd, err);
	if (rc)
		goto out;
	if (s->password) {
		const char *auth[3] = {"AUTH", s->username ? s->username : s->password,
				       s->password};

		rc = command(&c, auth, s->username ? 3 : 2, &b, err);
		if (rc)
			goto out;
	}
	{
		const char *info[1] = {"INFO"};

		rc = command(&c, info, 1, &b, err);
		if (rc)
			goto out;
		parse_info(m, usher_buf_str(&b));
	}
	{
		const char *sync[1] = {"SYNC"};
		struct usher_buf req;

		usher_buf_init(&req, 64);
		usher_buf_addstr(&req, "*1\r\n$4\r\nSYNC\r\n");
		rc = send_all(&c, req.data, req.len, err);
		usher_buf_free(&req);
		(void)sync;
		if (rc)
			goto out;
	}
	/* newlines keep the link alive while the server runs BGSAVE */
	do {
		rc = read_line(&c, &b, err);
		if (rc)
			goto out;
	} while (b.len == 0);
	if (b.data[0] == '-') {
		rc = usher_fail(err, strstr(b.data, "NOAUTH") ? USHER_ERR_AUTH : USHER_ERR_PROTOCOL,
				"redis SYNC: %s", b.data + 1);
		goto out;
	}
	if (b.data[0] != '$' || strncmp(b.data, "$EOF:", 5) == 0) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL,
				"redis SYNC: unexpected reply \"%.40s\" (expected $<length>)", b.data);
		goto out;
	}
	len = strtoll(b.data + 1, &end, 10);
	if (*end || len < 0) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL, "redis SYNC: bad length \"%.40s\"", b.data);
		goto out;
	}
	rc = read_bytes(&c, (uint64_t)len, fn, ctx, NULL, err);
	if (!rc)
		m->tool_version = "redis SYNC (RDB)";
out:
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	usher_buf_free(&b);
	return rc;
}
