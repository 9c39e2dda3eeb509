/* The Memcached probe: `stats` and `stats settings` pipelined on one
 * persistent connection with reconnect backoff, read into a bounded buffer
 * until both ENDs, and turned into memcached_exporter's series (names, help
 * and label values as it has them). */
#include "probes/memcached.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

/* The two answers are ~4 KiB; anything near this is not memcached. */
#define REPLY_MAX       (256 * 1024)
#define RECV_CHUNK      8192
#define STATS_MAX_LINES 4096

/* ---- metric descriptions ------------------------------------------------ */

struct stat_field {
	const char *stat;
	struct usher_metric_desc desc;
};

/* clang-format off */
#define D(st, name, type, help) {st, {"memcached_" name, USHER_METRIC_##type, help}}
/* clang-format on */

/* memcached_exporter's plain series, one per stat. Its uptime is a counter
 * named without _total; here it is a gauge, so the name stays the same. */
static const struct stat_field stat_fields[] = {
    D("uptime", "uptime_seconds", GAUGE, "Number of seconds since the server started."),
    D("time", "time_seconds", GAUGE, "current UNIX time according to the server."),
    D("rusage_user", "process_user_cpu_seconds", COUNTER,
      "Accumulated user time for this process."),
    D("rusage_system", "process_system_cpu_seconds", COUNTER,
      "Accumulated system time for this process."),
    D("bytes_read", "read_bytes", COUNTER,
      "Total number of bytes read by this server from network."),
    D("bytes_written", "written_bytes", COUNTER,
      "Total number of bytes sent by this server to network."),
    D("curr_connections", "current_connections", GAUGE, "Current number of open connections."),
    D("total_connections", "connections", COUNTER,
      "Total number of connections opened since the server started running."),
    D("rejected_connections", "connections_rejected", COUNTER,
      "Total number of connections rejected due to hitting the memcached's -c limit in "
      "maxconns_fast mode."),
    D("conn_yields", "connections_yielded", COUNTER,
      "Total number of connections yielded running due to hitting the memcached's -R limit."),
    D("listen_disabled_num", "connections_listener_disabled", COUNTER,
      "Number of times that memcached has hit its connections limit and disabled its "
      "listener."),
    D("bytes", "current_bytes", GAUGE, "Current number of bytes used to store items."),
    D("limit_maxbytes", "limit_bytes", GAUGE,
      "Number of bytes this server is allowed to use for storage."),
    D("curr_items", "current_items", GAUGE, "Current number of items stored by this instance."),
    D("total_items", "items", COUNTER,
      "Total number of items stored during the life of this instance."),
    D("evictions", "items_evicted", COUNTER,
      "Total number of valid items removed from cache to free memory for new items."),
    D("reclaimed", "items_reclaimed", COUNTER,
      "Total number of times an entry was stored using memory from an expired entry."),
    D("store_too_large", "item_too_large", COUNTER,
      "The number of times an item exceeded the max-item-size when being stored."),
    D("store_no_memory", "item_no_memory", COUNTER,
      "The number of times an item could not be stored due to no more memory."),
    D("direct_reclaims", "direct_reclaims", COUNTER,
      "Times worker threads had to directly reclaim or evict items."),
    D("total_malloced", "malloced_bytes", GAUGE,
      "Number of bytes of memory allocated to slab pages."),
    D("accepting_conns", "accepting_connections", GAUGE,
      "The Memcached server is currently accepting new connections."),
};

#undef D

static const struct usher_metric_desc desc_up = {"memcached_up", USHER_METRIC_GAUGE,
						 "Could the memcached server be reached."};
static const struct usher_metric_desc desc_version = {"memcached_version", USHER_METRIC_GAUGE,
						      "The version of this memcached server."};
static const struct usher_metric_desc desc_commands = {
    "memcached_commands", USHER_METRIC_COUNTER,
    "Total number of all requests broken down by command (get, set, etc.) and status."};
static const struct usher_metric_desc desc_max_connections = {
    "memcached_max_connections", USHER_METRIC_GAUGE, "Maximum number of clients allowed."};

/* ---- parsing ------------------------------------------------------------ */

struct stat {
	const char *name, *value;
};

struct stats {
	struct stat *v;
	size_t n;
	char *copy;
};

/* Cuts "STAT name value\r\n" lines (up to END) into s. Returns
 * USHER_ERR_PROTOCOL for any other line, or when there is no STAT line. */
static enum usher_err stats_parse(const char *text, size_t len, struct stats *s)
{
	char *p, *end;
	size_t cap = 0;

	memset(s, 0, sizeof(*s));
	s->copy = usher_malloc(len + 1);
	memcpy(s->copy, text, len);
	s->copy[len] = '\0';
	end = s->copy + len;
	for (p = s->copy; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *line = p, *name, *value, *e;

		if (nl)
			*nl = '\0';
		p = nl ? nl + 1 : end;
		e = line + strlen(line);
		if (e > line && e[-1] == '\r')
			*--e = '\0';
		if (strcmp(line, "END") == 0)
			break;
		if (strncmp(line, "STAT ", 5) != 0 || (size_t)(e - line) != strlen(line))
			return USHER_ERR_PROTOCOL;
		name = line + 5;
		value = strchr(name, ' ');
		if (!value || value == name)
			return USHER_ERR_PROTOCOL;
		*value++ = '\0';
		if (s->n >= STATS_MAX_LINES)
			continue;
		if (s->n == cap) {
			cap = cap ? 2 * cap : 128;
			s->v = usher_realloc(s->v, cap * sizeof(*s->v));
		}
		s->v[s->n].name = name;
		s->v[s->n].value = value;
		s->n++;
	}
	return s->n ? USHER_OK : USHER_ERR_PROTOCOL;
}

static void stats_free(struct stats *s)
{
	free(s->v);
	free(s->copy);
}

/* The first value of name, or NULL. */
static const char *stat_get(const struct stats *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return s->v[i].value;
	return NULL;
}

/* A decimal number (memcached writes integers, and rusage as 1.234567). */
static bool parse_number(const char *s, double *out)
{
	const char *p = s;
	char *end;
	bool digits = false;

	if (*p == '-')
		p++;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits = true;
		}
	}
	if (!digits || *p)
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return end == p;
}

static bool stat_number(const struct stats *s, const char *name, double *out)
{
	const char *v = stat_get(s, name);

	return v && parse_number(v, out);
}

static void emit_commands(struct usher_sample_set *set, const struct stats *s)
{
	static const char *const ops[] = {"get", "delete", "incr", "decr", "cas", "touch"};
	double v, cmd_set, cas_total = 0, part;
	bool cas_known = true;
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "%s_hits", ops[i]);
		if (stat_number(s, name, &v))
			usher_sample_add(set, &desc_commands, v, "command", ops[i], "status", "hit",
					 NULL);
		snprintf(name, sizeof(name), "%s_misses", ops[i]);
		if (stat_number(s, name, &v))
			usher_sample_add(set, &desc_commands, v, "command", ops[i], "status",
					 "miss", NULL);
	}
	if (stat_number(s, "cas_badval", &v))
		usher_sample_add(set, &desc_commands, v, "command", "cas", "status", "badval",
				 NULL);
	if (stat_number(s, "cmd_flush", &v))
		usher_sample_add(set, &desc_commands, v, "command", "flush", "status", "hit", NULL);
	/* cmd_set counts the cas commands too: memcached_exporter takes them
	 * out, and so do we */
	for (i = 0; i < 3; i++) {
		static const char *const cas[] = {"cas_misses", "cas_hits", "cas_badval"};

		if (stat_number(s, cas[i], &part))
			cas_total += part;
		else
			cas_known = false;
	}
	if (stat_number(s, "cmd_set", &cmd_set) && cas_known)
		usher_sample_add(set, &desc_commands, cmd_set - cas_total, "command", "set",
				 "status", "hit", NULL);
}

enum usher_err usher_memcached_stats_emit(struct usher_sample_set *set, const char *stats,
					  size_t len, const char *settings, size_t slen)
{
	struct stats s, st;
	const char *version;
	double v;
	size_t i;

	if (stats_parse(stats, len, &s)) {
		stats_free(&s);
		return USHER_ERR_PROTOCOL;
	}
	version = stat_get(&s, "version");
	if (version)
		usher_sample_add(set, &desc_version, 1, "version", version, NULL);
	for (i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++)
		if (stat_number(&s, stat_fields[i].stat, &v))
			usher_sample_add(set, &stat_fields[i].desc, v, NULL);
	emit_commands(set, &s);
	stats_free(&s);
	if (settings) {
		if (!stats_parse(settings, slen, &st) && stat_number(&st, "maxconns", &v))
			usher_sample_add(set, &desc_max_connections, v, NULL);
		stats_free(&st);
	}
	return USHER_OK;
}

/* ---- options ------------------------------------------------------------ */

#define OFF(f) offsetof(struct usher_memcached_opts, f)
const struct usher_option usher_memcached_options[] = {
    {.key = "address",
     .type = USHER_OPT_STR,
     .offset = OFF(address),
     .flags = USHER_OPT_REQUIRED,
     .help = "host:port, [ipv6]:port or unix:/path/to/memcached.sock (the port defaults to "
	     "11211)"},
    {.key = "connect_timeout",
     .type = USHER_OPT_DURATION,
     .offset = OFF(connect_timeout_ms),
     .def = "5s",
     .flags = USHER_OPT_POSITIVE,
     .help = "how long connecting may take, within the run's timeout"},
    USHER_OPT_END,
};

static enum usher_err memcached_check(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
				      const struct usher_ynode *node)
{
	struct usher_memcached_opts *o = pc->opts;
	const struct usher_ynode *n = usher_ynode_get(node, "address");
	char why[256];

	if (usher_netaddr_parse(o->address, USHER_MEMCACHED_DEFAULT_PORT, &o->addr, why,
				sizeof(why)))
		return usher_cfg_error(ctx, n ? n : node, "address \"%s\": %s", o->address, why);
	return USHER_OK;
}

static const char *memcached_default_instance(struct usher_arena *a,
					      const struct usher_probe_conf *pc)
{
	const struct usher_memcached_opts *o = pc->opts;

	return usher_arena_strdup(a, o->address);
}

/* ---- the probe ---------------------------------------------------------- */

struct mc_probe {
	const struct usher_memcached_opts *o;
	struct usher_netclient *nc;
	struct usher_backoff backoff;
	struct usher_buf in; /* the answers of one run */
};

static void memcached_free(void *ctx)
{
	struct mc_probe *p = ctx;

	if (!p)
		return;
	usher_netclient_free(p->nc);
	usher_buf_free(&p->in);
	free(p);
}

static enum usher_err memcached_init(const struct usher_probe_conf *pc,
				     const struct usher_probe_env *env, void **ctx,
				     struct usher_error *err)
{
	struct mc_probe *p = usher_calloc(1, sizeof(*p));
	enum usher_err rc;

	(void)env;
	*ctx = NULL;
	p->o = pc->opts;
	usher_buf_init(&p->in, REPLY_MAX);
	rc = usher_netclient_new(&p->o->addr, NULL, &p->nc, err);
	if (rc) {
		memcached_free(p);
		return rc;
	}
	*ctx = p;
	return USHER_OK;
}

static void memcached_cancel(void *ctx, struct usher_probe_run *run)
{
	struct mc_probe *p = ctx;

	usher_netclient_cancel(p->nc, (uint64_t)run->started_mono_ns);
}

/* Where the line after the nth "END" line of b ends, or 0 while incomplete.
 * An ERROR line (an unknown command, a server error) ends the answers too:
 * the parser reports it. */
static size_t answers_end(const struct usher_buf *b, int nth, size_t *first_end)
{
	const char *d = b->data, *p = d, *end = d + b->len;
	int ends = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (!nl)
			return 0;
		n = (size_t)(nl - p);
		if (n && p[n - 1] == '\r')
			n--;
		if ((n == 3 && memcmp(p, "END", 3) == 0) ||
		    (n >= 5 && memcmp(p, "ERROR", 5) == 0) ||
		    (n >= 12 && memcmp(p, "CLIENT_ERROR", 12) == 0) ||
		    (n >= 12 && memcmp(p, "SERVER_ERROR", 12) == 0)) {
			if (++ends == 1)
				*first_end = (size_t)(nl + 1 - d);
			if (ends == nth || memcmp(p, "END", 3) != 0)
				return (size_t)(nl + 1 - d);
		}
		p = nl + 1;
	}
	return 0;
}

static enum usher_err connect_backoff(struct mc_probe *p, struct usher_probe_run *run,
				      struct usher_error *err)
{
	int64_t start_ms = run->started_mono_ns / 1000000;
	int64_t cdl = usher_mono_ms() + p->o->connect_timeout_ms;
	enum usher_err rc = usher_backoff_check(&p->backoff, start_ms, err);

	if (rc)
		return rc;
	if (cdl > run->deadline_mono_ms)
		cdl = run->deadline_mono_ms;
	rc = usher_netclient_connect(p->nc, cdl, err);
	if (rc)
		usher_backoff_failed(&p->backoff, start_ms, rc, usher_error_msg(err, rc));
	else
		usher_backoff_reset(&p->backoff);
	return rc;
}

/* Sends both commands and reads until both answers are in. */
static enum usher_err query(struct mc_probe *p, int64_t deadline, size_t *first_end, size_t *total,
			    struct usher_error *err)
{
	static const char cmds[] = "stats\r\nstats settings\r\n";
	char chunk[RECV_CHUNK];
	enum usher_err rc;
	size_t got;

	usher_buf_reset(&p->in);
	rc = usher_netclient_send(p->nc, cmds, sizeof(cmds) - 1, deadline, err);
	while (!rc && !(*total = answers_end(&p->in, 2, first_end))) {
		rc = usher_netclient_recv(p->nc, chunk, sizeof(chunk), &got, deadline, err);
		if (!rc && usher_buf_add(&p->in, chunk, got))
			rc = usher_fail(err, USHER_ERR_TOOBIG,
					"the answer to stats is larger than %d KiB",
					REPLY_MAX / 1024);
	}
	return rc;
}

static enum usher_err collect(struct mc_probe *p, struct usher_probe_run *run,
			      struct usher_error *err)
{
	bool reused = usher_netclient_connected(p->nc);
	size_t first_end = 0, total = 0;
	enum usher_err rc;

	if (usher_mono_ms() >= run->deadline_mono_ms)
		return usher_fail(err, USHER_ERR_TIMEOUT,
				  "the run started after its deadline (all workers were busy)");
	if (!reused) {
		rc = connect_backoff(p, run, err);
		if (rc)
			return rc;
	}
	rc = query(p, run->deadline_mono_ms, &first_end, &total, err);
	if (rc == USHER_ERR_NETWORK && reused) {
		/* the server dropped the idle connection: once more, fresh */
		usher_error_clear(err);
		rc = connect_backoff(p, run, err);
		if (!rc)
			rc = query(p, run->deadline_mono_ms, &first_end, &total, err);
	}
	if (rc)
		return rc;
	if (usher_memcached_stats_emit(run->samples, p->in.data, first_end, p->in.data + first_end,
				       total - first_end)) {
		/* out of step with the server, or not memcached: start over */
		usher_netclient_close(p->nc);
		return usher_fail(
		    err, USHER_ERR_PROTOCOL, "stats answered \"%.*s\"",
		    (int)strcspn(p->in.data, "\r\n") > 120 ? 120 : (int)strcspn(p->in.data, "\r\n"),
		    p->in.data);
	}
	return USHER_OK;
}

static void memcached_run(void *ctx, struct usher_probe_run *run)
{
	struct mc_probe *p = ctx;
	struct usher_error err;
	enum usher_err rc;

	usher_error_clear(&err);
	usher_netclient_begin(p->nc, (uint64_t)run->started_mono_ns);
	rc = collect(p, run, &err);
	if (rc)
		usher_probe_fail(run, usher_netclient_reason(rc), "%s", usher_error_msg(&err, rc));
	usher_sample_add(run->samples, &desc_up, rc ? 0 : 1, NULL);
}

const struct usher_probe_type usher_probe_memcached = {
    .name = "memcached",
    .help = "Memcached: `stats` as the series memcached_exporter names",
    .series = USHER_SERIES_PROBE,
    .options = usher_memcached_options,
    .opts_size = sizeof(struct usher_memcached_opts),
    .check = memcached_check,
    .default_instance = memcached_default_instance,
    .init = memcached_init,
    .cancel = memcached_cancel,
    .run = memcached_run,
    .free = memcached_free,
};
