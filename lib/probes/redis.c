/* The Redis probe: options and their checks, the INFO parser (redis_exporter's
 * names, help and types), and the run on a worker thread: one persistent
 * connection with reconnect backoff, PING timed, INFO ALL and SLOWLOG LEN
 * pipelined, then SCAN MATCH per key pattern with MEMORY USAGE pipelined,
 * all within the run's deadline and the per-run key budget. */
#include "probes/redis.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/resp.h"

/* Limits on what the server may make us hold. A reply over them fails the
 * run ("protocol") instead of growing without bound. */
#define REPLY_MAX_BYTES    (8u << 20)
#define REPLY_MAX_ELEMENTS 200000u
#define CMD_MAX_BYTES      (16u << 20)
#define RECV_CHUNK         16384
/* INFO: lines looked at, and series per label family, at most. */
#define INFO_MAX_LINES    20000
#define INFO_MAX_LABELLED 1024
/* redis_db_keys is padded with zeros for at most this many databases. */
#define DB_PAD_MAX        256
#define DEFAULT_DATABASES 16
/* SCAN's COUNT hint, at most (it bounds one reply's keys). */
#define SCAN_COUNT_MAX 10000
/* Key patterns stop this long before the deadline, so the run ends with
 * what it counted (marked truncated) instead of timing out. */
#define KP_RESERVE_MAX_MS 1000
#define CLIENT_NAME       "usher"

/* ---- metric descriptions ------------------------------------------------ */

/* An INFO field and the series redis_exporter makes of it. */
struct info_field {
	const char *field;
	struct usher_metric_desc desc;
	double divisor; /* latest_fork_usec: 1e6, for seconds */
};

/* clang-format off */
#define G(f, n) {f, {"redis_" n, USHER_METRIC_GAUGE, n " metric"}, 1}
#define C(f, n) {f, {"redis_" n, USHER_METRIC_COUNTER, n "_total metric"}, 1}
/* clang-format on */

static const struct info_field info_fields[] = {
    /* Server, Clients */
    G("uptime_in_seconds", "uptime_in_seconds"),
    G("connected_clients", "connected_clients"),
    G("blocked_clients", "blocked_clients"),
    G("tracking_clients", "tracking_clients"),
    G("client_recent_max_input_buffer", "client_recent_max_input_buffer_bytes"),
    G("client_recent_max_output_buffer", "client_recent_max_output_buffer_bytes"),
    /* Memory */
    G("used_memory", "memory_used_bytes"),
    G("used_memory_rss", "memory_used_rss_bytes"),
    G("used_memory_peak", "memory_used_peak_bytes"),
    G("used_memory_lua", "memory_used_lua_bytes"),
    G("used_memory_scripts", "memory_used_scripts_bytes"),
    G("used_memory_overhead", "memory_used_overhead_bytes"),
    G("used_memory_startup", "memory_used_startup_bytes"),
    G("used_memory_dataset", "memory_used_dataset_bytes"),
    G("maxmemory", "memory_max_bytes"),
    G("mem_fragmentation_ratio", "mem_fragmentation_ratio"),
    G("mem_fragmentation_bytes", "mem_fragmentation_bytes"),
    G("mem_clients_slaves", "mem_clients_slaves"),
    G("mem_clients_normal", "mem_clients_normal"),
    G("lazyfree_pending_objects", "lazyfree_pending_objects"),
    G("active_defrag_running", "active_defrag_running"),
    /* Persistence */
    G("loading", "loading_dump_file"),
    G("rdb_changes_since_last_save", "rdb_changes_since_last_save"),
    G("rdb_bgsave_in_progress", "rdb_bgsave_in_progress"),
    G("rdb_last_save_time", "rdb_last_save_timestamp_seconds"),
    G("rdb_last_bgsave_status", "rdb_last_bgsave_status"),
    G("rdb_last_bgsave_time_sec", "rdb_last_bgsave_duration_sec"),
    G("rdb_current_bgsave_time_sec", "rdb_current_bgsave_duration_sec"),
    G("aof_enabled", "aof_enabled"),
    G("aof_rewrite_in_progress", "aof_rewrite_in_progress"),
    G("aof_rewrite_scheduled", "aof_rewrite_scheduled"),
    G("aof_last_rewrite_time_sec", "aof_last_rewrite_duration_sec"),
    G("aof_current_rewrite_time_sec", "aof_current_rewrite_duration_sec"),
    G("aof_last_bgrewrite_status", "aof_last_bgrewrite_status"),
    G("aof_last_write_status", "aof_last_write_status"),
    /* Stats */
    G("pubsub_channels", "pubsub_channels"),
    G("pubsub_patterns", "pubsub_patterns"),
    {"latest_fork_usec",
     {"redis_latest_fork_seconds", USHER_METRIC_GAUGE, "latest_fork_seconds metric"},
     1e6},
    C("total_connections_received", "connections_received"),
    C("total_commands_processed", "commands_processed"),
    C("rejected_connections", "rejected_connections"),
    C("total_net_input_bytes", "net_input_bytes"),
    C("total_net_output_bytes", "net_output_bytes"),
    C("expired_keys", "expired_keys"),
    C("evicted_keys", "evicted_keys"),
    C("keyspace_hits", "keyspace_hits"),
    C("keyspace_misses", "keyspace_misses"),
    /* Replication */
    G("connected_slaves", "connected_slaves"),
    G("repl_backlog_size", "replication_backlog_bytes"),
    G("repl_backlog_active", "repl_backlog_is_active"),
    G("master_repl_offset", "master_repl_offset"),
    /* CPU */
    C("used_cpu_sys", "cpu_sys_seconds"),
    C("used_cpu_user", "cpu_user_seconds"),
    C("used_cpu_sys_children", "cpu_sys_children_seconds"),
    C("used_cpu_user_children", "cpu_user_children_seconds"),
};

#undef G
#undef C

static const struct usher_metric_desc desc_start_time = {
    "redis_start_time_seconds", USHER_METRIC_GAUGE,
    "Start time of the Redis instance since unix epoch in seconds."};
static const struct usher_metric_desc desc_instance_info = {
    "redis_instance_info", USHER_METRIC_GAUGE, "Information about the Redis instance"};
static const struct usher_metric_desc desc_db_keys = {"redis_db_keys", USHER_METRIC_GAUGE,
						      "Total number of keys by DB"};
static const struct usher_metric_desc desc_db_keys_expiring = {
    "redis_db_keys_expiring", USHER_METRIC_GAUGE, "Total number of expiring keys by DB"};
static const struct usher_metric_desc desc_db_avg_ttl = {"redis_db_avg_ttl_seconds",
							 USHER_METRIC_GAUGE, "Avg TTL in seconds"};
static const struct usher_metric_desc desc_commands = {"redis_commands", USHER_METRIC_COUNTER,
						       "Total number of calls per command"};
static const struct usher_metric_desc desc_commands_duration = {
    "redis_commands_duration_seconds", USHER_METRIC_COUNTER,
    "Total amount of time in seconds spent per command"};
static const struct usher_metric_desc desc_master_link_up = {
    "redis_master_link_up", USHER_METRIC_GAUGE, "Master link status on Redis slave"};
static const struct usher_metric_desc desc_master_last_io = {
    "redis_master_last_io_seconds_ago", USHER_METRIC_GAUGE, "Master last io seconds ago"};
static const struct usher_metric_desc desc_master_sync = {
    "redis_master_sync_in_progress", USHER_METRIC_GAUGE, "Master sync in progress"};
static const struct usher_metric_desc desc_slave_repl_offset = {
    "redis_slave_repl_offset", USHER_METRIC_GAUGE, "Slave replication offset"};
static const struct usher_metric_desc desc_slave_offset = {
    "redis_connected_slave_offset_bytes", USHER_METRIC_GAUGE, "Offset of connected slave"};
static const struct usher_metric_desc desc_slave_lag = {
    "redis_connected_slave_lag_seconds", USHER_METRIC_GAUGE, "Lag of connected slave"};

static const struct usher_metric_desc desc_up = {"redis_up", USHER_METRIC_GAUGE,
						 "Information about the Redis instance"};
static const struct usher_metric_desc desc_slowlog = {"redis_slowlog_length", USHER_METRIC_GAUGE,
						      "Total slowlog"};
static const struct usher_metric_desc desc_ping = {
    "usher_redis_ping_duration_seconds", USHER_METRIC_HISTOGRAM,
    "Round-trip time of PING on the probe's connection"};
static const struct usher_metric_desc desc_kp_keys = {
    "usher_redis_key_pattern_keys", USHER_METRIC_GAUGE,
    "Keys matching the pattern that SCAN returned in the last run (a lower bound when "
    "truncated)"};
static const struct usher_metric_desc desc_kp_bytes = {
    "usher_redis_key_pattern_bytes", USHER_METRIC_GAUGE,
    "Sum of MEMORY USAGE (STRLEN where MEMORY is not available) of those keys"};
static const struct usher_metric_desc desc_kp_truncated = {
    "usher_redis_key_pattern_truncated", USHER_METRIC_GAUGE,
    "1 when the key budget or the run's time budget stopped the pattern's SCAN early"};
static const struct usher_metric_desc desc_kp_duration = {
    "usher_redis_key_pattern_duration_seconds", USHER_METRIC_GAUGE,
    "Time the last run spent scanning for the pattern"};

static const double ping_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				     0.025,  0.05,    0.1,    0.25,  0.5,    1};
#define NPING (sizeof(ping_bounds) / sizeof(ping_bounds[0]))

/* ---- INFO --------------------------------------------------------------- */

struct info_line {
	const char *key, *val;
	size_t pos;  /* line order, so the first of equal keys wins */
	bool repeat; /* an earlier line has the same key */
};

/* The lines of an INFO reply: sorted by key for lookups, and in the
 * server's order through by_pos for the labelled families. */
struct info {
	struct info_line *v;
	size_t n;
	size_t *by_pos;
};

static int line_cmp(const void *a, const void *b)
{
	const struct info_line *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The value of the first line with key, or NULL. */
static const char *info_get(const struct info *in, const char *key)
{
	const struct info_line *v = in->v;
	size_t lo = 0, hi = in->n, n = in->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(v[lo].key, key) == 0 ? v[lo].val : NULL;
}

/* A decimal number as Go's ParseFloat reads one (no hex, no inf/nan). */
static bool parse_number(const char *s, double *out)
{
	const char *p = s;
	char *end;
	bool digits = false;

	if (*p == '-' || *p == '+')
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
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return end == p;
}

/* An INFO value as redis_exporter reads it: ok/true are 1, err/fail/false
 * are 0, else a number. */
static bool info_value(const char *s, double *out)
{
	if (strcmp(s, "ok") == 0 || strcmp(s, "true") == 0) {
		*out = 1;
		return true;
	}
	if (strcmp(s, "err") == 0 || strcmp(s, "fail") == 0 || strcmp(s, "false") == 0) {
		*out = 0;
		return true;
	}
	return parse_number(s, out);
}

/* The value of name in "a=1,name=2,b=x" copied into out, or NULL. */
static const char *subfield(const char *s, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);

	while (*s) {
		size_t fl = strcspn(s, ",");

		if (fl > nl && strncmp(s, name, nl) == 0 && s[nl] == '=') {
			size_t vl = fl - nl - 1;

			if (vl >= len)
				return NULL;
			memcpy(out, s + nl + 1, vl);
			out[vl] = '\0';
			return out;
		}
		s += fl;
		if (*s == ',')
			s++;
	}
	return NULL;
}

static bool subnumber(const char *s, const char *name, double *out)
{
	char buf[64];

	return subfield(s, name, buf, sizeof(buf)) && parse_number(buf, out);
}

/* "<prefix><digits>" with at most 9 digits: the number, else -1. */
static long numbered(const char *key, const char *prefix)
{
	size_t pl = strlen(prefix), i;
	long v = 0;

	if (strncmp(key, prefix, pl) != 0 || !key[pl] || strlen(key + pl) > 9)
		return -1;
	for (i = pl; key[i]; i++) {
		if (key[i] < '0' || key[i] > '9')
			return -1;
		v = v * 10 + (key[i] - '0');
	}
	return v;
}

/* The ith line in the server's order, NULL for a repeated key. */
static const struct info_line *nth(const struct info *in, size_t i)
{
	const struct info_line *l = &in->v[in->by_pos[i]];

	return l->repeat ? NULL : l;
}

static void emit_keyspace(struct usher_sample_set *s, const struct info *in, unsigned databases)
{
	bool seen[DB_PAD_MAX] = {false};
	size_t i, count = 0;
	unsigned d;

	for (i = 0; i < in->n && count < INFO_MAX_LABELLED; i++) {
		const struct info_line *l = nth(in, i);
		long db = l ? numbered(l->key, "db") : -1;
		double keys, expires, ttl;

		if (db < 0)
			continue;
		if (!subnumber(l->val, "keys", &keys) || !subnumber(l->val, "expires", &expires))
			continue;
		usher_sample_add(s, &desc_db_keys, keys, "db", l->key, NULL);
		usher_sample_add(s, &desc_db_keys_expiring, expires, "db", l->key, NULL);
		if (subnumber(l->val, "avg_ttl", &ttl))
			usher_sample_add(s, &desc_db_avg_ttl, ttl / 1000, "db", l->key, NULL);
		if (db < DB_PAD_MAX)
			seen[db] = true;
		count++;
	}
	for (d = 0; d < databases && d < DB_PAD_MAX; d++) {
		char name[16];

		if (seen[d])
			continue;
		snprintf(name, sizeof(name), "db%u", d);
		usher_sample_add(s, &desc_db_keys, 0, "db", name, NULL);
		usher_sample_add(s, &desc_db_keys_expiring, 0, "db", name, NULL);
	}
}

/* cmdstat_get:calls=21,usec=175,usec_per_call=8.33[,rejected_calls=0,...] */
static void emit_commandstats(struct usher_sample_set *s, const struct info *in)
{
	size_t i, count = 0;

	for (i = 0; i < in->n && count < INFO_MAX_LABELLED; i++) {
		const struct info_line *l = nth(in, i);
		const char *cmd;
		double calls, usec;

		if (!l || strncmp(l->key, "cmdstat_", 8) != 0 || !l->key[8])
			continue;
		cmd = l->key + 8;
		if (!subnumber(l->val, "calls", &calls) || !subnumber(l->val, "usec", &usec))
			continue;
		usher_sample_add(s, &desc_commands, calls, "cmd", cmd, NULL);
		usher_sample_add(s, &desc_commands_duration, usec / 1e6, "cmd", cmd, NULL);
		count++;
	}
}

/* slave0:ip=10.0.0.2,port=6379,state=online,offset=1751844676,lag=0 */
static void emit_slaves(struct usher_sample_set *s, const struct info *in)
{
	size_t i, count = 0;

	for (i = 0; i < in->n && count < INFO_MAX_LABELLED; i++) {
		const struct info_line *l = nth(in, i);
		char ip[128], port[16], state[64];
		double offset, lag;

		if (!l || numbered(l->key, "slave") < 0 || !subnumber(l->val, "offset", &offset))
			continue;
		if (!subfield(l->val, "ip", ip, sizeof(ip)))
			ip[0] = '\0';
		if (!subfield(l->val, "port", port, sizeof(port)))
			port[0] = '\0';
		if (!subfield(l->val, "state", state, sizeof(state)))
			state[0] = '\0';
		usher_sample_add(s, &desc_slave_offset, offset, "slave_ip", ip, "slave_port", port,
				 "slave_state", state, NULL);
		if (subnumber(l->val, "lag", &lag))
			usher_sample_add(s, &desc_slave_lag, lag, "slave_ip", ip, "slave_port",
					 port, "slave_state", state, NULL);
		count++;
	}
}

static void emit_replica(struct usher_sample_set *s, const struct info *in)
{
	const char *host = info_get(in, "master_host"), *port = info_get(in, "master_port");
	const char *link = info_get(in, "master_link_status");
	static const struct {
		const char *field;
		const struct usher_metric_desc *desc;
	} extra[] = {
	    {"master_last_io_seconds_ago", &desc_master_last_io},
	    {"master_sync_in_progress", &desc_master_sync},
	    {"slave_repl_offset", &desc_slave_repl_offset},
	};
	size_t i;

	/* only replicas have a link to a master */
	if (!link)
		return;
	host = host ? host : "";
	port = port ? port : "";
	usher_sample_add(s, &desc_master_link_up, strcmp(link, "up") == 0 ? 1 : 0, "master_host",
			 host, "master_port", port, NULL);
	for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		const char *val = info_get(in, extra[i].field);
		double d;

		if (val && parse_number(val, &d))
			usher_sample_add(s, extra[i].desc, d, "master_host", host, "master_port",
					 port, NULL);
	}
}

enum usher_err usher_redis_info_emit(struct usher_sample_set *s, const char *text, size_t len,
				     unsigned databases, int64_t now_s)
{
	static const char *const info_labels[] = {
	    "role",     "redis_version", "redis_build_id", "redis_mode", "os", "maxmemory_policy",
	    "tcp_port", "run_id",        "process_id"};
	const char *pairs[2 * sizeof(info_labels) / sizeof(info_labels[0]) + 1];
	struct info in = {NULL, 0, NULL};
	struct info_line *v = NULL;
	size_t n = 0, cap = 0, i;
	char *copy = usher_malloc(len + 1), *p, *end;
	const char *uptime;
	double d;

	/* one copy, cut into NUL-terminated keys and values in place */
	memcpy(copy, text, len);
	copy[len] = '\0';
	end = copy + len;
	for (p = copy; p < end && n < INFO_MAX_LINES;) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *line = p, *colon, *e;

		if (nl)
			*nl = '\0';
		p = nl ? nl + 1 : end;
		e = line + strlen(line);
		while (e > line && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (line[0] == '#' || !(colon = strchr(line, ':')) || colon == line)
			continue;
		*colon = '\0';
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			v = usher_realloc(v, cap * sizeof(*v));
		}
		v[n].key = line;
		v[n].val = colon + 1;
		v[n].pos = n;
		v[n].repeat = false;
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), line_cmp);
	in.v = v;
	in.n = n;
	if (!info_get(&in, "redis_version")) {
		free(v);
		free(copy);
		return USHER_ERR_PROTOCOL;
	}
	in.by_pos = usher_malloc((n ? n : 1) * sizeof(*in.by_pos));
	for (i = 0; i < n; i++) {
		v[i].repeat = i > 0 && strcmp(v[i - 1].key, v[i].key) == 0;
		in.by_pos[v[i].pos] = i;
	}

	for (i = 0; i < sizeof(info_fields) / sizeof(info_fields[0]); i++) {
		const char *val = info_get(&in, info_fields[i].field);

		if (val && info_value(val, &d))
			usher_sample_add(s, &info_fields[i].desc, d / info_fields[i].divisor, NULL);
	}
	uptime = info_get(&in, "uptime_in_seconds");
	if (uptime && parse_number(uptime, &d))
		usher_sample_add(s, &desc_start_time, (double)now_s - d, NULL);
	for (i = 0; i < sizeof(info_labels) / sizeof(info_labels[0]); i++) {
		const char *val = info_get(&in, info_labels[i]);

		pairs[2 * i] = info_labels[i];
		pairs[2 * i + 1] = val ? val : "";
	}
	pairs[2 * i] = NULL;
	usher_sample_addv(s, &desc_instance_info, 1, pairs);
	emit_keyspace(s, &in, databases);
	emit_commandstats(s, &in);
	emit_slaves(s, &in);
	emit_replica(s, &in);
	free(in.by_pos);
	free(v);
	free(copy);
	return USHER_OK;
}

/* ---- options ------------------------------------------------------------ */

#define KP_OFF(f) offsetof(struct usher_redis_key_pattern, f)
static const struct usher_option key_pattern_options[] = {
    {.key = "pattern",
     .type = USHER_OPT_STR,
     .offset = KP_OFF(pattern),
     .flags = USHER_OPT_REQUIRED,
     .help = "a glob as SCAN MATCH takes it, e.g. hold:*"},
    {.key = "count_only",
     .type = USHER_OPT_BOOL,
     .offset = KP_OFF(count_only),
     .def = "false",
     .help = "count the keys only, without asking for their memory usage"},
    USHER_OPT_END,
};

static enum usher_err parse_key_patterns(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					 void *field)
{
	struct usher_list *l = field;
	struct usher_redis_key_pattern *v;
	const struct usher_ynode *const *items = (const struct usher_ynode *const *)n->items;
	enum usher_err rc = USHER_OK;
	size_t i, j, count = n->n;

	l->n = 0;
	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind == USHER_Y_SCALAR) { /* a list of one, as for strings */
		items = &n;
		count = 1;
	} else if (n->kind != USHER_Y_SEQ) {
		return usher_cfg_error(ctx, n,
				       "key_patterns: expected a list of patterns, got a %s",
				       usher_ynode_kind_name(n->kind));
	}
	v = usher_arena_zalloc(ctx->arena, (count ? count : 1) * sizeof(*v));
	for (i = 0; i < count; i++) {
		const struct usher_ynode *it = items[i];

		if (it->kind == USHER_Y_SCALAR) {
			v[i].pattern = it->value;
		} else if (it->kind == USHER_Y_MAP) {
			if (usher_opts_apply1(ctx, key_pattern_options, &v[i], it)) {
				rc = USHER_ERR_INVALID;
				continue;
			}
		} else {
			rc = usher_cfg_error(ctx, it,
					     "key_patterns: expected a pattern or a mapping with "
					     "pattern, got a %s",
					     usher_ynode_kind_name(it->kind));
			continue;
		}
		if (!v[i].pattern || !*v[i].pattern) {
			rc = usher_cfg_error(ctx, it,
					     "key_patterns: empty pattern (use \"*\" for "
					     "every key)");
			continue;
		}
		for (j = 0; j < i; j++) {
			if (v[j].pattern && strcmp(v[j].pattern, v[i].pattern) == 0) {
				rc = usher_cfg_error(ctx, it,
						     "key_patterns: \"%s\" is listed twice (first "
						     "at line %d)",
						     v[i].pattern, items[j]->line);
				break;
			}
		}
	}
	l->v = v;
	l->n = count;
	return rc;
}

#define OFF(f) offsetof(struct usher_redis_opts, f)
const struct usher_option usher_redis_options[] = {
    {.key = "address",
     .type = USHER_OPT_STR,
     .offset = OFF(address),
     .flags = USHER_OPT_REQUIRED,
     .help = "host:port, [ipv6]:port or unix:/path/to/redis.sock (the port defaults to 6379)"},
    {.key = "username",
     .type = USHER_OPT_STR,
     .offset = OFF(username),
     .help = "ACL user for AUTH (Redis 6 and later); needs password"},
    {.key = "password",
     .type = USHER_OPT_SECRET,
     .offset = OFF(password),
     .help = "password for AUTH: use ${env:NAME} or ${file:/path}"},
    {.key = "db",
     .type = USHER_OPT_INT,
     .offset = OFF(db),
     .def = "0",
     .help = "database to SELECT; key_patterns are scanned in it"},
    {.key = "tls",
     .type = USHER_OPT_SECTION,
     .offset = OFF(tls),
     .help = "connect over TLS (tls: {} for TLS with the system's CAs)",
     .sub = usher_tls_client_options},
    {.key = "connect_timeout",
     .type = USHER_OPT_DURATION,
     .offset = OFF(connect_timeout_ms),
     .def = "5s",
     .flags = USHER_OPT_POSITIVE,
     .help = "how long connecting (with TLS, AUTH and SELECT) may take, within the run's "
	     "timeout"},
    {.key = "key_patterns",
     .type = USHER_OPT_CUSTOM,
     .offset = OFF(key_patterns),
     .help = "count the keys matching each SCAN pattern, and their memory (a pattern, or "
	     "{pattern, count_only})",
     .sub = key_pattern_options,
     .parse = parse_key_patterns},
    {.key = "key_budget",
     .type = USHER_OPT_INT,
     .offset = OFF(key_budget),
     .def = "10000",
     .flags = USHER_OPT_POSITIVE,
     .help = "the most keys SCAN may examine per run over all key_patterns (SCAN's COUNT "
	     "counts against it); a pattern cut short is marked truncated"},
    {.key = "scan_count",
     .type = USHER_OPT_INT,
     .offset = OFF(scan_count),
     .def = "1000",
     .flags = USHER_OPT_POSITIVE,
     .help = "the COUNT hint of each SCAN call (at most 10000)"},
    USHER_OPT_END,
};

static const struct usher_ynode *at(const struct usher_ynode *map, const char *key)
{
	const struct usher_ynode *n = usher_ynode_get(map, key);

	return n ? n : map;
}

static enum usher_err check_readable(struct usher_cfgctx *ctx, const struct usher_ynode *tls,
				     const char *key, const char *path)
{
	if (!path || access(path, R_OK) == 0)
		return USHER_OK;
	return usher_cfg_error(ctx, at(tls, key), "tls.%s: cannot read %s: %s", key, path,
			       strerror(errno));
}

static enum usher_err redis_check(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
				  const struct usher_ynode *node)
{
	struct usher_redis_opts *o = pc->opts;
	const struct usher_ynode *tls = usher_ynode_get(node, "tls");
	enum usher_err rc = USHER_OK;
	struct usher_error err;
	char why[256];

	if (usher_netaddr_parse(o->address, USHER_REDIS_DEFAULT_PORT, &o->addr, why, sizeof(why)))
		rc = usher_cfg_error(ctx, at(node, "address"), "address \"%s\": %s", o->address,
				     why);
	if (o->username && !o->password)
		rc = usher_cfg_error(ctx, at(node, "username"), "username needs a password");
	if (o->db < 0)
		rc = usher_cfg_error(ctx, at(node, "db"), "db: must be 0 or more");
	if (o->scan_count > SCAN_COUNT_MAX)
		rc = usher_cfg_error(ctx, at(node, "scan_count"), "scan_count: at most %d",
				     SCAN_COUNT_MAX);
	else if (o->key_patterns.n && o->scan_count > o->key_budget)
		rc = usher_cfg_error(ctx,
				     usher_ynode_get(node, "scan_count") ? at(node, "scan_count")
									 : at(node, "key_budget"),
				     "scan_count %lld is more than key_budget %lld: one SCAN "
				     "would spend the whole budget",
				     (long long)o->scan_count, (long long)o->key_budget);
	o->tls_enabled = tls && !usher_ynode_is_null(tls);
	if (!o->tls_enabled)
		return rc;
	if (!rc && o->addr.is_unix)
		return usher_cfg_error(ctx, tls, "tls: a unix socket address takes no TLS");
	if (o->tls.key_file && !o->tls.cert_file)
		return usher_cfg_error(ctx, at(tls, "key_file"), "tls: key_file needs cert_file");
	if (check_readable(ctx, tls, "ca_file", o->tls.ca_file) ||
	    check_readable(ctx, tls, "cert_file", o->tls.cert_file) ||
	    check_readable(ctx, tls, "key_file", o->tls.key_file))
		return USHER_ERR_INVALID;
	usher_error_clear(&err);
	if (usher_netclient_tls_check(&o->tls, &err))
		rc = usher_cfg_error(ctx, tls, "tls: %s", err.msg);
	return rc;
}

static const char *redis_default_instance(struct usher_arena *a, const struct usher_probe_conf *pc)
{
	const struct usher_redis_opts *o = pc->opts;

	return usher_arena_strdup(a, o->address);
}

/* ---- the probe ---------------------------------------------------------- */

struct redis_probe {
	const struct usher_redis_opts *o;
	struct usher_netclient *nc;
	struct usher_resp_reader *rd;
	bool ready;           /* connected, authenticated, db selected */
	bool no_memory_usage; /* MEMORY USAGE refused: STRLEN instead */
	unsigned databases;   /* CONFIG GET databases, for redis_db_keys' zeros */
	struct usher_backoff backoff;
	uint64_t ping_counts[NPING];
	struct usher_histogram ping;
	struct usher_buf cmd; /* the pipeline being built */
	char rbuf[RECV_CHUNK];
};

static void redis_free(void *ctx)
{
	struct redis_probe *p = ctx;

	if (!p)
		return;
	usher_netclient_free(p->nc);
	usher_resp_reader_free(p->rd);
	usher_buf_free(&p->cmd);
	free(p);
}

static enum usher_err redis_init(const struct usher_probe_conf *pc,
				 const struct usher_probe_env *env, void **ctx,
				 struct usher_error *err)
{
	struct redis_probe *p = usher_calloc(1, sizeof(*p));
	enum usher_err rc;

	(void)env;
	*ctx = NULL;
	p->o = pc->opts;
	p->databases = DEFAULT_DATABASES;
	p->ping.nbuckets = NPING;
	p->ping.bounds = ping_bounds;
	p->ping.counts = p->ping_counts;
	usher_buf_init(&p->cmd, CMD_MAX_BYTES);
	p->rd = usher_resp_reader_new(REPLY_MAX_BYTES, REPLY_MAX_ELEMENTS);
	rc = usher_netclient_new(&p->o->addr, p->o->tls_enabled ? &p->o->tls : NULL, &p->nc, err);
	if (rc) {
		redis_free(p);
		return rc;
	}
	*ctx = p;
	return USHER_OK;
}

static void redis_cancel(void *ctx, struct usher_probe_run *run)
{
	struct redis_probe *p = ctx;

	usher_netclient_cancel(p->nc, (uint64_t)run->started_mono_ns);
}

static void disconnect(struct redis_probe *p)
{
	usher_netclient_close(p->nc);
	usher_resp_reader_reset(p->rd);
	p->ready = false;
}

/* Appends a command to the pipeline. */
static enum usher_err add_cmd(struct redis_probe *p, int argc, const char *const *argv,
			      const size_t *lens, struct usher_error *err)
{
	if (usher_resp_format(&p->cmd, argc, argv, lens))
		return usher_fail(err, USHER_ERR_TOOBIG, "a pipeline of commands passed %u bytes",
				  CMD_MAX_BYTES);
	return USHER_OK;
}

/* Sends the pipeline and reads its n replies into out (each freed by the
 * caller). On failure nothing is left in out and the connection is
 * dropped: its replies can no longer be matched to their commands. */
static enum usher_err exchange(struct redis_probe *p, struct usher_resp **out, size_t n,
			       int64_t deadline, const char *what, struct usher_error *err)
{
	enum usher_err rc;
	size_t i, got;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	rc = usher_netclient_send(p->nc, p->cmd.data, p->cmd.len, deadline, err);
	usher_buf_reset(&p->cmd);
	for (i = 0; !rc && i < n;) {
		rc = usher_resp_reader_next(p->rd, &out[i], err);
		if (rc || out[i]) {
			i += !rc;
			continue;
		}
		rc = usher_netclient_recv(p->nc, p->rbuf, sizeof(p->rbuf), &got, deadline, err);
		if (!rc)
			rc = usher_resp_reader_feed(p->rd, p->rbuf, got, err);
	}
	if (!rc)
		return USHER_OK;
	for (i = 0; i < n; i++) {
		usher_resp_free(out[i]);
		out[i] = NULL;
	}
	disconnect(p);
	/* say what was waited for: the socket layer's message does not know */
	{
		struct usher_error inner = *err;

		usher_error_clear(err);
		return usher_fail(err, rc, "%s: %s", what, inner.msg);
	}
}

static bool starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* An error reply as a failure of the run: credentials and permissions are
 * USHER_ERR_AUTH, anything else the server refused USHER_ERR_INVALID. */
static enum usher_err reply_error(const struct usher_resp *r, const char *what,
				  struct usher_error *err)
{
	if (starts(r->str, "NOAUTH"))
		return usher_fail(err, USHER_ERR_AUTH,
				  "%s: the server wants a password (%s): set password", what,
				  r->str);
	if (starts(r->str, "WRONGPASS") || starts(r->str, "NOPERM") ||
	    starts(r->str, "ERR invalid password") || starts(r->str, "ERR AUTH") ||
	    starts(r->str, "ERR Client sent AUTH") || starts(r->str, "ERR invalid username"))
		return usher_fail(err, USHER_ERR_AUTH, "%s refused: %s", what, r->str);
	return usher_fail(err, USHER_ERR_INVALID, "%s: %s", what, r->str);
}

/* Connects, authenticates and selects the database. */
static enum usher_err setup_connection(struct redis_probe *p, int64_t deadline,
				       struct usher_error *err)
{
	const struct usher_redis_opts *o = p->o;
	struct usher_resp *r[5] = {NULL};
	size_t n = 0, i, i_auth = SIZE_MAX, i_select = SIZE_MAX, i_mem = SIZE_MAX, i_cfg = SIZE_MAX;
	int64_t cdl = usher_mono_ms() + o->connect_timeout_ms;
	char dbtext[24];
	enum usher_err rc;

	disconnect(p);
	if (cdl > deadline)
		cdl = deadline;
	rc = usher_netclient_connect(p->nc, cdl, err);
	if (rc)
		return rc;
	if (o->password) {
		const char *argv[3] = {"AUTH", o->username ? o->username : o->password,
				       o->password};

		i_auth = n++;
		rc = add_cmd(p, o->username ? 3 : 2, argv, NULL, err);
	}
	if (!rc && o->db) {
		const char *argv[2] = {"SELECT", dbtext};

		snprintf(dbtext, sizeof(dbtext), "%lld", (long long)o->db);
		i_select = n++;
		rc = add_cmd(p, 2, argv, NULL, err);
	}
	if (!rc) {
		const char *argv[3] = {"CLIENT", "SETNAME", CLIENT_NAME};

		n++;
		rc = add_cmd(p, 3, argv, NULL, err);
	}
	if (!rc) {
		const char *argv[3] = {"CONFIG", "GET", "databases"};

		i_cfg = n++;
		rc = add_cmd(p, 3, argv, NULL, err);
	}
	/* whether MEMORY USAGE works (Redis 4+, not renamed away): a missing
	 * key gives nil, a refusal an error */
	if (!rc && o->key_patterns.n) {
		const char *argv[3] = {"MEMORY", "USAGE", "usher:probe:no-such-key"};

		i_mem = n++;
		rc = add_cmd(p, 3, argv, NULL, err);
	}
	if (!rc)
		rc = exchange(p, r, n, cdl, "connection setup", err);
	if (rc) {
		disconnect(p);
		return rc;
	}
	if (i_auth != SIZE_MAX && r[i_auth]->type == USHER_RESP_ERROR)
		rc = reply_error(r[i_auth], o->username ? "AUTH as user" : "AUTH", err);
	else if (i_select != SIZE_MAX && r[i_select]->type == USHER_RESP_ERROR)
		rc = reply_error(r[i_select], "SELECT", err);
	/* CLIENT SETNAME and CONFIG may be refused or renamed: no matter */
	if (!rc && i_cfg != SIZE_MAX) {
		const struct usher_resp *c = r[i_cfg];
		double d;

		p->databases = DEFAULT_DATABASES;
		if (c->type == USHER_RESP_ARRAY && c->n == 2 &&
		    c->elem[1]->type == USHER_RESP_STRING && parse_number(c->elem[1]->str, &d) &&
		    d >= 1 && d <= 1e9)
			p->databases = (unsigned)d;
		p->no_memory_usage = i_mem != SIZE_MAX && r[i_mem]->type == USHER_RESP_ERROR;
	}
	for (i = 0; i < n; i++)
		usher_resp_free(r[i]);
	if (rc) {
		disconnect(p);
		return rc;
	}
	p->ready = true;
	return USHER_OK;
}

/* setup_connection under the reconnect backoff. */
static enum usher_err connect_backoff(struct redis_probe *p, struct usher_probe_run *run,
				      struct usher_error *err)
{
	int64_t start_ms = run->started_mono_ns / 1000000;
	enum usher_err rc = usher_backoff_check(&p->backoff, start_ms, err);

	if (rc)
		return rc;
	rc = setup_connection(p, run->deadline_mono_ms, err);
	if (rc)
		usher_backoff_failed(&p->backoff, start_ms, rc, usher_error_msg(err, rc));
	else
		usher_backoff_reset(&p->backoff);
	return rc;
}

static enum usher_err ping(struct redis_probe *p, int64_t deadline, struct usher_error *err)
{
	static const char *const argv[] = {"PING"};
	struct usher_resp *r;
	int64_t t0;
	enum usher_err rc;
	char shown[256];

	rc = add_cmd(p, 1, argv, NULL, err);
	if (rc)
		return rc;
	t0 = usher_mono_ns();
	rc = exchange(p, &r, 1, deadline, "PING", err);
	if (rc)
		return rc;
	if (r->type == USHER_RESP_STATUS && strcmp(r->str, "PONG") == 0)
		usher_histogram_observe(&p->ping, (double)(usher_mono_ns() - t0) / 1e9);
	else if (r->type == USHER_RESP_ERROR)
		rc = reply_error(r, "PING", err);
	else
		rc = usher_fail(err, USHER_ERR_PROTOCOL, "PING answered %s, not +PONG",
				usher_resp_describe(r, shown, sizeof(shown)));
	usher_resp_free(r);
	return rc;
}

static enum usher_err info(struct redis_probe *p, struct usher_probe_run *run,
			   struct usher_error *err)
{
	static const char *const info_argv[] = {"INFO", "ALL"};
	static const char *const slowlog_argv[] = {"SLOWLOG", "LEN"};
	struct usher_resp *r[2];
	enum usher_err rc;
	char shown[256];

	rc = add_cmd(p, 2, info_argv, NULL, err);
	if (!rc)
		rc = add_cmd(p, 2, slowlog_argv, NULL, err);
	if (!rc)
		rc = exchange(p, r, 2, run->deadline_mono_ms, "INFO", err);
	if (rc)
		return rc;
	if (r[0]->type == USHER_RESP_ERROR)
		rc = reply_error(r[0], "INFO", err);
	else if (r[0]->type != USHER_RESP_STRING ||
		 usher_redis_info_emit(run->samples, r[0]->str, r[0]->len, p->databases,
				       usher_now_ms() / 1000))
		rc = usher_fail(err, USHER_ERR_PROTOCOL, "INFO answered %s, which is not INFO",
				usher_resp_describe(r[0], shown, sizeof(shown)));
	/* SLOWLOG may be renamed or refused by an ACL: the rest still holds */
	if (!rc && r[1]->type == USHER_RESP_INTEGER)
		usher_sample_add(run->samples, &desc_slowlog, (double)r[1]->integer, NULL);
	usher_resp_free(r[0]);
	usher_resp_free(r[1]);
	return rc;
}

/* ---- key patterns ------------------------------------------------------- */

struct kp_result {
	double keys, bytes;
	bool truncated;
	int64_t used; /* of the key budget: SCAN's COUNTs, or the keys when more */
};

/* Checks a SCAN reply: [cursor, [key, ...]]. */
static enum usher_err scan_reply(const struct usher_resp *r, struct usher_error *err)
{
	size_t i;
	char shown[256];

	if (r->type == USHER_RESP_ERROR)
		return reply_error(r, "SCAN", err);
	if (r->type != USHER_RESP_ARRAY || r->n != 2 || r->elem[0]->type != USHER_RESP_STRING ||
	    r->elem[0]->len == 0 || r->elem[0]->len > 20 || r->elem[1]->type != USHER_RESP_ARRAY)
		return usher_fail(err, USHER_ERR_PROTOCOL, "SCAN answered %s, not [cursor, keys]",
				  usher_resp_describe(r, shown, sizeof(shown)));
	for (i = 0; i < r->elem[1]->n; i++)
		if (r->elem[1]->elem[i]->type != USHER_RESP_STRING)
			return usher_fail(err, USHER_ERR_PROTOCOL,
					  "SCAN returned a key that is "
					  "not a string");
	return USHER_OK;
}

/* One pattern: SCAN while the share of the key budget and the time allow,
 * each call pipelined with the size queries of the keys the previous one
 * returned. */
static enum usher_err scan_pattern(struct redis_probe *p, const struct usher_redis_key_pattern *kp,
				   int64_t share, int64_t soft_deadline, int64_t deadline,
				   struct kp_result *res, struct usher_error *err)
{
	const char *size_argv[3] = {p->no_memory_usage ? "STRLEN" : "MEMORY",
				    p->no_memory_usage ? NULL : "USAGE", NULL};
	int size_argc = p->no_memory_usage ? 2 : 3;
	struct usher_resp *pending = NULL, **r = NULL;
	char cursor[24] = "0", count[24];
	bool done = false;
	enum usher_err rc = USHER_OK;
	size_t cap = 0;

	memset(res, 0, sizeof(*res));
	for (;;) {
		const struct usher_resp *keys = pending ? pending->elem[1] : NULL;
		size_t nsizes = keys && !kp->count_only ? keys->n : 0, n = 0, i;
		bool scan = !done;

		if (scan && (res->used >= share || usher_mono_ms() >= soft_deadline)) {
			res->truncated = true;
			scan = false;
		}
		if (!scan && !nsizes)
			break;
		if (scan) {
			const char *argv[6] = {"SCAN",      cursor,  "MATCH",
					       kp->pattern, "COUNT", count};
			int64_t c = share - res->used < p->o->scan_count ? share - res->used
									 : p->o->scan_count;

			snprintf(count, sizeof(count), "%lld", (long long)c);
			res->used += c;
			rc = add_cmd(p, 6, argv, NULL, err);
			n++;
		}
		for (i = 0; !rc && i < nsizes; i++) {
			size_t lens[3] = {strlen(size_argv[0]), size_argc == 3 ? 5 : 0, 0};

			size_argv[size_argc - 1] = keys->elem[i]->str;
			lens[size_argc - 1] = keys->elem[i]->len;
			rc = add_cmd(p, size_argc, size_argv, lens, err);
			n++;
		}
		if (!rc && n > cap) {
			cap = n;
			r = usher_realloc(r, cap * sizeof(*r));
		}
		if (!rc)
			rc = exchange(p, r, n, deadline, "SCAN", err);
		if (rc) {
			usher_buf_reset(&p->cmd);
			break;
		}
		/* sizes of the previous batch: a key gone since is nil, STRLEN
		 * of a non-string a WRONGTYPE error; both count nothing */
		for (i = scan; i < n; i++) {
			if (r[i]->type == USHER_RESP_INTEGER && r[i]->integer > 0)
				res->bytes += (double)r[i]->integer;
			else if (r[i]->type == USHER_RESP_ERROR && !rc &&
				 !starts(r[i]->str, "WRONGTYPE"))
				rc = reply_error(
				    r[i], p->no_memory_usage ? "STRLEN" : "MEMORY USAGE", err);
		}
		usher_resp_free(pending);
		pending = NULL;
		if (scan && !rc)
			rc = scan_reply(r[0], err);
		if (scan && !rc) {
			memcpy(cursor, r[0]->elem[0]->str, r[0]->elem[0]->len + 1);
			res->keys += (double)r[0]->elem[1]->n;
			/* SCAN may return more than COUNT asked for */
			if ((int64_t)r[0]->elem[1]->n > p->o->scan_count)
				res->used += (int64_t)r[0]->elem[1]->n - p->o->scan_count;
			done = strcmp(cursor, "0") == 0;
			pending = r[0];
			r[0] = NULL;
		}
		for (i = 0; i < n; i++)
			usher_resp_free(r[i]);
		if (rc)
			break;
	}
	usher_resp_free(pending);
	free(r);
	return rc;
}

static enum usher_err key_patterns(struct redis_probe *p, struct usher_probe_run *run,
				   struct usher_error *err)
{
	const struct usher_redis_opts *o = p->o;
	const struct usher_redis_key_pattern *v = o->key_patterns.v;
	int64_t reserve = run->conf->timeout_ms / 4, left = o->key_budget, soft;
	enum usher_err rc = USHER_OK;
	size_t i;

	if (reserve > KP_RESERVE_MAX_MS)
		reserve = KP_RESERVE_MAX_MS;
	soft = run->deadline_mono_ms - reserve;
	for (i = 0; i < o->key_patterns.n && !rc; i++) {
		/* an even share of what is left, so one pattern cannot starve
		 * the others; what it leaves unused passes on */
		int64_t share = left / (int64_t)(o->key_patterns.n - i);
		int64_t t0 = usher_mono_ns();
		struct kp_result res;
		struct usher_error inner;

		usher_error_clear(&inner);
		rc = scan_pattern(p, &v[i], share, soft, run->deadline_mono_ms, &res, &inner);
		if (rc) {
			usher_fail(err, rc, "key pattern \"%s\": %s", v[i].pattern, inner.msg);
			break;
		}
		left -= res.used < left ? res.used : left;
		usher_sample_add(run->samples, &desc_kp_keys, res.keys, "pattern", v[i].pattern,
				 NULL);
		if (!v[i].count_only)
			usher_sample_add(run->samples, &desc_kp_bytes, res.bytes, "pattern",
					 v[i].pattern, NULL);
		usher_sample_add(run->samples, &desc_kp_truncated, res.truncated ? 1 : 0, "pattern",
				 v[i].pattern, NULL);
		usher_sample_add(run->samples, &desc_kp_duration,
				 (double)(usher_mono_ns() - t0) / 1e9, "pattern", v[i].pattern,
				 NULL);
	}
	return rc;
}

/* ---- the run ------------------------------------------------------------ */

/* Everything a run does; *up says whether the server answered PING and
 * INFO. */
static enum usher_err collect(struct redis_probe *p, struct usher_probe_run *run, bool *up,
			      struct usher_error *err)
{
	bool reused = p->ready && usher_netclient_connected(p->nc);
	enum usher_err rc;

	if (usher_mono_ms() >= run->deadline_mono_ms)
		return usher_fail(err, USHER_ERR_TIMEOUT,
				  "the run started after its deadline (all workers were busy)");
	if (!reused) {
		rc = connect_backoff(p, run, err);
		if (rc)
			return rc;
	}
	rc = ping(p, run->deadline_mono_ms, err);
	if (rc == USHER_ERR_NETWORK && reused) {
		/* the server closed the idle connection (restart, timeout
		 * setting): one fresh connection, in the same run */
		usher_error_clear(err);
		rc = connect_backoff(p, run, err);
		if (!rc)
			rc = ping(p, run->deadline_mono_ms, err);
	}
	if (!rc)
		rc = info(p, run, err);
	if (rc)
		return rc;
	*up = true;
	if (p->o->key_patterns.n)
		rc = key_patterns(p, run, err);
	return rc;
}

static void redis_run(void *ctx, struct usher_probe_run *run)
{
	struct redis_probe *p = ctx;
	struct usher_error err;
	enum usher_err rc;
	bool up = false;

	usher_error_clear(&err);
	usher_netclient_begin(p->nc, (uint64_t)run->started_mono_ns);
	rc = collect(p, run, &up, &err);
	if (rc)
		usher_probe_fail(run, usher_netclient_reason(rc), "%s", usher_error_msg(&err, rc));
	usher_sample_add(run->samples, &desc_up, up ? 1 : 0, NULL);
	usher_sample_add_histogram(run->samples, &desc_ping, &p->ping, NULL);
}

const struct usher_probe_type usher_probe_redis = {
    .name = "redis",
    .help = "Redis: INFO series as redis_exporter names them, PING latency, and key counts "
	    "per SCAN pattern under a key budget",
    .series = USHER_SERIES_PROBE,
    .options = usher_redis_options,
    .opts_size = sizeof(struct usher_redis_opts),
    .check = redis_check,
    .default_instance = redis_default_instance,
    .init = redis_init,
    .cancel = redis_cancel,
    .run = redis_run,
    .free = redis_free,
};
