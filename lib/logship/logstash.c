/* The logstash sink: ECS JSON lines over TCP (Logstash's tcp input with the
 * json_lines codec), reconnecting with backoff. A batch counts as
 * delivered once the peer's TCP stack acknowledged every byte (SIOCOUTQ
 * drains to zero); a connection lost before that re-sends the batch, and
 * event.id lets the pipeline drop the repeats. Spooling as the shipper does. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "logship/shipper.h"
#include "logship/sink.h"

struct ls_opts {
	const char *address;
	uint64_t batch_max_bytes;
	int64_t flush_interval_ms;
	uint64_t spool_max_bytes;
	int64_t timeout_ms;
	int64_t max_backoff_ms;
};

#define O(f) offsetof(struct ls_opts, f)
static const struct usher_option ls_options[] = {
    {"address", USHER_OPT_STR, O(address), NULL, USHER_OPT_REQUIRED,
     "host:port of a Logstash tcp input with codec => json_lines"},
    {"batch_max_bytes", USHER_OPT_SIZE, O(batch_max_bytes), "1MiB", USHER_OPT_POSITIVE,
     "events written before waiting for the peer to acknowledge them"},
    {"flush_interval", USHER_OPT_DURATION, O(flush_interval_ms), "1s", USHER_OPT_POSITIVE,
     "a smaller batch is sent once its oldest event waited this long"},
    {"spool_max_bytes", USHER_OPT_SIZE, O(spool_max_bytes), "256MiB", USHER_OPT_POSITIVE,
     "disk spool in state_dir; when full the oldest events are dropped (and counted)"},
    {"timeout", USHER_OPT_DURATION, O(timeout_ms), "10s", USHER_OPT_POSITIVE,
     "connect, write and acknowledgement timeout"},
    {"max_backoff", USHER_OPT_DURATION, O(max_backoff_ms), "30s", USHER_OPT_POSITIVE,
     "reconnects back off exponentially (from 250ms, with jitter) up to this"},
    USHER_OPT_END,
};

struct ls {
	char *host, *port;
	int fd;
	int64_t timeout_ms;
	struct usher_buf out;
	struct usher_shipper *sh;
};

/* Splits "host:port" or "[v6]:port". */
static bool split_address(const char *a, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;
	size_t n;

	if (a[0] == '[') {
		const char *end = strchr(a, ']');

		if (!end || end[1] != ':')
			return false;
		n = (size_t)(end - a - 1);
		colon = end + 1;
		a++;
	} else {
		colon = strrchr(a, ':');
		if (!colon)
			return false;
		n = (size_t)(colon - a);
	}
	if (!n || n >= hlen || !colon[1] || strlen(colon + 1) >= plen)
		return false;
	memcpy(host, a, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	for (a = port; *a; a++)
		if (*a < '0' || *a > '9')
			return false;
	return true;
}

static enum usher_err ls_check(struct usher_cfgctx *ctx, struct usher_log_sink_conf *sc,
			       const struct usher_ynode *node)
{
	const struct ls_opts *o = sc->opts;
	char host[256], port[16];

	if (!split_address(o->address, host, sizeof(host), port, sizeof(port)))
		return usher_cfg_error(ctx, usher_ynode_get(node, "address"),
				       "address \"%s\": expected host:port", o->address);
	return USHER_OK;
}

static void disconnect(struct ls *ls)
{
	if (ls->fd >= 0)
		close(ls->fd);
	ls->fd = -1;
}

/* Waits for events on fd until deadline, in slices so stop is noticed. */
static int wait_fd(int fd, short events, int64_t deadline, const atomic_bool *stop)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = deadline - usher_mono_ms();
		int r;

		if (atomic_load(stop))
			return -2;
		if (left <= 0)
			return 0;
		r = poll(&p, 1, left > 100 ? 100 : (int)left);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			return p.revents;
	}
}

static enum usher_err do_connect(struct ls *ls, const atomic_bool *stop, struct usher_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	int64_t deadline = usher_mono_ms() + ls->timeout_ms;
	int grc, last = 0;

	grc = getaddrinfo(ls->host, ls->port, &hints, &res);
	if (grc)
		return usher_fail(err, USHER_ERR_NETWORK, "cannot resolve %s: %s", ls->host,
				  gai_strerror(grc));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1, soerr = 0, ev;
		socklen_t sl = sizeof(soerr);

		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			last = errno;
			close(fd);
			continue;
		}
		ev = wait_fd(fd, POLLOUT, deadline, stop);
		if (ev <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
			last = ev == 0 ? ETIMEDOUT : soerr ? soerr : errno;
			close(fd);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ls->fd = fd;
		break;
	}
	freeaddrinfo(res);
	if (ls->fd < 0)
		return usher_fail(err, USHER_ERR_NETWORK, "cannot connect to %s:%s: %s", ls->host,
				  ls->port, strerror(last ? last : ECONNREFUSED));
	return USHER_OK;
}

/* Whether the peer closed or reset the connection (anything it sent is
 * read and ignored: json_lines has no replies). */
static bool peer_gone(struct ls *ls)
{
	char junk[512];

	for (;;) {
		ssize_t r = recv(ls->fd, junk, sizeof(junk), MSG_DONTWAIT);

		if (r > 0)
			continue;
		if (r == 0)
			return true;
		return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
	}
}

static enum usher_err ls_send(void *arg, struct usher_ship_item *items, size_t n,
			      const atomic_bool *stop, struct usher_error *err)
{
	struct ls *ls = arg;
	enum usher_err rc = USHER_OK;
	int64_t deadline;
	size_t i, off = 0;

	usher_buf_reset(&ls->out);
	for (i = 0; i < n && !rc; i++) {
		if (items[i].state != USHER_SHIP_PENDING)
			continue;
		rc = usher_buf_add(&ls->out, items[i].doc, items[i].doc_len);
		if (!rc)
			rc = usher_buf_addc(&ls->out, '\n');
	}
	if (rc)
		return usher_fail(err, rc, "batch too large");
	if (ls->fd >= 0 && peer_gone(ls))
		disconnect(ls);
	if (ls->fd < 0) {
		rc = do_connect(ls, stop, err);
		if (rc)
			return rc;
	}
	deadline = usher_mono_ms() + ls->timeout_ms;
	while (off < ls->out.len) {
		ssize_t w = send(ls->fd, ls->out.data + off, ls->out.len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			int ev = wait_fd(ls->fd, POLLOUT, deadline, stop);

			if (ev > 0 && !(ev & (POLLERR | POLLHUP)))
				continue;
			errno = ev == 0 ? ETIMEDOUT : ECONNRESET;
		}
		rc = usher_fail(err, USHER_ERR_NETWORK, "cannot send to %s:%s: %s", ls->host,
				ls->port, strerror(errno));
		disconnect(ls);
		return rc;
	}
	/* delivered once the peer's TCP acknowledged every byte */
	for (;;) {
		int unacked = 0;
		struct timespec ts = {0, 2 * 1000 * 1000};

		if (ioctl(ls->fd, SIOCOUTQ, &unacked) != 0 || unacked == 0)
			break;
		if (peer_gone(ls) || usher_mono_ms() >= deadline || atomic_load(stop)) {
			rc = usher_fail(err, USHER_ERR_NETWORK,
					"%s:%s did not acknowledge %d bytes; sending them again",
					ls->host, ls->port, unacked);
			disconnect(ls);
			return rc;
		}
		nanosleep(&ts, NULL);
	}
	for (i = 0; i < n; i++)
		if (items[i].state == USHER_SHIP_PENDING)
			items[i].state = USHER_SHIP_DELIVERED;
	return USHER_OK;
}

static void ls_free(void *ctx)
{
	struct ls *ls = ctx;

	if (!ls)
		return;
	usher_shipper_free(ls->sh);
	disconnect(ls);
	usher_buf_free(&ls->out);
	free(ls->host);
	free(ls->port);
	free(ls);
}

static enum usher_err ls_init(const struct usher_log_sink_conf *sc,
			      const struct usher_log_sink_env *env, void **ctx,
			      struct usher_error *err)
{
	const struct ls_opts *o = sc->opts;
	struct ls *ls = usher_calloc(1, sizeof(*ls));
	struct usher_shipper_conf shc = {
	    .name = sc->name,
	    .dir = env->dir,
	    .spool_max_bytes = o->spool_max_bytes,
	    .batch_max_bytes = o->batch_max_bytes,
	    .flush_interval_ms = o->flush_interval_ms,
	    .max_backoff_ms = o->max_backoff_ms,
	    .queue_max_bytes = 16 * 1024 * 1024,
	};
	struct usher_ship_transport t = {.send = ls_send, .arg = ls};
	char host[256], port[16];

	if (!split_address(o->address, host, sizeof(host), port, sizeof(port))) {
		free(ls);
		return usher_fail(err, USHER_ERR_INVALID, "address \"%s\": expected host:port",
				  o->address);
	}
	ls->fd = -1;
	ls->host = usher_strdup(host);
	ls->port = usher_strdup(port);
	ls->timeout_ms = o->timeout_ms;
	usher_buf_init(&ls->out, o->batch_max_bytes + 2 * 1024 * 1024);
	ls->sh = usher_shipper_new(&shc, &t, env->log, env->stats);
	*ctx = ls;
	return USHER_OK;
}

static enum usher_err ls_start(void *ctx, struct usher_error *err)
{
	struct ls *ls = ctx;

	return usher_shipper_start(ls->sh, err);
}

static void ls_write(void *ctx, const struct usher_log_entry *e)
{
	struct ls *ls = ctx;

	usher_shipper_push(ls->sh, e);
}

static void ls_flush(void *ctx)
{
	struct ls *ls = ctx;

	usher_shipper_flush(ls->sh);
}

static uint64_t ls_pending(void *ctx)
{
	struct ls *ls = ctx;

	return usher_shipper_pending(ls->sh);
}

const struct usher_log_sink_type usher_log_sink_logstash = {
    .name = "logstash",
    .help = "Logstash tcp input (json_lines), with a disk spool",
    .options = ls_options,
    .opts_size = sizeof(struct ls_opts),
    .check = ls_check,
    .init = ls_init,
    .start = ls_start,
    .write = ls_write,
    .flush = ls_flush,
    .pending = ls_pending,
    .free = ls_free,
};
