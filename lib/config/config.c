/* usher.yml: the top-level option tables, the probes list, and the checks
 * that span several keys (timeout < interval, unique names). */
#include "config/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "logship/sink.h"
#include "metrics/registry.h"
#include "notify/alertingconf.h"
#include "probes/probe.h"
#include "probes/scrape.h"
#include "probes/textfile.h"

#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define DEFAULT_PROBE_TIMEOUT_MS 10000

static const struct usher_option global_options[] = {
	{"scrape_interval", USHER_OPT_DURATION, offsetof(struct usher_global_conf, scrape_interval_ms),
	 "15s", USHER_OPT_POSITIVE, "how often probes and scrapes run unless they say otherwise"},
	{"scrape_timeout", USHER_OPT_DURATION, offsetof(struct usher_global_conf, scrape_timeout_ms),
	 "10s", USHER_OPT_POSITIVE, "default timeout of a probe or scrape"},
	{"evaluation_interval", USHER_OPT_DURATION,
	 offsetof(struct usher_global_conf, evaluation_interval_ms), "15s", USHER_OPT_POSITIVE,
	 "how often rules are evaluated"},
	{"external_labels", USHER_OPT_STRMAP, offsetof(struct usher_global_conf, external_labels),
	 NULL, 0, "labels added to alerts sent to other systems"},
	USHER_OPT_END,
};

static const struct usher_option storage_options[] = {
	{"retention", USHER_OPT_DURATION, offsetof(struct usher_storage_conf, retention_ms), "2h",
	 USHER_OPT_POSITIVE, "how long samples are kept in memory for rules and queries"},
	{"max_series", USHER_OPT_INT, offsetof(struct usher_storage_conf, max_series), "1000000",
	 USHER_OPT_POSITIVE, "hard limit on series held; new series past it are refused and counted"},
	{"query_timeout", USHER_OPT_DURATION, offsetof(struct usher_storage_conf, query_timeout_ms),
	 "2m", USHER_OPT_POSITIVE, "a query running longer fails (Prometheus' query.timeout)"},
	{"query_max_samples", USHER_OPT_INT,
	 offsetof(struct usher_storage_conf, query_max_samples), "50000000", USHER_OPT_POSITIVE,
	 "samples one query may load (Prometheus' query.max-samples)"},
	USHER_OPT_END,
};

static const struct usher_option server_tls_options[] = {
	{"cert_file", USHER_OPT_STR, offsetof(struct usher_server_tls_conf, cert_file), NULL, 0,
	 "PEM certificate (chain) served on the listen address"},
	{"key_file", USHER_OPT_STR, offsetof(struct usher_server_tls_conf, key_file), NULL, 0,
	 "PEM private key of cert_file"},
	{"client_ca_file", USHER_OPT_STR, offsetof(struct usher_server_tls_conf, client_ca_file),
	 NULL, 0, "require client certificates signed by this CA"},
	USHER_OPT_END,
};

static const struct usher_option server_options[] = {
	{"listen", USHER_OPT_STR, offsetof(struct usher_server_conf, listen), USHER_DEFAULT_LISTEN, 0,
	 "host:port for /metrics and the API (\":9469\" for all interfaces)"},
	{"external_url", USHER_OPT_STR, offsetof(struct usher_server_conf, external_url), NULL, 0,
	 "the URL people reach usherd at (alerts' generatorURL); default http://LISTEN"},
	{"tls", USHER_OPT_SECTION, offsetof(struct usher_server_conf, tls), NULL, 0,
	 "serve HTTPS instead of HTTP", server_tls_options},
	{"basic_auth_users", USHER_OPT_SECRETMAP, offsetof(struct usher_server_conf, basic_auth_users),
	 NULL, 0, "user: bcrypt hash; when set, every request needs one of them"},
	USHER_OPT_END,
};

static const struct usher_option logging_options[] = {
	{"level", USHER_OPT_STR, offsetof(struct usher_logging_conf, level), "info", 0,
	 "debug, info, warn or error"},
	{"format", USHER_OPT_STR, offsetof(struct usher_logging_conf, format), "ecs", 0,
	 "ecs (one JSON object per line) or text, for the stdout sink"},
	{"sinks", USHER_OPT_CUSTOM, offsetof(struct usher_logging_conf, sinks), NULL, 0,
	 "where events go: a list of {type: stdout|file|journald|elasticsearch|logstash, ...} "
	 "(default: stdout)",
	 usher_log_sink_common_options, 0, usher_log_sinks_parse},
	USHER_OPT_END,
};

/* A client's TLS settings (blackbox's tls_config), shared by the probe types. */
#define TLS_OFF(f) offsetof(struct usher_tls_client_conf, f)
const struct usher_option usher_tls_client_options[] = {
    {.key = "ca_file",
     .type = USHER_OPT_STR,
     .offset = TLS_OFF(ca_file),
     .help = "CA certificates (PEM) to verify the server with, instead of the system's"},
    {.key = "cert_file",
     .type = USHER_OPT_STR,
     .offset = TLS_OFF(cert_file),
     .help = "client certificate (PEM) for mutual TLS; may hold the key too"},
    {.key = "key_file",
     .type = USHER_OPT_STR,
     .offset = TLS_OFF(key_file),
     .help = "private key (PEM) of cert_file"},
    {.key = "server_name",
     .type = USHER_OPT_STR,
     .offset = TLS_OFF(server_name),
     .help = "name sent in SNI and checked against the certificate, instead of the URL's host"},
    {.key = "insecure_skip_verify",
     .type = USHER_OPT_BOOL,
     .offset = TLS_OFF(insecure_skip_verify),
     .def = "false",
     .help = "accept any certificate (expiry is still measured)"},
    USHER_OPT_END,
};

/* The keys every probe has, whatever its type. */
static const struct usher_option probe_common_options[] = {
	{"name", USHER_OPT_STR, offsetof(struct usher_probe_conf, name), NULL, USHER_OPT_REQUIRED,
	 "unique name; the job label unless labels set one"},
	{"type", USHER_OPT_STR, offsetof(struct usher_probe_conf, type_name), NULL,
	 USHER_OPT_REQUIRED, "the probe type"},
	{"interval", USHER_OPT_DURATION, offsetof(struct usher_probe_conf, interval_ms), NULL,
	 USHER_OPT_POSITIVE, "how often it runs (default global.scrape_interval)"},
	{"timeout", USHER_OPT_DURATION, offsetof(struct usher_probe_conf, timeout_ms), NULL,
	 USHER_OPT_POSITIVE, "how long a run may take; less than interval (default 10s)"},
	{"labels", USHER_OPT_STRMAP, offsetof(struct usher_probe_conf, labels), NULL, 0,
	 "labels added to every series of the probe"},
	USHER_OPT_END,
};

static usher_opt_parse_fn parse_probes;

const struct usher_option usher_config_options[] = {
	{"global", USHER_OPT_SECTION, offsetof(struct usher_config, global), NULL, 0,
	 "defaults shared by every section", global_options},
	{"server", USHER_OPT_SECTION, offsetof(struct usher_config, server), NULL, 0,
	 "usherd's HTTP server", server_options},
	{"state_dir", USHER_OPT_STR, offsetof(struct usher_config, state_dir),
	 USHER_DEFAULT_STATE_DIR, 0, "where usherd keeps its state"},
	{"logging", USHER_OPT_SECTION, offsetof(struct usher_config, logging), NULL, 0,
	 "event logs", logging_options},
	{"probes", USHER_OPT_CUSTOM, offsetof(struct usher_config, probes), NULL, 0,
	 "the targets usherd probes", NULL, 0, parse_probes},
	/* after probes: both append generated instances to cfg->probes */
	{"scrape_configs", USHER_OPT_CUSTOM, offsetof(struct usher_config, scrape_configs), NULL, 0,
	 "services whose own /metrics usherd scrapes (Prometheus' scrape_config shape)",
	 usher_scrape_config_options, 0, usher_scrape_parse_configs},
	{"textfile_dir", USHER_OPT_CUSTOM, offsetof(struct usher_config, textfile_dir), NULL, 0,
	 "directory of *.prom files re-exposed every global.scrape_interval "
	 "(node_exporter's textfile collector)",
	 NULL, 0, usher_textfile_parse_dir},
	{"rule_files", USHER_OPT_STRLIST, offsetof(struct usher_config, rule_files), NULL, 0,
	 "Prometheus rule files (globs, relative to this file) evaluated every "
	 "global.evaluation_interval"},
	{"storage", USHER_OPT_SECTION, offsetof(struct usher_config, storage), NULL, 0,
	 "the in-memory series store", storage_options},
	{"incidents", USHER_OPT_CUSTOM, offsetof(struct usher_config, incidents), NULL, 0,
	 "where incidents are kept, and when a resolved one reopens (docs/incidents.md)",
	 usher_incidents_options, 0, usher_incidents_parse},
	{"alerting", USHER_OPT_CUSTOM, offsetof(struct usher_config, alerting), NULL, 0,
	 "routing, grouping, silencing of alerts: alertmanager.yml's shape (docs/alerting.md)",
	 usher_alerting_options, 0, usher_alerting_parse},
	/* after probes: targets name probes */
	{"backup", USHER_OPT_CUSTOM, offsetof(struct usher_config, backup), NULL, 0,
	 "backups, restores and DR drills (docs/backup.md)", usher_backup_options, 0,
	 usher_backup_parse_conf},
	USHER_OPT_END,
};

static bool probe_name_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.' || *s == ':'))
			return false;
	return true;
}

static const char *known_types(struct usher_arena *a)
{
	const struct usher_probe_type *const *t;
	const char *s = "";

	for (t = usher_probe_types; *t; t++)
		s = usher_arena_printf(a, "%s%s%s", s, *s ? ", " : "", (*t)->name);
	return s;
}

struct usher_probe_conf *usher_config_add_probe(struct usher_cfgctx *ctx)
{
	struct usher_config *cfg = ctx->root;

	if (cfg->nprobes == cfg->probes_cap) {
		size_t cap = cfg->probes_cap ? cfg->probes_cap * 2 : 8;
		struct usher_probe_conf *v = usher_arena_zalloc(ctx->arena, cap * sizeof(*v));

		if (cfg->nprobes)
			memcpy(v, cfg->probes, cfg->nprobes * sizeof(*v));
		cfg->probes = v;
		cfg->probes_cap = cap;
	}
	memset(&cfg->probes[cfg->nprobes], 0, sizeof(cfg->probes[0]));
	return &cfg->probes[cfg->nprobes++];
}

void usher_config_dir(const struct usher_config *cfg, char *out, size_t len)
{
	const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;

	if (!slash)
		snprintf(out, len, ".");
	else if (slash == cfg->path)
		snprintf(out, len, "/");
	else
		snprintf(out, len, "%.*s", (int)(slash - cfg->path), cfg->path);
}

int64_t usher_config_default_timeout(const struct usher_config *cfg, int64_t interval_ms)
{
	int64_t t = cfg->global.scrape_timeout_ms, cap = interval_ms - interval_ms / 10;

	if (t > cap)
		t = cap;
	return t > 0 ? t : 1;
}

enum usher_err usher_config_check_labels(struct usher_cfgctx *ctx, const struct usher_ynode *labels,
					 const struct usher_strmap *m)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	for (i = 0; i < m->n; i++) {
		const struct usher_ynode *k = labels ? labels->pairs[i].key : NULL;

		if (!usher_label_name_valid(m->v[i].key))
			rc = usher_cfg_error(ctx, k, "invalid label name \"%s\": use letters, "
						     "digits and underscores, not starting with a digit",
					     m->v[i].key);
		else if (strncmp(m->v[i].key, "__", 2) == 0)
			rc = usher_cfg_error(ctx, k, "label names starting with \"__\" are reserved");
	}
	return rc;
}

/* Fills one probe entry: the common keys and its type's keys together, so
 * an unknown key is reported once whichever table it missed. */
static enum usher_err parse_probe(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				  struct usher_probe_conf *pc)
{
	const struct usher_config *cfg = ctx->root;
	const struct usher_ynode *type = usher_ynode_get(n, "type");
	const struct usher_option *tables[2] = {probe_common_options, NULL};
	void *bases[2] = {pc, NULL};
	enum usher_err rc;

	pc->line = n->line;
	pc->col = n->col;
	if (!type || type->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, type ? type : n,
				       type ? "type: expected a string"
					    : "missing required key \"type\" (one of: %s)",
				       known_types(ctx->arena));
	pc->type = usher_probe_type_find(type->value);
	if (!pc->type)
		return usher_cfg_error(ctx, type, "unknown probe type \"%s\" (known: %s)",
				       type->value, known_types(ctx->arena));
	pc->opts = usher_arena_zalloc(ctx->arena, pc->type->opts_size ? pc->type->opts_size : 1);
	tables[1] = pc->type->options;
	bases[1] = pc->opts;
	rc = usher_opts_apply(ctx, tables, bases, pc->type->options ? 2 : 1, n);
	if (rc)
		return rc;
	if (!probe_name_valid(pc->name))
		return usher_cfg_error(ctx, usher_ynode_get(n, "name"),
				       "invalid probe name \"%s\": use letters, digits, '_', '-', "
				       "'.' and ':'",
				       pc->name);
	if (usher_config_check_labels(ctx, usher_ynode_get(n, "labels"), &pc->labels))
		rc = USHER_ERR_INVALID;

	if (!pc->interval_ms)
		pc->interval_ms = cfg->global.scrape_interval_ms;
	if (pc->timeout_ms) {
		if (pc->timeout_ms >= pc->interval_ms) {
			char t[32], i[32];

			usher_duration_format(pc->timeout_ms, t, sizeof(t));
			usher_duration_format(pc->interval_ms, i, sizeof(i));
			rc = usher_cfg_error(ctx, usher_ynode_get(n, "timeout"),
					     "timeout %s must be shorter than interval %s", t, i);
		}
	} else {
		/* the default never collides with a short interval: runs must
		 * end before the next one is due */
		pc->timeout_ms = usher_config_default_timeout(cfg, pc->interval_ms);
	}
	if (pc->type->check && pc->type->check(ctx, pc, n))
		rc = USHER_ERR_INVALID;
	if (rc)
		return rc;
	pc->job = usher_strmap_get(&pc->labels, "job");
	if (!pc->job)
		pc->job = pc->name;
	pc->instance = usher_strmap_get(&pc->labels, "instance");
	if (!pc->instance)
		pc->instance = pc->type->default_instance
				       ? pc->type->default_instance(ctx->arena, pc)
				       : pc->name;
	return USHER_OK;
}

static enum usher_err parse_probes(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				   void *field)
{
	struct usher_config *cfg = ctx->root;
	enum usher_err rc = USHER_OK;
	size_t i, j;

	(void)field;
	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, n, "probes: expected a list, got a %s",
				       usher_ynode_kind_name(n->kind));
	cfg->probes = usher_arena_zalloc(ctx->arena, (n->n ? n->n : 1) * sizeof(*cfg->probes));
	cfg->probes_cap = n->n ? n->n : 1;
	for (i = 0; i < n->n; i++) {
		struct usher_probe_conf *pc = &cfg->probes[cfg->nprobes];

		if (n->items[i]->kind != USHER_Y_MAP) {
			rc = usher_cfg_error(ctx, n->items[i], "probes: expected a mapping, got a %s",
					     usher_ynode_kind_name(n->items[i]->kind));
			continue;
		}
		if (parse_probe(ctx, n->items[i], pc)) {
			rc = USHER_ERR_INVALID;
			continue;
		}
		for (j = 0; j < cfg->nprobes; j++) {
			if (strcmp(cfg->probes[j].name, pc->name) == 0)
				break;
		}
		if (j < cfg->nprobes) {
			rc = usher_cfg_error(ctx, usher_ynode_get(n->items[i], "name"),
					     "duplicate probe name \"%s\" (first at line %d)",
					     pc->name, cfg->probes[j].line);
			continue;
		}
		cfg->nprobes++;
	}
	return rc;
}

/* Checks that need the whole section. */
static enum usher_err check_config(struct usher_cfgctx *ctx, const struct usher_ynode *root)
{
	struct usher_config *cfg = ctx->root;
	const struct usher_ynode *logging = usher_ynode_get(root, "logging");
	const struct usher_ynode *server = usher_ynode_get(root, "server");
	const struct usher_ynode *tls = usher_ynode_get(server, "tls");
	enum usher_log_level lvl;
	enum usher_err rc = USHER_OK;

	if (usher_log_level_parse(cfg->logging.level, &lvl))
		rc = usher_cfg_error(ctx, usher_ynode_get(logging, "level"),
				     "logging.level: \"%s\" is not one of debug, info, warn, error",
				     cfg->logging.level);
	if (strcmp(cfg->logging.format, "ecs") != 0 && strcmp(cfg->logging.format, "text") != 0)
		rc = usher_cfg_error(ctx, usher_ynode_get(logging, "format"),
				     "logging.format: \"%s\" is not one of ecs, text",
				     cfg->logging.format);
	if (!cfg->server.tls.cert_file != !cfg->server.tls.key_file)
		rc = usher_cfg_error(ctx, tls ? tls : server,
				     "server.tls: cert_file and key_file go together");
	if (cfg->server.tls.cert_file && access(cfg->server.tls.cert_file, R_OK) != 0)
		rc = usher_cfg_error(ctx, usher_ynode_get(tls, "cert_file"),
				     "server.tls.cert_file: cannot read %s: %s",
				     cfg->server.tls.cert_file, strerror(errno));
	if (cfg->server.tls.key_file && access(cfg->server.tls.key_file, R_OK) != 0)
		rc = usher_cfg_error(ctx, usher_ynode_get(tls, "key_file"),
				     "server.tls.key_file: cannot read %s: %s",
				     cfg->server.tls.key_file, strerror(errno));
	if (cfg->server.tls.client_ca_file && !cfg->server.tls.cert_file)
		rc = usher_cfg_error(ctx, tls, "server.tls.client_ca_file needs cert_file and key_file");
	if (!*cfg->server.listen)
		rc = usher_cfg_error(ctx, usher_ynode_get(server, "listen"),
				     "server.listen must not be empty");
	if (usher_config_check_labels(
		ctx, usher_ynode_get(usher_ynode_get(root, "global"), "external_labels"),
		&cfg->global.external_labels))
		rc = USHER_ERR_INVALID;
	return rc;
}

enum usher_err usher_config_load_text(const char *file, const char *text, size_t len,
				      struct usher_config **out, struct usher_diags *diags)
{
	struct usher_config *cfg = usher_calloc(1, sizeof(*cfg));
	struct usher_cfgctx ctx = {.file = file, .diags = diags, .root = cfg};
	struct usher_ynode *root;
	size_t before = diags->n;
	enum usher_err rc;

	*out = NULL;
	cfg->refs = 1;
	cfg->arena = usher_arena_new();
	cfg->path = usher_arena_strdup(cfg->arena, file);
	ctx.arena = cfg->arena;
	rc = usher_yaml_parse(cfg->arena, file, text, len, &root, diags);
	if (rc)
		goto out;
	if (root->kind != USHER_Y_MAP) {
		rc = usher_cfg_error(&ctx, root, "expected a mapping of sections at the top, got a %s",
				     usher_ynode_kind_name(root->kind));
		goto out;
	}
	/* global first: probes take their defaults from it */
	rc = usher_opts_apply1(&ctx, usher_config_options, cfg, root);
	if (!rc)
		rc = check_config(&ctx, root);
	if (!rc && diags->n > before)
		rc = USHER_ERR_INVALID;
out:
	if (rc) {
		usher_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return USHER_OK;
}

enum usher_err usher_config_load(const char *path, struct usher_config **out,
				 struct usher_diags *diags)
{
	struct usher_buf b;
	char chunk[8192];
	enum usher_err rc = USHER_OK;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		usher_diags_add(diags, path, 0, 0, "cannot open: %s", strerror(errno));
		return USHER_ERR_IO;
	}
	usher_buf_init(&b, CONFIG_FILE_MAX);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			usher_diags_add(diags, path, 0, 0, "cannot read: %s", strerror(errno));
			rc = USHER_ERR_IO;
			break;
		}
		if (n == 0)
			break;
		if (usher_buf_add(&b, chunk, (size_t)n)) {
			usher_diags_add(diags, path, 0, 0, "larger than %d MiB",
					CONFIG_FILE_MAX >> 20);
			rc = USHER_ERR_TOOBIG;
			break;
		}
	}
	close(fd);
	if (!rc)
		rc = usher_config_load_text(path, usher_buf_str(&b), b.len, out, diags);
	usher_buf_free(&b);
	return rc;
}

struct usher_config *usher_config_ref(struct usher_config *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void usher_config_free(struct usher_config *c)
{
	if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	usher_alerting_conf_release(c->alerting); /* its templates' library */
	usher_arena_free(c->arena);
	free(c);
}
