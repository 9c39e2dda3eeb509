/* The journey probe: a multi-step synthetic transaction (search, seat map,
 * hold, checkout, release) on the HTTP probe's machinery, with variables
 * extracted from one step and used by the next, clean-up steps that run
 * even after a failure, and one series set per step. The pieces that are
 * pure functions (templates, redaction) are exposed for tests and fuzzing. */
#ifndef USHER_PROBES_JOURNEY_H
#define USHER_PROBES_JOURNEY_H

#include <stdbool.h>
#include <stddef.h>

#include "config/options.h"
#include "core/buf.h"
#include "probes/probe.h"

/* The probe type, listed in probes/types.c. */
extern const struct usher_probe_type usher_probe_journey;

/* probe_failure_info reason of a step whose `extract` found nothing. */
#define USHER_FAIL_EXTRACT "extract"

/* The built-in variables, fresh for every run. */
#define USHER_JOURNEY_BUILTIN_UUID   "uuid"
#define USHER_JOURNEY_BUILTIN_NOW    "now_unix"
#define USHER_JOURNEY_BUILTIN_RANDOM "random_int"

/* How much of a failed step's response body the log and the trace show. */
#define USHER_JOURNEY_BODY_SHOWN 1024

/* Writes body (len bytes) for a log line into out: when it is a JSON
 * document, with the value at each JSON Pointer of redact replaced by
 * "***" and compacted; otherwise as received. Then each of the secrets
 * (NULL-terminated, may be NULL; values shorter than 3 bytes are left
 * alone) is replaced by "***" wherever it appears, and the result is cut
 * to at most max bytes, ending in "..." when cut. Bytes that are not
 * printable ASCII or UTF-8 become "?". Never fails: on a full out the text
 * is just shorter. */
void usher_journey_redact(const char *body, size_t len, const struct usher_strlist *redact,
			  const char *const *secrets, size_t max, struct usher_buf *out);

/* Percent-encodes into out the bytes of s that may not appear in a URL
 * as they are (controls, space, non-ASCII, "<>\"\\^`{|}"), leaving
 * everything else, "/?&=#%" included, untouched: a variable substituted
 * into a URL keeps the structure the template gave it. */
enum usher_err usher_journey_url_escape(struct usher_buf *out, const char *s, size_t len);

#endif
