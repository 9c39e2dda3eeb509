/* Clocks, Prometheus durations, byte sizes and timestamps. */
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t usher_now_ns(void) { return clock_ns(CLOCK_REALTIME); }
int64_t usher_now_ms(void) { return clock_ns(CLOCK_REALTIME) / 1000000; }
int64_t usher_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }
int64_t usher_mono_ms(void) { return clock_ns(CLOCK_MONOTONIC) / 1000000; }

static const struct {
	const char *unit;
	int64_t ms;
} units[] = {
	{"y", 365LL * 24 * 3600 * 1000}, {"w", 7LL * 24 * 3600 * 1000},
	{"d", 24LL * 3600 * 1000},       {"h", 3600LL * 1000},
	{"m", 60LL * 1000},              {"s", 1000},
	{"ms", 1},
};
#define NUNITS (sizeof(units) / sizeof(units[0]))

enum usher_err usher_duration_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	int64_t total = 0;
	size_t next = 0; /* units must come largest first, each once */

	if (!s || !*s)
		return USHER_ERR_INVALID;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return USHER_OK;
	}
	while (*p) {
		int64_t n = 0;
		size_t i, ulen = 0, match = NUNITS;

		if (*p < '0' || *p > '9')
			return USHER_ERR_INVALID;
		while (*p >= '0' && *p <= '9') {
			if (n > (INT64_MAX - 9) / 10)
				return USHER_ERR_INVALID;
			n = n * 10 + (*p++ - '0');
		}
		/* "ms" must win over "m" */
		for (i = next; i < NUNITS; i++) {
			size_t l = strlen(units[i].unit);

			if (strncmp(p, units[i].unit, l) == 0 && l > ulen &&
			    !(l == 1 && units[i].unit[0] == 'm' && p[1] == 's')) {
				match = i;
				ulen = l;
			}
		}
		if (match == NUNITS)
			return USHER_ERR_INVALID;
		if (n > (INT64_MAX - total) / units[match].ms)
			return USHER_ERR_INVALID;
		total += n * units[match].ms;
		p += ulen;
		next = match + 1;
	}
	*ms = total;
	return USHER_OK;
}

void usher_duration_format(int64_t ms, char *out, size_t len)
{
	size_t i, off = 0;

	if (len == 0)
		return;
	out[0] = '\0';
	if (ms <= 0) {
		snprintf(out, len, "0s");
		return;
	}
	for (i = 0; i < NUNITS && off < len; i++) {
		int64_t n = ms / units[i].ms;

		/* like Prometheus, years and weeks are only used when exact */
		if (n == 0 || ((i == 0 || i == 1) && ms % units[i].ms))
			continue;
		off += (size_t)snprintf(out + off, len - off, "%lld%s", (long long)n, units[i].unit);
		ms -= n * units[i].ms;
	}
}

enum usher_err usher_size_parse(const char *s, uint64_t *bytes)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} sfx[] = {
		{"", 1},
		{"B", 1},
		{"KB", 1ULL << 10}, {"KiB", 1ULL << 10}, {"K", 1ULL << 10},
		{"MB", 1ULL << 20}, {"MiB", 1ULL << 20}, {"M", 1ULL << 20},
		{"GB", 1ULL << 30}, {"GiB", 1ULL << 30}, {"G", 1ULL << 30},
	};
	const char *p = s;
	uint64_t n = 0;
	size_t i;

	if (!s || *s < '0' || *s > '9')
		return USHER_ERR_INVALID;
	while (*p >= '0' && *p <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return USHER_ERR_INVALID;
		n = n * 10 + (uint64_t)(*p++ - '0');
	}
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (strcmp(p, sfx[i].suffix) == 0) {
			if (n > UINT64_MAX / sfx[i].mult)
				return USHER_ERR_INVALID;
			*bytes = n * sfx[i].mult;
			return USHER_OK;
		}
	}
	return USHER_ERR_INVALID;
}

void usher_time_format_rfc3339(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
