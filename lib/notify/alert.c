/* Alerts and label sets as Alertmanager models them: fingerprints, merge,
 * ordering, Go-compatible time and string formatting. */
#include "notify/alert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "metrics/registry.h"

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL
#define SEP        0xffu

static size_t find(const struct usher_am_labels *l, const char *name, bool *found)
{
	size_t lo = 0, hi = l->n;

	*found = false;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(l->v[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void usher_am_labels_set(struct usher_am_labels *l, const char *name, const char *value)
{
	bool found;
	size_t i = find(l, name, &found);

	if (found) {
		free(l->v[i].value);
		if (!*value) {
			free(l->v[i].name);
			memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof(*l->v));
			l->n--;
			return;
		}
		l->v[i].value = usher_strdup(value);
		return;
	}
	if (!*value)
		return;
	l->v = usher_realloc(l->v, (l->n + 1) * sizeof(*l->v));
	memmove(l->v + i + 1, l->v + i, (l->n - i) * sizeof(*l->v));
	l->v[i].name = usher_strdup(name);
	l->v[i].value = usher_strdup(value);
	l->n++;
}

const char *usher_am_labels_get(const struct usher_am_labels *l, const char *name)
{
	bool found;
	size_t i = find(l, name, &found);

	return found ? l->v[i].value : NULL;
}

void usher_am_labels_copy(struct usher_am_labels *dst, const struct usher_am_labels *src)
{
	size_t i;

	dst->n = src->n;
	dst->v = src->n ? usher_malloc(src->n * sizeof(*dst->v)) : NULL;
	for (i = 0; i < src->n; i++) {
		dst->v[i].name = usher_strdup(src->v[i].name);
		dst->v[i].value = usher_strdup(src->v[i].value);
	}
}

bool usher_am_labels_equal(const struct usher_am_labels *a, const struct usher_am_labels *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, b->v[i].name) || strcmp(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

void usher_am_labels_free(struct usher_am_labels *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static uint64_t fnv_add(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= FNV_PRIME;
	}
	return h;
}

static uint64_t fnv_byte(uint64_t h, unsigned char b)
{
	h ^= b;
	return h * FNV_PRIME;
}

uint64_t usher_am_labels_fingerprint(const struct usher_am_labels *l)
{
	uint64_t h = FNV_OFFSET;
	size_t i;

	for (i = 0; i < l->n; i++) {
		h = fnv_add(h, l->v[i].name);
		h = fnv_byte(h, SEP);
		h = fnv_add(h, l->v[i].value);
		h = fnv_byte(h, SEP);
	}
	return h;
}

int usher_am_labels_compare(const struct usher_am_labels *a, const struct usher_am_labels *b)
{
	size_t i;

	/* model.LabelSet.Before: the names in order, then the values */
	for (i = 0; i < a->n && i < b->n; i++) {
		int c = strcmp(a->v[i].name, b->v[i].name);

		if (c)
			return c;
		c = strcmp(a->v[i].value, b->v[i].value);
		if (c)
			return c;
	}
	return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

static char *append(char *out, const char *s, size_t n)
{
	size_t len = out ? strlen(out) : 0;

	out = usher_realloc(out, len + n + 1);
	memcpy(out + len, s, n);
	out[len + n] = '\0';
	return out;
}

/* The length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

char *usher_go_quote_append(char *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];

	out = append(out, "\"", 1);
	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", *p);
			out = append(out, esc, 4);
			p++;
			continue;
		}
		if (n > 1) {
			out = append(out, (const char *)p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '"': out = append(out, "\\\"", 2); break;
		case '\\': out = append(out, "\\\\", 2); break;
		case '\a': out = append(out, "\\a", 2); break;
		case '\b': out = append(out, "\\b", 2); break;
		case '\f': out = append(out, "\\f", 2); break;
		case '\n': out = append(out, "\\n", 2); break;
		case '\r': out = append(out, "\\r", 2); break;
		case '\t': out = append(out, "\\t", 2); break;
		case '\v': out = append(out, "\\v", 2); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", *p);
				out = append(out, esc, 4);
			} else {
				out = append(out, (const char *)p, 1);
			}
		}
		p++;
	}
	return append(out, "\"", 1);
}

char *usher_am_labels_string(const struct usher_am_labels *l)
{
	char *out = append(NULL, "{", 1);
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (i)
			out = append(out, ", ", 2);
		out = append(out, l->v[i].name, strlen(l->v[i].name));
		out = append(out, "=", 1);
		out = usher_go_quote_append(out, l->v[i].value);
	}
	return append(out, "}", 1);
}

json_t *usher_am_labels_json(const struct usher_am_labels *l)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_object_set_new(o, l->v[i].name, json_string(l->v[i].value));
	return o;
}

enum usher_err usher_am_labels_from_json(struct usher_am_labels *l, const json_t *obj,
					 const char *what, bool check_names,
					 struct usher_error *err)
{
	const char *k;
	json_t *v;

	if (!obj || json_is_null(obj))
		return USHER_OK;
	if (!json_is_object(obj))
		return usher_fail(err, USHER_ERR_INVALID, "%s must be an object of strings", what);
	json_object_foreach((json_t *)obj, k, v)
	{
		if (!json_is_string(v))
			return usher_fail(err, USHER_ERR_INVALID, "%s: %s must be a string", what,
					  k);
		if (check_names && !usher_label_name_valid(k))
			return usher_fail(err, USHER_ERR_INVALID, "%s: invalid label name \"%s\"",
					  what, k);
		if (strlen(json_string_value(v)) != json_string_length(v))
			return usher_fail(err, USHER_ERR_INVALID, "%s: %s contains a NUL byte",
					  what, k);
		usher_am_labels_set(l, k, json_string_value(v));
	}
	return USHER_OK;
}

void usher_fp_format(uint64_t fp, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)fp);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	*y = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y += *m <= 2;
}

void usher_time_format_nano(int64_t ns, char *out, size_t len)
{
	int64_t secs, days, rem, y;
	long frac;
	unsigned m, d;
	char fs[16] = "";

	if (ns == USHER_TIME_ZERO) {
		snprintf(out, len, "0001-01-01T00:00:00Z");
		return;
	}
	secs = ns / 1000000000;
	frac = (long)(ns % 1000000000);
	if (frac < 0) {
		frac += 1000000000;
		secs--;
	}
	days = secs / 86400;
	rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	if (frac) {
		int n;

		snprintf(fs, sizeof(fs), ".%09ld", frac);
		n = (int)strlen(fs);
		while (n > 1 && fs[n - 1] == '0')
			fs[--n] = '\0';
	}
	snprintf(out, len, "%04lld-%02u-%02uT%02d:%02d:%02d%sZ", (long long)y, m, d,
		 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), fs);
}

static bool digits(const char *s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

enum usher_err usher_time_parse_rfc3339(const char *s, int64_t *ns)
{
	int y, mo, d, h, mi, sec, off = 0;
	int64_t frac = 0, days;
	const char *p;

	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
	    s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return USHER_ERR_INVALID;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return USHER_ERR_INVALID;
	p = s + 19;
	if (*p == '.') {
		int n = 0;

		p++;
		if (*p < '0' || *p > '9')
			return USHER_ERR_INVALID;
		for (; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 9)
				frac = frac * 10 + (*p - '0');
		for (; n < 9; n++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;

		if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return USHER_ERR_INVALID;
		off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return USHER_ERR_INVALID;
	}
	if (*p)
		return USHER_ERR_INVALID;
	if (y == 1 && mo == 1 && d == 1 && h == 0 && mi == 0 && sec == 0 && frac == 0 && off == 0) {
		*ns = USHER_TIME_ZERO;
		return USHER_OK;
	}
	/* the range int64 nanoseconds hold: years 1678 to 2261 */
	if (y < 1678 || y > 2261)
		return USHER_ERR_INVALID;
	days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	*ns = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000000000LL + frac;
	return USHER_OK;
}

static enum usher_err time_field(const json_t *j, const char *key, int64_t *ns, bool *present,
				 struct usher_error *err)
{
	const json_t *v = json_object_get(j, key);

	*present = false;
	if (!v || json_is_null(v))
		return USHER_OK;
	if (!json_is_string(v) || usher_time_parse_rfc3339(json_string_value(v), ns))
		return usher_fail(err, USHER_ERR_INVALID,
				  "%s must be an RFC 3339 time (\"2026-11-28T03:04:05Z\")", key);
	*present = *ns != USHER_TIME_ZERO;
	return USHER_OK;
}

struct usher_am_alert *usher_am_alert_from_json(const json_t *j, int64_t now_ns,
						int64_t resolve_timeout_ms, struct usher_error *err)
{
	struct usher_am_alert *a;
	const json_t *g;
	bool has_start, has_end;

	if (!json_is_object(j)) {
		usher_fail(err, USHER_ERR_INVALID, "an alert must be a JSON object");
		return NULL;
	}
	a = usher_calloc(1, sizeof(*a));
	a->ends_at = USHER_TIME_ZERO;
	if (usher_am_labels_from_json(&a->labels, json_object_get(j, "labels"), "labels", true,
				      err) ||
	    usher_am_labels_from_json(&a->annotations, json_object_get(j, "annotations"),
				      "annotations", false, err) ||
	    time_field(j, "startsAt", &a->starts_at, &has_start, err) ||
	    time_field(j, "endsAt", &a->ends_at, &has_end, err))
		goto fail;
	if (a->labels.n == 0) {
		usher_fail(err, USHER_ERR_INVALID, "an alert needs at least one label");
		goto fail;
	}
	g = json_object_get(j, "generatorURL");
	if (g && !json_is_null(g) && !json_is_string(g)) {
		usher_fail(err, USHER_ERR_INVALID, "generatorURL must be a string");
		goto fail;
	}
	a->generator_url = usher_strdup(g && json_is_string(g) ? json_string_value(g) : "");
	/* Alertmanager's API: a missing start is now; a missing end is now
	 * plus resolve_timeout, marked as a timeout (a later explicit end wins) */
	if (!has_start)
		a->starts_at = has_end && a->ends_at < now_ns ? a->ends_at : now_ns;
	if (!has_end) {
		a->ends_at = now_ns + resolve_timeout_ms * 1000000LL;
		a->timeout = true;
	}
	if (a->ends_at < a->starts_at) {
		usher_fail(err, USHER_ERR_INVALID, "endsAt is before startsAt");
		goto fail;
	}
	a->updated_at = now_ns;
	a->fp = usher_am_labels_fingerprint(&a->labels);
	return a;
fail:
	usher_am_alert_free(a);
	return NULL;
}

struct usher_am_alert *usher_am_alert_dup(const struct usher_am_alert *a)
{
	struct usher_am_alert *b = usher_malloc(sizeof(*b));

	*b = *a;
	usher_am_labels_copy(&b->labels, &a->labels);
	usher_am_labels_copy(&b->annotations, &a->annotations);
	b->generator_url = usher_strdup(a->generator_url ? a->generator_url : "");
	return b;
}

void usher_am_alert_free(struct usher_am_alert *a)
{
	if (!a)
		return;
	usher_am_labels_free(&a->labels);
	usher_am_labels_free(&a->annotations);
	free(a->generator_url);
	free(a);
}

bool usher_am_alert_resolved(const struct usher_am_alert *a, int64_t now_ns)
{
	return a->ends_at != USHER_TIME_ZERO && a->ends_at <= now_ns;
}

void usher_am_alert_merge(struct usher_am_alert *a, struct usher_am_alert *o, int64_t now_ns)
{
	struct usher_am_alert old = *a, *young = o, *elder = &old;
	int64_t starts, ends;

	if (o->updated_at < a->updated_at) {
		young = &old;
		elder = o;
	}
	starts = young->starts_at;
	ends = young->ends_at;
	if (elder->starts_at < starts)
		starts = elder->starts_at;
	if (usher_am_alert_resolved(young, now_ns)) {
		if (usher_am_alert_resolved(elder, now_ns) && elder->ends_at > ends)
			ends = elder->ends_at;
	} else if (elder->ends_at > ends && !elder->timeout) {
		ends = elder->ends_at;
	}
	if (young == o) {
		/* take o's contents, free a's */
		usher_am_labels_free(&a->labels);
		usher_am_labels_free(&a->annotations);
		free(a->generator_url);
		*a = *o;
		free(o);
	} else {
		usher_am_alert_free(o);
	}
	a->starts_at = starts;
	a->ends_at = ends;
}

int usher_am_alert_compare(const struct usher_am_alert *a, const struct usher_am_alert *b)
{
	static const char *const keys[] = {"job", "instance"};
	size_t i;

	for (i = 0; i < 2; i++) {
		const char *x = usher_am_labels_get(&a->labels, keys[i]);
		const char *y = usher_am_labels_get(&b->labels, keys[i]);
		int c;

		if (!x && !y)
			continue;
		if (!x)
			return 1;
		if (!y)
			return -1;
		c = strcmp(x, y);
		if (c)
			return c;
	}
	return usher_am_labels_compare(&a->labels, &b->labels);
}

json_t *usher_am_alert_webhook_json(const struct usher_am_alert *a, int64_t now_ns)
{
	bool resolved = usher_am_alert_resolved(a, now_ns);
	char starts[48], ends[48], fp[17];

	usher_time_format_nano(a->starts_at, starts, sizeof(starts));
	usher_time_format_nano(resolved ? a->ends_at : USHER_TIME_ZERO, ends, sizeof(ends));
	usher_fp_format(a->fp, fp);
	return json_pack(
	    "{s:s, s:o, s:o, s:s, s:s, s:s, s:s}", "status", resolved ? "resolved" : "firing",
	    "labels", usher_am_labels_json(&a->labels), "annotations",
	    usher_am_labels_json(&a->annotations), "startsAt", starts, "endsAt", ends,
	    "generatorURL", a->generator_url ? a->generator_url : "", "fingerprint", fp);
}
