/* The journald sink's mapping of an event to journal fields, exposed so it
 * can be tested without a journal: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
 * then every ECS field as an uppercase structured field (event.action ->
 * EVENT_ACTION), so `journalctl -o json` carries them. */
#ifndef USHER_LOGSHIP_JOURNALD_H
#define USHER_LOGSHIP_JOURNALD_H

#include <stddef.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "logship/sink.h"

/* The most fields an event becomes. */
#define USHER_JOURNALD_MAX_FIELDS 96

/* The journal field name of an ECS key into out (len >= 65): letters
 * uppercased, anything but letters and digits becomes '_', leading
 * underscores dropped (journald reserves them), a leading digit gets "F",
 * at most 64 characters. Returns its length, 0 when nothing is left. */
size_t usher_journald_field_name(const char *key, char *out, size_t len);

/* Builds e's fields as "NAME=value" strings in b (reset first) and points
 * iov[0..*n) at them (at most max). Values may hold newlines: the journal
 * protocol carries them. */
enum usher_err usher_journald_encode(const struct usher_log_entry *e, struct usher_buf *b,
				     struct iovec *iov, size_t max, size_t *n);

#endif
