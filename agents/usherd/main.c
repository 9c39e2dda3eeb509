/* usherd: loads the config, starts the HTTP server and the probe scheduler,
 * and runs the loop that drives probes, signals (reload, stop) and the
 * systemd watchdog. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "api_incidents.h"
#include "httpd.h"
#include "logship/logship.h"
#include "metrics/process.h"
#include "metrics/registry.h"
#include "notify.h"
#include "probes/loop.h"
#include "probes/scheduler.h"
#include "alerting.h"
#include "api_v1.h"
#include "ruleeng.h"
#include "store/store.h"
#include "usher_version.h"

enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

/* The root context: everything usherd owns, passed explicitly. */
struct usherd {
	const char *config_path;
	const char *listen_override;
	const char *state_dir_override;
	const char *log_format_override;
	struct usher_config *cfg;
	struct usher_log *log;
	struct usher_logship *logship; /* the log's output once the config is loaded */
	struct usher_registry *reg;
	struct usher_loop *loop;
	struct usher_sched *sched;
	struct usher_httpd *httpd;
	struct usher_incidents *incidents; /* notify/incident.h: on_flush, the API */
	struct usher_store *store;      /* state_dir/usher.db */
	struct usherd_rules *rules;     /* series store + rule evaluation */
	struct usherd_api_v1 *api_v1;   /* Prometheus' query API */
	struct usherd_alerting *alerting; /* routing, silences, API v2 (alerting.h) */
	pthread_mutex_t cfg_lock;       /* cfg's pointer, for HTTP threads */
	int sigfd;
	bool reload_ok;
	double reload_ok_time;
};

static const struct usher_metric_desc desc_reload_ok = {
	"usher_config_last_reload_successful", USHER_METRIC_GAUGE,
	"Whether the last configuration reload attempt was successful"};
static const struct usher_metric_desc desc_reload_time = {
	"usher_config_last_reload_success_timestamp_seconds", USHER_METRIC_GAUGE,
	"Timestamp of the last successful configuration reload"};
static const struct usher_metric_desc desc_probes = {
	"usher_probes", USHER_METRIC_GAUGE, "Probes configured"};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usherd --config FILE [options]\n"
		"\n"
		"Probes the booking platform's API, databases and caches, and serves\n"
		"Prometheus metrics.\n"
		"\n"
		"options:\n"
		"  -c, --config FILE       configuration file (YAML)\n"
		"      --listen ADDR       serve on ADDR (host:port), overriding server.listen\n"
		"      --state-dir DIR     keep state in DIR, overriding state_dir\n"
		"      --log-format FMT    ecs (JSON lines, the default) or text\n"
		"      --check             check the configuration and exit\n"
		"  -h, --help              show this help\n"
		"  -V, --version           show the version\n"
		"\n"
		"signals: SIGHUP reloads the configuration (a bad one keeps the old one\n"
		"running); SIGUSR1 reopens log files (logrotate); SIGTERM and SIGINT stop.\n"
		"\n"
		"exit status: 0 stopped cleanly, 1 runtime failure, 2 invalid configuration\n"
		"or usage.\n");
}

static void publish_self(struct usherd *d)
{
	struct usher_sample_set *set = usher_sample_set_new(NULL);

	usher_sample_add(set, &desc_reload_ok, d->reload_ok ? 1 : 0, NULL);
	usher_sample_add(set, &desc_reload_time, d->reload_ok_time, NULL);
	usher_sample_add(set, &desc_probes, d->cfg ? (double)d->cfg->nprobes : 0, NULL);
	usher_registry_publish(d->reg, d, set);
}

/* Loads the config and applies the command line's overrides. */
static struct usher_config *load(struct usherd *d)
{
	struct usher_diags diags;
	struct usher_config *cfg = NULL;
	char first[1024];

	usher_diags_init(&diags);
	if (usher_config_load(d->config_path, &cfg, &diags)) {
		size_t i;

		for (i = 0; i < diags.n; i++) {
			const struct usher_diag *g = &diags.v[i];
			struct usher_log_field f[] = {
				USHER_LFS("event.action", "config-invalid"),
				USHER_LFS("file.path", g->file),
				USHER_LFI("usher.config.line", g->line),
				USHER_LFI("usher.config.column", g->col),
			};
			usher_log_event(d->log, USHER_LOG_ERROR, f, 4, "%s",
					usher_diags_first(&(struct usher_diags){.v = diags.v + i, .n = 1},
							  first, sizeof(first)));
		}
		usher_diags_free(&diags);
		return NULL;
	}
	usher_diags_free(&diags);
	if (d->listen_override)
		cfg->server.listen = d->listen_override;
	if (d->state_dir_override)
		cfg->state_dir = d->state_dir_override;
	if (d->log_format_override)
		cfg->logging.format = d->log_format_override;
	return cfg;
}

/* Loads the rule files of cfg; logs every problem. */
static struct usherd_rules_plan *load_rules(struct usherd *d, const struct usher_config *cfg)
{
	struct usherd_rules_plan *plan = NULL;
	struct usher_diags diags;
	size_t i;

	usher_diags_init(&diags);
	if (usherd_rules_prepare(d->rules, cfg, &plan, &diags) != USHER_OK) {
		for (i = 0; i < diags.n; i++) {
			const struct usher_diag *g = &diags.v[i];
			char line[1024];
			struct usher_log_field f[] = {
				USHER_LFS("event.action", "rules-invalid"),
				USHER_LFS("file.path", g->file),
				USHER_LFI("usher.config.line", g->line),
				USHER_LFI("usher.config.column", g->col),
			};
			usher_log_event(d->log, USHER_LOG_ERROR, f, 4, "%s",
					usher_diags_first(&(struct usher_diags){.v = diags.v + i, .n = 1},
							  line, sizeof(line)));
		}
	}
	usher_diags_free(&diags);
	return plan;
}

/* The rule engine's alerts, to the alerting pipeline (on the rules' thread). */
static void send_alerts(void *arg, const json_t *alerts)
{
	struct usherd *d = arg;

	usherd_alerting_put_json(d->alerting, alerts);
}

/* The config in force, referenced, for the HTTP threads (/api/v1/targets). */
static struct usher_config *current_config(void *arg)
{
	struct usherd *d = arg;
	struct usher_config *c;

	pthread_mutex_lock(&d->cfg_lock);
	c = d->cfg ? usher_config_ref(d->cfg) : NULL;
	pthread_mutex_unlock(&d->cfg_lock);
	return c;
}

/* Every module's routes; called after each (re)start of the server, since
 * a new server starts with none. */
static void register_routes(struct usherd *d)
{
	usherd_api_v1_free(d->api_v1);
	d->api_v1 = usherd_api_v1_register(d->httpd, d->rules, current_config, d);
	usherd_api_incidents_register(d->httpd, d->incidents);
	if (d->alerting) /* a restarted server: API v2 again */
		usherd_api_v2_register(d->httpd, d->alerting);
}

static void apply_logging(struct usherd *d, const struct usher_config *cfg)
{
	enum usher_log_level lvl = USHER_LOG_INFO;

	usher_log_level_parse(cfg->logging.level, &lvl);
	usher_log_set_level(d->log, lvl);
	usher_log_set_format(d->log, strcmp(cfg->logging.format, "text") == 0
					     ? USHER_LOG_FORMAT_TEXT
					     : USHER_LOG_FORMAT_ECS);
}

static enum usher_err ensure_state_dir(const char *dir, struct usher_error *err)
{
	char path[4096];
	size_t i, len = strlen(dir);

	if (len >= sizeof(path))
		return usher_fail(err, USHER_ERR_INVALID, "state directory path too long");
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return usher_fail(err, USHER_ERR_IO,
					  "cannot create state directory %s: %s (set state_dir or "
					  "--state-dir)",
					  path, strerror(errno));
		path[i] = dir[i];
	}
	if (access(dir, W_OK) != 0)
		return usher_fail(err, USHER_ERR_IO,
				  "state directory %s is not writable: %s (set state_dir or "
				  "--state-dir)",
				  dir, strerror(errno));
	return USHER_OK;
}

static bool strmap_equal(const struct usher_strmap *a, const struct usher_strmap *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->v[i].key, b->v[i].key) || strcmp(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

static bool optstr_equal(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool server_changed(const struct usher_server_conf *a, const struct usher_server_conf *b)
{
	return !optstr_equal(a->listen, b->listen) ||
	       !optstr_equal(a->tls.cert_file, b->tls.cert_file) ||
	       !optstr_equal(a->tls.key_file, b->tls.key_file) ||
	       !optstr_equal(a->tls.client_ca_file, b->tls.client_ca_file) ||
	       !strmap_equal(&a->basic_auth_users, &b->basic_auth_users);
}

/* The URL to reach a listener on port (which may have been chosen by the
 * kernel for ":0"). */
static void listen_url(const struct usher_config *cfg, int port, char *out, size_t len)
{
	const char *listen = cfg->server.listen, *colon = strrchr(listen, ':');
	int hostlen = colon ? (int)(colon - listen) : (int)strlen(listen);

	if (hostlen == 0 || (hostlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0)) {
		listen = "localhost";
		hostlen = 9;
	}
	snprintf(out, len, "%s://%.*s:%d/", cfg->server.tls.cert_file ? "https" : "http", hostlen,
		 listen, port);
}

static enum usher_err start_httpd(struct usherd *d, const struct usher_config *cfg,
				  struct usher_error *err)
{
	return usher_httpd_start(&cfg->server, d->reg, d->log, &d->httpd, err);
}

/* Says where usherd listens: logged once every route is in place, so a
 * client that waits for this event finds the whole API. */
static void log_listening(struct usherd *d, const struct usher_config *cfg)
{
	char url[512];

	listen_url(cfg, usher_httpd_port(d->httpd), url, sizeof(url));
	{
		struct usher_log_field f[] = {
			USHER_LFS("event.action", "listening"),
			USHER_LFS("url.full", url),
			USHER_LFI("server.port", usher_httpd_port(d->httpd)),
		};
		usher_log_event(d->log, USHER_LOG_INFO, f, 3, "listening on %s", url);
	}
}

static void reload(struct usherd *d)
{
	struct usher_logship_plan *logs = NULL;
	struct usherd_rules_plan *rules = NULL;
	struct usher_config *cfg;
	struct usher_error err;
	bool restart_server;
	enum usher_err rc;

	usherd_notify_reloading();
	usher_error_clear(&err);
	cfg = load(d);
	if (!cfg) {
		rc = USHER_ERR_INVALID;
		usher_fail(&err, rc, "configuration %s is invalid", d->config_path);
		goto out;
	}
	rc = ensure_state_dir(cfg->state_dir, &err);
	if (rc)
		goto out;
	rules = load_rules(d, cfg);
	if (!rules) {
		rc = USHER_ERR_INVALID;
		usher_fail(&err, rc, "rule files of %s are invalid", d->config_path);
		goto out;
	}
	rc = usher_logship_prepare(d->logship, cfg, &logs, &err);
	if (rc)
		goto out;
	rc = usher_sched_apply(d->sched, cfg, &err);
	if (rc)
		goto out;
	restart_server = server_changed(&d->cfg->server, &cfg->server);
	if (restart_server) {
		usher_httpd_free(d->httpd);
		d->httpd = NULL;
		rc = start_httpd(d, cfg, &err);
		if (rc) {
			struct usher_error err2;

			/* back to the old server and probes, which did work */
			usher_error_clear(&err2);
			if (start_httpd(d, d->cfg, &err2)) {
				usher_log_error(d->log, "cannot restore the previous listener: %s",
						err2.msg);
				exit(EXIT_RUNTIME);
			}
			usher_sched_apply(d->sched, d->cfg, &err2);
			register_routes(d);
			log_listening(d, d->cfg);
			goto out;
		}
		register_routes(d);
		log_listening(d, cfg);
	}
	usher_httpd_set_ready(d->httpd, true);
	apply_logging(d, cfg);
	usher_logship_commit(d->logship, logs);
	logs = NULL;
	usherd_rules_commit(d->rules, rules, cfg);
	rules = NULL;
	usherd_alerting_reload(d->alerting, cfg, &err);
	if (usher_incidents_reconfigure(d->incidents, cfg, &err))
		usher_log_warn(d->log, "%s", err.msg);
	pthread_mutex_lock(&d->cfg_lock);
	usher_config_free(d->cfg);
	d->cfg = cfg;
	pthread_mutex_unlock(&d->cfg_lock);
	cfg = NULL;
out:
	usherd_rules_plan_free(rules);
	usher_logship_plan_free(logs);
	usher_config_free(cfg);
	d->reload_ok = rc == USHER_OK;
	if (d->reload_ok)
		d->reload_ok_time = (double)usher_now_ms() / 1000.0;
	publish_self(d);
	{
		struct usher_log_field f[] = {
			USHER_LFS("event.action", "config-reload"),
			USHER_LFS("event.kind", "event"),
			USHER_LFS("event.outcome", d->reload_ok ? "success" : "failure"),
			USHER_LFS("file.path", d->config_path),
			USHER_LFS("error.message", d->reload_ok ? NULL : usher_error_msg(&err, rc)),
		};
		if (d->reload_ok)
			usher_log_event(d->log, USHER_LOG_INFO, f, 5,
					"configuration reloaded: %zu probes", d->cfg->nprobes);
		else
			usher_log_event(d->log, USHER_LOG_ERROR, f, 5,
					"configuration reload failed, keeping the previous one: %s",
					usher_error_msg(&err, rc));
	}
	usherd_notify_ready(d->reload_ok ? "running" : "running; last reload failed");
}

/* Reads pending signals; returns false when usherd should stop. */
static bool handle_signals(struct usherd *d)
{
	struct signalfd_siginfo si;

	while (read(d->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			reload(d);
			break;
		case SIGUSR1:
			usher_logship_reopen(d->logship);
			break;
		case SIGTERM:
		case SIGINT: {
			struct usher_log_field f[] = {USHER_LFS("event.action", "stopping")};

			usher_log_event(d->log, USHER_LOG_INFO, f, 1, "received %s, stopping",
					si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
			return false;
		}
		default:
			break;
		}
	}
	return true;
}

static int run(struct usherd *d)
{
	int64_t watchdog_ms = usherd_notify_watchdog_ms(), next_watchdog = 0;
	struct curl_waitfd wfd = {.fd = d->sigfd, .events = CURL_WAIT_POLLIN};
	char status[128];

	snprintf(status, sizeof(status), "running: %zu probes", d->cfg->nprobes);
	usherd_notify_ready(status);
	usher_httpd_set_ready(d->httpd, true);
	for (;;) {
		int64_t now = usher_mono_ms();
		int wait;

		if (watchdog_ms && now >= next_watchdog) {
			usherd_notify_watchdog();
			next_watchdog = now + watchdog_ms / 2;
		}
		usher_sched_tick(d->sched, now);
		wait = usher_sched_wait_ms(d->sched, usher_mono_ms(), 1000);
		if (watchdog_ms && next_watchdog - now < wait)
			wait = (int)(next_watchdog - now);
		wfd.revents = 0;
		usher_loop_poll(d->loop, wait, &wfd, 1);
		if (wfd.revents && !handle_signals(d))
			break;
	}
	usherd_notify_stopping();
	usher_httpd_set_ready(d->httpd, false);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"state-dir", required_argument, NULL, 's'},
		{"log-format", required_argument, NULL, 'f'},
		{"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct usherd d = {.sigfd = -1, .cfg_lock = PTHREAD_MUTEX_INITIALIZER};
	struct usherd_rules_plan *rules_plan = NULL;
	struct usher_error err;
	bool check_only = false;
	sigset_t mask;
	int opt, status = 0;

	usher_error_clear(&err);
	while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': d.config_path = optarg; break;
		case 'l': d.listen_override = optarg; break;
		case 's': d.state_dir_override = optarg; break;
		case 'f':
			if (strcmp(optarg, "ecs") != 0 && strcmp(optarg, "text") != 0) {
				fprintf(stderr, "usherd: --log-format must be ecs or text\n");
				return EXIT_CONFIG;
			}
			d.log_format_override = optarg;
			break;
		case 'k': check_only = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("usherd %s (%s)\n", USHER_VERSION, USHER_REVISION); return 0;
		default: usage(stderr); return EXIT_CONFIG;
		}
	}
	if (optind < argc || !d.config_path) {
		fprintf(stderr, optind < argc ? "usherd: unexpected argument %s\n"
					      : "usherd: --config FILE is required%s\n",
			optind < argc ? argv[optind] : "");
		usage(stderr);
		return EXIT_CONFIG;
	}
	if (check_only) {
		struct usher_diags diags;
		struct usher_config *cfg;

		usher_diags_init(&diags);
		if (usher_config_load(d.config_path, &cfg, &diags)) {
			usher_diags_print(&diags, stderr);
			usher_diags_free(&diags);
			return EXIT_CONFIG;
		}
		{
			struct usherd_rules_plan *plan = NULL;

			if (usherd_rules_prepare(NULL, cfg, &plan, &diags)) {
				usher_diags_print(&diags, stderr);
				usher_diags_free(&diags);
				usher_config_free(cfg);
				return EXIT_CONFIG;
			}
			usherd_rules_plan_free(plan);
		}
		usher_diags_free(&diags);
		printf("%s: valid: %zu probes\n", d.config_path, cfg->nprobes);
		usher_config_free(cfg);
		return 0;
	}

	/* signals arrive through a signalfd in the loop; every thread started
	 * after this inherits the blocked mask */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	d.log = usher_log_new(STDOUT_FILENO,
			      d.log_format_override && strcmp(d.log_format_override, "text") == 0
				      ? USHER_LOG_FORMAT_TEXT
				      : USHER_LOG_FORMAT_ECS,
			      USHER_LOG_INFO, "usherd");
	d.cfg = load(&d);
	if (!d.cfg) {
		fprintf(stderr, "usherd: %s is invalid; not starting (see usher check-config %s)\n",
			d.config_path, d.config_path);
		status = EXIT_CONFIG;
		goto out;
	}
	apply_logging(&d, d.cfg);
	if (ensure_state_dir(d.cfg->state_dir, &err)) {
		usher_log_error(d.log, "%s", err.msg);
		status = EXIT_RUNTIME;
		goto out;
	}
	d.logship = usher_logship_new(d.log);
	{
		struct usher_logship_plan *logs = NULL;

		if (usher_logship_prepare(d.logship, d.cfg, &logs, &err)) {
			usher_log_error(d.log, "%s", err.msg);
			status = EXIT_RUNTIME;
			goto out;
		}
		usher_logship_commit(d.logship, logs);
		usher_log_set_output(d.log, usher_logship_emit, d.logship);
	}
	d.reg = usher_registry_new();
	usher_process_collector_register(d.reg);
	usher_logship_register_metrics(d.logship, d.reg);
	if (usher_store_open(d.cfg->state_dir, &d.store, &err)) {
		usher_log_error(d.log, "%s", err.msg);
		status = EXIT_RUNTIME;
		goto out;
	}
	if (usher_incidents_new(&d.cfg->incidents, d.cfg->state_dir, d.store, d.reg, d.log,
				&d.incidents, &err)) {
		usher_log_error(d.log, "cannot open the incident store: %s", err.msg);
		status = EXIT_RUNTIME;
		goto out;
	}
	usher_incidents_reconfigure(d.incidents, d.cfg, &err);
	d.rules = usherd_rules_new(d.cfg, d.reg, d.store, d.log);
	rules_plan = load_rules(&d, d.cfg);
	if (!rules_plan) {
		fprintf(stderr, "usherd: the rule files of %s are invalid; not starting "
				"(see usher check rules)\n",
			d.config_path);
		status = EXIT_CONFIG;
		goto out;
	}
	d.loop = usher_loop_new();
	d.sched = usher_sched_new(d.loop, d.reg, d.log);
	if (usher_sched_apply(d.sched, d.cfg, &err)) {
		usher_log_error(d.log, "%s", err.msg);
		status = EXIT_RUNTIME;
		goto out;
	}
	if (start_httpd(&d, d.cfg, &err)) {
		usher_log_error(d.log, "%s", err.msg);
		status = EXIT_RUNTIME;
		goto out;
	}
	register_routes(&d);
	if (usherd_alerting_new(d.cfg, d.store, d.log, d.reg, d.httpd, &d.alerting, &err)) {
		usher_log_error(d.log, "cannot start alerting: %s", err.msg);
		status = EXIT_RUNTIME;
		goto out;
	}
	usherd_alerting_set_observer(d.alerting, usherd_incidents_observe, d.incidents);
	usherd_alerting_set_delivery_observer(d.alerting, usherd_incidents_delivered, d.incidents);
	log_listening(&d, d.cfg);
	/* rules start once their alerts have somewhere to go */
	usherd_rules_set_alert_sink(d.rules, send_alerts, &d);
	usherd_rules_commit(d.rules, rules_plan, d.cfg);
	rules_plan = NULL;
	d.reload_ok = true;
	d.reload_ok_time = (double)usher_now_ms() / 1000.0;
	publish_self(&d);
	{
		struct usher_log_field f[] = {USHER_LFS("event.action", "started")};

		usher_log_event(d.log, USHER_LOG_INFO, f, 1, "usherd %s started: %zu probes",
				USHER_VERSION, d.cfg->nprobes);
	}
	status = run(&d);
	{
		struct usher_log_field f[] = {USHER_LFS("event.action", "stopped")};

		usher_log_event(d.log, USHER_LOG_INFO, f, 1, "usherd stopped");
	}
out:
	usherd_rules_plan_free(rules_plan);
	usher_httpd_free(d.httpd);
	usherd_api_v1_free(d.api_v1);
	usherd_rules_stop(d.rules); /* it sends to alerting */
	usherd_alerting_free(d.alerting); /* after the server, before the store */
	usher_sched_free(d.sched);
	usher_loop_free(d.loop);
	usherd_rules_free(d.rules); /* before the registry it observes */
	usher_incidents_free(d.incidents); /* after the server: nothing renders its metrics now */
	usher_store_close(d.store);
	if (d.logship) {
		/* a second for the network sinks; what is left waits in their spools */
		usher_logship_drain(d.logship, 1000);
		usher_log_set_output(d.log, NULL, NULL);
	}
	usher_registry_free(d.reg);
	usher_logship_free(d.logship);
	usher_config_free(d.cfg);
	usher_log_free(d.log);
	if (d.sigfd >= 0)
		close(d.sigfd);
	curl_global_cleanup();
	return status;
}
