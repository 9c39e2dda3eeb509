/* The ECS event model: encoding of one event as an ECS JSON line or a text
 * line, the action catalogue, label sanitising and event ids. */
#include "core/ecs.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/timeutil.h"
#include "usher_version.h"

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* --- the action catalogue ------------------------------------------------ */

/* Category and type pairs follow ECS' expected_event_types, which
 * tests/conformance/ecs_check.c verifies against ecs_flat.yml. */
const struct usher_ecs_action usher_ecs_actions[] = {
    {"started", {"event", "process", "start"}, false, "usherd has started"},
    {"listening", {"event", "network", "start"}, false, "the HTTP server listens"},
    {"stopping", {"event", "process", "info"}, false, "usherd received SIGTERM or SIGINT"},
    {"stopped", {"event", "process", "end"}, false, "usherd is about to exit"},
    {"config-reload",
     {"event", "configuration", "change"},
     false,
     "a configuration reload succeeded or failed (event.outcome)"},
    {"config-invalid",
     {"event", "configuration", "info"},
     false,
     "one problem of an invalid configuration, with file:line:col"},
    {"probe-failed",
     {"event", NULL, NULL},
     true,
     "a probe's target went down (then rate-limited, with a count)"},
    {"probe-recovered", {"event", NULL, NULL}, true, "a failing probe's target is up again"},
    {"pg-connected",
     {"event", "database", "access"},
     false,
     "the postgres probe (re)connected to its server"},
    {"sql-query-failed",
     {"event", "database", "error"},
     false,
     "a custom query of the postgres probe failed (rate-limited)"},
    {"textfile-failed",
     {"event", "file", "info"},
     false,
     "a textfile collector file cannot be read or parsed (rate-limited)"},
    {"textfile-recovered", {"event", "file", "info"}, false, "the textfile is read again"},
    {"log-reopened",
     {"event", "file", "change"},
     false,
     "SIGUSR1: file sinks reopened their files (logrotate)"},
    {"log-sink-failed",
     {"event", "network", "connection"},
     false,
     "a log sink cannot deliver; events wait in its spool (rate-limited)"},
    {"log-sink-recovered", {"event", "network", "connection"}, false, "a log sink delivers again"},
    {NULL, {NULL, NULL, NULL}, false, NULL},
};

/* The category of a probe type's events; web and database know "error". */
static const struct {
	const char *type, *category;
	bool has_error;
} probe_categories[] = {
    {"http", "web", true},       {"scrape", "web", true},         {"postgres", "database", true},
    {"redis", "database", true}, {"memcached", "database", true}, {"host", "host", false},
    {"textfile", "file", false},
};

struct usher_ecs_class usher_ecs_classify(const char *action, const char *probe_type)
{
	struct usher_ecs_class c = {"event", NULL, NULL};
	const struct usher_ecs_action *a;
	size_t i;

	if (!action)
		return c;
	for (a = usher_ecs_actions; a->action; a++)
		if (strcmp(a->action, action) == 0)
			break;
	if (!a->action)
		return c;
	c = a->cls;
	if (!c.kind)
		c.kind = "event";
	if (a->by_probe_type) {
		bool failed = strcmp(action, "probe-failed") == 0;

		c.category = "network";
		c.type = "info";
		for (i = 0;
		     probe_type && i < sizeof(probe_categories) / sizeof(probe_categories[0]);
		     i++) {
			if (strcmp(probe_categories[i].type, probe_type) == 0) {
				c.category = probe_categories[i].category;
				c.type = failed && probe_categories[i].has_error ? "error" : "info";
				break;
			}
		}
	}
	return c;
}

/* --- JSON text ----------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (n bytes left), 0 if none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];

	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && p[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xf4 && p[1] >= 0x90)
			return 0; /* past U+10FFFF */
		return 4;
	}
	return 0;
}

enum usher_err usher_ecs_escape(struct usher_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
	enum usher_err rc = USHER_OK;
	char esc[8];

	while (p < end && !rc) {
		unsigned c = *p;
		size_t k;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0x80 && (k = utf8_seq(p, (size_t)(end - p))) != 0) {
			p += k;
			continue;
		}
		if (p > run)
			rc = usher_buf_add(b, run, (size_t)(p - run));
		if (rc)
			break;
		switch (c) {
		case '"': rc = usher_buf_add(b, "\\\"", 2); break;
		case '\\': rc = usher_buf_add(b, "\\\\", 2); break;
		case '\n': rc = usher_buf_add(b, "\\n", 2); break;
		case '\r': rc = usher_buf_add(b, "\\r", 2); break;
		case '\t': rc = usher_buf_add(b, "\\t", 2); break;
		default:
			if (c < 0x20) {
				static const char hex[] = "0123456789abcdef";

				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				rc = usher_buf_add(b, esc, 6);
			} else {
				rc = usher_buf_add(b, "\xef\xbf\xbd", 3); /* U+FFFD */
			}
		}
		p++;
		run = p;
	}
	if (!rc && p > run)
		rc = usher_buf_add(b, run, (size_t)(p - run));
	return rc;
}

static enum usher_err add_str(struct usher_buf *b, const char *s)
{
	enum usher_err rc = usher_buf_addc(b, '"');

	if (!rc)
		rc = usher_ecs_escape(b, s, strlen(s));
	if (!rc)
		rc = usher_buf_addc(b, '"');
	return rc;
}

/* ,"key": */
static enum usher_err add_key(struct usher_buf *b, const char *key)
{
	enum usher_err rc = usher_buf_add(b, ",\"", 2);

	if (!rc)
		rc = usher_ecs_escape(b, key, strlen(key));
	if (!rc)
		rc = usher_buf_add(b, "\":", 2);
	return rc;
}

static enum usher_err add_i64(struct usher_buf *b, int64_t v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return usher_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static enum usher_err add_u64(struct usher_buf *b, uint64_t u)
{
	char tmp[24], *p = tmp + sizeof(tmp);

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return usher_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* A comma-separated list as a JSON array of strings. */
static enum usher_err add_array(struct usher_buf *b, const char *list)
{
	enum usher_err rc = usher_buf_addc(b, '[');
	const char *p = list;

	while (!rc) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		rc = usher_buf_addc(b, '"');
		if (!rc)
			rc = usher_ecs_escape(b, p, n);
		if (!rc)
			rc = usher_buf_addc(b, '"');
		if (!comma || rc)
			break;
		rc = usher_buf_addc(b, ',');
		p = comma + 1;
	}
	return rc ? rc : usher_buf_addc(b, ']');
}

/* A field's value as JSON text (labels: always a string). */
static enum usher_err add_value(struct usher_buf *b, const struct usher_log_field *f, bool as_str)
{
	char num[40];

	switch (f->type) {
	case USHER_LF_STR: return add_str(b, f->s);
	case USHER_LF_INT:
		if (!as_str)
			return add_i64(b, f->i);
		snprintf(num, sizeof(num), "\"%lld\"", (long long)f->i);
		return usher_buf_addstr(b, num);
	case USHER_LF_DOUBLE:
		if (!isfinite(f->d))
			return usher_buf_addstr(b, as_str ? "\"NaN\"" : "null");
		snprintf(num, sizeof(num), as_str ? "\"%.17g\"" : "%.17g", f->d);
		return usher_buf_addstr(b, num);
	case USHER_LF_BOOL:
		if (as_str)
			return usher_buf_addstr(b, f->i ? "\"true\"" : "\"false\"");
		return usher_buf_addstr(b, f->i ? "true" : "false");
	}
	return USHER_ERR_INTERNAL;
}

char *usher_ecs_label_key(const char *key, char *out, size_t len)
{
	size_t i;

	if (!len)
		return out;
	for (i = 0; key[i] && i + 1 < len; i++) {
		char c = key[i];

		out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-')
			     ? c
			     : '_';
	}
	if (i == 0 && len > 1)
		out[i++] = '_';
	out[i] = '\0';
	return out;
}

/* The keys the encoder writes itself. Events may override the ones marked
 * "theirs"; the others (the ECS logging spec's header, the id) are ours. */
enum {
	K_TIMESTAMP,
	K_LEVEL,
	K_MESSAGE,
	K_ECS_VERSION,
	K_EVENT_ID,
	K_EVENT_SEQ, /* ours */
	K_SERVICE_NAME,
	K_SERVICE_VERSION,
	K_HOST_HOSTNAME,
	K_HOST_NAME,
	K_PID,
	K_DATASET,
	K_KIND,
	K_CATEGORY,
	K_TYPE,
	K_NKEYS
};
#define K_FIRST_THEIRS K_SERVICE_NAME
static const char *const std_keys[K_NKEYS] = {
    "@timestamp",     "log.level",     "message",         "ecs.version",    "event.id",
    "event.sequence", "service.name",  "service.version", "host.hostname",  "host.name",
    "process.pid",    "event.dataset", "event.kind",      "event.category", "event.type",
};

static int std_key(const char *key)
{
	int k;

	/* every standard key starts with one of these letters */
	if (key[0] != '@' && key[0] != 'l' && key[0] != 'm' && key[0] != 'e' && key[0] != 's' &&
	    key[0] != 'h' && key[0] != 'p')
		return -1;
	for (k = 0; k < K_NKEYS; k++)
		if (std_keys[k][0] == key[0] && std_keys[k][1] == key[1] &&
		    strcmp(key, std_keys[k]) == 0)
			return k;
	return -1;
}

static bool is_label(const char *key)
{
	return strncmp(key, "labels.", 7) == 0;
}

/* Whether two keys name the same field once written (labels compare
 * sanitised: "labels.a.b" and "labels.a_b" are one key). */
static bool same_key(const char *a, const char *b)
{
	char x[128], y[128];

	if (strcmp(a, b) == 0)
		return true;
	if (!is_label(a) || !is_label(b))
		return false;
	return strcmp(usher_ecs_label_key(a + 7, x, sizeof(x)),
		      usher_ecs_label_key(b + 7, y, sizeof(y))) == 0;
}

/* Whether fields[i]'s key already came earlier (written once: the first). */
static bool seen_before(const struct usher_log_field *f, size_t i)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (same_key(f[j].key, f[i].key))
			return true;
	return false;
}

/* A hash of the key as written (labels sanitised), so that finding
 * duplicates costs a strcmp only when two hashes agree. */
static uint32_t key_hash(const char *key)
{
	uint32_t h = 2166136261u;
	bool label = is_label(key);
	const char *p = key;

	for (; *p; p++) {
		char c = *p;

		if (label && p >= key + 7 &&
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			c = '_';
		h = (h ^ (unsigned char)c) * 16777619u;
	}
	return h;
}

#define HASHED_FIELDS 64

static enum usher_err add_field(struct usher_buf *b, const struct usher_log_field *f)
{
	enum usher_err rc;

	if (is_label(f->key)) {
		char key[128];

		usher_ecs_label_key(f->key + 7, key, sizeof(key));
		rc = usher_buf_addstr(b, ",\"labels.");
		if (!rc)
			rc = usher_buf_addstr(b, key);
		if (!rc)
			rc = usher_buf_add(b, "\":", 2);
		return rc ? rc : add_value(b, f, true);
	}
	rc = add_key(b, f->key);
	return rc ? rc : add_value(b, f, false);
}

static const char *find_str(const struct usher_log_record *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nfields; i++)
		if (r->fields[i].type == USHER_LF_STR && strcmp(r->fields[i].key, key) == 0)
			return r->fields[i].s;
	return NULL;
}

static void put_digits(char *p, unsigned v, int n)
{
	while (n--) {
		p[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* usher_time_format_rfc3339's output without snprintf: this runs for
 * every event. */
static void format_ts(int64_t ts_ns, char *out, size_t len)
{
	int64_t ms = ts_ns / 1000000;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (len < 25 || ms < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999) {
		usher_time_format_rfc3339(ms, out, len);
		return;
	}
	put_digits(out, (unsigned)(tm.tm_year + 1900), 4);
	out[4] = '-';
	put_digits(out + 5, (unsigned)(tm.tm_mon + 1), 2);
	out[7] = '-';
	put_digits(out + 8, (unsigned)tm.tm_mday, 2);
	out[10] = 'T';
	put_digits(out + 11, (unsigned)tm.tm_hour, 2);
	out[13] = ':';
	put_digits(out + 14, (unsigned)tm.tm_min, 2);
	out[16] = ':';
	put_digits(out + 17, (unsigned)tm.tm_sec, 2);
	out[19] = '.';
	put_digits(out + 20, (unsigned)(ms % 1000), 3);
	out[23] = 'Z';
	out[24] = '\0';
}

#define TRY(x)                                                                                     \
	do {                                                                                       \
		if (!rc)                                                                           \
			rc = (x);                                                                  \
	} while (0)

enum usher_err usher_ecs_encode(struct usher_buf *b, const struct usher_log_record *r,
				const struct usher_ecs_meta *m)
{
	static const struct usher_ecs_meta none;
	const struct usher_log_field *theirs[K_NKEYS] = {NULL};
	uint32_t hashes[HASHED_FIELDS];
	struct usher_ecs_class cls;
	enum usher_err rc = USHER_OK;
	char ts[40];
	size_t i;

	if (!m)
		m = &none;
	for (i = 0; i < r->nfields; i++) {
		int k = std_key(r->fields[i].key);

		if (k >= K_FIRST_THEIRS && !theirs[k])
			theirs[k] = &r->fields[i];
	}
	cls = usher_ecs_classify(find_str(r, "event.action"), find_str(r, "usher.probe.type"));

	format_ts(r->ts_ns, ts, sizeof(ts));
	TRY(usher_buf_add(b, "{\"@timestamp\":\"", 15));
	TRY(usher_buf_addstr(b, ts));
	TRY(usher_buf_add(b, "\",\"log.level\":\"", 15));
	TRY(usher_buf_addstr(b, level_names[r->level]));
	TRY(usher_buf_add(b, "\",\"message\":", 12));
	TRY(add_str(b, r->message));
	TRY(usher_buf_addstr(b, ",\"ecs.version\":\"" USHER_ECS_VERSION "\""));

	/* service, host, process: ours unless the event says otherwise */
	if (theirs[K_SERVICE_NAME]) {
		TRY(add_field(b, theirs[K_SERVICE_NAME]));
	} else {
		TRY(add_key(b, "service.name"));
		TRY(add_str(b, r->service));
	}
	if (!theirs[K_SERVICE_VERSION])
		TRY(usher_buf_addstr(b, ",\"service.version\":\"" USHER_VERSION "\""));
	if (!theirs[K_HOST_HOSTNAME] && r->hostname) {
		TRY(add_key(b, "host.hostname"));
		TRY(add_str(b, r->hostname));
	}
	if (!theirs[K_HOST_NAME] && r->hostname) {
		TRY(add_key(b, "host.name"));
		TRY(add_str(b, r->hostname));
	}
	if (!theirs[K_PID] && m->pid) {
		TRY(add_key(b, "process.pid"));
		TRY(add_i64(b, m->pid));
	}
	if (!theirs[K_DATASET]) {
		TRY(add_key(b, "event.dataset"));
		TRY(usher_buf_addc(b, '"'));
		TRY(usher_ecs_escape(b, r->service, strlen(r->service)));
		TRY(usher_buf_add(b, ".log\"", 5));
	}
	TRY(add_key(b, "event.kind"));
	TRY(theirs[K_KIND] ? add_value(b, theirs[K_KIND], false) : add_str(b, cls.kind));
	if (theirs[K_CATEGORY] && theirs[K_CATEGORY]->type == USHER_LF_STR) {
		TRY(add_key(b, "event.category"));
		TRY(add_array(b, theirs[K_CATEGORY]->s));
	} else if (cls.category) {
		TRY(add_key(b, "event.category"));
		TRY(add_array(b, cls.category));
	}
	if (theirs[K_TYPE] && theirs[K_TYPE]->type == USHER_LF_STR) {
		TRY(add_key(b, "event.type"));
		TRY(add_array(b, theirs[K_TYPE]->s));
	} else if (cls.type) {
		TRY(add_key(b, "event.type"));
		TRY(add_array(b, cls.type));
	}
	for (i = 0; i < r->nfields && i < HASHED_FIELDS; i++)
		hashes[i] = key_hash(r->fields[i].key);
	for (i = 0; !rc && i < r->nfields; i++) {
		const struct usher_log_field *f = &r->fields[i];
		int k = std_key(f->key);
		bool dup = false;

		if (k >= 0 && (k < K_FIRST_THEIRS || k == K_KIND || k == K_CATEGORY ||
			       k == K_TYPE || k == K_SERVICE_NAME))
			continue; /* ours, or written above */
		if (i < HASHED_FIELDS) {
			size_t j;

			for (j = 0; j < i && !dup; j++)
				dup = hashes[j] == hashes[i] && same_key(r->fields[j].key, f->key);
		} else {
			dup = seen_before(r->fields, i);
		}
		if (dup)
			continue;
		rc = add_field(b, f);
	}
	for (i = 0; !rc && i < m->nextra; i++) {
		size_t j;

		for (j = 0; j < r->nfields; j++)
			if (same_key(r->fields[j].key, m->extra[i].key))
				break;
		if (j == r->nfields && !seen_before(m->extra, i))
			rc = add_field(b, &m->extra[i]);
	}
	if (m->has_seq) {
		TRY(add_key(b, "event.sequence"));
		TRY(add_u64(b, m->seq));
	}
	if (m->id) {
		TRY(add_key(b, "event.id"));
		TRY(add_str(b, m->id));
	}
	TRY(usher_buf_add(b, "}\n", 2));
	return rc;
}

static enum usher_err add_text_field(struct usher_buf *b, const struct usher_log_field *f)
{
	enum usher_err rc = usher_buf_addc(b, ' ');

	if (!rc)
		rc = usher_buf_addstr(b, f->key);
	if (!rc)
		rc = usher_buf_addc(b, '=');
	if (rc)
		return rc;
	switch (f->type) {
	case USHER_LF_STR:
		if (strpbrk(f->s, " \"=\n") || !*f->s)
			return add_str(b, f->s);
		return usher_ecs_escape(b, f->s, strlen(f->s));
	case USHER_LF_INT: return add_i64(b, f->i);
	case USHER_LF_DOUBLE: return usher_buf_addf(b, "%g", f->d);
	case USHER_LF_BOOL: return usher_buf_addstr(b, f->i ? "true" : "false");
	}
	return USHER_ERR_INTERNAL;
}

enum usher_err usher_text_encode(struct usher_buf *b, const struct usher_log_record *r)
{
	enum usher_err rc;
	char ts[40];
	size_t i;

	format_ts(r->ts_ns, ts, sizeof(ts));
	rc = usher_buf_addf(b, "%s %-5s %s", ts, level_names[r->level], r->message);
	for (i = 0; !rc && i < r->nfields; i++)
		rc = add_text_field(b, &r->fields[i]);
	return rc ? rc : usher_buf_addc(b, '\n');
}

/* --- event ids ----------------------------------------------------------- */

/* FNV-1a over the bytes, finished with murmur3's fmix64 so every input bit
 * reaches every output bit. Not cryptographic: ids only need to differ. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

void usher_ecs_event_id(const char *host, const char *service, int64_t ts_ns, uint64_t seq,
			char *out)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[16];
	uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL, v;
	size_t i, o = 0;
	unsigned acc = 0;
	int bits = 0;

	for (i = 0; i < 2; i++) {
		uint64_t *h = i ? &h2 : &h1;

		*h = hash_bytes(*h, host ? host : "", host ? strlen(host) + 1 : 1);
		*h = hash_bytes(*h, service ? service : "", service ? strlen(service) + 1 : 1);
		*h = hash_bytes(*h, &ts_ns, sizeof(ts_ns));
		*h = hash_bytes(*h, &seq, sizeof(seq));
	}
	h1 = fmix64(h1);
	h2 = fmix64(h2 ^ h1);
	for (i = 0; i < 8; i++) {
		v = h1 >> (56 - 8 * i);
		raw[i] = (unsigned char)v;
		v = h2 >> (56 - 8 * i);
		raw[8 + i] = (unsigned char)v;
	}
	for (i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = b64[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}
