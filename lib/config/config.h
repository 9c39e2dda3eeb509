/* usher.yml: the top-level configuration of usherd and usher. Each section's
 * keys are declared in an option table next to the code that uses them;
 * this file ties the sections together and owns the loaded result. */
#ifndef USHER_CONFIG_CONFIG_H
#define USHER_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "backup/conf.h"
#include "config/options.h"
#include "core/arena.h"
#include "notify/incident.h"

#define USHER_DEFAULT_LISTEN "127.0.0.1:9469"
#define USHER_DEFAULT_STATE_DIR "/var/lib/usher"

struct usher_global_conf {
	int64_t scrape_interval_ms;
	int64_t scrape_timeout_ms;
	int64_t evaluation_interval_ms;
	struct usher_strmap external_labels;
};

struct usher_server_tls_conf {
	const char *cert_file;
	const char *key_file;
	const char *client_ca_file;
};

struct usher_server_conf {
	const char *listen;
	const char *external_url; /* how people reach usherd: links in alerts */
	struct usher_server_tls_conf tls;
	struct usher_strmap basic_auth_users; /* user -> bcrypt hash */
};

/* storage: the in-memory series store and the query engine's limits. */
struct usher_storage_conf {
	int64_t retention_ms;
	int64_t max_series;
	int64_t query_timeout_ms;
	int64_t query_max_samples;
};

struct usher_logging_conf {
	const char *level;  /* debug | info | warn | error */
	const char *format; /* ecs | text: the stdout sink's format */
	struct usher_list sinks; /* of struct usher_log_sink_conf (logship/sink.h); none: stdout */
};

/* TLS settings of a client (a probe): blackbox's tls_config. */
struct usher_tls_client_conf {
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	const char *server_name;
	bool insecure_skip_verify;
};

/* The option table of struct usher_tls_client_conf, for a probe type's
 * `tls:` section (USHER_OPT_SECTION). */
extern const struct usher_option usher_tls_client_options[];

struct usher_probe_type;

/* One entry of `probes:`. */
struct usher_probe_conf {
	const char *name;
	const char *type_name;
	const struct usher_probe_type *type;
	int64_t interval_ms;
	int64_t timeout_ms;
	struct usher_strmap labels; /* as written, job/instance included */
	const char *job;            /* labels.job, else name */
	const char *instance;       /* labels.instance, else the type's default */
	void *opts;                 /* the type's options struct (type->opts_size) */
	int line, col;              /* where the entry starts */
};

struct usher_alerting_conf;

struct usher_config {
	int refs; /* usher_config_ref / usher_config_free */
	const char *path;
	struct usher_arena *arena; /* owns everything below */
	struct usher_global_conf global;
	struct usher_server_conf server;
	const char *state_dir;
	struct usher_logging_conf logging;
	/* probes: entries, then the instances generated from scrape_configs
	 * (one per target, type scrape) and textfile_dir (type textfile) */
	struct usher_probe_conf *probes;
	size_t nprobes;
	size_t probes_cap;                /* room in probes (usher_config_add_probe) */
	struct usher_list scrape_configs; /* of struct usher_scrape_conf (probes/scrape.h) */
	const char *textfile_dir;         /* NULL when not set */
	struct usher_backup_conf backup;  /* backup: (backup/conf.h); .present when set */
	struct usher_strlist rule_files;  /* globs, relative to the config file's directory */
	struct usher_storage_conf storage;
	struct usher_incidents_conf incidents; /* notify/incident.h; zeroed: the defaults */
	struct usher_alerting_conf *alerting; /* notify/alertingconf.h; NULL when absent */
};

/* Loads and validates path. On success *out is a config the caller frees
 * with usher_config_free. On failure every problem found is in diags and
 * *out is NULL. */
enum usher_err usher_config_load(const char *path, struct usher_config **out,
				 struct usher_diags *diags);
/* Same from a string (for tests and the embedded default); file names it. */
enum usher_err usher_config_load_text(const char *file, const char *text, size_t len,
				      struct usher_config **out, struct usher_diags *diags);
/* Takes another reference: a config is freed when its last holder calls
 * usher_config_free (a probe still running on a worker thread after a
 * reload keeps its config alive). Thread-safe. Returns c. */
struct usher_config *usher_config_ref(struct usher_config *c);
/* Drops a reference, freeing the config with the last one. NULL ok. */
void usher_config_free(struct usher_config *c);

/* For sections that generate probe instances while the config loads (each
 * target of scrape_configs, the textfile directory): a zeroed entry at the
 * end of the config's probes, counted in nprobes. The array may move, so
 * no entry pointer is held across calls. */
struct usher_probe_conf *usher_config_add_probe(struct usher_cfgctx *ctx);

/* Checks the names of the labels map m filled from the YAML mapping node
 * (may be NULL): valid label names, none starting with "__". Adds a
 * diagnostic per bad name; returns USHER_ERR_INVALID if there was one. */
enum usher_err usher_config_check_labels(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					 const struct usher_strmap *m);

/* The timeout a probe gets when its config sets none: global.scrape_timeout,
 * but less than interval_ms (by a tenth), so runs end before the next one. */
int64_t usher_config_default_timeout(const struct usher_config *cfg, int64_t interval_ms);

/* The directory of the config file (for paths relative to it, such as
 * rule_files): "." when the path has none. */
void usher_config_dir(const struct usher_config *cfg, char *out, size_t len);

/* The top-level table, for the docs and `usher check-config --reference`. */
extern const struct usher_option usher_config_options[];

#endif
