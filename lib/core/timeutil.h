/* Clocks and Prometheus-syntax durations and sizes. */
#ifndef USHER_CORE_TIMEUTIL_H
#define USHER_CORE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Milliseconds / nanoseconds since the epoch (wall clock). */
int64_t usher_now_ms(void);
int64_t usher_now_ns(void);
/* Monotonic clock, for intervals and deadlines. */
int64_t usher_mono_ms(void);
int64_t usher_mono_ns(void);

/* Parses a Prometheus duration ("1h30m", "500ms", "0") into milliseconds:
 * units y w d h m s ms, each at most once, largest first. */
enum usher_err usher_duration_parse(const char *s, int64_t *ms);
/* Writes ms in the same syntax, largest units first ("1m30s", "0s"). */
void usher_duration_format(int64_t ms, char *out, size_t len);

/* Parses a byte size: a plain integer, or a number with B, KB/KiB, MB/MiB,
 * GB/GiB (base 2 like blackbox_exporter's units.Base2Bytes). */
enum usher_err usher_size_parse(const char *s, uint64_t *bytes);

/* RFC 3339 UTC with milliseconds: "2026-11-28T03:49:16.123Z". len >= 25. */
void usher_time_format_rfc3339(int64_t ms, char *out, size_t len);

#endif
