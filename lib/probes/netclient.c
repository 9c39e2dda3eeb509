/* Deadline-bounded, cancellable client sockets with optional TLS: poll() on
 * the socket and an eventfd the loop thread writes to cancel; OpenSSL over a
 * non-blocking socket; glibc's getaddrinfo_a for name lookups that can be
 * abandoned. Only this file touches OpenSSL for redis and memcached. */
#define _GNU_SOURCE /* getaddrinfo_a */
#include "probes/netclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/probe.h"

#define BACKOFF_MAX_MS 10000
/* How often an abandoned-or-not name lookup looks at its deadline and at
 * cancels: gai_suspend cannot wait on our eventfd. */
#define LOOKUP_SLICE_MS 20

/* A name lookup in flight. It outlives a run that gave up on it when glibc
 * cannot cancel it (its resolver thread still writes to it). */
struct lookup {
	struct gaicb cb;
	struct addrinfo hints;
	char host[USHER_NETADDR_HOST_MAX];
	char port[6];
};

struct usher_netclient {
	struct usher_netaddr addr;
	char shown[USHER_NETADDR_HOST_MAX + 16]; /* "host:port" for messages */
	const struct usher_tls_client_conf *tls;
	SSL_CTX *ssl_ctx;
	int fd; /* -1 when not connected */
	SSL *ssl;
	int cancel_fd; /* eventfd: readable when a cancel came */
	bool awaiting; /* sent since the last receive: the answer is not in yet */
	bool answered; /* something was received on this connection */
	_Atomic uint64_t armed, fired;
	struct lookup *pending; /* a lookup an earlier run gave up on */
};

/* ---- small helpers ------------------------------------------------------ */

/* strerror, with the first letter lowercase (messages are lowercase). */
static const char *errstr(int e, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a' && buf[1] <= 'z')
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

/* OpenSSL's oldest queued error as one line, the queue then emptied. */
static const char *ssl_errstr(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *reason;

	if (!e) {
		snprintf(buf, len, "unknown TLS error");
		return buf;
	}
	reason = ERR_reason_error_string(e);
	if (reason)
		snprintf(buf, len, "%s", reason);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static bool is_ip_literal(const char *s)
{
	unsigned char tmp[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* ---- addresses ---------------------------------------------------------- */

static bool parse_port(const char *s, size_t n, char out[6])
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	snprintf(out, 6, "%u", v);
	return true;
}

enum usher_err usher_netaddr_parse(const char *s, unsigned default_port, struct usher_netaddr *out,
				   char *why, size_t whylen)
{
	const char *host = s, *colon, *port = NULL;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;

		if (path[0] != '/') {
			snprintf(why, whylen,
				 "a unix socket needs an absolute path, like "
				 "unix:/run/redis/redis.sock");
			return USHER_ERR_INVALID;
		}
		if (strlen(path) >= sizeof(out->path)) {
			snprintf(why, whylen, "the socket path is longer than %zu bytes",
				 sizeof(out->path) - 1);
			return USHER_ERR_INVALID;
		}
		out->is_unix = true;
		memcpy(out->path, path, strlen(path) + 1);
		return USHER_OK;
	}
	if (!*s) {
		snprintf(why, whylen, "empty address: use host:port or unix:/path");
		return USHER_ERR_INVALID;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end) {
			snprintf(why, whylen, "missing ']' after the IPv6 address");
			return USHER_ERR_INVALID;
		}
		host = s + 1;
		hlen = (size_t)(end - host);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1]) {
			snprintf(why, whylen, "expected ':' and a port after ']'");
			return USHER_ERR_INVALID;
		}
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon) {
			snprintf(why, whylen, "an IPv6 address goes in brackets: [%s]:port", s);
			return USHER_ERR_INVALID;
		}
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (colon)
			port = colon + 1;
	}
	if (hlen == 0) {
		snprintf(why, whylen, "missing host before the port");
		return USHER_ERR_INVALID;
	}
	if (hlen >= sizeof(out->host)) {
		snprintf(why, whylen, "the host name is longer than %zu bytes",
			 sizeof(out->host) - 1);
		return USHER_ERR_INVALID;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	if (strpbrk(out->host, " \t\r\n/[]")) {
		snprintf(why, whylen, "invalid host \"%s\"", out->host);
		return USHER_ERR_INVALID;
	}
	if (s[0] == '[' && !strchr(out->host, ':')) {
		snprintf(why, whylen, "only IPv6 addresses go in brackets");
		return USHER_ERR_INVALID;
	}
	if (!port) {
		if (!default_port) {
			snprintf(why, whylen, "missing port: use host:port");
			return USHER_ERR_INVALID;
		}
		snprintf(out->port, sizeof(out->port), "%hu", (unsigned short)default_port);
		return USHER_OK;
	}
	if (!parse_port(port, strlen(port), out->port)) {
		snprintf(why, whylen, "invalid port \"%s\": use a number from 1 to 65535", port);
		return USHER_ERR_INVALID;
	}
	return USHER_OK;
}

/* ---- backoff ------------------------------------------------------------ */

enum usher_err usher_backoff_check(const struct usher_backoff *b, int64_t now_ms,
				   struct usher_error *err)
{
	if (!b->failures || now_ms >= b->retry_at_ms)
		return USHER_OK;
	return usher_fail(err, b->rc, "%s (not retrying for %.1fs after %u failures)", b->msg,
			  (double)(b->retry_at_ms - now_ms) / 1000, b->failures);
}

void usher_backoff_failed(struct usher_backoff *b, int64_t run_start_ms, enum usher_err rc,
			  const char *msg)
{
	int64_t wait = 0;

	if (b->failures < UINT_MAX)
		b->failures++;
	/* the first retry comes at the next run; then 1s, 2s, 4s, ... */
	if (b->failures >= 2)
		wait = b->failures >= 2 + 14 ? BACKOFF_MAX_MS : (int64_t)1000 << (b->failures - 2);
	if (wait > BACKOFF_MAX_MS)
		wait = BACKOFF_MAX_MS;
	b->retry_at_ms = run_start_ms + wait;
	b->rc = rc;
	snprintf(b->msg, sizeof(b->msg), "%s", msg);
}

void usher_backoff_reset(struct usher_backoff *b)
{
	b->failures = 0;
	b->retry_at_ms = 0;
	b->msg[0] = '\0';
}

/* ---- TLS contexts ------------------------------------------------------- */

static enum usher_err tls_ctx_new(const struct usher_tls_client_conf *tls, SSL_CTX **out,
				  struct usher_error *err)
{
	SSL_CTX *ctx;
	char e[256];

	*out = NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return usher_fail(err, USHER_ERR_TLS, "cannot create a TLS context: %s",
				  ssl_errstr(e, sizeof(e)));
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* a server that drops the connection without close_notify has just
	 * closed it, as far as a probe cares */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (tls->insecure_skip_verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (tls->ca_file ? SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1
				 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
			usher_fail(err, USHER_ERR_TLS, "cannot load CA certificates%s%s: %s",
				   tls->ca_file ? " from " : "", tls->ca_file ? tls->ca_file : "",
				   ssl_errstr(e, sizeof(e)));
			goto fail;
		}
	}
	if (tls->cert_file) {
		const char *key = tls->key_file ? tls->key_file : tls->cert_file;

		if (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1) {
			usher_fail(err, USHER_ERR_TLS, "cannot load the client certificate %s: %s",
				   tls->cert_file, ssl_errstr(e, sizeof(e)));
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
			usher_fail(
			    err, USHER_ERR_TLS,
			    "cannot load the private key %s (want an unencrypted PEM key): %s", key,
			    ssl_errstr(e, sizeof(e)));
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			usher_fail(err, USHER_ERR_TLS, "the private key %s does not match %s: %s",
				   key, tls->cert_file, ssl_errstr(e, sizeof(e)));
			goto fail;
		}
	}
	*out = ctx;
	return USHER_OK;
fail:
	SSL_CTX_free(ctx);
	return USHER_ERR_TLS;
}

enum usher_err usher_netclient_tls_check(const struct usher_tls_client_conf *tls,
					 struct usher_error *err)
{
	SSL_CTX *ctx;
	enum usher_err rc = tls_ctx_new(tls, &ctx, err);

	SSL_CTX_free(ctx);
	return rc;
}

/* ---- the client --------------------------------------------------------- */

enum usher_err usher_netclient_new(const struct usher_netaddr *addr,
				   const struct usher_tls_client_conf *tls,
				   struct usher_netclient **out, struct usher_error *err)
{
	struct usher_netclient *c = usher_calloc(1, sizeof(*c));
	enum usher_err rc;
	char e[128];

	*out = NULL;
	c->addr = *addr;
	c->tls = tls;
	c->fd = -1;
	atomic_init(&c->armed, 0);
	atomic_init(&c->fired, 0);
	if (addr->is_unix)
		snprintf(c->shown, sizeof(c->shown), "unix:%s", addr->path);
	else if (strchr(addr->host, ':'))
		snprintf(c->shown, sizeof(c->shown), "[%s]:%s", addr->host, addr->port);
	else
		snprintf(c->shown, sizeof(c->shown), "%s:%s", addr->host, addr->port);
	c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->cancel_fd < 0) {
		rc = usher_fail(err, USHER_ERR_IO, "eventfd: %s", errstr(errno, e, sizeof(e)));
		free(c);
		return rc;
	}
	if (tls) {
		rc = tls_ctx_new(tls, &c->ssl_ctx, err);
		if (rc) {
			close(c->cancel_fd);
			free(c);
			return rc;
		}
	}
	*out = c;
	return USHER_OK;
}

static void lookup_free(struct lookup *l)
{
	if (l->cb.ar_result)
		freeaddrinfo(l->cb.ar_result);
	free(l);
}

/* Gives up on a lookup: freed when glibc can let go of it, else kept in
 * c->pending until it ends. */
static void lookup_abandon(struct usher_netclient *c, struct lookup *l)
{
	int r = gai_cancel(&l->cb);

	if (r == EAI_CANCELED || r == EAI_ALLDONE) {
		if (r == EAI_ALLDONE && gai_error(&l->cb) != 0)
			l->cb.ar_result = NULL;
		lookup_free(l);
		return;
	}
	c->pending = l;
}

void usher_netclient_free(struct usher_netclient *c)
{
	if (!c)
		return;
	usher_netclient_close(c);
	if (c->pending) {
		int r = gai_cancel(&c->pending->cb);

		/* A lookup glibc is still working on cannot be freed under
		 * it: it is left behind (once per probe instance at most). */
		if (r == EAI_CANCELED)
			free(c->pending);
		else if (r == EAI_ALLDONE)
			lookup_free(c->pending);
	}
	SSL_CTX_free(c->ssl_ctx);
	close(c->cancel_fd);
	free(c);
}

void usher_netclient_begin(struct usher_netclient *c, uint64_t id)
{
	uint64_t v;

	atomic_store(&c->armed, id);
	/* drop the wake-up of a cancel that came for an earlier run */
	while (read(c->cancel_fd, &v, sizeof(v)) > 0)
		;
}

void usher_netclient_cancel(struct usher_netclient *c, uint64_t id)
{
	uint64_t one = 1;
	ssize_t n;

	atomic_store(&c->fired, id);
	n = write(c->cancel_fd, &one, sizeof(one));
	(void)n; /* a full counter already wakes the waiter */
}

static bool cancelled(struct usher_netclient *c)
{
	uint64_t armed = atomic_load(&c->armed);

	return armed && atomic_load(&c->fired) == armed;
}

bool usher_netclient_connected(const struct usher_netclient *c)
{
	return c->fd >= 0;
}

void usher_netclient_close(struct usher_netclient *c)
{
	c->awaiting = false;
	c->answered = false;
	if (c->ssl) {
		/* no close_notify: it could block on a hung server, and
		 * servers do not need it */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* Waits until fd is ready for events, the deadline passes or a cancel
 * comes. USHER_OK also for errors and hangups: the next call reports them. */
static enum usher_err wait_fd(struct usher_netclient *c, int fd, short events, int64_t deadline,
			      const char *doing, struct usher_error *err)
{
	char e[128];

	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = events},
				      {.fd = c->cancel_fd, .events = POLLIN}};
		int64_t now = usher_mono_ms(), left = deadline - now;
		int n;

		if (cancelled(c))
			return usher_fail(err, USHER_ERR_TIMEOUT, "cancelled while %s", doing);
		if (left <= 0)
			return usher_fail(err, USHER_ERR_TIMEOUT, "timed out %s", doing);
		n = poll(p, 2, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return usher_fail(err, USHER_ERR_IO, "poll: %s",
					  errstr(errno, e, sizeof(e)));
		}
		if (p[1].revents) {
			uint64_t v;

			while (read(c->cancel_fd, &v, sizeof(v)) > 0)
				;
			continue; /* cancelled() decides whether it was for us */
		}
		if (p[0].revents)
			return USHER_OK;
	}
}

/* ---- name lookup -------------------------------------------------------- */

static enum usher_err resolve(struct usher_netclient *c, int64_t deadline, struct addrinfo **res,
			      struct usher_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct gaicb *list[1];
	struct lookup *l;
	int r;

	*res = NULL;
	/* an address literal needs no resolver and cannot block */
	if (getaddrinfo(c->addr.host, c->addr.port, &hints, res) == 0)
		return USHER_OK;
	*res = NULL;
	if (c->pending) {
		r = gai_error(&c->pending->cb);
		if (r == EAI_INPROGRESS)
			return usher_fail(err, USHER_ERR_NOTFOUND,
					  "resolve %s: the lookup of an earlier run is still "
					  "waiting for the resolver",
					  c->addr.host);
		if (r != 0)
			c->pending->cb.ar_result = NULL;
		lookup_free(c->pending);
		c->pending = NULL;
	}
	l = usher_calloc(1, sizeof(*l));
	memcpy(l->host, c->addr.host, sizeof(l->host));
	memcpy(l->port, c->addr.port, sizeof(l->port));
	l->hints.ai_socktype = SOCK_STREAM;
	l->hints.ai_flags = AI_NUMERICSERV;
	l->cb.ar_name = l->host;
	l->cb.ar_service = l->port;
	l->cb.ar_request = &l->hints;
	list[0] = &l->cb;
	r = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (r != 0) {
		free(l);
		return usher_fail(err, USHER_ERR_NOTFOUND, "resolve %s: %s", c->addr.host,
				  gai_strerror(r));
	}
	while ((r = gai_error(&l->cb)) == EAI_INPROGRESS) {
		int64_t left = deadline - usher_mono_ms();
		struct timespec ts;

		if (cancelled(c) || left <= 0) {
			lookup_abandon(c, l);
			return usher_fail(err,
					  cancelled(c) ? USHER_ERR_TIMEOUT : USHER_ERR_NOTFOUND,
					  "resolve %s: %s", c->addr.host,
					  cancelled(c) ? "cancelled" : "timed out");
		}
		if (left > LOOKUP_SLICE_MS)
			left = LOOKUP_SLICE_MS;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		gai_suspend((const struct gaicb *const *)list, 1, &ts);
	}
	if (r != 0) {
		l->cb.ar_result = NULL;
		lookup_free(l);
		return usher_fail(err, USHER_ERR_NOTFOUND, "resolve %s: %s", c->addr.host,
				  r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	}
	*res = l->cb.ar_result;
	free(l);
	return USHER_OK;
}

/* ---- connecting --------------------------------------------------------- */

static enum usher_err connect_unix(struct usher_netclient *c, struct usher_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char e[128];
	int fd;

	memcpy(sa.sun_path, c->addr.path, strlen(c->addr.path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "socket: %s", errstr(errno, e, sizeof(e)));
	/* a unix connect never waits: it succeeds, or the queue is full */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int saved = errno;

		close(fd);
		if (saved == EAGAIN)
			return usher_fail(err, USHER_ERR_NETWORK,
					  "connect to %s: the server's listen queue is full",
					  c->shown);
		return usher_fail(err, USHER_ERR_NETWORK, "connect to %s: %s", c->shown,
				  errstr(saved, e, sizeof(e)));
	}
	c->fd = fd;
	return USHER_OK;
}

static enum usher_err connect_tcp(struct usher_netclient *c, int64_t deadline,
				  struct usher_error *err)
{
	struct addrinfo *res, *ai;
	enum usher_err rc;
	int last = ECONNREFUSED, one = 1;
	char e[128];

	rc = resolve(c, deadline, &res, err);
	if (rc)
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int soerr = 0;
		socklen_t slen = sizeof(soerr);

		if (fd < 0) {
			last = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
			if (errno != EINPROGRESS) {
				last = errno;
				close(fd);
				continue;
			}
			char doing[sizeof(c->shown) + 16];

			snprintf(doing, sizeof(doing), "connecting to %s", c->shown);
			rc = wait_fd(c, fd, POLLOUT, deadline, doing, err);
			if (rc) {
				close(fd);
				freeaddrinfo(res);
				return rc;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) != 0)
				soerr = errno;
			if (soerr) {
				last = soerr;
				close(fd);
				continue;
			}
		}
		c->fd = fd;
		freeaddrinfo(res);
		return USHER_OK;
	}
	freeaddrinfo(res);
	return usher_fail(err, USHER_ERR_NETWORK, "connect to %s: %s", c->shown,
			  errstr(last, e, sizeof(e)));
}

/* Waits for what OpenSSL asked for after a WANT_READ / WANT_WRITE. */
static enum usher_err ssl_wait(struct usher_netclient *c, int sslerr, int64_t deadline,
			       const char *doing, struct usher_error *err)
{
	return wait_fd(c, c->fd, sslerr == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN, deadline, doing,
		       err);
}

static enum usher_err handshake(struct usher_netclient *c, int64_t deadline,
				struct usher_error *err)
{
	const char *name = c->tls->server_name ? c->tls->server_name : c->addr.host;
	char e[256];

	ERR_clear_error();
	c->ssl = SSL_new(c->ssl_ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return usher_fail(err, USHER_ERR_TLS, "TLS setup: %s", ssl_errstr(e, sizeof(e)));
	if (is_ip_literal(name)) {
		if (!c->tls->insecure_skip_verify)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name);
	} else {
		SSL_set_tlsext_host_name(c->ssl, name);
		if (!c->tls->insecure_skip_verify)
			SSL_set1_host(c->ssl, name);
	}
	for (;;) {
		int r = SSL_connect(c->ssl), se;
		long vr;
		enum usher_err rc;
		char doing[sizeof(c->shown) + 80];

		if (r == 1)
			return USHER_OK;
		se = SSL_get_error(c->ssl, r);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
			/* a server that does not speak TLS on the port waits
			 * for more of what it takes for a command, silently */
			snprintf(doing, sizeof(doing),
				 "in the TLS handshake with %s (does it speak TLS on this port?)",
				 c->shown);
			rc = ssl_wait(c, se, deadline, doing, err);
			if (rc)
				return rc;
			continue;
		}
		vr = SSL_get_verify_result(c->ssl);
		if (vr != X509_V_OK)
			return usher_fail(err, USHER_ERR_TLS,
					  "TLS handshake with %s: certificate verify failed: %s",
					  c->shown, X509_verify_cert_error_string(vr));
		if (se == SSL_ERROR_SYSCALL || se == SSL_ERROR_ZERO_RETURN)
			return usher_fail(err, USHER_ERR_TLS,
					  "TLS handshake with %s: the server closed the connection "
					  "(is it speaking TLS?)",
					  c->shown);
		return usher_fail(err, USHER_ERR_TLS, "TLS handshake with %s: %s", c->shown,
				  ssl_errstr(e, sizeof(e)));
	}
}

enum usher_err usher_netclient_connect(struct usher_netclient *c, int64_t deadline,
				       struct usher_error *err)
{
	enum usher_err rc;

	usher_netclient_close(c);
	if (cancelled(c))
		return usher_fail(err, USHER_ERR_TIMEOUT, "cancelled before connecting");
	rc = c->addr.is_unix ? connect_unix(c, err) : connect_tcp(c, deadline, err);
	if (!rc && c->ssl_ctx)
		rc = handshake(c, deadline, err);
	if (rc)
		usher_netclient_close(c);
	return rc;
}

/* ---- sending and receiving ---------------------------------------------- */

static enum usher_err send_plain(struct usher_netclient *c, const char *p, size_t len,
				 int64_t deadline, struct usher_error *err)
{
	char e[128];

	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		enum usher_err rc;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rc = wait_fd(c, c->fd, POLLOUT, deadline, "sending", err);
			if (rc)
				return rc;
			continue;
		}
		return usher_fail(err, USHER_ERR_NETWORK, "send to %s: %s", c->shown,
				  errstr(errno, e, sizeof(e)));
	}
	return USHER_OK;
}

/* A TLS connection reset or closed. Before anything was received on it,
 * that is the server refusing at the TLS level after the handshake (with
 * TLS 1.3 a missing client certificate shows only now, and the alert saying
 * so is lost when our request meets the closed socket): "tls", not
 * "connect". */
static enum usher_err closed_tls(struct usher_netclient *c, const char *doing, int errnum,
				 struct usher_error *err)
{
	char e[128];

	if (!c->answered)
		return usher_fail(err, USHER_ERR_TLS,
				  "%s %s: the server closed the TLS connection before answering "
				  "(%s; does it want a client certificate?)",
				  doing, c->shown,
				  errnum ? errstr(errnum, e, sizeof(e)) : "connection closed");
	return usher_fail(err, USHER_ERR_NETWORK, "%s %s: %s", doing, c->shown,
			  errnum ? errstr(errnum, e, sizeof(e))
				 : "connection closed by the server");
}

static enum usher_err send_tls(struct usher_netclient *c, const char *p, size_t len,
			       int64_t deadline, struct usher_error *err)
{
	char e[256];

	ERR_clear_error();
	while (len) {
		size_t n = 0;
		int se;
		enum usher_err rc;

		if (SSL_write_ex(c->ssl, p, len, &n) == 1) {
			p += n;
			len -= n;
			continue;
		}
		se = SSL_get_error(c->ssl, 0);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
			rc = ssl_wait(c, se, deadline, "sending", err);
			if (rc)
				return rc;
			continue; /* retried with the same buffer, as OpenSSL wants */
		}
		if (se == SSL_ERROR_SYSCALL || se == SSL_ERROR_ZERO_RETURN)
			return closed_tls(c, "send to", se == SSL_ERROR_SYSCALL ? errno : 0, err);
		return usher_fail(err, USHER_ERR_TLS, "send to %s: %s", c->shown,
				  ssl_errstr(e, sizeof(e)));
	}
	return USHER_OK;
}

enum usher_err usher_netclient_send(struct usher_netclient *c, const void *buf, size_t len,
				    int64_t deadline, struct usher_error *err)
{
	enum usher_err rc;

	if (c->fd < 0)
		return usher_fail(err, USHER_ERR_NETWORK, "send to %s: not connected", c->shown);
	rc = c->ssl ? send_tls(c, buf, len, deadline, err) : send_plain(c, buf, len, deadline, err);
	if (rc)
		usher_netclient_close(c);
	c->awaiting = !rc;
	return rc;
}

static enum usher_err recv_plain(struct usher_netclient *c, void *buf, size_t cap, size_t *got,
				 int64_t deadline, struct usher_error *err)
{
	char e[128];
	enum usher_err rc;

	/* right after a request the answer is rarely there yet: wait first
	 * instead of a recv that says EAGAIN (one syscall less per round trip) */
	if (c->awaiting) {
		rc = wait_fd(c, c->fd, POLLIN, deadline, "waiting for the server", err);
		if (rc)
			return rc;
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, cap, 0);

		if (n > 0) {
			*got = (size_t)n;
			return USHER_OK;
		}
		if (n == 0)
			return usher_fail(err, USHER_ERR_NETWORK,
					  "receive from %s: connection "
					  "closed by the server",
					  c->shown);
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			rc = wait_fd(c, c->fd, POLLIN, deadline, "waiting for the server", err);
			if (rc)
				return rc;
			continue;
		}
		return usher_fail(err, USHER_ERR_NETWORK, "receive from %s: %s", c->shown,
				  errstr(errno, e, sizeof(e)));
	}
}

static enum usher_err recv_tls(struct usher_netclient *c, void *buf, size_t cap, size_t *got,
			       int64_t deadline, struct usher_error *err)
{
	char e[256];

	ERR_clear_error();
	for (;;) {
		int se;
		enum usher_err rc;

		errno = 0;
		if (SSL_read_ex(c->ssl, buf, cap, got) == 1)
			return USHER_OK;
		se = SSL_get_error(c->ssl, 0);
		if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
			rc = ssl_wait(c, se, deadline, "waiting for the server", err);
			if (rc)
				return rc;
			continue;
		}
		if (se == SSL_ERROR_ZERO_RETURN || se == SSL_ERROR_SYSCALL)
			return closed_tls(c, "receive from", se == SSL_ERROR_SYSCALL ? errno : 0,
					  err);
		return usher_fail(err, USHER_ERR_TLS, "receive from %s: %s", c->shown,
				  ssl_errstr(e, sizeof(e)));
	}
}

enum usher_err usher_netclient_recv(struct usher_netclient *c, void *buf, size_t cap, size_t *got,
				    int64_t deadline, struct usher_error *err)
{
	enum usher_err rc;

	*got = 0;
	if (c->fd < 0)
		return usher_fail(err, USHER_ERR_NETWORK, "receive from %s: not connected",
				  c->shown);
	rc = c->ssl ? recv_tls(c, buf, cap, got, deadline, err)
		    : recv_plain(c, buf, cap, got, deadline, err);
	if (rc)
		usher_netclient_close(c);
	else
		c->answered = true;
	c->awaiting = false;
	return rc;
}

const char *usher_netclient_reason(enum usher_err rc)
{
	switch (rc) {
	case USHER_ERR_NOTFOUND: return USHER_FAIL_DNS;
	case USHER_ERR_NETWORK: return USHER_FAIL_CONNECT;
	case USHER_ERR_TLS: return USHER_FAIL_TLS;
	case USHER_ERR_TIMEOUT: return USHER_FAIL_TIMEOUT;
	case USHER_ERR_AUTH: return USHER_FAIL_AUTH;
	case USHER_ERR_PROTOCOL:
	case USHER_ERR_TOOBIG: return USHER_FAIL_PROTOCOL;
	case USHER_ERR_INVALID: return USHER_FAIL_QUERY;
	default: return USHER_FAIL_INTERNAL;
	}
}
