/* usherd's HTTP server on libmicrohttpd: listening, routing, /metrics with
 * content negotiation and gzip, the health endpoints, TLS with optional
 * client certificates, bcrypt basic auth with a short cache, and the
 * server's own request metrics. The only user of libmicrohttpd (and of the
 * GnuTLS session it exposes, to verify client certificates). */
#include "httpd.h"

#include <assert.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "core/mem.h"
#include "core/timeutil.h"

#define POOL_THREADS         2 /* renders run on these; two lets a health check pass a scrape */
#define CONNECTION_LIMIT     128
#define CONNECTION_TIMEOUT_S 30 /* an idle or trickling client is cut off after this */
#define LISTEN_BACKLOG       128
#define TLS_FILE_MAX         (1024 * 1024)
#define AUTH_CRED_MAX        1024 /* decoded "user:password" */
#define AUTH_CACHE_SIZE      32
#define AUTH_CACHE_TTL_MS    (5 * 60 * 1000)
#define MAX_CODES            8       /* distinct status codes counted per handler */
#define HANDLER_OTHER        "other" /* label of requests no handler took */

static const char realm_header[] = "Basic realm=\"usherd\"";
static const char text_plain[] = "text/plain; charset=utf-8";
static const char index_page[] =
    "<html>\n<head><title>usherd</title></head>\n<body>\n<h1>usherd</h1>\n"
    "<p><a href=\"/metrics\">Metrics</a></p>\n</body>\n</html>\n";

static const struct usher_metric_desc desc_duration = {
    "usher_http_request_duration_seconds", USHER_METRIC_HISTOGRAM,
    "Time spent answering HTTP requests, by handler."};
static const struct usher_metric_desc desc_requests = {
    "usher_http_requests", USHER_METRIC_COUNTER,
    "HTTP requests answered, by handler and status code."};
static const double duration_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					 0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(duration_bounds) / sizeof(duration_bounds[0]))

enum builtin { BUILTIN_NONE, BUILTIN_INDEX, BUILTIN_METRICS, BUILTIN_HEALTHY, BUILTIN_READY };

static const struct {
	const char *path;
	enum builtin b;
} builtins[] = {
    {"/", BUILTIN_INDEX},
    {"/metrics", BUILTIN_METRICS},
    {"/-/healthy", BUILTIN_HEALTHY},
    {"/-/ready", BUILTIN_READY},
};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

struct route {
	char *method;
	char *prefix;
	size_t prefix_len;
	usher_http_handler_fn *fn;
	void *arg;
};

/* The request counters and duration histogram of one handler label. */
struct handler_stats {
	char *handler;
	uint64_t counts[NBOUNDS];
	struct usher_histogram hist; /* counts points at the array above */
	size_t ncodes;
	struct {
		int code;
		uint64_t n;
	} codes[MAX_CODES];
};

struct auth_user {
	char *name;
	char *hash;
};

/* A recent successful login: SHA-256 of user, hash and password. */
struct auth_cached {
	unsigned char key[32];
	int64_t expires_ms; /* 0: a free slot */
};

struct usher_httpd {
	struct MHD_Daemon *mhd;
	struct usher_registry *reg;
	struct usher_log *log;
	char *listen;
	uint16_t port;
	atomic_bool ready;

	char *tls_cert, *tls_key, *tls_ca; /* PEM; MHD may read them until stopped */
	bool client_certs;                 /* tls_ca set: every request needs a verified cert */

	struct auth_user *users;
	size_t nusers;
	const char *dummy_hash; /* checked for unknown users, so they take as long */
	pthread_mutex_t auth_lock;
	struct auth_cached cache[AUTH_CACHE_SIZE];

	pthread_rwlock_t routes_lock;
	struct route *routes;
	size_t nroutes;

	/* stats[i] are allocated one by one: requests keep pointers to them */
	pthread_mutex_t stats_lock;
	struct handler_stats **stats;
	size_t nstats;

	atomic_bool starting; /* MHD messages go to start_error too */
	pthread_mutex_t log_lock;
	struct usher_complain log_complain;
	char start_error[512];
};

/* One request, from MHD's first call to its completion callback. */
struct request {
	int64_t start_ns;
	enum builtin builtin;
	usher_http_handler_fn *fn;
	void *arg;
	struct handler_stats *stats;
	int status;      /* a refusal decided before any handler: 401, 403, 404, 405, 413 */
	char allow[128]; /* the Allow header of a 405 */
	bool responded;  /* a response was queued before the body was read */
	bool too_big;
	struct usher_buf body;
	char *user;
};

/* --- small helpers ------------------------------------------------------ */

static enum usher_err read_file(const char *path, size_t max, char **out)
{
	struct usher_buf b;
	char chunk[4096];
	enum usher_err rc = USHER_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;

	usher_buf_init(&b, max);
	if (fd < 0)
		return USHER_ERR_IO;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = USHER_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		rc = usher_buf_add(&b, chunk, (size_t)n);
		if (rc)
			goto out;
	}
	*out = usher_buf_take(&b);
out:
	saved = errno;
	close(fd);
	if (rc) {
		if (b.data)
			explicit_bzero(b.data, b.len);
		usher_buf_free(&b);
	}
	errno = saved;
	return rc;
}

/* Frees a string that held key material. */
static void free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* RFC 9110 qvalue in thousandths, or -1 when malformed. */
static int parse_qvalue(const char *p, size_t n)
{
	int q, scale = 100;
	size_t i;

	if (n == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	q = (p[0] - '0') * 1000;
	if (n == 1)
		return q;
	if (p[1] != '.' || n > 5)
		return -1;
	for (i = 2; i < n; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		q += (p[i] - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

/* Whether an Accept-Encoding value lets us send gzip: "gzip" (or
 * "x-gzip") with q > 0, or "*" with q > 0 and gzip not refused by name. */
static bool gzip_accepted(const char *ae)
{
	int gzip_q = -1, star_q = -1;
	const char *p = ae;

	if (!ae)
		return false;
	while (*p) {
		const char *tok, *end;
		size_t len;
		int q = 1000;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		tok = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		len = (size_t)(p - tok);
		end = p;
		while (*end && *end != ',')
			end++;
		/* parameters: only q matters */
		while (p < end) {
			const char *v;

			while (p < end && (*p == ' ' || *p == '\t' || *p == ';'))
				p++;
			if (end - p > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
				v = p + 2;
				p = v;
				while (p < end && *p != ';' && *p != ' ' && *p != '\t')
					p++;
				q = parse_qvalue(v, (size_t)(p - v));
			} else {
				while (p < end && *p != ';')
					p++;
			}
		}
		if (q >= 0 && len) {
			if ((len == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
			    (len == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
				gzip_q = gzip_q > q ? gzip_q : q;
			else if (len == 1 && *tok == '*')
				star_q = q;
		}
		p = end;
	}
	if (gzip_q >= 0)
		return gzip_q > 0;
	return star_q > 0;
}

/* Compresses in into a malloc'd gzip member (windowBits 31). Speed over
 * size: exposition text compresses well even at level 1, and a scrape
 * should not wait on level 6. The output starts at an eighth of the input
 * (exposition text shrinks 10-20 times) and doubles when that is not
 * enough, rather than reserving deflateBound, which is more than the input.
 * Only bodies of one piece come here; bigger ones are gzipped streaming. */
static bool gzip_compress(const char *in, size_t len, char **out, size_t *out_len)
{
	z_stream z;
	unsigned char *buf;
	size_t cap = len / 8 + 4096;
	int zrc;

	memset(&z, 0, sizeof(z));
	if (len > UINT32_MAX / 2)
		return false;
	if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return false;
	buf = usher_malloc(cap);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	while ((zrc = deflate(&z, Z_FINISH)) == Z_OK || (zrc == Z_BUF_ERROR && !z.avail_out)) {
		if (z.avail_out)
			continue;
		buf = usher_realloc(buf, cap * 2);
		z.next_out = buf + cap;
		z.avail_out = (uInt)cap;
		cap *= 2;
	}
	deflateEnd(&z);
	if (zrc != Z_STREAM_END) {
		free(buf);
		return false;
	}
	*out = (char *)buf;
	*out_len = z.total_out;
	return true;
}

/* --- request metrics ----------------------------------------------------- */

/* The stats of handler label name, made on first use. stats_lock held. */
static struct handler_stats *stats_get(struct usher_httpd *h, const char *name)
{
	struct handler_stats *st;
	size_t i;

	for (i = 0; i < h->nstats; i++)
		if (strcmp(h->stats[i]->handler, name) == 0)
			return h->stats[i];
	st = usher_calloc(1, sizeof(*st));
	st->handler = usher_strdup(name);
	st->hist.nbuckets = NBOUNDS;
	st->hist.bounds = duration_bounds;
	st->hist.counts = st->counts;
	h->stats = usher_realloc(h->stats, (h->nstats + 1) * sizeof(*h->stats));
	h->stats[h->nstats++] = st;
	return st;
}

static void stats_record(struct usher_httpd *h, struct handler_stats *st, int code, double seconds)
{
	size_t i;

	pthread_mutex_lock(&h->stats_lock);
	usher_histogram_observe(&st->hist, seconds);
	for (i = 0; i < st->ncodes; i++)
		if (st->codes[i].code == code)
			break;
	if (i == st->ncodes && i < MAX_CODES) {
		st->codes[i].code = code;
		st->codes[i].n = 0;
		st->ncodes++;
	}
	if (i < st->ncodes)
		st->codes[i].n++;
	pthread_mutex_unlock(&h->stats_lock);
}

/* Publishes the request metrics as they stand (the current scrape is
 * counted in the next one, as with promhttp). */
static void stats_publish(struct usher_httpd *h)
{
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	size_t i, j;

	pthread_mutex_lock(&h->stats_lock);
	for (i = 0; i < h->nstats; i++) {
		const struct handler_stats *st = h->stats[i];
		const char *pairs[] = {"handler", st->handler, NULL};

		usher_sample_add_histogram(s, &desc_duration, &st->hist, pairs);
	}
	for (i = 0; i < h->nstats; i++) {
		const struct handler_stats *st = h->stats[i];

		for (j = 0; j < st->ncodes; j++) {
			char code[16];

			snprintf(code, sizeof(code), "%d", st->codes[j].code);
			usher_sample_add(s, &desc_requests, (double)st->codes[j].n, "handler",
					 st->handler, "code", code, NULL);
		}
	}
	/* under stats_lock, so two scrapes cannot publish out of order */
	usher_registry_publish(h->reg, h, s);
	pthread_mutex_unlock(&h->stats_lock);
}

/* --- responses ----------------------------------------------------------- */

/* Queues resp (taken), records the request's metrics. */
static enum MHD_Result finish(struct usher_httpd *h, struct MHD_Connection *conn,
			      struct request *rq, int status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	rq->responded = true;
	if (rq->stats)
		stats_record(h, rq->stats, status, (double)(usher_mono_ns() - rq->start_ns) / 1e9);
	return ret;
}

static struct MHD_Response *static_response(const char *body, const char *ctype)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	    strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return resp;
}

static enum MHD_Result send_text(struct usher_httpd *h, struct MHD_Connection *conn,
				 struct request *rq, int status, const char *body)
{
	return finish(h, conn, rq, status, static_response(body, text_plain));
}

static enum MHD_Result send_unauthorized(struct usher_httpd *h, struct MHD_Connection *conn,
					 struct request *rq)
{
	struct MHD_Response *resp = static_response("Unauthorized\n", text_plain);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, realm_header);
	return finish(h, conn, rq, MHD_HTTP_UNAUTHORIZED, resp);
}

static enum MHD_Result send_not_allowed(struct usher_httpd *h, struct MHD_Connection *conn,
					struct request *rq)
{
	struct MHD_Response *resp = static_response("Method Not Allowed\n", text_plain);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->allow);
	return finish(h, conn, rq, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

/* Answers a request that routing or authentication turned down. */
static enum MHD_Result refuse(struct usher_httpd *h, struct MHD_Connection *conn,
			      struct request *rq)
{
	switch (rq->status) {
	case MHD_HTTP_UNAUTHORIZED: return send_unauthorized(h, conn, rq);
	case MHD_HTTP_FORBIDDEN:
		return send_text(h, conn, rq, MHD_HTTP_FORBIDDEN,
				 "a client certificate signed by the configured client_ca_file is "
				 "required\n");
	case MHD_HTTP_METHOD_NOT_ALLOWED: return send_not_allowed(h, conn, rq);
	case MHD_HTTP_CONTENT_TOO_LARGE:
		return send_text(h, conn, rq, MHD_HTTP_CONTENT_TOO_LARGE,
				 "Request Entity Too Large\n");
	}
	return send_text(h, conn, rq, MHD_HTTP_NOT_FOUND, "404 page not found\n");
}

/* --- /metrics ------------------------------------------------------------ */

/* A /metrics body that fits in one piece is rendered whole and sent with a
 * Content-Length, as before. A bigger one (a thousand probes make 3 MiB) is
 * streamed: rendered a piece at a time as the client takes it, gzipped on
 * the way when asked, so usherd never holds the whole text (nor a gzip copy
 * of it) — with a thousand probes that was 3.5 MiB at every scrape's peak,
 * twice that for two scrapes at once. The render holds its reference on
 * every set until the response ends (docs/internals/metrics.md). */
#define METRICS_PIECE (64 * 1024) /* text rendered at a time */
#define METRICS_BLOCK (32 * 1024) /* what MHD asks for at a time */

struct metrics_stream {
	struct usher_httpd *h;
	struct handler_stats *stats; /* recorded when the response ends */
	int64_t start_ns;
	struct usher_render *render;
	struct usher_buf text; /* rendered, from off not yet sent or compressed */
	size_t off;
	bool rendered; /* the render has nothing more */
	bool gzip;
	bool z_done;
	z_stream z;
};

static void metrics_stream_free(void *cls)
{
	struct metrics_stream *ms = cls;

	if (ms->stats)
		stats_record(ms->h, ms->stats, MHD_HTTP_OK,
			     (double)(usher_mono_ns() - ms->start_ns) / 1e9);
	usher_render_free(ms->render);
	if (ms->gzip)
		deflateEnd(&ms->z);
	usher_buf_free(&ms->text);
	free(ms);
}

static ssize_t metrics_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct metrics_stream *ms = cls;

	(void)pos;
	if (max > UINT32_MAX / 2)
		max = UINT32_MAX / 2;
	for (;;) {
		size_t left, produced;
		int zrc;

		if (ms->off == ms->text.len && !ms->rendered) {
			enum usher_err rc;

			usher_buf_reset(&ms->text);
			ms->off = 0;
			rc = usher_render_next(ms->render, &ms->text, METRICS_PIECE, &ms->rendered);
			if (rc) {
				/* the status line is sent: all we can do is cut it short */
				usher_log_error(ms->h->log, "cannot render /metrics: %s; response cut short",
						usher_strerror(rc));
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
		}
		left = ms->text.len - ms->off;
		if (!ms->gzip) {
			if (!left) {
				if (ms->rendered)
					return MHD_CONTENT_READER_END_OF_STREAM;
				continue;
			}
			if (left > max)
				left = max;
			memcpy(buf, usher_buf_str(&ms->text) + ms->off, left);
			ms->off += left;
			return (ssize_t)left;
		}
		if (ms->z_done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		ms->z.next_in = (Bytef *)(uintptr_t)(usher_buf_str(&ms->text) + ms->off);
		ms->z.avail_in = (uInt)left;
		ms->z.next_out = (Bytef *)buf;
		ms->z.avail_out = (uInt)max;
		zrc = deflate(&ms->z, ms->rendered ? Z_FINISH : Z_NO_FLUSH);
		ms->off += left - ms->z.avail_in;
		produced = max - ms->z.avail_out;
		if (zrc == Z_STREAM_END)
			ms->z_done = true;
		else if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (produced)
			return (ssize_t)produced;
		if (ms->z_done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* deflate kept everything: give it more text */
	}
}

static enum MHD_Result serve_metrics(struct usher_httpd *h, struct MHD_Connection *conn,
				     struct request *rq)
{
	const char *accept =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	const char *ae =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	enum usher_expo_format fmt = usher_expo_negotiate(accept);
	struct usher_render *render;
	struct MHD_Response *resp;
	struct usher_buf b;
	enum usher_err rc;
	char *gz = NULL;
	size_t gz_len = 0;
	bool gzip = gzip_accepted(ae), gzipped = false, done = false;

	stats_publish(h);
	render = usher_registry_render_begin(h->reg, fmt);
	usher_buf_init(&b, USHER_HTTP_METRICS_MAX);
	rc = usher_render_next(render, &b, METRICS_PIECE, &done);
	if (rc) {
		usher_render_free(render);
		usher_buf_free(&b);
		usher_log_error(h->log, "cannot render /metrics: %s", usher_strerror(rc));
		return send_text(h, conn, rq, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 "error rendering metrics\n");
	}
	if (!done) {
		struct metrics_stream *ms = usher_calloc(1, sizeof(*ms));

		ms->h = h;
		ms->render = render;
		ms->text = b;
		ms->gzip = gzip && deflateInit2(&ms->z, Z_BEST_SPEED, Z_DEFLATED, 31, 8,
						Z_DEFAULT_STRATEGY) == Z_OK;
		gzipped = ms->gzip;
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, METRICS_BLOCK,
							 metrics_stream_read, ms, metrics_stream_free);
		if (!resp) {
			metrics_stream_free(ms);
		} else if (rq->stats) {
			/* the request's duration is the whole response's */
			ms->stats = rq->stats;
			ms->start_ns = rq->start_ns;
			rq->stats = NULL;
		}
	} else {
		usher_render_free(render);
		if (gzip && gzip_compress(usher_buf_str(&b), b.len, &gz, &gz_len)) {
			usher_buf_free(&b);
			resp = MHD_create_response_from_buffer(gz_len, gz, MHD_RESPMEM_MUST_FREE);
			gzipped = true;
		} else {
			size_t len = b.len;

			resp = MHD_create_response_from_buffer(len, usher_buf_take(&b),
							       MHD_RESPMEM_MUST_FREE);
		}
	}
	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					usher_expo_content_type(fmt));
		MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
					MHD_HTTP_HEADER_ACCEPT_ENCODING);
		if (gzipped)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	}
	return finish(h, conn, rq, MHD_HTTP_OK, resp);
}

/* --- routed handlers ----------------------------------------------------- */

const char *usher_http_request_arg(const struct usher_http_request *req, const char *name)
{
	const char *v = NULL;

	if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v,
					  NULL) != MHD_YES)
		return NULL;
	return v ? v : "";
}

struct arg_visit {
	usher_http_arg_fn *fn;
	void *arg;
};

static enum MHD_Result visit_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				 const char *value)
{
	struct arg_visit *v = cls;

	(void)kind;
	v->fn(v->arg, key, value ? value : "");
	return MHD_YES;
}

void usher_http_request_foreach_arg(const struct usher_http_request *req, usher_http_arg_fn *fn,
				    void *arg)
{
	struct arg_visit v = {fn, arg};

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, visit_arg, &v);
}

const char *usher_http_request_header(const struct usher_http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

enum usher_err usher_http_response_header(struct usher_http_response *resp, const char *name,
					  const char *value)
{
	if (resp->nheaders == USHER_HTTP_RESPONSE_HEADERS_MAX)
		return USHER_ERR_TOOBIG;
	resp->headers[resp->nheaders].name = usher_strdup(name);
	resp->headers[resp->nheaders].value = usher_strdup(value);
	resp->nheaders++;
	return USHER_OK;
}

static enum MHD_Result serve_route(struct usher_httpd *h, struct MHD_Connection *conn,
				   struct request *rq, const char *method, const char *path)
{
	struct usher_http_request req = {
	    .method = method,
	    .path = path,
	    .body = usher_buf_str(&rq->body),
	    .body_len = rq->body.len,
	    .user = rq->user,
	    .conn = conn,
	};
	struct usher_http_response resp = {.status = MHD_HTTP_OK,
					   .content_type = "application/json"};
	struct MHD_Response *mr = NULL;
	int status;
	size_t i, len;

	usher_buf_init(&resp.body, USHER_HTTP_RESPONSE_BODY_MAX);
	if (rq->fn(rq->arg, &req, &resp) != 0 || resp.status < 100 || resp.status > 999) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		mr = static_response("Internal Server Error\n", text_plain);
		goto out;
	}
	status = resp.status;
	len = resp.body.len;
	mr =
	    MHD_create_response_from_buffer(len, usher_buf_take(&resp.body), MHD_RESPMEM_MUST_FREE);
	if (!mr)
		goto out;
	MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, resp.content_type);
	for (i = 0; i < resp.nheaders; i++)
		MHD_add_response_header(mr, resp.headers[i].name, resp.headers[i].value);
out:
	for (i = 0; i < resp.nheaders; i++) {
		free(resp.headers[i].name);
		free(resp.headers[i].value);
	}
	usher_buf_free(&resp.body);
	return finish(h, conn, rq, status, mr);
}

static bool prefix_matches(const struct route *r, const char *path)
{
	if (strncmp(path, r->prefix, r->prefix_len) != 0)
		return false;
	return path[r->prefix_len] == '\0' || path[r->prefix_len] == '/' ||
	       r->prefix[r->prefix_len - 1] == '/';
}

static void allow_add(char *allow, size_t len, const char *method)
{
	size_t n = strlen(allow);

	if (strstr(allow, method))
		return;
	snprintf(allow + n, len - n, "%s%s", n ? ", " : "", method);
}

static bool is_get_or_head(const char *method)
{
	return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
	       strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* Decides who answers: a built-in, a route, or a 404/405 (rq->status). */
static void route_request(struct usher_httpd *h, struct request *rq, const char *method,
			  const char *path)
{
	const struct route *best = NULL;
	const char *label = HANDLER_OTHER;
	size_t i;

	for (i = 0; i < NBUILTINS; i++) {
		if (strcmp(path, builtins[i].path) != 0)
			continue;
		label = builtins[i].path;
		if (is_get_or_head(method)) {
			rq->builtin = builtins[i].b;
		} else {
			rq->status = MHD_HTTP_METHOD_NOT_ALLOWED;
			snprintf(rq->allow, sizeof(rq->allow), "GET, HEAD");
		}
		goto out;
	}

	pthread_rwlock_rdlock(&h->routes_lock);
	for (i = 0; i < h->nroutes; i++) {
		const struct route *r = &h->routes[i];

		if (prefix_matches(r, path) && (!best || r->prefix_len > best->prefix_len))
			best = r;
	}
	if (best) {
		const struct route *hit = NULL;

		label = best->prefix;
		for (i = 0; i < h->nroutes; i++) {
			const struct route *r = &h->routes[i];

			if (strcmp(r->prefix, best->prefix) != 0)
				continue;
			allow_add(rq->allow, sizeof(rq->allow), r->method);
			if (strcmp(r->method, MHD_HTTP_METHOD_GET) == 0)
				allow_add(rq->allow, sizeof(rq->allow), MHD_HTTP_METHOD_HEAD);
			if (!hit && (strcmp(r->method, method) == 0 ||
				     (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 &&
				      strcmp(r->method, MHD_HTTP_METHOD_GET) == 0)))
				hit = r;
		}
		if (hit) {
			rq->fn = hit->fn;
			rq->arg = hit->arg;
		} else {
			rq->status = MHD_HTTP_METHOD_NOT_ALLOWED;
		}
	} else {
		rq->status = MHD_HTTP_NOT_FOUND;
	}
	pthread_rwlock_unlock(&h->routes_lock);
out:
	pthread_mutex_lock(&h->stats_lock);
	rq->stats = stats_get(h, label);
	pthread_mutex_unlock(&h->stats_lock);
}

/* --- authentication ------------------------------------------------------ */

/* A verified client certificate, when the server asks for them. */
static bool client_cert_ok(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	unsigned int status = 0;

	if (!ci || !ci->tls_session)
		return false;
	/* checks the chain against the trust list MHD loaded from
	 * HTTPS_MEM_TRUST, and the validity period */
	if (gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status) !=
	    GNUTLS_E_SUCCESS)
		return false;
	return status == 0;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes standard base64 (padding optional) into out; false when the
 * input is not base64 or does not fit. */
static bool b64_decode(const char *in, char *out, size_t cap, size_t *len)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;
	const unsigned char *p = (const unsigned char *)in;

	for (; *p && *p != '='; p++) {
		int v = b64_value(*p);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == cap)
				return false;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	while (*p == '=')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p)
		return false;
	*len = n;
	return true;
}

static void cache_key(const char *user, const char *hash, const char *pass, unsigned char key[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 32;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, user, strlen(user) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, hash, strlen(hash) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, pass, strlen(pass)) != 1 ||
	    EVP_DigestFinal_ex(ctx, key, &len) != 1) {
		/* an all-zero key never matches: a stored key is a digest */
		memset(key, 0, 32);
	}
	EVP_MD_CTX_free(ctx);
}

static bool key_is_zero(const unsigned char key[32])
{
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < 32; i++)
		acc |= key[i];
	return acc == 0;
}

static bool cache_hit(struct usher_httpd *h, const unsigned char key[32])
{
	int64_t now = usher_mono_ms();
	bool hit = false;
	size_t i;

	if (key_is_zero(key))
		return false;
	pthread_mutex_lock(&h->auth_lock);
	for (i = 0; i < AUTH_CACHE_SIZE; i++)
		if (h->cache[i].expires_ms > now && CRYPTO_memcmp(h->cache[i].key, key, 32) == 0)
			hit = true;
	pthread_mutex_unlock(&h->auth_lock);
	return hit;
}

static void cache_put(struct usher_httpd *h, const unsigned char key[32])
{
	size_t i, victim = 0;

	if (key_is_zero(key))
		return;
	pthread_mutex_lock(&h->auth_lock);
	for (i = 0; i < AUTH_CACHE_SIZE; i++)
		if (h->cache[i].expires_ms < h->cache[victim].expires_ms)
			victim = i;
	memcpy(h->cache[victim].key, key, 32);
	h->cache[victim].expires_ms = usher_mono_ms() + AUTH_CACHE_TTL_MS;
	pthread_mutex_unlock(&h->auth_lock);
}

static bool bcrypt_matches(const char *pass, const char *hash)
{
	struct crypt_data *cd = usher_calloc(1, sizeof(*cd));
	const char *res = crypt_rn(pass, hash, cd, (int)sizeof(*cd));
	size_t len = strlen(hash);
	bool ok = res && strlen(res) == len && CRYPTO_memcmp(res, hash, len) == 0;

	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* Checks the Basic credentials of the request; on success rq->user is set. */
static bool auth_ok(struct usher_httpd *h, struct MHD_Connection *conn, struct request *rq)
{
	const char *hdr =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const struct auth_user *u = NULL;
	char cred[AUTH_CRED_MAX + 1];
	unsigned char key[32];
	size_t n = 0, i;
	char *colon;
	bool ok = false;

	if (!hdr || strncasecmp(hdr, "Basic ", 6) != 0)
		return false;
	for (hdr += 6; *hdr == ' '; hdr++)
		;
	if (!b64_decode(hdr, cred, AUTH_CRED_MAX, &n))
		goto out;
	cred[n] = '\0';
	colon = memchr(cred, ':', n);
	/* a NUL inside would cut the password short for crypt */
	if (!colon || strlen(cred) != n)
		goto out;
	*colon = '\0';
	for (i = 0; i < h->nusers; i++)
		if (strcmp(h->users[i].name, cred) == 0)
			u = &h->users[i];
	cache_key(cred, u ? u->hash : h->dummy_hash, colon + 1, key);
	if (u && cache_hit(h, key)) {
		ok = true;
	} else {
		/* unknown users cost a bcrypt too, so timing does not tell
		 * which user names exist */
		ok = bcrypt_matches(colon + 1, u ? u->hash : h->dummy_hash) && u;
		if (ok)
			cache_put(h, key);
	}
	if (ok)
		rq->user = usher_strdup(cred);
out:
	explicit_bzero(cred, sizeof(cred));
	explicit_bzero(key, sizeof(key));
	return ok;
}

/* --- the MHD callbacks --------------------------------------------------- */

/* The declared body length: 0 without a body, -1 for chunked or bad. */
static int64_t body_length(struct MHD_Connection *conn)
{
	const char *cl =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t n = 0;

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return -1;
	if (!cl)
		return 0;
	for (; *cl >= '0' && *cl <= '9'; cl++) {
		if (n > INT64_MAX / 10 - 10)
			return -1;
		n = n * 10 + (*cl - '0');
	}
	return *cl ? -1 : n;
}

/* Routing, client certificate and credentials, decided once the headers
 * are in. A refusal is answered at once when a body would follow (MHD then
 * skips it and closes), else with the final call so the connection lives. */
static enum MHD_Result first_call(struct usher_httpd *h, struct MHD_Connection *conn,
				  struct request *rq, const char *url, const char *method)
{
	int64_t len = body_length(conn);

	route_request(h, rq, method, url);
	if (h->client_certs && !client_cert_ok(conn))
		rq->status = MHD_HTTP_FORBIDDEN;
	else if (h->nusers && !auth_ok(h, conn, rq))
		rq->status = MHD_HTTP_UNAUTHORIZED;
	else if (!rq->status && len > USHER_HTTP_REQUEST_BODY_MAX)
		rq->status = MHD_HTTP_CONTENT_TOO_LARGE;
	if (rq->status && len != 0)
		return refuse(h, conn, rq);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct usher_httpd *h = cls;
	struct request *rq = *con_cls;

	(void)version;
	if (!rq) {
		rq = usher_calloc(1, sizeof(*rq));
		rq->start_ns = usher_mono_ns();
		usher_buf_init(&rq->body, USHER_HTTP_REQUEST_BODY_MAX);
		*con_cls = rq;
		return first_call(h, conn, rq, url, method);
	}
	if (*upload_data_size) {
		if (!rq->responded && !rq->too_big &&
		    usher_buf_add(&rq->body, upload_data, *upload_data_size) != USHER_OK)
			rq->too_big = true;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->responded)
		return MHD_YES;
	if (rq->too_big)
		rq->status = MHD_HTTP_CONTENT_TOO_LARGE;
	if (rq->status)
		return refuse(h, conn, rq);

	switch (rq->builtin) {
	case BUILTIN_METRICS: return serve_metrics(h, conn, rq);
	case BUILTIN_HEALTHY: return send_text(h, conn, rq, MHD_HTTP_OK, "usherd is Healthy.\n");
	case BUILTIN_READY:
		if (atomic_load(&h->ready))
			return send_text(h, conn, rq, MHD_HTTP_OK, "usherd is Ready.\n");
		return send_text(h, conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE,
				 "usherd is not ready.\n");
	case BUILTIN_INDEX:
		return finish(h, conn, rq, MHD_HTTP_OK,
			      static_response(index_page, "text/html; charset=utf-8"));
	case BUILTIN_NONE: break;
	}
	return serve_route(h, conn, rq, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!rq)
		return;
	usher_buf_free(&rq->body);
	free(rq->user);
	free(rq);
	*con_cls = NULL;
}

/* MHD's messages: at start they explain a failure; later they are mostly
 * about misbehaving clients (a plain HTTP request on the TLS port), so they
 * are rate-limited to one line a minute. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct usher_httpd *h = cls;
	char msg[512];
	uint64_t held = 0;
	size_t n;
	bool log_now;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	if (atomic_load(&h->starting)) {
		if (!h->start_error[0])
			snprintf(h->start_error, sizeof(h->start_error), "%s", msg);
		usher_log_warn(h->log, "http server: %s", msg);
		return;
	}
	pthread_mutex_lock(&h->log_lock);
	log_now = usher_complain(&h->log_complain, usher_mono_ms(), &held);
	pthread_mutex_unlock(&h->log_lock);
	if (log_now)
		usher_log_event(
		    h->log, USHER_LOG_WARN,
		    (struct usher_log_field[]){USHER_LFI("usher.suppressed", (int64_t)held)},
		    held ? 1 : 0, "http server: %s", msg);
}

/* --- listening ----------------------------------------------------------- */

/* Splits "host:port", "[v6]:port" or ":port". host is "" for every
 * interface. */
static enum usher_err split_listen(const char *listen, char *host, size_t hostlen, char *port,
				   size_t portlen, struct usher_error *err)
{
	const char *colon, *h = listen, *hend;
	unsigned long p = 0;
	const char *d;

	if (listen[0] == '[') {
		hend = strchr(listen, ']');
		if (!hend || hend[1] != ':')
			goto bad;
		h = listen + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon)
			goto bad;
		hend = colon;
		if (memchr(listen, ':', (size_t)(colon - listen)))
			return usher_fail(err, USHER_ERR_INVALID,
					  "server.listen: %s: write an IPv6 address in brackets, "
					  "as [::1]:9469",
					  listen);
	}
	if ((size_t)(hend - h) >= hostlen || !colon[1] || strlen(colon + 1) >= portlen)
		goto bad;
	for (d = colon + 1; *d; d++) {
		if (*d < '0' || *d > '9')
			goto bad;
		p = p * 10 + (unsigned long)(*d - '0');
		if (p > 65535)
			goto bad;
	}
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	memcpy(port, colon + 1, strlen(colon + 1) + 1);
	return USHER_OK;
bad:
	return usher_fail(err, USHER_ERR_INVALID,
			  "server.listen: %s is not host:port, [ipv6]:port or :port", listen);
}

static int bind_one(int family, const struct sockaddr *sa, socklen_t salen, bool dual)
{
	int one = 1, zero = 0, saved;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &zero : &one, sizeof(int));
	if (bind(fd, sa, salen) == 0 && listen(fd, LISTEN_BACKLOG) == 0)
		return fd;
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* Opens the listening socket, so a bind failure can name the address and
 * errno (MHD would only say it failed). */
static enum usher_err open_listener(const char *listen, int *fd_out, uint16_t *port_out,
				    struct usher_error *err)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = -1, gai, first_errno = 0;
	enum usher_err rc;

	rc = split_listen(listen, host, sizeof(host), port, sizeof(port), err);
	if (rc)
		return rc;
	if (!host[0]) {
		/* every interface: one dual-stack socket, IPv4 only without IPv6 */
		struct sockaddr_in6 a6;
		struct sockaddr_in a4;

		memset(&a6, 0, sizeof(a6));
		a6.sin6_family = AF_INET6;
		a6.sin6_addr = in6addr_any;
		a6.sin6_port = htons((uint16_t)strtoul(port, NULL, 10));
		fd = bind_one(AF_INET6, (struct sockaddr *)&a6, sizeof(a6), true);
		if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
			memset(&a4, 0, sizeof(a4));
			a4.sin_family = AF_INET;
			a4.sin_addr.s_addr = htonl(INADDR_ANY);
			a4.sin_port = a6.sin6_port;
			fd = bind_one(AF_INET, (struct sockaddr *)&a4, sizeof(a4), false);
		}
		first_errno = errno;
	} else {
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
		gai = getaddrinfo(host, port, &hints, &res);
		if (gai != 0)
			return usher_fail(err, USHER_ERR_NETWORK, "cannot listen on %s: %s", listen,
					  gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		/* the first address that binds; MHD serves one socket */
		for (ai = res; ai && fd < 0; ai = ai->ai_next) {
			fd = bind_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, false);
			if (fd < 0 && !first_errno)
				first_errno = errno;
		}
		freeaddrinfo(res);
	}
	if (fd < 0)
		return usher_fail(err, USHER_ERR_NETWORK, "cannot listen on %s: %s", listen,
				  strerror(first_errno));
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return USHER_OK;
}

/* --- life cycle ---------------------------------------------------------- */

static bool is_bcrypt(const char *hash)
{
	int c;

	if (strncmp(hash, "$2a$", 4) != 0 && strncmp(hash, "$2b$", 4) != 0 &&
	    strncmp(hash, "$2y$", 4) != 0)
		return false;
	c = crypt_checksalt(hash);
	return c == CRYPT_SALT_OK || c == CRYPT_SALT_METHOD_LEGACY;
}

static enum usher_err load_users(struct usher_httpd *h, const struct usher_strmap *m,
				 struct usher_error *err)
{
	size_t i;

	if (!m->n)
		return USHER_OK;
	h->users = usher_calloc(m->n, sizeof(*h->users));
	for (i = 0; i < m->n; i++) {
		if (!m->v[i].value || !is_bcrypt(m->v[i].value))
			return usher_fail(err, USHER_ERR_INVALID,
					  "server.basic_auth_users: %s: not a bcrypt hash "
					  "(make one with htpasswd -nBC 10 \"\" | tr -d ':\\n')",
					  m->v[i].key);
		h->users[i].name = usher_strdup(m->v[i].key);
		h->users[i].hash = usher_strdup(m->v[i].value);
		h->nusers++;
	}
	/* the first user's hash has the configured cost: the fairest stand-in */
	h->dummy_hash = h->users[0].hash;
	return USHER_OK;
}

static enum usher_err load_tls(struct usher_httpd *h, const struct usher_server_tls_conf *tls,
			       struct usher_error *err)
{
	static const char *const names[] = {"cert_file", "key_file", "client_ca_file"};
	const char *paths[3] = {tls->cert_file, tls->key_file, tls->client_ca_file};
	char **dst[3] = {&h->tls_cert, &h->tls_key, &h->tls_ca};
	size_t i;

	if (!tls->cert_file && !tls->key_file) {
		if (tls->client_ca_file)
			return usher_fail(
			    err, USHER_ERR_INVALID,
			    "server.tls: client_ca_file needs cert_file and key_file");
		return USHER_OK;
	}
	if (!tls->cert_file || !tls->key_file)
		return usher_fail(err, USHER_ERR_INVALID,
				  "server.tls: set both cert_file and key_file");
	for (i = 0; i < 3; i++) {
		enum usher_err rc;

		if (!paths[i])
			continue;
		rc = read_file(paths[i], TLS_FILE_MAX, dst[i]);
		if (rc)
			return usher_fail(err, USHER_ERR_IO, "server.tls.%s: cannot read %s: %s",
					  names[i], paths[i],
					  rc == USHER_ERR_TOOBIG ? "larger than 1 MiB"
								 : strerror(errno));
	}
	h->client_certs = h->tls_ca != NULL;
	return USHER_OK;
}

static void httpd_destroy(struct usher_httpd *h)
{
	size_t i;

	if (!h)
		return;
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	if (h->reg)
		usher_registry_remove(h->reg, h);
	for (i = 0; i < h->nroutes; i++) {
		free(h->routes[i].method);
		free(h->routes[i].prefix);
	}
	free(h->routes);
	for (i = 0; i < h->nstats; i++) {
		free(h->stats[i]->handler);
		free(h->stats[i]);
	}
	free(h->stats);
	for (i = 0; i < h->nusers; i++) {
		free(h->users[i].name);
		free_secret(h->users[i].hash);
	}
	free(h->users);
	explicit_bzero(h->cache, sizeof(h->cache));
	free(h->tls_cert);
	free_secret(h->tls_key);
	free(h->tls_ca);
	free(h->listen);
	pthread_rwlock_destroy(&h->routes_lock);
	pthread_mutex_destroy(&h->stats_lock);
	pthread_mutex_destroy(&h->auth_lock);
	pthread_mutex_destroy(&h->log_lock);
	free(h);
}

enum usher_err usher_httpd_start(const struct usher_server_conf *conf, struct usher_registry *reg,
				 struct usher_log *log, struct usher_httpd **out,
				 struct usher_error *err)
{
	struct usher_httpd *h = usher_calloc(1, sizeof(*h));
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
	struct MHD_OptionItem tls_opts[4];
	size_t ntls = 0, i;
	enum usher_err rc;
	int fd = -1, mhd_fd;

	*out = NULL;
	h->reg = reg;
	h->log = log;
	h->listen = usher_strdup(conf->listen ? conf->listen : USHER_DEFAULT_LISTEN);
	atomic_init(&h->ready, false);
	pthread_rwlock_init(&h->routes_lock, NULL);
	pthread_mutex_init(&h->stats_lock, NULL);
	pthread_mutex_init(&h->auth_lock, NULL);
	pthread_mutex_init(&h->log_lock, NULL);
	h->log_complain.interval_ms = 60 * 1000;
	/* the built-in handlers show up in the metrics from the start */
	for (i = 0; i < NBUILTINS; i++)
		stats_get(h, builtins[i].path);

	rc = load_users(h, &conf->basic_auth_users, err);
	if (rc)
		goto out;
	rc = load_tls(h, &conf->tls, err);
	if (rc)
		goto out;
	if (h->tls_cert) {
		flags |= MHD_USE_TLS;
		tls_opts[ntls++] =
		    (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
		tls_opts[ntls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
		if (h->tls_ca)
			tls_opts[ntls++] =
			    (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->tls_ca};
	}
	tls_opts[ntls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

	rc = open_listener(h->listen, &fd, &h->port, err);
	if (rc)
		goto out;

	/* MHD closes the socket it is given even when it fails to start (0.9.75
	 * does), so it gets a duplicate and ours is closed either way */
	mhd_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (mhd_fd < 0) {
		rc = usher_fail(err, USHER_ERR_IO, "cannot listen on %s: %s", h->listen,
				strerror(errno));
		goto out;
	}
	atomic_store(&h->starting, true);
	/* clang-format off */
	h->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, h,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, /* first, to catch every message */
		MHD_OPTION_LISTEN_SOCKET, mhd_fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)POOL_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_ARRAY, tls_opts,
		MHD_OPTION_END);
	/* clang-format on */
	atomic_store(&h->starting, false);
	if (!h->mhd) {
		rc = h->tls_cert ? USHER_ERR_TLS : USHER_ERR_NETWORK;
		usher_fail(err, rc, "cannot start the http server on %s: %s", h->listen,
			   h->start_error[0] ? h->start_error
					     : (h->tls_cert ? "check the tls certificate and key"
							    : "libmicrohttpd refused to start"));
		goto out;
	}
	*out = h;
	h = NULL;
out:
	if (fd >= 0)
		close(fd);
	httpd_destroy(h);
	return rc;
}

uint16_t usher_httpd_port(const struct usher_httpd *h)
{
	return h->port;
}

void usher_httpd_set_ready(struct usher_httpd *h, bool ready)
{
	atomic_store(&h->ready, ready);
}

void usher_httpd_route(struct usher_httpd *h, const char *method, const char *path_prefix,
		       usher_http_handler_fn *fn, void *arg)
{
	struct route *r;

	assert(path_prefix[0] == '/');
	pthread_mutex_lock(&h->stats_lock);
	stats_get(h, path_prefix); /* listed in the metrics before the first request */
	pthread_mutex_unlock(&h->stats_lock);
	pthread_rwlock_wrlock(&h->routes_lock);
	h->routes = usher_realloc(h->routes, (h->nroutes + 1) * sizeof(*h->routes));
	r = &h->routes[h->nroutes++];
	r->method = usher_strdup(method);
	r->prefix = usher_strdup(path_prefix);
	r->prefix_len = strlen(path_prefix);
	r->fn = fn;
	r->arg = arg;
	pthread_rwlock_unlock(&h->routes_lock);
}

void usher_httpd_free(struct usher_httpd *h)
{
	httpd_destroy(h);
}
