/* The systemd notification protocol (sd_notify), and its watchdog. The only
 * file that touches libsystemd. Every call is a no-op outside systemd. */
#ifndef USHERD_NOTIFY_H
#define USHERD_NOTIFY_H

#include <stdint.h>

void usherd_notify_ready(const char *status);
void usherd_notify_reloading(void);
void usherd_notify_stopping(void);
void usherd_notify_status(const char *status);
/* The watchdog interval systemd asked for (WATCHDOG_USEC) in ms, or 0. */
int64_t usherd_notify_watchdog_ms(void);
void usherd_notify_watchdog(void);

#endif
