/* Prometheus' HTTP API, /api/v1/…, served by usherd over its series store
 * and rules: query, query_range, series, labels, label values, rules,
 * alerts, targets, status/buildinfo, status/runtimeinfo (and empty answers
 * for metadata and exemplars, which Grafana asks for). */
#ifndef USHERD_API_V1_H
#define USHERD_API_V1_H

#include "config/config.h"
#include "httpd.h"
#include "ruleeng.h"

/* Returns a reference (usher_config_ref) to the config in force, for the
 * targets list; the API drops it with usher_config_free. Thread-safe. */
typedef struct usher_config *usherd_targets_fn(void *arg);

struct usherd_api_v1;

/* Registers the routes on h; rules (borrowed) must outlive the server. */
struct usherd_api_v1 *usherd_api_v1_register(struct usher_httpd *h, struct usherd_rules *rules,
					     usherd_targets_fn *targets, void *targets_arg);
/* Frees the API's state; call after the server stops. NULL ok. */
void usherd_api_v1_free(struct usherd_api_v1 *api);

#endif
