/* Fuzz target: the exposition-format parser (text 0.0.4 when the first
 * byte is even, OpenMetrics when odd; the rest is the body), and the round
 * trip through ingest and the registry: whatever parses must re-expose as
 * text and OpenMetrics that parse again, without duplicate series. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "metrics/ingest.h"
#include "metrics/registry.h"
#include "metrics/textparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reparse(struct usher_registry *reg, enum usher_expo_format efmt,
		    enum usher_tp_format pfmt)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_tp_limits lim = {
	    .max_line = 1 << 20, .max_labels = 256, .reject_duplicates = true};
	struct usher_tp_result r;
	struct usher_tp_error err;
	struct usher_buf out;

	usher_buf_init(&out, 64 << 20);
	if (usher_registry_render(reg, efmt, &out))
		abort();
	if (usher_textparse(out.data ? out.data : "", out.len, pfmt, &lim, a, &r, &err))
		abort(); /* usher wrote something it cannot read back */
	usher_buf_free(&out);
	usher_arena_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const target[] = {"job", "fuzz", "instance", "host:1", NULL};
	struct usher_arena *a;
	struct usher_tp_result r;
	struct usher_tp_error err;
	enum usher_tp_format fmt;
	enum usher_err rc;
	size_t i;

	if (size < 1)
		return 0;
	fmt = (data[0] & 1) ? USHER_TP_OPENMETRICS : USHER_TP_TEXT;
	a = usher_arena_new();
	rc = usher_textparse((const char *)data + 1, size - 1, fmt, NULL, a, &r, &err);
	if (rc) {
		/* a rejection always says where and why, and leaves nothing */
		if ((rc != USHER_ERR_INVALID && rc != USHER_ERR_TOOBIG) || err.line < 1 ||
		    err.col < 1 || !err.msg[0] || r.nsamples || r.nfamilies)
			abort();
	} else {
		struct usher_registry *reg = usher_registry_new();
		struct usher_sample_set *set = usher_sample_set_new(NULL);
		struct usher_ingest_opts o = {.target = target, .honor_labels = data[0] & 2};
		struct usher_ingest *ing = usher_ingest_new(set, a, &o);
		struct usher_ingest_stats st;

		for (i = 0; i < r.nsamples; i++)
			if (r.samples[i].family >= r.nfamilies || !r.samples[i].labels ||
			    r.samples[i].labels[2 * r.samples[i].nlabels])
				abort();
		usher_ingest_reserve(ing, "up", target);
		usher_ingest_add(ing, &r, fmt, "fuzz", NULL, &st);
		if (st.samples + st.duplicates + st.created > r.nsamples)
			abort();
		usher_ingest_commit(ing);
		usher_registry_publish(reg, reg, set);
		reparse(reg, USHER_EXPO_TEXT, USHER_TP_TEXT);
		reparse(reg, USHER_EXPO_OPENMETRICS, USHER_TP_OPENMETRICS);
		usher_registry_free(reg);
	}
	usher_arena_free(a);
	return 0;
}
