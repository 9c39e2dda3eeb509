/* Helpers every probe type shares: recording a failure, ending a run. */
#include "probes/probe.h"

#include <stdarg.h>
#include <stdio.h>

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
