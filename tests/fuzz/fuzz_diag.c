/* Fuzz target: usher diag's readers of what servers send, and its renderers.
 * The first byte picks the input's kind: even, a Redis INFO reply for the
 * INFO-based Redis checks; odd, an exposition text whose samples the HTTP,
 * Memcached and host checks read (type by the byte's value). Whatever they
 * find must render as a table and as JSON that jansson parses. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "probes/diag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const types[] = {"http", "memcached", "host"};
	struct usher_probe_conf pc;
	struct usher_diag_thresholds th;
	struct usher_diag_report r;
	struct usher_diag_render how = {.utf8 = true, .color = true, .runbook_base = "rb/{alert}"};
	struct usher_tp_error perr;
	struct usher_buf out;
	json_error_t jerr;
	json_t *doc;
	char *text;

	if (size < 1)
		return 0;
	memset(&pc, 0, sizeof(pc));
	memset(&r, 0, sizeof(r));
	pc.name = "fuzz";
	pc.job = "fuzz";
	pc.instance = "h:1";
	usher_diag_thresholds_default(&th);
	r.conf = &pc;
	r.arena = usher_arena_new();
	r.probe_success = (data[0] & 2) == 0;
	r.failure_reason = "connect";
	r.error = "refused";
	text = usher_arena_strndup(r.arena, (const char *)data + 1, size - 1);
	if ((data[0] & 1) == 0) {
		pc.type_name = "redis";
		usher_diag_redis_info(&th, text, "3600 1", 1800000000, &r);
	} else {
		pc.type_name = types[(data[0] >> 2) % 3];
		if (usher_textparse(text, strlen(text), USHER_TP_TEXT, NULL, r.arena, &r.samples,
				    &perr) == USHER_OK)
			usher_diag_from_samples(&th, 1800000000, &r);
	}
	usher_buf_init(&out, 64 << 20);
	if (usher_diag_render_text(&r, 1, &how, &out))
		abort();
	usher_buf_reset(&out);
	if (usher_diag_render_json(&r, 1, &how, 0, &out))
		abort();
	doc = json_loadb(out.data, out.len, 0, &jerr);
	if (!doc)
		abort(); /* diag wrote JSON that does not parse */
	json_decref(doc);
	usher_buf_free(&out);
	usher_arena_free(r.arena);
	return 0;
}
