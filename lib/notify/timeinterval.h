/* Alertmanager's time intervals (the `time_intervals:` section, formerly
 * `mute_time_intervals:`): named sets of times of day, weekdays, days of
 * the month, months and years, used by routes to mute notifications
 * (mute_time_intervals) or to send them only then (active_time_intervals). */
#ifndef USHER_NOTIFY_TIMEINTERVAL_H
#define USHER_NOTIFY_TIMEINTERVAL_H

#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"

#define USHER_ZONEINFO_DIR "/usr/share/zoneinfo"

struct usher_irange {
	int lo, hi; /* inclusive; times: minutes of the day, [lo, hi) */
};

struct usher_irange_list {
	size_t n;
	struct usher_irange *v;
};

/* One entry of a named interval's time_intervals: every field given must
 * hold (an empty list holds always). */
/* A time zone read from the system's zoneinfo (TZif): its transitions
 * and the UTC offset after each. Past the last transition (2037 in the
 * "fat" files Debian ships) the last offset holds. */
struct usher_tzone {
	size_t ntrans;
	int64_t *trans;  /* seconds since the epoch, ascending */
	int32_t *offset; /* offset[i] applies from trans[i] */
	int32_t initial; /* before the first transition */
};

struct usher_time_spec {
	struct usher_irange_list times, weekdays, days_of_month, months, years;
	bool local;                   /* location: Local */
	const struct usher_tzone *tz; /* location: an IANA name; NULL: UTC or Local */
};

struct usher_time_interval {
	const char *name;
	size_t n;
	struct usher_time_spec *specs; /* any of them */
	int line, col;
};

/* Parses the list node (time_intervals or mute_time_intervals) into *out /
 * *n, everything in ctx->arena; errors go to ctx->diags. */
enum usher_err usher_time_intervals_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					  struct usher_time_interval **out, size_t *n);

/* Reads the zone name ("Europe/Berlin") from dir (USHER_ZONEINFO_DIR)
 * into a (arena-allocated). USHER_ERR_NOTFOUND for an unknown name,
 * USHER_ERR_INVALID for a file that is not TZif. */
enum usher_err usher_tzone_load(struct usher_arena *a, const char *dir, const char *name,
				const struct usher_tzone **out);
/* The UTC offset in seconds of zone tz at t (seconds since the epoch). */
int32_t usher_tzone_offset(const struct usher_tzone *tz, int64_t t);

/* Whether the time now_ns (since the epoch) falls in ti. */
bool usher_time_interval_contains(const struct usher_time_interval *ti, int64_t now_ns);

#endif
