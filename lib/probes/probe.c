/* Helpers every probe type shares: recording a failure, ending a run,
 * the base labels of a run's samples. */
#include "probes/probe.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

void usher_probe_fail(struct usher_probe_run *run, const char *reason, const char *fmt, ...)
{
	va_list ap;

	run->success = false;
	if (!run->failure_reason)
		run->failure_reason = reason;
	if (run->err.msg[0])
		return;
	va_start(ap, fmt);
	vsnprintf(run->err.msg, sizeof(run->err.msg), fmt, ap);
	va_end(ap);
}

void usher_probe_trace(struct usher_probe_run *run, const char *fmt, ...)
{
	va_list ap;

	if (!run->trace)
		return;
	va_start(ap, fmt);
	usher_buf_vaddf(run->trace, fmt, ap);
	va_end(ap);
	usher_buf_addc(run->trace, '\n');
}

void usher_probe_run_done(struct usher_probe_run *run)
{
	if (run->on_done)
		run->on_done(run);
}

const char **usher_probe_base_labels(const struct usher_probe_conf *pc)
{
	const char **v = usher_calloc(2 * pc->labels.n + 5, sizeof(*v));
	size_t i, k = 0;

	v[k++] = "job";
	v[k++] = pc->job;
	v[k++] = "instance";
	v[k++] = pc->instance;
	for (i = 0; i < pc->labels.n; i++) {
		if (strcmp(pc->labels.v[i].key, "job") == 0 ||
		    strcmp(pc->labels.v[i].key, "instance") == 0)
			continue;
		v[k++] = pc->labels.v[i].key;
		v[k++] = pc->labels.v[i].value;
	}
	v[k] = NULL;
	return v;
}
