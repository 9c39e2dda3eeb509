/* usher diag's Redis checks, over a connection of their own (the probe's
 * address, TLS and credentials), every wait bounded by the deadline: memory
 * against maxmemory and the eviction policy, fragmentation, hit ratio,
 * clients against maxclients, the slow log's top entries, persistence
 * (RDB and AOF status), replication, and a bounded big-keys sample (SCAN
 * with a cap, MEMORY USAGE per key). Thresholds: docs/diag.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/diag.h"
#include "probes/netclient.h"
#include "probes/redis.h"
#include "probes/resp.h"

#define A_DOWN    "RedisDown"
#define A_MEM     "RedisMemoryNearMaxmemory"
#define A_FRAG    "RedisMemoryFragmentation"
#define A_HIT     "RedisHitRatioLow"
#define A_CLIENTS "RedisRejectedConnections"
#define A_SLOW    "RedisSlowCommands"
#define A_PERSIST "RedisPersistenceFailing"
#define A_REPL    "RedisReplicationBroken"
#define A_BIGKEY  "RedisBigKeys"

#define REPLY_MAX          (4 * 1024 * 1024)
#define REPLY_MAX_ELEMENTS 100000
#define CMD_MAX            (64 * 1024)
#define SCAN_COUNT         "100"
#define TOP_N              5

struct rd {
	struct usher_diag_report *r;
	const struct usher_diag_thresholds *th;
	struct usher_netclient *nc;
	struct usher_resp_reader *rd;
	struct usher_buf cmd;
	int64_t deadline;
	struct usher_error err;
	char rbuf[16384];
};

/* Sends the pipelined commands in d->cmd and reads n replies into out. */
static enum usher_err exchange(struct rd *d, struct usher_resp **out, size_t n)
{
	enum usher_err rc;
	size_t i, got;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	rc = usher_netclient_send(d->nc, d->cmd.data, d->cmd.len, d->deadline, &d->err);
	usher_buf_reset(&d->cmd);
	for (i = 0; !rc && i < n;) {
		rc = usher_resp_reader_next(d->rd, &out[i], &d->err);
		if (rc || out[i]) {
			i += !rc;
			continue;
		}
		rc = usher_netclient_recv(d->nc, d->rbuf, sizeof(d->rbuf), &got, d->deadline,
					  &d->err);
		if (!rc)
			rc = usher_resp_reader_feed(d->rd, d->rbuf, got, &d->err);
	}
	if (rc)
		for (i = 0; i < n; i++) {
			usher_resp_free(out[i]);
			out[i] = NULL;
		}
	return rc;
}

static enum usher_err add(struct rd *d, int argc, const char *const *argv)
{
	if (usher_resp_format(&d->cmd, argc, argv, NULL))
		return usher_fail(&d->err, USHER_ERR_TOOBIG, "command pipeline too long");
	return USHER_OK;
}

/* One command, one reply (freed by the caller); an error reply is a reply. */
static enum usher_err cmd(struct rd *d, struct usher_resp **out, int argc, const char *const *argv)
{
	enum usher_err rc = add(d, argc, argv);

	if (rc)
		return rc;
	return exchange(d, out, 1);
}

/* The value of key in an INFO reply, in buf; NULL when absent. */
static const char *info_get(const char *info, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	const char *p = info;

	while (p && *p) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ':') {
			const char *v = p + kl + 1;
			size_t n = strcspn(v, "\r\n");

			if (n >= len)
				n = len - 1;
			memcpy(buf, v, n);
			buf[n] = '\0';
			return buf;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static double info_num(const char *info, const char *key)
{
	char buf[64], *end;
	double v;

	if (!info_get(info, key, buf, sizeof(buf)) || !buf[0])
		return NAN;
	v = strtod(buf, &end);
	return *end ? NAN : v;
}

static const char *bytes(char *out, size_t len, double b)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	while (b >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		b /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
	return out;
}

/* CONFIG GET name's value into buf; "" when refused or renamed away. */
static const char *config_get(struct rd *d, const char *name, char *buf, size_t len)
{
	const char *argv[] = {"CONFIG", "GET", name};
	struct usher_resp *r;

	buf[0] = '\0';
	if (cmd(d, &r, 3, argv))
		return buf;
	if (r->type == USHER_RESP_ARRAY && r->n == 2 && r->elem[1]->type == USHER_RESP_STRING)
		snprintf(buf, len, "%s", r->elem[1]->str);
	usher_resp_free(r);
	return buf;
}

/* ---- the checks ------------------------------------------------------- */

static void check_memory(struct rd *d, const char *info)
{
	double used = info_num(info, "used_memory"), max = info_num(info, "maxmemory");
	double sys = info_num(info, "total_system_memory"),
	       evicted = info_num(info, "evicted_keys");
	char policy[64], b1[32], b2[32];
	double frac;
	enum usher_diag_status st = USHER_DIAG_OK;

	if (!info_get(info, "maxmemory_policy", policy, sizeof(policy)))
		snprintf(policy, sizeof(policy), "unknown");
	if (max > 0) {
		frac = used / max;
		if (frac >= d->th->redis_mem_fail)
			st = USHER_DIAG_FAIL;
		else if (frac >= d->th->redis_mem_warn)
			st = USHER_DIAG_WARN;
		usher_diag_add(d->r, st, "redis.memory", A_MEM,
			       strcmp(policy, "noeviction") == 0
				   ? "with noeviction, writes fail once maxmemory is reached: free "
				     "keys (big keys below), raise maxmemory or choose an eviction "
				     "policy"
				   : "evictions drop cached data: raise maxmemory or trim big keys",
			       "%s used of maxmemory %s (%.0f%%), policy %s, %.0f keys evicted",
			       bytes(b1, sizeof(b1), used), bytes(b2, sizeof(b2), max), frac * 100,
			       policy, isfinite(evicted) ? evicted : 0);
		return;
	}
	frac = sys > 0 ? used / sys : NAN;
	usher_diag_add(
	    d->r, isfinite(frac) && frac >= d->th->redis_mem_warn ? USHER_DIAG_WARN : USHER_DIAG_OK,
	    "redis.memory", A_MEM,
	    "no maxmemory: Redis grows until the kernel's OOM killer stops it; set "
	    "maxmemory and a policy",
	    "%s used, no maxmemory (policy %s)%s%s", bytes(b1, sizeof(b1), used), policy,
	    sys > 0 ? ", host memory " : "", sys > 0 ? bytes(b2, sizeof(b2), sys) : "");
}

static void check_fragmentation(struct rd *d, const char *info)
{
	double ratio = info_num(info, "mem_fragmentation_ratio");
	double rss = info_num(info, "used_memory_rss"), used = info_num(info, "used_memory");
	char b1[32];
	bool judged =
	    isfinite(rss) && isfinite(used) && fabs(rss - used) >= d->th->redis_frag_min_bytes;
	enum usher_diag_status st = USHER_DIAG_OK;

	if (judged && (ratio > d->th->redis_frag_warn || ratio < 1.0))
		st = USHER_DIAG_WARN;
	usher_diag_add(d->r, st, "redis.fragmentation", A_FRAG,
		       ratio < 1.0 ? "RSS below the data size: Redis is being swapped out"
				   : "enable activedefrag, or restart a replica and fail over",
		       "fragmentation ratio %.2f (RSS %s)%s", isfinite(ratio) ? ratio : 0,
		       bytes(b1, sizeof(b1), isfinite(rss) ? rss : 0),
		       judged ? "" : ", too little memory to matter");
}

static void check_hits(struct rd *d, const char *info)
{
	double hits = info_num(info, "keyspace_hits"), misses = info_num(info, "keyspace_misses");
	double n = hits + misses;

	if (!(n >= d->th->redis_hit_min_lookups)) {
		usher_diag_add(d->r, USHER_DIAG_OK, "redis.hit_ratio", A_HIT, NULL,
			       "too few lookups (%.0f) to judge the hit ratio",
			       isfinite(n) ? n : 0);
		return;
	}
	usher_diag_add(d->r, hits / n < d->th->redis_hit_warn ? USHER_DIAG_WARN : USHER_DIAG_OK,
		       "redis.hit_ratio", A_HIT,
		       "misses go to PostgreSQL: check TTLs, evictions and key naming",
		       "keyspace hit ratio %.1f%% (%.0f hits, %.0f misses)", 100 * hits / n, hits,
		       misses);
}

static void check_clients(struct rd *d, const char *info)
{
	double conn = info_num(info, "connected_clients"), max = info_num(info, "maxclients");
	double blocked = info_num(info, "blocked_clients");
	double rejected = info_num(info, "rejected_connections");
	double frac = max > 0 ? conn / max : NAN;

	usher_diag_add(
	    d->r,
	    isfinite(frac) && frac >= d->th->redis_clients_warn ? USHER_DIAG_WARN : USHER_DIAG_OK,
	    "redis.clients", A_CLIENTS,
	    "find the clients holding connections (CLIENT LIST) or raise maxclients",
	    "%.0f of maxclients %.0f connected, %.0f blocked, %.0f rejected since start", conn, max,
	    isfinite(blocked) ? blocked : 0, isfinite(rejected) ? rejected : 0);
}

static void check_persistence(struct rd *d, const char *info, const char *save, int64_t now)
{
	char rdb[32], aof_on[8], aof_w[32], aof_rw[32];
	double last_save = info_num(info, "rdb_last_save_time");
	double changes = info_num(info, "rdb_changes_since_last_save");
	double loading = info_num(info, "loading");
	bool rdb_bad, aof_bad, aof = false;
	enum usher_diag_status st = USHER_DIAG_OK;

	if (!info_get(info, "rdb_last_bgsave_status", rdb, sizeof(rdb)))
		snprintf(rdb, sizeof(rdb), "unknown");
	if (info_get(info, "aof_enabled", aof_on, sizeof(aof_on)))
		aof = strcmp(aof_on, "1") == 0;
	if (!info_get(info, "aof_last_write_status", aof_w, sizeof(aof_w)))
		snprintf(aof_w, sizeof(aof_w), "unknown");
	if (!info_get(info, "aof_last_bgrewrite_status", aof_rw, sizeof(aof_rw)))
		snprintf(aof_rw, sizeof(aof_rw), "unknown");
	rdb_bad = strcmp(rdb, "ok") != 0 && strcmp(rdb, "unknown") != 0;
	aof_bad = aof && (strcmp(aof_w, "ok") != 0 || strcmp(aof_rw, "ok") != 0);
	if (rdb_bad || aof_bad)
		st = USHER_DIAG_FAIL;
	else if (loading == 1)
		st = USHER_DIAG_WARN;
	usher_diag_add(
	    d->r, st, "redis.persistence", A_PERSIST,
	    loading == 1 ? "the dataset is still loading from disk"
			 : "look at the Redis log: a full disk or a failed fork (memory, "
			   "vm.overcommit_memory) stops snapshots; by default writes are "
			   "refused then",
	    "RDB last bgsave %s (%.0fs ago, %.0f changes since, save \"%s\"), AOF %s%s%s%s", rdb,
	    isfinite(last_save) ? (double)now - last_save : -1, isfinite(changes) ? changes : 0,
	    save, aof ? "on, last write " : "off", aof ? aof_w : "", aof ? ", last rewrite " : "",
	    aof ? aof_rw : "");
}

static void check_replication(struct rd *d, const char *info)
{
	char role[16], link[16];
	double replicas = info_num(info, "connected_slaves");
	double down = info_num(info, "master_link_down_since_seconds");

	if (!info_get(info, "role", role, sizeof(role)))
		return;
	if (strcmp(role, "slave") == 0) {
		bool up = info_get(info, "master_link_status", link, sizeof(link)) &&
			  strcmp(link, "up") == 0;

		usher_diag_add(
		    d->r, up ? USHER_DIAG_OK : USHER_DIAG_FAIL, "redis.replication", A_REPL,
		    "the replica cannot reach its master: check the network "
		    "and masterauth",
		    "replica, link to master %s%s", up ? "up" : "down",
		    !up && isfinite(down) ? " (for a while: see master_link_down_since_seconds)"
					  : "");
		return;
	}
	usher_diag_add(d->r, USHER_DIAG_OK, "redis.replication", A_REPL, NULL,
		       "master with %.0f replica%s connected", isfinite(replicas) ? replicas : 0,
		       replicas == 1 ? "" : "s");
}

static void check_slowlog(struct rd *d)
{
	static const char *const argv[] = {"SLOWLOG", "GET", "5"};
	struct usher_resp *r;
	struct usher_buf b;
	struct usher_diag_finding *f;
	int64_t now = usher_now_ms() / 1000;
	size_t i, j, recent = 0;
	double worst = 0;

	if (cmd(d, &r, 3, argv))
		return;
	if (r->type != USHER_RESP_ARRAY) {
		usher_diag_add(d->r, USHER_DIAG_OK, "redis.slowlog", A_SLOW, NULL,
			       "SLOWLOG is not available: %s",
			       r->type == USHER_RESP_ERROR ? r->str : "unexpected reply");
		usher_resp_free(r);
		return;
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < r->n; i++) {
		const struct usher_resp *e = r->elem[i];
		double at, us;

		if (e->type != USHER_RESP_ARRAY || e->n < 4 ||
		    e->elem[1]->type != USHER_RESP_INTEGER ||
		    e->elem[2]->type != USHER_RESP_INTEGER || e->elem[3]->type != USHER_RESP_ARRAY)
			continue;
		at = (double)e->elem[1]->integer;
		us = (double)e->elem[2]->integer;
		if (now - at <= d->th->redis_slowlog_recent_s) {
			recent++;
			if (us > worst)
				worst = us;
		}
		usher_buf_addf(&b, "%s%.1f ms, %.0fs ago:", b.len ? "\n" : "", us / 1000,
			       (double)now - at);
		for (j = 0; j < e->elem[3]->n && j < 6; j++) {
			const struct usher_resp *a = e->elem[3]->elem[j];

			if (a->type == USHER_RESP_STRING)
				usher_buf_addf(&b, " %.40s", a->str);
		}
	}
	f = usher_diag_add(d->r, recent ? USHER_DIAG_WARN : USHER_DIAG_OK, "redis.slowlog", A_SLOW,
			   "slow commands block every client: replace KEYS/large range reads with "
			   "SCAN and bounded ranges",
			   "%zu slow command%s in the last %.0f minutes (the slowest %.1f ms); %zu "
			   "shown",
			   recent, recent == 1 ? "" : "s", d->th->redis_slowlog_recent_s / 60,
			   worst / 1000, r->n);
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	usher_resp_free(r);
}

struct bigkey {
	char *name;
	double bytes;
};

static int bigkey_cmp(const void *a, const void *b)
{
	const struct bigkey *x = a, *y = b;

	return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : strcmp(x->name, y->name);
}

static void check_bigkeys(struct rd *d)
{
	struct bigkey top[TOP_N];
	size_t ntop = 0, seen = 0, i;
	char cursor[32] = "0", b1[32];
	struct usher_buf b;
	struct usher_diag_finding *f;
	bool done = false, refused = false;
	/* half the time left at most: the report must come back */
	int64_t until = usher_mono_ms() + (d->deadline - usher_mono_ms()) / 2;

	memset(top, 0, sizeof(top));
	while (!done && (int64_t)seen < d->th->redis_bigkey_scan_max && usher_mono_ms() < until) {
		const char *argv[] = {"SCAN", cursor, "COUNT", SCAN_COUNT};
		struct usher_resp *r, **mem = NULL;
		const struct usher_resp *keys;
		size_t nk;

		if (cmd(d, &r, 4, argv))
			break;
		if (r->type != USHER_RESP_ARRAY || r->n != 2 ||
		    r->elem[0]->type != USHER_RESP_STRING || r->elem[1]->type != USHER_RESP_ARRAY) {
			usher_resp_free(r);
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->elem[0]->str);
		done = strcmp(cursor, "0") == 0;
		keys = r->elem[1];
		nk = keys->n;
		if ((int64_t)(seen + nk) > d->th->redis_bigkey_scan_max)
			nk = (size_t)(d->th->redis_bigkey_scan_max - (int64_t)seen);
		for (i = 0; i < nk; i++) {
			const char *margv[] = {"MEMORY", "USAGE", keys->elem[i]->str};

			if (keys->elem[i]->type != USHER_RESP_STRING || add(d, 3, margv))
				break;
		}
		nk = i;
		if (nk) {
			mem = usher_calloc(nk, sizeof(*mem));
			if (exchange(d, mem, nk)) {
				free(mem);
				usher_resp_free(r);
				break;
			}
		}
		for (i = 0; i < nk; i++) {
			double sz;

			if (mem[i]->type == USHER_RESP_ERROR)
				refused = true;
			if (mem[i]->type != USHER_RESP_INTEGER) {
				usher_resp_free(mem[i]);
				continue;
			}
			sz = (double)mem[i]->integer;
			usher_resp_free(mem[i]);
			if (ntop < TOP_N || sz > top[ntop - 1].bytes) {
				if (ntop == TOP_N)
					free(top[--ntop].name);
				top[ntop].name = usher_strndup(keys->elem[i]->str, 200);
				top[ntop].bytes = sz;
				ntop++;
				qsort(top, ntop, sizeof(top[0]), bigkey_cmp);
			}
		}
		seen += nk;
		free(mem);
		usher_resp_free(r);
	}
	usher_buf_init(&b, 8192);
	for (i = 0; i < ntop; i++)
		usher_buf_addf(&b, "%s%s: %s", i ? "\n" : "", top[i].name ? top[i].name : "?",
			       bytes(b1, sizeof(b1), top[i].bytes));
	if (refused && !ntop)
		f = usher_diag_add(d->r, USHER_DIAG_OK, "redis.big_keys", A_BIGKEY, NULL,
				   "MEMORY USAGE is refused or renamed: no big-keys sample");
	else
		f = usher_diag_add(
		    d->r,
		    ntop && top[0].bytes >= d->th->redis_bigkey_warn_bytes ? USHER_DIAG_WARN
									   : USHER_DIAG_OK,
		    "redis.big_keys", A_BIGKEY,
		    "a big key makes every command on it slow and blocks on delete (use UNLINK); "
		    "split it",
		    "%zu keys sampled%s, the biggest %s", seen, done ? " (all of them)" : "",
		    ntop ? bytes(b1, sizeof(b1), top[0].bytes) : "none");
	usher_diag_detail(d->r, f, usher_buf_str(&b));
	usher_buf_free(&b);
	for (i = 0; i < ntop; i++)
		free(top[i].name);
}

void usher_diag_redis_info(const struct usher_diag_thresholds *th, const char *info,
			   const char *save, int64_t now_s, struct usher_diag_report *r)
{
	struct rd d;

	memset(&d, 0, sizeof(d));
	d.r = r;
	d.th = th;
	check_memory(&d, info);
	check_fragmentation(&d, info);
	check_hits(&d, info);
	check_clients(&d, info);
	check_persistence(&d, info, save, now_s);
	check_replication(&d, info);
}

/* Connects, authenticates and selects the database; false with a FAIL
 * finding when it cannot. */
static bool rd_open(struct rd *d, const struct usher_redis_opts *o, const char *where)
{
	struct usher_resp *r = NULL;
	enum usher_err rc;
	char db[24];

	rc = usher_netclient_new(&o->addr, o->tls_enabled ? &o->tls : NULL, &d->nc, &d->err);
	if (!rc)
		rc = usher_netclient_connect(d->nc, d->deadline, &d->err);
	if (!rc && o->password) {
		const char *argv[] = {"AUTH", o->username ? o->username : o->password, o->password};

		rc = cmd(d, &r, o->username ? 3 : 2, argv);
		if (!rc && r->type == USHER_RESP_ERROR)
			rc = usher_fail(&d->err, USHER_ERR_AUTH, "AUTH refused: %s", r->str);
		usher_resp_free(r);
	}
	if (!rc && o->db) {
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%lld", (long long)o->db);
		rc = cmd(d, &r, 2, argv);
		if (!rc && r->type == USHER_RESP_ERROR)
			rc = usher_fail(&d->err, USHER_ERR_INVALID, "SELECT refused: %s", r->str);
		usher_resp_free(r);
	}
	if (!rc) {
		static const char *const argv[] = {"CLIENT", "SETNAME", "usher-diag"};

		rc = cmd(d, &r, 3, argv);
		usher_resp_free(r);
	}
	if (rc) {
		usher_diag_add(d->r, USHER_DIAG_FAIL, "redis.connect", A_DOWN,
			       "check that redis-server runs and listens there, and the password",
			       "cannot talk to %s: %s", where, usher_error_msg(&d->err, rc));
		return false;
	}
	return true;
}

void usher_diag_redis(const struct usher_probe_conf *pc, const struct usher_diag_opts *opts,
		      int64_t deadline_mono_ms, struct usher_diag_report *r)
{
	static const char *const info_argv[] = {"INFO", "ALL"};
	const struct usher_redis_opts *o = pc->opts;
	struct rd d;
	struct usher_resp *info = NULL;
	char save[256];

	memset(&d, 0, sizeof(d));
	d.r = r;
	d.th = &opts->th;
	d.deadline = deadline_mono_ms;
	usher_buf_init(&d.cmd, CMD_MAX);
	d.rd = usher_resp_reader_new(REPLY_MAX, REPLY_MAX_ELEMENTS);
	if (!rd_open(&d, o, pc->instance))
		goto out;
	if (cmd(&d, &info, 2, info_argv) || info->type != USHER_RESP_STRING) {
		usher_diag_add(r, USHER_DIAG_FAIL, "redis.info", A_DOWN,
			       "the server does not answer INFO: look at its log",
			       "INFO failed: %s",
			       info && info->type == USHER_RESP_ERROR
				   ? info->str
				   : usher_error_msg(&d.err, USHER_ERR_PROTOCOL));
		goto out;
	}
	config_get(&d, "save", save, sizeof(save));
	usher_diag_redis_info(d.th, info->str, save, usher_now_ms() / 1000, r);
	check_slowlog(&d);
	check_bigkeys(&d);
out:
	usher_resp_free(info);
	usher_netclient_free(d.nc);
	usher_resp_reader_free(d.rd);
	usher_buf_free(&d.cmd);
}
