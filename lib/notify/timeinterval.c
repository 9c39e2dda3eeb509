/* Alertmanager's time intervals: parsing (names of weekdays and months,
 * ranges "a:b", negative days of the month) and the check of a time. */
#include "notify/timeinterval.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"

static const char *const weekdays[] = {"sunday",   "monday", "tuesday", "wednesday",
				       "thursday", "friday", "saturday"};
static const char *const months[] = {"january",   "february", "march",    "april",
				     "may",       "june",     "july",     "august",
				     "september", "october",  "november", "december"};

static bool parse_int(const char *s, size_t n, int *v)
{
	bool neg = false;
	size_t i = 0;

	*v = 0;
	if (n && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i >= n || n - i > 6)
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	if (neg)
		*v = -*v;
	return true;
}

enum kind { K_WEEKDAY, K_DOM, K_MONTH, K_YEAR };

static bool parse_value(enum kind k, const char *s, size_t n, int *v)
{
	size_t i;

	if (k == K_WEEKDAY) {
		for (i = 0; i < 7; i++)
			if (strlen(weekdays[i]) == n && strncasecmp(s, weekdays[i], n) == 0) {
				*v = (int)i;
				return true;
			}
		return false;
	}
	if (k == K_MONTH) {
		for (i = 0; i < 12; i++)
			if (strlen(months[i]) == n && strncasecmp(s, months[i], n) == 0) {
				*v = (int)i + 1;
				return true;
			}
		return parse_int(s, n, v) && *v >= 1 && *v <= 12;
	}
	if (!parse_int(s, n, v))
		return false;
	if (k == K_DOM)
		return *v != 0 && *v >= -31 && *v <= 31;
	return *v >= 0;
}

static enum usher_err parse_ranges(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				   enum kind k, struct usher_irange_list *out)
{
	static const char *const what[] = {"weekday", "day of the month", "month", "year"};
	size_t i;

	if (node->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, node, "expected a list of %ss or ranges (a:b)",
				       what[k]);
	out->n = node->n;
	out->v = usher_arena_zalloc(ctx->arena, (node->n + 1) * sizeof(*out->v));
	for (i = 0; i < node->n; i++) {
		const struct usher_ynode *it = node->items[i];
		const char *s, *colon;
		struct usher_irange *r = &out->v[i];

		if (it->kind != USHER_Y_SCALAR)
			return usher_cfg_error(ctx, it, "expected a %s or a range", what[k]);
		s = it->value;
		colon = strchr(s, ':');
		if (!parse_value(k, s, colon ? (size_t)(colon - s) : strlen(s), &r->lo) ||
		    !parse_value(k, colon ? colon + 1 : s, strlen(colon ? colon + 1 : s), &r->hi))
			return usher_cfg_error(ctx, it, "invalid %s range \"%s\"", what[k], s);
		if (k == K_DOM && (r->lo < 0) != (r->hi < 0) && r->lo > 0)
			return usher_cfg_error(ctx, it, "day of the month range \"%s\" mixes signs",
					       s);
		if (r->lo > r->hi && !(k == K_DOM && r->lo > 0 && r->hi < 0))
			return usher_cfg_error(ctx, it, "%s range \"%s\": start after end", what[k],
					       s);
	}
	return USHER_OK;
}

static bool parse_hhmm(const char *s, int *min)
{
	int h, m;

	if (strlen(s) != 5 || s[2] != ':' || !parse_int(s, 2, &h) || !parse_int(s + 3, 2, &m))
		return false;
	if (h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0))
		return false;
	*min = h * 60 + m;
	return true;
}

static enum usher_err parse_times(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				  struct usher_irange_list *out)
{
	size_t i;

	if (node->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, node, "expected a list of {start_time, end_time}");
	out->n = node->n;
	out->v = usher_arena_zalloc(ctx->arena, (node->n + 1) * sizeof(*out->v));
	for (i = 0; i < node->n; i++) {
		const struct usher_ynode *it = node->items[i], *st, *et;
		size_t j;

		if (it->kind != USHER_Y_MAP)
			return usher_cfg_error(ctx, it,
					       "expected {start_time: HH:MM, end_time: HH:MM}");
		for (j = 0; j < it->n; j++)
			if (strcmp(it->pairs[j].key->value, "start_time") &&
			    strcmp(it->pairs[j].key->value, "end_time"))
				return usher_cfg_error(ctx, it->pairs[j].key,
						       "unknown key \"%s\" (start_time, end_time)",
						       it->pairs[j].key->value);
		st = usher_ynode_get(it, "start_time");
		et = usher_ynode_get(it, "end_time");
		if (!st || !et || st->kind != USHER_Y_SCALAR || et->kind != USHER_Y_SCALAR)
			return usher_cfg_error(ctx, it,
					       "a time range needs start_time and end_time");
		if (!parse_hhmm(st->value, &out->v[i].lo))
			return usher_cfg_error(ctx, st, "invalid time \"%s\" (HH:MM)", st->value);
		if (!parse_hhmm(et->value, &out->v[i].hi))
			return usher_cfg_error(ctx, et, "invalid time \"%s\" (HH:MM)", et->value);
		if (out->v[i].hi <= out->v[i].lo)
			return usher_cfg_error(ctx, it, "end_time must be after start_time");
	}
	return USHER_OK;
}

static enum usher_err parse_spec(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				 struct usher_time_spec *sp)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	if (node->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, node,
				       "expected a map (times, weekdays, days_of_month, "
				       "months, years, location)");
	for (i = 0; i < node->n && !rc; i++) {
		const char *k = node->pairs[i].key->value;
		const struct usher_ynode *v = node->pairs[i].val;

		if (strcmp(k, "times") == 0)
			rc = parse_times(ctx, v, &sp->times);
		else if (strcmp(k, "weekdays") == 0)
			rc = parse_ranges(ctx, v, K_WEEKDAY, &sp->weekdays);
		else if (strcmp(k, "days_of_month") == 0)
			rc = parse_ranges(ctx, v, K_DOM, &sp->days_of_month);
		else if (strcmp(k, "months") == 0)
			rc = parse_ranges(ctx, v, K_MONTH, &sp->months);
		else if (strcmp(k, "years") == 0)
			rc = parse_ranges(ctx, v, K_YEAR, &sp->years);
		else if (strcmp(k, "location") == 0) {
			enum usher_err trc;

			if (v->kind != USHER_Y_SCALAR || !*v->value) {
				rc = usher_cfg_error(ctx, v,
						     "location must be a time zone name "
						     "(UTC, Local, Europe/Berlin)");
			} else if (strcmp(v->value, "Local") == 0) {
				sp->local = true;
			} else if (strcmp(v->value, "UTC") != 0) {
				trc = usher_tzone_load(ctx->arena, USHER_ZONEINFO_DIR, v->value,
						       &sp->tz);
				if (trc)
					rc = usher_cfg_error(
					    ctx, v, "unknown time zone \"%s\" (%s: not in %s)",
					    v->value,
					    trc == USHER_ERR_NOTFOUND ? "no such zone"
								      : "unreadable",
					    USHER_ZONEINFO_DIR);
			}
		} else
			rc = usher_cfg_error(ctx, node->pairs[i].key,
					     "unknown key \"%s\" (times, weekdays, days_of_month, "
					     "months, years, location)",
					     k);
	}
	return rc;
}

enum usher_err usher_time_intervals_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					  struct usher_time_interval **out, size_t *n)
{
	enum usher_err rc = USHER_OK;
	size_t i, j;

	if (node->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, node, "expected a list of {name, time_intervals}");
	*out = usher_arena_zalloc(ctx->arena, (node->n + 1) * sizeof(**out));
	*n = node->n;
	for (i = 0; i < node->n; i++) {
		const struct usher_ynode *it = node->items[i], *name, *list;
		struct usher_time_interval *ti = &(*out)[i];

		ti->line = it->line;
		ti->col = it->col;
		if (it->kind != USHER_Y_MAP) {
			rc = usher_cfg_error(ctx, it, "expected {name, time_intervals}");
			continue;
		}
		for (j = 0; j < it->n; j++)
			if (strcmp(it->pairs[j].key->value, "name") &&
			    strcmp(it->pairs[j].key->value, "time_intervals"))
				rc = usher_cfg_error(ctx, it->pairs[j].key,
						     "unknown key \"%s\" (name, time_intervals)",
						     it->pairs[j].key->value);
		name = usher_ynode_get(it, "name");
		if (!name || name->kind != USHER_Y_SCALAR || !*name->value) {
			rc = usher_cfg_error(ctx, it, "a time interval needs a name");
			continue;
		}
		ti->name = name->value;
		for (j = 0; j < i; j++)
			if ((*out)[j].name && strcmp((*out)[j].name, ti->name) == 0)
				rc = usher_cfg_error(
				    ctx, name, "time interval \"%s\" defined twice", ti->name);
		list = usher_ynode_get(it, "time_intervals");
		if (!list || usher_ynode_is_null(list))
			continue;
		if (list->kind != USHER_Y_SEQ) {
			rc = usher_cfg_error(ctx, list, "time_intervals must be a list");
			continue;
		}
		ti->n = list->n;
		ti->specs = usher_arena_zalloc(ctx->arena, (list->n + 1) * sizeof(*ti->specs));
		for (j = 0; j < list->n; j++)
			if (parse_spec(ctx, list->items[j], &ti->specs[j]))
				rc = USHER_ERR_INVALID;
	}
	return rc;
}

static bool in_list(const struct usher_irange_list *l, int v)
{
	size_t i;

	if (!l->n)
		return true;
	for (i = 0; i < l->n; i++)
		if (v >= l->v[i].lo && v <= l->v[i].hi)
			return true;
	return false;
}

static int days_in_month(int year, int mon /* 1-12 */)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : d[mon - 1];
}

static bool spec_contains(const struct usher_time_spec *sp, int64_t now_ns)
{
	time_t t = (time_t)(now_ns / 1000000000);
	struct tm tm;
	int min, dim;
	size_t i;

	if (sp->tz)
		t += usher_tzone_offset(sp->tz, (int64_t)t);
	if (sp->local ? !localtime_r(&t, &tm) : !gmtime_r(&t, &tm))
		return false;
	min = tm.tm_hour * 60 + tm.tm_min;
	if (sp->times.n) {
		bool ok = false;

		for (i = 0; i < sp->times.n; i++)
			if (min >= sp->times.v[i].lo && min < sp->times.v[i].hi)
				ok = true;
		if (!ok)
			return false;
	}
	if (!in_list(&sp->weekdays, tm.tm_wday) || !in_list(&sp->months, tm.tm_mon + 1) ||
	    !in_list(&sp->years, tm.tm_year + 1900))
		return false;
	if (sp->days_of_month.n) {
		bool ok = false;

		dim = days_in_month(tm.tm_year + 1900, tm.tm_mon + 1);
		for (i = 0; i < sp->days_of_month.n; i++) {
			int lo = sp->days_of_month.v[i].lo, hi = sp->days_of_month.v[i].hi;

			/* negative days count from the month's end: -1 is the last */
			if (lo < 0)
				lo = dim + 1 + lo;
			if (hi < 0)
				hi = dim + 1 + hi;
			if (tm.tm_mday >= lo && tm.tm_mday <= hi)
				ok = true;
		}
		if (!ok)
			return false;
	}
	return true;
}

bool usher_time_interval_contains(const struct usher_time_interval *ti, int64_t now_ns)
{
	size_t i;

	for (i = 0; i < ti->n; i++)
		if (spec_contains(&ti->specs[i], now_ns))
			return true;
	return false;
}

/* ---- TZif (RFC 8536) ---------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool zone_name_ok(const char *n)
{
	const char *p;

	if (!*n || *n == '/' || strlen(n) > 200)
		return false;
	for (p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '/' || *p == '_' || *p == '-' || *p == '+'))
			return false;
	return strstr(n, "..") == NULL;
}

enum usher_err usher_tzone_load(struct usher_arena *a, const char *dir, const char *name,
				const struct usher_tzone **out)
{
	unsigned char *d;
	struct usher_buf b;
	struct usher_tzone *tz;
	char path[512], chunk[4096];
	enum usher_err rc = USHER_OK;
	size_t n, off, timecnt, typecnt, charcnt, leapcnt, isstdcnt, isutcnt, i;
	FILE *f;

	if (!zone_name_ok(name))
		return USHER_ERR_NOTFOUND;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT || errno == ENOTDIR ? USHER_ERR_NOTFOUND : USHER_ERR_IO;
	usher_buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (usher_buf_add(&b, chunk, n)) {
			rc = USHER_ERR_INVALID;
			break;
		}
	fclose(f);
	d = (unsigned char *)b.data;
	/* the v1 header and data are skipped: the v2 part has 64-bit times */
	if (rc || b.len < 44 || memcmp(d, "TZif", 4) != 0 || d[4] < '2') {
		usher_buf_free(&b);
		return USHER_ERR_INVALID;
	}
	off = 44 + (size_t)be32(d + 32) * 5 + (size_t)be32(d + 36) * 6 + be32(d + 40) +
	      (size_t)be32(d + 28) * 8 + be32(d + 24) + be32(d + 20);
	if (off + 44 > b.len || memcmp(d + off, "TZif", 4) != 0) {
		usher_buf_free(&b);
		return USHER_ERR_INVALID;
	}
	isutcnt = be32(d + off + 20);
	isstdcnt = be32(d + off + 24);
	leapcnt = be32(d + off + 28);
	timecnt = be32(d + off + 32);
	typecnt = be32(d + off + 36);
	charcnt = be32(d + off + 40);
	off += 44;
	if (typecnt == 0 || timecnt > 100000 || typecnt > 256 ||
	    off + timecnt * 9 + typecnt * 6 + charcnt + leapcnt * 12 + isstdcnt + isutcnt > b.len) {
		usher_buf_free(&b);
		return USHER_ERR_INVALID;
	}
	tz = usher_arena_zalloc(a, sizeof(*tz));
	tz->ntrans = timecnt;
	tz->trans = usher_arena_zalloc(a, (timecnt + 1) * sizeof(*tz->trans));
	tz->offset = usher_arena_zalloc(a, (timecnt + 1) * sizeof(*tz->offset));
	for (i = 0; i < timecnt; i++) {
		size_t type = d[off + timecnt * 8 + i];

		if (type >= typecnt) {
			usher_buf_free(&b);
			return USHER_ERR_INVALID;
		}
		tz->trans[i] = be64(d + off + i * 8);
		tz->offset[i] = (int32_t)be32(d + off + timecnt * 9 + type * 6);
	}
	/* before the first transition: the first standard-time type */
	tz->initial = (int32_t)be32(d + off + timecnt * 9);
	for (i = 0; i < typecnt; i++)
		if (!d[off + timecnt * 9 + i * 6 + 4]) {
			tz->initial = (int32_t)be32(d + off + timecnt * 9 + i * 6);
			break;
		}
	usher_buf_free(&b);
	*out = tz;
	return USHER_OK;
}

int32_t usher_tzone_offset(const struct usher_tzone *tz, int64_t t)
{
	size_t lo = 0, hi = tz->ntrans;

	if (!tz->ntrans || t < tz->trans[0])
		return tz->initial;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (tz->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return tz->offset[lo];
}
