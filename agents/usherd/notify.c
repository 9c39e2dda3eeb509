/* sd_notify adapter: READY, RELOADING, STOPPING, STATUS and WATCHDOG. */
#include "notify.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "core/timeutil.h"

void usherd_notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void usherd_notify_reloading(void)
{
	/* MONOTONIC_USEC lets systemd >= 253 pair RELOADING with READY */
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading configuration\nMONOTONIC_USEC=%lld",
		   (long long)(usher_mono_ns() / 1000));
}

void usherd_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void usherd_notify_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

int64_t usherd_notify_watchdog_ms(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return (int64_t)(usec / 1000);
}

void usherd_notify_watchdog(void)
{
	sd_notify(0, "WATCHDOG=1");
}
