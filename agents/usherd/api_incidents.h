/* usherd's incident API: GET /api/v1/incidents[?status=S&limit=N],
 * GET /api/v1/incidents/{id}, GET /api/v1/incidents/{id}/report (Markdown),
 * POST /api/v1/incidents/{id}/ack|note|resolve ({"author": …, "text": …}).
 * Shapes in docs/incidents.md. */
#ifndef USHERD_API_INCIDENTS_H
#define USHERD_API_INCIDENTS_H

#include "httpd.h"
#include "notify/incident.h"
#include "notify/route.h"

/* Registers the routes on h; inc (borrowed) must outlive the server. */
void usherd_api_incidents_register(struct usher_httpd *h, struct usher_incidents *inc);

/* The alerting pipeline's flush observer (usherd_alerting_set_observer):
 * arg is the struct usher_incidents. A group opens an incident when its
 * route says incident: true, or says nothing and an alert has severity
 * page or critical. */
void usherd_incidents_observe(void *arg, const json_t *data, const struct usher_route *route);

/* The delivery queue's outcome observer (usherd_alerting_set_delivery_
 * observer): each notification on the incident timeline of its group. */
void usherd_incidents_delivered(void *arg, const char *group_key, const char *receiver,
				const char *integration, int outcome, const char *detail);

#endif
