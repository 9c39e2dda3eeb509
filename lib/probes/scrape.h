/* App scrapes: the top-level scrape_configs (Prometheus' scrape_config
 * shape, static_configs only) and the scrape probe type each target
 * becomes: GET the target's /metrics on the loop, parse text 0.0.4 or
 * OpenMetrics, re-expose the samples with job/instance, and report up,
 * scrape_duration_seconds and scrape_samples_* as Prometheus does. */
#ifndef USHER_PROBES_SCRAPE_H
#define USHER_PROBES_SCRAPE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "config/options.h"
#include "probes/http.h"
#include "probes/probe.h"

/* One entry of static_configs. */
struct usher_scrape_static {
	struct usher_strlist targets; /* host:port, checked at load */
	struct usher_strmap labels;   /* added to every sample of these targets */
};

/* One entry of scrape_configs. Lives in the config's arena. */
struct usher_scrape_conf {
	const char *job_name;
	int64_t scrape_interval_ms;
	int64_t scrape_timeout_ms; /* <= interval (checked at load) */
	const char *metrics_path;
	const char *scheme;               /* http or https */
	struct usher_strmap params;       /* query parameters; a key may repeat */
	struct usher_list static_configs; /* of struct usher_scrape_static */
	int64_t sample_limit;             /* 0: none */
	bool honor_labels;
	struct usher_http_basic_auth basic_auth;
	const char *bearer_token; /* a secret */
	struct usher_tls_client_conf tls_config;
	uint64_t body_size_limit;
	bool follow_redirects;
	int line, col;
};

/* The options of one generated scrape instance (its probe conf's opts). */
struct usher_scrape_target {
	const struct usher_scrape_conf *job;
	const char *target;          /* host:port */
	struct usher_http_opts http; /* the request, built from job and target */
};

/* The keys of one scrape_configs entry, for the docs and the reference. */
extern const struct usher_option usher_scrape_config_options[];

/* The parser of the top-level scrape_configs key (a USHER_OPT_CUSTOM field
 * of type struct usher_list): fills the list and appends one probe entry
 * of type scrape per target to the config (usher_config_add_probe), named
 * "<job_name>/<target>", which no probe name can clash with. Problems go to
 * ctx's diagnostics with their place; returns USHER_ERR_INVALID then. */
usher_opt_parse_fn usher_scrape_parse_configs;

/* The probe type of generated scrape instances: not in usher_probe_types,
 * so `probes:` cannot name it. Its series are Prometheus' (up,
 * scrape_duration_seconds), not probe_success. */
extern const struct usher_probe_type usher_probe_scrape;

struct usher_ingest;
/* Claims, in ing, the series the scheduler adds to every run of an instance
 * with base labels base (NULL-terminated pairs) and generic series kind,
 * and declares their families, so re-exposed input can neither duplicate
 * nor retype them. Scratch memory comes from a. */
void usher_probe_reserve_generic(struct usher_ingest *ing, struct usher_arena *a,
				 const char *const *base, enum usher_probe_series series);

/* The Accept header a scrape sends: Prometheus 2.x's. */
#define USHER_SCRAPE_ACCEPT                                                                        \
	"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"   \
	"q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

#endif
