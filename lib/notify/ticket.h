/* What the ticket-system integrations share (lib/notify/integration_jira.c,
 * _zendesk.c, _servicenow.c, _github.c, _ticket.c): each keeps one ticket
 * per alert group, found again through a label, tag or correlation id that
 * carries the hex SHA-256 of the group key (the pattern of Alertmanager's
 * Jira notifier), so a restart or a second usherd finds the same ticket.
 * On firing: create it, or comment on it (reopening it when it was
 * resolved); on resolved: comment and resolve. Internal to lib/notify. */
#ifndef USHER_NOTIFY_TICKET_H
#define USHER_NOTIFY_TICKET_H

#include <jansson.h>
#include <stdint.h>

#include "notify/integrations.h"

/* The default description of a ticket (Alertmanager's Jira notifier's
 * shape): the firing alerts, then the resolved ones. */
#define USHER_TICKET_DEFAULT_TEXT                                                                  \
	"{{ if gt (len .Alerts.Firing) 0 }}Alerts firing:\n{{ template \"__text_alert_list\" "     \
	".Alerts.Firing }}{{ end }}{{ if gt (len .Alerts.Resolved) 0 }}Alerts resolved:\n{{ "      \
	"template \"__text_alert_list\" .Alerts.Resolved }}{{ end }}"
#define USHER_TICKET_DEFAULT_MARKDOWN                                                              \
	"{{ if gt (len .Alerts.Firing) 0 }}## Alerts firing\n{{ template "                         \
	"\"__text_alert_list_markdown\" .Alerts.Firing }}{{ end }}{{ if gt (len "                  \
	".Alerts.Resolved) "                                                                       \
	"0 }}## Alerts resolved\n{{ template \"__text_alert_list_markdown\" .Alerts.Resolved "     \
	"}}{{ "                                                                                    \
	"end }}"

/* One delivery attempt of a ticket integration: several requests sharing
 * the attempt's time budget and one outcome. */
struct usher_ticket_run {
	const char *what;           /* "jira", for messages */
	int64_t deadline_ms;        /* monotonic */
	const char *const *headers; /* auth and the vendor's headers */
	struct usher_delivery_result *res;
};

void usher_ticket_run_init(struct usher_ticket_run *r, const char *what, int64_t timeout_ms,
			   const char *const *headers, struct usher_delivery_result *res);

/* One request: method to url with body (borrowed JSON, may be NULL). On a
 * 2xx answer returns true and, when out is not NULL, *out is the parsed
 * answer (an empty answer is an empty object; the caller decrefs). On
 * anything else returns false with r->res filled (RETRY for 5xx, 429,
 * network errors; FAIL for other 4xx and an answer that is not JSON). */
bool usher_ticket_call(struct usher_ticket_run *r, const char *method, const char *url,
		       const json_t *body, json_t **out);

/* "Authorization: Basic base64(user:password)", malloc'd. */
char *usher_ticket_basic_auth(const char *user, const char *password);
/* s percent-encoded for a URL query or path, malloc'd. */
char *usher_ticket_escape(const char *s);
/* base (trailing slashes dropped) followed by the printf-style rest,
 * malloc'd. */
char *usher_ticket_url(const char *base, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The hex SHA-256 of data's groupKey (out: 65 bytes). */
void usher_ticket_group_hash(const json_t *data, char out[65]);
/* Whether url starts with http:// or https://. */
bool usher_ticket_url_ok(const char *url);

/* The operator event an incident attaches to a notification it sends to
 * the ticket receivers of incidents.tickets: "usherEvent": {"incident": 7,
 * "kind": "acknowledged" | "note" | "resolved", "author": …, "text": …}.
 * Returns the comment for it ("Incident 7 acknowledged by alice.") in buf
 * and sets *kind, or NULL when data carries no event. An acknowledgement
 * or a note only comments on the group's open ticket (none: nothing to
 * do); a resolution resolves the ticket with this comment. */
const char *usher_ticket_event(const json_t *data, const char **kind, char *buf, size_t len);

/* The ticket integration types, listed in lib/notify/integrations.c. */
extern const struct usher_integration_type usher_integration_jira;
extern const struct usher_integration_type usher_integration_zendesk;
extern const struct usher_integration_type usher_integration_servicenow;
extern const struct usher_integration_type usher_integration_github;
extern const struct usher_integration_type usher_integration_ticket;

#endif
