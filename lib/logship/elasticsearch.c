/* The elasticsearch sink: NDJSON _bulk requests of `create` actions with
 * each event's deterministic id as _id, gzip, round-robin over the nodes,
 * per-item statuses read; delivery, spool and retries by the shipper. */
#include <ctype.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/mem.h"
#include "logship/bulkresp.h"
#include "logship/shipper.h"
#include "logship/sink.h"
#include "usher_version.h"

#define RESPONSE_MAX (64 * 1024 * 1024)
#define FILTER_PATH  "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

struct es_opts {
	struct usher_strlist url;
	const char *index;
	const char *data_stream;
	const char *username;
	const char *password;
	const char *api_key;
	struct usher_tls_client_conf tls;
	uint64_t batch_max_bytes;
	int64_t flush_interval_ms;
	uint64_t spool_max_bytes;
	int64_t timeout_ms;
	int64_t max_backoff_ms;
	bool gzip;
};

#define O(f) offsetof(struct es_opts, f)
static const struct usher_option es_options[] = {
    {"url", USHER_OPT_STRLIST, O(url), NULL, USHER_OPT_REQUIRED,
     "one node's URL or a list of them (http://es-1:9200); requests go round-robin"},
    {"index", USHER_OPT_STR, O(index), NULL, 0, "write to this index (or alias)"},
    {"data_stream", USHER_OPT_STR, O(data_stream), NULL, 0,
     "write to this data stream (default logs-usher-default when index is not set)"},
    {"username", USHER_OPT_SECRET, O(username), NULL, 0, "basic auth user"},
    {"password", USHER_OPT_SECRET, O(password), NULL, 0, "basic auth password"},
    {"api_key", USHER_OPT_SECRET, O(api_key), NULL, 0,
     "API key (the base64 \"id:key\" Kibana shows), instead of username/password"},
    {"tls", USHER_OPT_SECTION, O(tls), NULL, 0, "TLS settings for https URLs",
     usher_tls_client_options},
    {"batch_max_bytes", USHER_OPT_SIZE, O(batch_max_bytes), "5MiB", USHER_OPT_POSITIVE,
     "a _bulk request carries at most this much NDJSON (before gzip)"},
    {"flush_interval", USHER_OPT_DURATION, O(flush_interval_ms), "1s", USHER_OPT_POSITIVE,
     "a smaller batch is sent once its oldest event waited this long"},
    {"spool_max_bytes", USHER_OPT_SIZE, O(spool_max_bytes), "256MiB", USHER_OPT_POSITIVE,
     "disk spool in state_dir; when full the oldest events are dropped (and counted)"},
    {"timeout", USHER_OPT_DURATION, O(timeout_ms), "30s", USHER_OPT_POSITIVE,
     "how long one _bulk request may take"},
    {"max_backoff", USHER_OPT_DURATION, O(max_backoff_ms), "30s", USHER_OPT_POSITIVE,
     "retries back off exponentially (from 250ms, with jitter) up to this"},
    {"gzip", USHER_OPT_BOOL, O(gzip), "true", 0, "compress request bodies"},
    USHER_OPT_END,
};

struct es {
	char **urls; /* without a trailing slash */
	size_t nurls, next;
	char *target; /* index or data stream */
	char *username, *password;
	struct curl_slist *headers;
	struct usher_tls_client_conf tls; /* strings owned */
	int64_t timeout_ms;
	bool gzip;
	CURL *easy;
	CURLM *multi;
	struct usher_buf body, gz, resp;
	struct usher_bulk_result res;
	char errbuf[CURL_ERROR_SIZE];
	char reason[600];
	struct usher_shipper *sh;
};

static bool index_name_valid(const char *s)
{
	if (!*s || *s == '-' || *s == '_' || *s == '+' || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0 || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (isupper((unsigned char)*s) || strchr("\\/*?\"<>| ,#:", *s) ||
		    (unsigned char)*s < 0x20)
			return false;
	return true;
}

static enum usher_err es_check(struct usher_cfgctx *ctx, struct usher_log_sink_conf *sc,
			       const struct usher_ynode *node)
{
	struct es_opts *o = sc->opts;
	enum usher_err rc = USHER_OK;
	size_t i;

	for (i = 0; i < o->url.n; i++)
		if (strncmp(o->url.v[i], "http://", 7) != 0 &&
		    strncmp(o->url.v[i], "https://", 8) != 0)
			rc = usher_cfg_error(ctx, usher_ynode_get(node, "url"),
					     "url \"%s\": expected http:// or https://",
					     o->url.v[i]);
	if (!o->url.n)
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "url"),
				     "url: give at least one node");
	if (o->index && o->data_stream)
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "data_stream"),
				     "index and data_stream exclude each other: set one");
	if (!o->index && !o->data_stream)
		o->data_stream = "logs-usher-default";
	if (!index_name_valid(o->index ? o->index : o->data_stream))
		rc = usher_cfg_error(
		    ctx, usher_ynode_get(node, o->index ? "index" : "data_stream"),
		    "\"%s\" is not a valid index or data stream name (lowercase, no "
		    "spaces or \\/*?\"<>|,#:, not starting with -_+)",
		    o->index ? o->index : o->data_stream);
	if (!o->username != !o->password)
		rc = usher_cfg_error(ctx,
				     usher_ynode_get(node, o->username ? "username" : "password"),
				     "username and password go together");
	if (o->api_key && o->username)
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "api_key"),
				     "api_key and username/password exclude each other: set one");
	if (o->tls.key_file && !o->tls.cert_file)
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "tls"),
				     "tls: key_file needs cert_file");
	if (o->tls.server_name)
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "tls"),
				     "tls.server_name is not supported by this sink: put the name "
				     "the certificate has in url");
	return rc;
}

static char *dup_or_null(const char *s)
{
	return s ? usher_strdup(s) : NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct es *es = arg;

	if (usher_buf_add(&es->resp, p, size * n))
		return 0; /* too big: curl fails the transfer */
	return size * n;
}

static enum usher_err gzip_body(struct es *es, struct usher_error *err)
{
	z_stream z;
	int zrc;

	memset(&z, 0, sizeof(z));
	/* level 1: JSON compresses ~8x already; speed matters more here */
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return usher_fail(err, USHER_ERR_NOMEM, "cannot start gzip");
	usher_buf_reset(&es->gz);
	z.next_in = (Bytef *)es->body.data;
	z.avail_in = (uInt)es->body.len;
	do {
		char out[64 * 1024];

		z.next_out = (Bytef *)out;
		z.avail_out = sizeof(out);
		zrc = deflate(&z, Z_FINISH);
		if (zrc == Z_STREAM_ERROR ||
		    usher_buf_add(&es->gz, out, sizeof(out) - z.avail_out)) {
			deflateEnd(&z);
			return usher_fail(err, USHER_ERR_TOOBIG, "cannot gzip the request body");
		}
	} while (zrc != Z_STREAM_END);
	deflateEnd(&z);
	return USHER_OK;
}

/* One POST to the next node. *status gets the HTTP status (0 when there
 * was no answer). */
static enum usher_err post(struct es *es, const atomic_bool *stop, long *status,
			   struct usher_error *err)
{
	const char *url = es->urls[es->next % es->nurls];
	char full[4096];
	CURLcode cc = CURLE_OK;
	int running = 1;

	es->next++;
	*status = 0;
	snprintf(full, sizeof(full), "%s/%s/_bulk?" FILTER_PATH, url, es->target);
	usher_buf_reset(&es->resp);
	es->errbuf[0] = '\0';
	curl_easy_setopt(es->easy, CURLOPT_URL, full);
	if (es->gzip) {
		curl_easy_setopt(es->easy, CURLOPT_POSTFIELDS, es->gz.data);
		curl_easy_setopt(es->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)es->gz.len);
	} else {
		curl_easy_setopt(es->easy, CURLOPT_POSTFIELDS, es->body.data);
		curl_easy_setopt(es->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)es->body.len);
	}
	curl_multi_add_handle(es->multi, es->easy);
	while (running) {
		CURLMsg *m;
		int left;

		curl_multi_perform(es->multi, &running);
		while ((m = curl_multi_info_read(es->multi, &left)) != NULL)
			if (m->msg == CURLMSG_DONE)
				cc = m->data.result;
		if (!running)
			break;
		if (atomic_load(stop)) {
			cc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		curl_multi_poll(es->multi, NULL, 0, 100, NULL);
	}
	curl_multi_remove_handle(es->multi, es->easy);
	if (cc != CURLE_OK)
		return usher_fail(err, USHER_ERR_NETWORK, "%s: %s", url,
				  es->errbuf[0] ? es->errbuf : curl_easy_strerror(cc));
	curl_easy_getinfo(es->easy, CURLINFO_RESPONSE_CODE, status);
	return USHER_OK;
}

/* Sends the items idx[lo..hi) as one request (split in halves when the
 * server refuses its size or shape). */
static enum usher_err send_range(struct es *es, struct usher_ship_item *items, const size_t *idx,
				 size_t lo, size_t hi, const atomic_bool *stop,
				 struct usher_error *err)
{
	enum usher_err rc = USHER_OK;
	long status = 0;
	size_t i, tries;

	usher_buf_reset(&es->body);
	for (i = lo; i < hi && !rc; i++) {
		const struct usher_ship_item *it = &items[idx[i]];

		rc = usher_buf_add(&es->body, "{\"create\":{\"_id\":\"", 18);
		if (!rc)
			rc = usher_buf_add(&es->body, it->id, it->id_len);
		if (!rc)
			rc = usher_buf_add(&es->body, "\"}}\n", 4);
		if (!rc)
			rc = usher_buf_add(&es->body, it->doc, it->doc_len);
		if (!rc)
			rc = usher_buf_addc(&es->body, '\n');
	}
	if (rc)
		return usher_fail(err, rc, "the _bulk request body is too large");
	if (es->gzip) {
		rc = gzip_body(es, err);
		if (rc)
			return rc;
	}
	/* a node that cannot be reached passes the request to the next one */
	for (tries = 0; tries < es->nurls; tries++) {
		usher_error_clear(err);
		rc = post(es, stop, &status, err);
		if (!rc || atomic_load(stop))
			break;
	}
	if (rc)
		return rc;
	if (status == 200) {
		size_t k;

		rc = usher_bulk_response_parse(es->resp.data ? es->resp.data : "", es->resp.len,
					       hi - lo, &es->res, err);
		if (rc)
			return rc;
		for (k = 0; k < es->res.n; k++) {
			struct usher_ship_item *it = &items[idx[lo + k]];
			const struct usher_bulk_item *bi = &es->res.items[k];

			it->status = bi->status;
			it->state = usher_bulk_item_state(bi->status);
			if (it->state == USHER_SHIP_DEAD) {
				/* the strings stay valid until the next request */
				it->err_type = bi->type;
				it->err_reason = bi->reason;
			}
		}
		return USHER_OK;
	}
	if ((status == 413 || status == 400) && hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		rc = send_range(es, items, idx, lo, mid, stop, err);
		if (!rc)
			rc = send_range(es, items, idx, mid, hi, stop, err);
		return rc;
	}
	if (status == 413 || status == 400) {
		struct usher_ship_item *it = &items[idx[lo]];

		snprintf(es->reason, sizeof(es->reason),
			 "the request was refused with status %ld: %.*s", status,
			 (int)(es->resp.len > 400 ? 400 : es->resp.len),
			 es->resp.data ? es->resp.data : "");
		it->status = (int)status;
		it->state = USHER_SHIP_DEAD;
		it->err_type = status == 413 ? "request_too_large" : "bad_request";
		it->err_reason = es->reason;
		return USHER_OK;
	}
	if (status == 401 || status == 403)
		return usher_fail(
		    err, USHER_ERR_AUTH,
		    "authentication refused (status %ld): check username and password or "
		    "api_key, and the role's privileges on %s",
		    status, es->target);
	return usher_fail(
	    err, status == 429 || status >= 500 ? USHER_ERR_NETWORK : USHER_ERR_PROTOCOL,
	    "status %ld from _bulk: %.*s", status, (int)(es->resp.len > 200 ? 200 : es->resp.len),
	    es->resp.data ? es->resp.data : "");
}

static enum usher_err es_send(void *arg, struct usher_ship_item *items, size_t n,
			      const atomic_bool *stop, struct usher_error *err)
{
	struct es *es = arg;
	size_t *idx = usher_malloc((n ? n : 1) * sizeof(*idx)), k = 0, i;
	enum usher_err rc;

	usher_bulk_result_free(&es->res);
	for (i = 0; i < n; i++)
		if (items[i].state == USHER_SHIP_PENDING)
			idx[k++] = i;
	rc = k ? send_range(es, items, idx, 0, k, stop, err) : USHER_OK;
	free(idx);
	return rc;
}

static void es_free(void *ctx)
{
	struct es *es = ctx;
	size_t i;

	if (!es)
		return;
	usher_shipper_free(es->sh); /* first: its thread uses the rest */
	if (es->multi)
		curl_multi_cleanup(es->multi);
	if (es->easy)
		curl_easy_cleanup(es->easy);
	curl_slist_free_all(es->headers);
	for (i = 0; i < es->nurls; i++)
		free(es->urls[i]);
	free(es->urls);
	free(es->target);
	if (es->password)
		memset(es->password, 0, strlen(es->password));
	free(es->username);
	free(es->password);
	free((char *)es->tls.ca_file);
	free((char *)es->tls.cert_file);
	free((char *)es->tls.key_file);
	usher_bulk_result_free(&es->res);
	usher_buf_free(&es->body);
	usher_buf_free(&es->gz);
	usher_buf_free(&es->resp);
	free(es);
}

static enum usher_err es_init(const struct usher_log_sink_conf *sc,
			      const struct usher_log_sink_env *env, void **ctx,
			      struct usher_error *err)
{
	const struct es_opts *o = sc->opts;
	struct es *es = usher_calloc(1, sizeof(*es));
	struct usher_shipper_conf shc = {
	    .name = sc->name,
	    .dir = env->dir,
	    .spool_max_bytes = o->spool_max_bytes,
	    .batch_max_bytes = o->batch_max_bytes,
	    .flush_interval_ms = o->flush_interval_ms,
	    .max_backoff_ms = o->max_backoff_ms,
	    .queue_max_bytes = 16 * 1024 * 1024,
	};
	struct usher_ship_transport t = {.send = es_send, .arg = es};
	size_t i;

	es->urls = usher_calloc(o->url.n, sizeof(*es->urls));
	for (i = 0; i < o->url.n; i++) {
		size_t len = strlen(o->url.v[i]);

		while (len && o->url.v[i][len - 1] == '/')
			len--;
		es->urls[es->nurls++] = usher_strndup(o->url.v[i], len);
	}
	es->target = usher_strdup(o->index ? o->index : o->data_stream);
	es->username = dup_or_null(o->username);
	es->password = dup_or_null(o->password);
	es->tls.ca_file = dup_or_null(o->tls.ca_file);
	es->tls.cert_file = dup_or_null(o->tls.cert_file);
	es->tls.key_file = dup_or_null(o->tls.key_file);
	es->tls.insecure_skip_verify = o->tls.insecure_skip_verify;
	es->timeout_ms = o->timeout_ms;
	es->gzip = o->gzip;
	usher_buf_init(&es->body, o->batch_max_bytes + 4 * 1024 * 1024);
	usher_buf_init(&es->gz, o->batch_max_bytes + 4 * 1024 * 1024);
	usher_buf_init(&es->resp, RESPONSE_MAX);
	es->headers = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
	if (es->gzip)
		es->headers = curl_slist_append(es->headers, "Content-Encoding: gzip");
	es->headers = curl_slist_append(es->headers, "Expect:");
	if (o->api_key) {
		struct usher_buf h;

		usher_buf_init(&h, 8192);
		usher_buf_addf(&h, "Authorization: ApiKey %s", o->api_key);
		es->headers = curl_slist_append(es->headers, usher_buf_str(&h));
		memset(h.data, 0, h.len);
		usher_buf_free(&h);
	}
	es->easy = curl_easy_init();
	es->multi = curl_multi_init();
	if (!es->easy || !es->multi) {
		es_free(es);
		return usher_fail(err, USHER_ERR_NOMEM, "cannot set up libcurl");
	}
	curl_easy_setopt(es->easy, CURLOPT_HTTPHEADER, es->headers);
	curl_easy_setopt(es->easy, CURLOPT_USERAGENT, "usher/" USHER_VERSION);
	curl_easy_setopt(es->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(es->easy, CURLOPT_WRITEDATA, es);
	curl_easy_setopt(es->easy, CURLOPT_ERRORBUFFER, es->errbuf);
	curl_easy_setopt(es->easy, CURLOPT_TIMEOUT_MS, (long)es->timeout_ms);
	curl_easy_setopt(es->easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(es->timeout_ms < 10000 ? es->timeout_ms : 10000));
	curl_easy_setopt(es->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(es->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(es->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(es->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (es->username) {
		curl_easy_setopt(es->easy, CURLOPT_USERNAME, es->username);
		curl_easy_setopt(es->easy, CURLOPT_PASSWORD, es->password);
	}
	if (es->tls.ca_file)
		curl_easy_setopt(es->easy, CURLOPT_CAINFO, es->tls.ca_file);
	if (es->tls.cert_file)
		curl_easy_setopt(es->easy, CURLOPT_SSLCERT, es->tls.cert_file);
	if (es->tls.key_file)
		curl_easy_setopt(es->easy, CURLOPT_SSLKEY, es->tls.key_file);
	if (es->tls.insecure_skip_verify) {
		curl_easy_setopt(es->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(es->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	es->sh = usher_shipper_new(&shc, &t, env->log, env->stats);
	*ctx = es;
	return USHER_OK;
}

static enum usher_err es_start(void *ctx, struct usher_error *err)
{
	struct es *es = ctx;

	return usher_shipper_start(es->sh, err);
}

static void es_write(void *ctx, const struct usher_log_entry *e)
{
	struct es *es = ctx;

	usher_shipper_push(es->sh, e);
}

static void es_flush(void *ctx)
{
	struct es *es = ctx;

	usher_shipper_flush(es->sh);
}

static uint64_t es_pending(void *ctx)
{
	struct es *es = ctx;

	return usher_shipper_pending(es->sh);
}

const struct usher_log_sink_type usher_log_sink_elasticsearch = {
    .name = "elasticsearch",
    .help = "Elasticsearch or OpenSearch _bulk API, with a disk spool",
    .options = es_options,
    .opts_size = sizeof(struct es_opts),
    .check = es_check,
    .init = es_init,
    .start = es_start,
    .write = es_write,
    .flush = es_flush,
    .pending = es_pending,
    .free = es_free,
};
