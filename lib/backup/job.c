/* The backup jobs: take (pg_dump or Redis SYNC → zstd → AES-256-GCM →
 * repository), verify, restore (decrypt to a temp file, pg_restore -j N,
 * row counts) and the DR drill, each leaving its result as a textfile. */
#include "backup/job.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/pg.h"
#include "backup/promfile.h"
#include "backup/spawn.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/postgres.h"
#include "probes/redis.h"

#define PATH_LEN 4096

/* snprintf whose truncation is checked by the callers that care (paths
 * built from a repository path and an id are far below PATH_LEN). */
static bool fmt(char *out, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static bool fmt(char *out, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(out, len, f, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < len;
}

/* ------------------------------------------------------------- targets */

/* Keeps [A-Za-z0-9.:-] of s, the rest as '-'. */
static char *sanitize(struct usher_arena *a, const char *s)
{
	char *o = usher_arena_strdup(a, s), *p;

	for (p = o; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == ':' || *p == '-'))
			*p = '-';
	if (strlen(o) > 100)
		o[100] = '\0';
	return o;
}

static bool is_redis_dsn(const char *s)
{
	return strncmp(s, "redis://", 8) == 0 || strncmp(s, "unix:", 5) == 0;
}

enum usher_err usher_backup_target_resolve(struct usher_arena *a, const struct usher_config *cfg,
					   const char *spec, const char *kind, const char *name,
					   struct usher_backup_target *out, struct usher_error *err)
{
	size_t i;
	enum usher_err rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; cfg && i < cfg->nprobes; i++) {
		const struct usher_probe_conf *pc = &cfg->probes[i];

		if (strcmp(pc->name, spec) != 0)
			continue;
		out->name = pc->name;
		if (strcmp(pc->type_name, "postgres") == 0) {
			out->kind = "postgres";
			out->dsn = ((const struct usher_pg_opts *)pc->opts)->dsn;
		} else if (strcmp(pc->type_name, "redis") == 0) {
			const struct usher_redis_opts *ro = pc->opts;

			out->kind = "redis";
			rc = usher_redis_src_parse(a, ro->address, &out->redis, err);
			if (rc)
				return rc;
			out->redis.username = ro->username;
			out->redis.password = ro->password;
			if (ro->tls_enabled)
				return usher_fail(err, USHER_ERR_UNSUPPORTED,
						  "target %s: backups over TLS to redis are not "
						  "supported yet",
						  spec);
		} else {
			return usher_fail(err, USHER_ERR_INVALID,
					  "target %s is a probe of type %s: only postgres and redis "
					  "probes can be backed up",
					  spec, pc->type_name);
		}
		goto check;
	}
	if (is_redis_dsn(spec)) {
		out->kind = "redis";
		rc = usher_redis_src_parse(a, spec, &out->redis, err);
		if (rc)
			return rc;
		out->name = out->redis.addr.is_unix
				? usher_arena_printf(a, "redis-%s", sanitize(a, out->redis.addr.path))
				: usher_arena_printf(a, "redis-%s-%s", sanitize(a, out->redis.addr.host),
						     out->redis.addr.port);
	} else if (strstr(spec, "://") || strchr(spec, '=')) {
		struct usher_pgconn c;
		const char *host, *port, *db, *user;

		rc = usher_pgconn_parse(spec, &c, err);
		if (rc)
			return rc;
		host = usher_pgconn_get(&c, "host");
		port = usher_pgconn_get(&c, "port");
		db = usher_pgconn_get(&c, "dbname");
		user = usher_pgconn_get(&c, "user");
		out->kind = "postgres";
		out->dsn = usher_arena_strdup(a, spec);
		out->name = usher_arena_printf(
		    a, "pg-%s-%s-%s", sanitize(a, host ? host : "localhost"), port ? port : "5432",
		    sanitize(a, db ? db : (user ? user : "postgres")));
		usher_pgconn_free(&c);
	} else {
		return usher_fail(err, USHER_ERR_NOTFOUND,
				  "\"%s\" is neither a probe in the config nor a DSN "
				  "(postgresql://..., redis://...)",
				  spec);
	}
	if (name)
		out->name = usher_arena_strdup(a, name);
check:
	if (kind && strcmp(kind, out->kind) != 0)
		return usher_fail(err, USHER_ERR_INVALID, "target %s is %s, not %s", spec, out->kind,
				  kind);
	if (!usher_repo_target_valid(out->name))
		return usher_fail(err, USHER_ERR_INVALID,
				  "\"%s\" cannot name a backup target: use up to 100 letters, digits, "
				  "'.', '_', '-' and ':'",
				  out->name);
	return USHER_OK;
}

/* ------------------------------------------------------------ progress */

struct progress {
	bool on;
	const char *what;
	int64_t start_ns, last_ns;
	uint64_t raw, stored;
	uint64_t total; /* stored bytes to read, for a bar; 0: unknown (a backup) */
};

static void human(double b, char *out, size_t len)
{
	const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void progress_draw(struct progress *p, bool done)
{
	char raw[32], stored[32];
	double s = (double)(usher_mono_ns() - p->start_ns) / 1e9;

	char bar[32] = "";

	human((double)p->raw, raw, sizeof(raw));
	human((double)p->stored, stored, sizeof(stored));
	if (p->total) {
		int i, fill = (int)(20.0 * (double)p->stored / (double)p->total);

		bar[0] = '[';
		for (i = 0; i < 20; i++)
			bar[i + 1] = i < fill ? '#' : '.';
		snprintf(bar + 21, sizeof(bar) - 21, "] %3d%% ",
			 (int)(100.0 * (double)p->stored / (double)p->total));
	}
	fprintf(stderr, "\r\033[K%s: %s%s raw, %s stored, %.1f MiB/s, %.0f s%s", p->what, bar,
		raw, stored, s > 0 ? (double)p->raw / 1048576.0 / s : 0.0, s, done ? "\n" : "");
	fflush(stderr);
}

static void progress_cb(void *ctx, uint64_t raw, uint64_t stored)
{
	struct progress *p = ctx;
	int64_t now = usher_mono_ns();

	p->raw = raw;
	p->stored = stored;
	if (!p->on || now - p->last_ns < 200 * 1000000LL)
		return;
	p->last_ns = now;
	progress_draw(p, false);
}

static void progress_end(struct progress *p)
{
	if (p->on && p->last_ns)
		progress_draw(p, true);
}

/* --------------------------------------------------------------- take */

struct take {
	struct usher_bwriter *w;
};

static enum usher_err to_writer(void *ctx, const void *p, size_t n, struct usher_error *err)
{
	struct take *t = ctx;

	return usher_bwriter_write(t->w, p, n, err);
}

static enum usher_err collect(void *ctx, const void *p, size_t n, struct usher_error *err)
{
	(void)err;
	usher_buf_add(ctx, p, n);
	return USHER_OK;
}

struct counter {
	struct usher_pgsess *s;
	struct usher_manifest *m;
	struct usher_error err;
	enum usher_err rc;
};

static void *count_thread(void *arg)
{
	struct counter *c = arg;

	c->rc = usher_pgsess_count_tables(c->s, c->m, &c->err);
	return NULL;
}

static enum usher_err tool_version(const char *path, struct usher_manifest *m,
				   struct usher_error *err)
{
	char *argv[3] = {(char *)"pg_dump", (char *)"--version", NULL};
	struct usher_child c;
	struct usher_buf out;
	enum usher_err rc;

	usher_buf_init(&out, 4096);
	rc = usher_child_spawn(path, argv, NULL, true, &c, err);
	if (!rc)
		rc = usher_child_finish(&c, collect, &out, NULL, err);
	usher_child_free(&c);
	if (!rc) {
		const char *s = usher_buf_str(&out);

		m->tool_version = usher_arena_strndup(m->arena, s, strcspn(s, "\r\n"));
	}
	usher_buf_free(&out);
	return rc;
}

static enum usher_err dump_postgres(const struct usher_backup_env *e,
				    const struct usher_backup_target *t, struct take *tk,
				    struct usher_manifest *m, struct usher_error *err)
{
	struct usher_pgconn conn = {0};
	struct usher_pgsess *s = NULL;
	struct counter cnt = {0};
	struct usher_child child = {.pid = -1, .out_fd = -1, .err_fd = -1};
	char tool[PATH_LEN], snap[128], snaparg[160];
	char *conninfo = NULL;
	pthread_t th;
	bool started = false;
	enum usher_err rc;

	rc = usher_pgconn_parse(t->dsn, &conn, err);
	if (!rc)
		rc = usher_pgsess_open(&conn, &s, err);
	if (!rc)
		rc = usher_pg_tool("pg_dump", usher_pgsess_major(s), tool, sizeof(tool), err);
	if (!rc)
		rc = tool_version(tool, m, err);
	if (rc)
		goto out;
	m->database = usher_arena_strdup(m->arena, usher_pgsess_dbname(s));
	m->server_version = usher_arena_strdup(m->arena, usher_pgsess_version(s));
	rc = usher_pgsess_export_snapshot(s, snap, sizeof(snap), err);
	if (rc)
		goto out;
	/* row counts in the very snapshot pg_dump dumps, while it dumps */
	cnt.s = s;
	cnt.m = m;
	if (pthread_create(&th, NULL, count_thread, &cnt) != 0) {
		rc = usher_fail(err, USHER_ERR_INTERNAL, "cannot start a thread");
		goto out;
	}
	started = true;
	conninfo = usher_pgconn_conninfo(&conn);
	snprintf(snaparg, sizeof(snaparg), "--snapshot=%s", snap);
	{
		char *argv[] = {(char *)"pg_dump", (char *)"--format=custom", (char *)"--compress=0",
				(char *)"--no-password", snaparg, (char *)"--dbname", conninfo, NULL};

		rc = usher_child_spawn(tool, argv, usher_pgconn_get(&conn, "password"), true, &child,
				       err);
	}
	if (!rc)
		rc = usher_child_finish(&child, to_writer, tk, e->stop, err);
out:
	usher_child_free(&child);
	if (started) {
		/* a failed dump leaves no use for the counts: stop them (they may
		 * wait on the same lock pg_dump waited on) */
		if (rc)
			usher_pgsess_cancel(s);
		pthread_join(th, NULL);
		/* a failed count aborts the snapshot's transaction, and pg_dump then
		 * fails to import it: the count's reason is the root cause */
		if (cnt.rc && (!rc || (err && strstr(err->msg, "import the requested snapshot")))) {
			usher_error_clear(err);
			rc = usher_fail(err, cnt.rc, "counting rows: %s", cnt.err.msg);
		}
	}
	if (s)
		usher_pgsess_commit(s);
	usher_pgsess_close(s);
	usher_pgconn_free(&conn);
	free(conninfo);
	return rc;
}

static void write_backup_metrics(const struct usher_backup_env *e, const char *target, bool ok,
				 double now_s, double size, double duration_s)
{
	char file[300];
	struct usher_promfile_gauge g[4] = {
	    {"usher_backup_last_success_timestamp_seconds",
	     "Unix time of the last successful backup of the target.", now_s},
	    {"usher_backup_last_size_bytes", "Stored size of the last successful backup.", size},
	    {"usher_backup_last_duration_seconds", "How long the last backup run took.",
	     duration_s},
	    {"usher_backup_last_status", "1 if the last backup run succeeded, 0 if it failed.",
	     ok ? 1 : 0},
	};
	struct usher_error err = {{0}};

	if (!e->textfile_dir)
		return;
	usher_promfile_name("backup", target, file, sizeof(file));
	if (!ok) {
		g[0].value = usher_promfile_read(e->textfile_dir, file, g[0].name, 0);
		g[1].value = usher_promfile_read(e->textfile_dir, file, g[1].name, 0);
	}
	if (usher_promfile_write(e->textfile_dir, file, target, g, 4, &err))
		fprintf(stderr, "usher: warning: %s\n", err.msg);
}

enum usher_err usher_backup_take(const struct usher_backup_env *e,
				 const struct usher_backup_target *t, char *id, size_t idlen,
				 struct usher_error *err)
{
	char partial[PATH_LEN], final[PATH_LEN], data[PATH_LEN], mpath[PATH_LEN];
	struct usher_manifest *m = usher_manifest_new();
	struct usher_bstream_stats st;
	struct take tk = {0};
	struct progress pr = {.on = e->progress, .what = t->name};
	int64_t start_ns = usher_mono_ns();
	const char *data_file =
	    strcmp(t->kind, "postgres") == 0 ? "pg_dump.custom.zst.aes" : "dump.rdb.zst.aes";
	int lock = -1, fd = -1;
	bool made = false;
	enum usher_err rc;

	*id = '\0';
	rc = usher_repo_init(e->repo, err);
	if (!rc)
		rc = usher_repo_lock(e->repo, t->name, e->lock_wait_ms, &lock, err);
	if (rc) {
		usher_manifest_free(m);
		/* a backup that did not start because another runs is no failure of the target */
		if (rc != USHER_ERR_TIMEOUT)
			write_backup_metrics(e, t->name, false, 0, 0, 0);
		return rc;
	}
	usher_repo_clean_leftovers(e->repo, t->name);
	m->start_ms = usher_now_ms();
	usher_repo_new_id(e->repo, t->name, m->start_ms, id, idlen);
	if (!fmt(partial, sizeof(partial), "%s/%s.partial", e->repo, id) ||
	    !fmt(final, sizeof(final), "%s/%s", e->repo, id) ||
	    !fmt(data, sizeof(data), "%s/%s", partial, data_file) ||
	    !fmt(mpath, sizeof(mpath), "%s/manifest.json", partial)) {
		rc = usher_fail(err, USHER_ERR_INVALID, "repository path too long: %s", e->repo);
		goto out;
	}
	if (mkdir(partial, 0700) != 0) {
		rc = usher_fail(err, USHER_ERR_IO, "cannot create %s: %s", partial, strerror(errno));
		goto out;
	}
	made = true;
	fd = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = usher_fail(err, USHER_ERR_IO, "cannot create %s: %s", data, strerror(errno));
		goto out;
	}
	rc = usher_bwriter_new(fd, e->key, e->level, e->threads, &tk.w, err);
	if (rc)
		goto out;
	pr.start_ns = usher_mono_ns();
	usher_bwriter_set_progress(tk.w, progress_cb, &pr);
	if (strcmp(t->kind, "postgres") == 0)
		rc = dump_postgres(e, t, &tk, m, err);
	else
		rc = usher_redis_dump(&t->redis, m, to_writer, &tk, e->stop, err);
	if (!rc)
		rc = usher_bwriter_finish(tk.w, &st, err);
	progress_end(&pr);
	if (rc)
		goto out;
	if (fsync(fd) != 0) {
		rc = usher_fail(err, USHER_ERR_IO, "fsync %s: %s", data, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = usher_fail(err, USHER_ERR_IO, "close %s: %s", data, strerror(errno));
		goto out;
	}
	fd = -1;
	m->stop_ms = usher_now_ms();
	m->id = id;
	m->kind = t->kind;
	m->target = t->name;
	m->data_file = data_file;
	m->raw_bytes = st.raw_bytes;
	m->stored_bytes = st.stored_bytes;
	m->chunks = st.chunks;
	m->sha256 = st.sha256;
	m->raw_sha256 = st.raw_sha256;
	m->compression = "zstd";
	m->level = e->level;
	m->threads = e->threads;
	m->cipher = "aes-256-gcm";
	m->key_id = e->key->id;
	m->chunk_bytes = USHER_BACKUP_CHUNK_MAX;
	usher_manifest_sign(m, e->key);
	rc = usher_manifest_save(m, mpath, err);
	if (!rc)
		rc = usher_fsync_dir(partial, err);
	if (!rc && rename(partial, final) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "rename %s: %s", partial, strerror(errno));
	if (!rc) {
		made = false;
		rc = usher_fsync_dir(e->repo, err);
	}
out:
	usher_bwriter_free(tk.w);
	if (fd >= 0)
		close(fd);
	if (made)
		usher_repo_rmdir(partial, NULL);
	write_backup_metrics(e, t->name, rc == USHER_OK, (double)usher_now_ms() / 1000.0,
			     rc ? 0 : (double)m->stored_bytes,
			     (double)(usher_mono_ns() - start_ns) / 1e9);
	usher_repo_unlock(lock);
	usher_manifest_free(m);
	if (rc)
		*id = '\0';
	return rc;
}

/* -------------------------------------------------------------- verify */

static enum usher_err check_key(const struct usher_backup_env *e, const struct usher_manifest *m,
				struct usher_error *err)
{
	if (strcmp(m->key_id, e->key->id) != 0)
		return usher_fail(err, USHER_ERR_AUTH,
				  "wrong key: %s was encrypted with key id %s, the key given has "
				  "id %s",
				  m->id, m->key_id, e->key->id);
	return usher_manifest_check(m, e->key, err);
}

/* Reads b's data through sink, then holds what was read against the
 * manifest. */
static enum usher_err read_backup(const struct usher_backup_env *e,
				  const struct usher_repo_entry *b, usher_bsink_fn *sink, void *ctx,
				  struct usher_error *err)
{
	const struct usher_manifest *m = b->m;
	struct usher_bstream_stats st;
	struct progress pr = {.on = e->progress, .what = m->id, .start_ns = usher_mono_ns(),
			      .total = m->stored_bytes};
	char path[PATH_LEN];
	enum usher_err rc = check_key(e, m, err);
	int fd;

	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", b->dir, m->data_file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "%s: %s", path, strerror(errno));
	rc = usher_breader_run(fd, e->key, sink, ctx, progress_cb, &pr, &st, err);
	progress_end(&pr);
	close(fd);
	if (rc) {
		struct usher_error e2 = {{0}};

		/* say which backup, keeping the root cause */
		fmt(e2.msg, sizeof(e2.msg), "%s: %s", m->id, err ? err->msg : "");
		if (err)
			*err = e2;
		return rc;
	}
	if (st.stored_bytes != m->stored_bytes || strcmp(st.sha256, m->sha256) != 0)
		return usher_fail(err, USHER_ERR_PROTOCOL,
				  "%s: the data file (%llu bytes, sha256 %.12s...) is not the one "
				  "the manifest describes (%llu bytes, sha256 %.12s...)",
				  m->id, (unsigned long long)st.stored_bytes, st.sha256,
				  (unsigned long long)m->stored_bytes, m->sha256);
	if (st.raw_bytes != m->raw_bytes || strcmp(st.raw_sha256, m->raw_sha256) != 0 ||
	    st.chunks != m->chunks)
		return usher_fail(err, USHER_ERR_PROTOCOL,
				  "%s: the decrypted dump differs from what the manifest recorded",
				  m->id);
	return USHER_OK;
}

enum usher_err usher_backup_verify(const struct usher_backup_env *e,
				   const struct usher_repo_entry *b, struct usher_error *err)
{
	enum usher_err rc = read_backup(e, b, NULL, NULL, err);

	if (e->textfile_dir) {
		char file[300];
		double now = (double)usher_now_ms() / 1000.0;
		struct usher_promfile_gauge g[3] = {
		    {"usher_backup_verify_last_success_timestamp_seconds",
		     "Unix time of the last successful verify of a backup of the target.", now},
		    {"usher_backup_verify_last_status", "1 if the last verify passed, 0 if not.",
		     rc ? 0 : 1},
		    {"usher_backup_verify_last_backup_timestamp_seconds",
		     "Start time of the backup the last verify read.",
		     (double)b->m->start_ms / 1000.0},
		};
		struct usher_error e2 = {{0}};

		usher_promfile_name("backup_verify", b->m->target, file, sizeof(file));
		if (rc)
			g[0].value = usher_promfile_read(e->textfile_dir, file, g[0].name, 0);
		if (usher_promfile_write(e->textfile_dir, file, b->m->target, g, 3, &e2))
			fprintf(stderr, "usher: warning: %s\n", e2.msg);
	}
	return rc;
}

/* ------------------------------------------------------------- restore */

struct fdsink {
	int fd;
	const char *path;
};

static enum usher_err to_fd(void *ctx, const void *p, size_t n, struct usher_error *err)
{
	struct fdsink *s = ctx;

	return usher_write_all(s->fd, p, n, s->path, err);
}

/* Decrypts b into fd (the file at path). sync: fsync it afterwards, for a
 * file that is kept (--to-file); the temp file pg_restore reads at once
 * needs no durability, and an fsync of a large dump costs seconds. */
static enum usher_err decrypt_to(const struct usher_backup_env *e,
				 const struct usher_repo_entry *b, int fd, const char *path,
				 bool sync, struct usher_error *err)
{
	struct fdsink s = {fd, path};
	enum usher_err rc = read_backup(e, b, to_fd, &s, err);

	if (!rc && sync && fsync(fd) != 0 && errno != EINVAL)
		rc = usher_fail(err, USHER_ERR_IO, "fsync %s: %s", path, strerror(errno));
	return rc;
}

static enum usher_err pg_restore(const struct usher_backup_env *e, const struct usher_pgconn *conn,
				 int major, const char *file, const struct usher_restore_req *r,
				 struct usher_error *err)
{
	char tool[PATH_LEN], jobs[32];
	char *conninfo = usher_pgconn_conninfo(conn);
	char *argv[16];
	struct usher_child c;
	enum usher_err rc;
	int n = 0;

	rc = usher_pg_tool("pg_restore", major, tool, sizeof(tool), err);
	if (rc) {
		free(conninfo);
		return rc;
	}
	snprintf(jobs, sizeof(jobs), "--jobs=%d", r->jobs > 0 ? r->jobs : 1);
	argv[n++] = (char *)"pg_restore";
	argv[n++] = (char *)"--exit-on-error";
	argv[n++] = (char *)"--no-password";
	argv[n++] = jobs;
	if (r->force) {
		argv[n++] = (char *)"--clean";
		argv[n++] = (char *)"--if-exists";
	}
	if (r->no_owner) {
		argv[n++] = (char *)"--no-owner";
		argv[n++] = (char *)"--no-acl";
	}
	argv[n++] = (char *)"--dbname";
	argv[n++] = conninfo;
	argv[n++] = (char *)file;
	argv[n] = NULL;
	rc = usher_child_spawn(tool, argv, usher_pgconn_get(conn, "password"), false, &c, err);
	if (!rc)
		rc = usher_child_finish(&c, NULL, NULL, e->stop, err);
	usher_child_free(&c);
	free(conninfo);
	return rc;
}

/* Creates a file for the decrypted dump: dir/usher-restore-XXXXXX. */
static int temp_file(const struct usher_backup_env *e, char *path, size_t len,
		     struct usher_error *err)
{
	const char *dir = e->tmp_dir ? e->tmp_dir : getenv("TMPDIR");
	int fd;

	if (!dir || !*dir)
		dir = "/var/tmp";
	snprintf(path, len, "%s/usher-restore-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		usher_fail(err, USHER_ERR_IO, "cannot create a temp file in %s: %s", dir,
			   strerror(errno));
		return -1;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

enum usher_err usher_restore_run(const struct usher_backup_env *e,
				 const struct usher_repo_entry *b, const struct usher_restore_req *r,
				 struct usher_restore_result *res, struct usher_error *err)
{
	const struct usher_manifest *m = b->m;
	struct usher_pgconn conn = {0};
	struct usher_pgsess *s = NULL;
	char tmp[PATH_LEN];
	int64_t t0 = usher_mono_ms(), t1;
	int fd = -1;
	bool remove_tmp = false;
	enum usher_err rc;

	memset(res, 0, sizeof(*res));
	rc = check_key(e, m, err);
	if (rc)
		return rc;
	if (r->to_file) {
		snprintf(tmp, sizeof(tmp), "%s", r->to_file);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return usher_fail(err, USHER_ERR_IO, "cannot create %s: %s%s", tmp,
					  strerror(errno),
					  errno == EEXIST ? " (will not overwrite it)" : "");
		remove_tmp = true;
		rc = decrypt_to(e, b, fd, tmp, true, err);
		res->decrypt_ms = usher_mono_ms() - t0;
		if (!rc)
			remove_tmp = false;
		goto out;
	}
	if (strcmp(m->kind, "postgres") != 0) {
		return usher_fail(err, USHER_ERR_UNSUPPORTED,
				  "%s is a redis backup: restore it with --to-file PATH, then put "
				  "the file in place of the server's dump.rdb and restart it",
				  m->id);
	}
	/* check the target before spending time on decryption */
	rc = usher_pgconn_parse(r->to_dsn, &conn, err);
	if (!rc)
		rc = usher_pgsess_open(&conn, &s, err);
	if (rc)
		goto out;
	{
		int64_t rels = 0;

		rc = usher_pgsess_relations(s, &rels, err);
		if (rc)
			goto out;
		if (rels > 0 && !r->force) {
			char *d = usher_pgconn_describe(&conn);

			rc = usher_fail(err, USHER_ERR_INVALID,
					"database %s is not empty (%lld tables, views or sequences): "
					"restore into an empty database, or pass --force to replace "
					"the objects the backup holds",
					d, (long long)rels);
			free(d);
			goto out;
		}
	}
	fd = temp_file(e, tmp, sizeof(tmp), err);
	if (fd < 0) {
		rc = USHER_ERR_IO;
		goto out;
	}
	remove_tmp = true;
	rc = decrypt_to(e, b, fd, tmp, false, err);
	t1 = usher_mono_ms();
	res->decrypt_ms = t1 - t0;
	if (rc)
		goto out;
	rc = pg_restore(e, &conn, usher_pgsess_major(s), tmp, r, err);
	res->restore_ms = usher_mono_ms() - t1;
	if (rc)
		goto out;
	t1 = usher_mono_ms();
	rc = usher_pgsess_compare_counts(s, m, &res->mismatches, res->report, sizeof(res->report),
					 err);
	res->tables = m->ntables;
	res->check_ms = usher_mono_ms() - t1;
	if (!rc && res->mismatches)
		rc = usher_fail(err, USHER_ERR_PROTOCOL,
				"restored, but %zu of %zu tables have other row counts than the "
				"backup:\n%s",
				res->mismatches, m->ntables, res->report);
out:
	if (fd >= 0)
		close(fd);
	if (remove_tmp)
		unlink(tmp);
	usher_pgsess_close(s);
	usher_pgconn_free(&conn);
	return rc;
}

/* --------------------------------------------------------------- drill */

static void logf_(FILE *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(FILE *log, const char *fmt, ...)
{
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	vfprintf(log, fmt, ap);
	va_end(ap);
	fflush(log);
}

static void write_drill_metrics(const struct usher_backup_env *e, const char *target, bool ok,
				const struct usher_drill_result *res)
{
	char file[300];
	struct usher_promfile_gauge g[4] = {
	    {"usher_dr_drill_last_success_timestamp_seconds",
	     "Unix time of the last successful DR drill of the target.",
	     (double)usher_now_ms() / 1000.0},
	    {"usher_dr_drill_rto_seconds",
	     "Time the last successful drill took to get a checked, usable database.",
	     (double)res->rto_ms / 1000.0},
	    {"usher_dr_drill_rpo_seconds",
	     "Age of the restored data when the last successful drill finished.", res->rpo_s},
	    {"usher_dr_drill_last_status", "1 if the last drill succeeded, 0 if it failed.",
	     ok ? 1 : 0},
	};
	struct usher_error err = {{0}};

	if (!e->textfile_dir)
		return;
	usher_promfile_name("dr_drill", target, file, sizeof(file));
	if (!ok) {
		g[0].value = usher_promfile_read(e->textfile_dir, file, g[0].name, 0);
		g[1].value = usher_promfile_read(e->textfile_dir, file, g[1].name, NAN);
		g[2].value = usher_promfile_read(e->textfile_dir, file, g[2].name, NAN);
	}
	if (usher_promfile_write(e->textfile_dir, file, target, g, 4, &err))
		fprintf(stderr, "usher: warning: %s\n", err.msg);
}

enum usher_err usher_drill_run(const struct usher_backup_env *e, const char *target,
			       const struct usher_backup_drill_conf *d,
			       struct usher_drill_result *res, FILE *log, struct usher_error *err)
{
	struct usher_repo_list list = {0};
	const struct usher_repo_entry *b = NULL;
	struct usher_pgconn scratch = {0}, dbconn = {0};
	struct usher_pgsess *admin = NULL, *s = NULL;
	int64_t t0 = usher_mono_ms();
	bool created = false;
	enum usher_err rc;
	size_t i;

	memset(res, 0, sizeof(*res));
	if (!d->scratch_dsn) {
		rc = usher_fail(err, USHER_ERR_INVALID,
				"no scratch server: set backup.drill.scratch_dsn in the config");
		goto out;
	}
	rc = usher_repo_list(e->repo, target, &list, err);
	if (rc)
		goto out;
	for (i = list.n; i > 0; i--)
		if (strcmp(list.v[i - 1].m->kind, "postgres") == 0) {
			b = &list.v[i - 1];
			break;
		}
	if (!b) {
		rc = usher_fail(err, USHER_ERR_NOTFOUND, "no postgres backup of %s in %s", target,
				e->repo);
		goto out;
	}
	snprintf(res->id, sizeof(res->id), "%s", b->id);
	logf_(log, "drill %s: newest backup %s (%s)\n", target, b->id, b->m->database);
	rc = usher_pgconn_parse(d->scratch_dsn, &scratch, err);
	if (!rc)
		rc = usher_pgsess_open(&scratch, &admin, err);
	if (rc)
		goto out;
	snprintf(res->scratch_db, sizeof(res->scratch_db), "usher_drill_%ld_%lld", (long)getpid(),
		 (long long)(usher_now_ms() / 1000));
	rc = usher_pgsess_create_db(admin, res->scratch_db, err);
	if (rc)
		goto out;
	created = true;
	logf_(log, "drill %s: restoring into scratch database %s\n", target, res->scratch_db);
	usher_pgconn_copy(&scratch, res->scratch_db, &dbconn);
	{
		struct usher_restore_req r = {.jobs = (int)(d->jobs > 0 ? d->jobs : 2),
					      .no_owner = true};
		char *dsn = usher_pgconn_conninfo(&dbconn);

		/* the password stays out of the conninfo: hand the parsed copy over */
		r.to_dsn = dsn;
		{
			const char *pw = usher_pgconn_get(&scratch, "password");
			struct usher_buf full;

			usher_buf_init(&full, 64 * 1024);
			usher_buf_addstr(&full, dsn);
			if (pw) {
				const char *p;

				usher_buf_addstr(&full, " password='");
				for (p = pw; *p; p++) {
					if (*p == '\'' || *p == '\\')
						usher_buf_addc(&full, '\\');
					usher_buf_addc(&full, *p);
				}
				usher_buf_addc(&full, '\'');
			}
			free(dsn);
			dsn = usher_buf_take(&full);
			r.to_dsn = dsn;
		}
		rc = usher_restore_run(e, b, &r, &res->restore, err);
		if (dsn)
			memset(dsn, 0, strlen(dsn));
		free(dsn);
	}
	if (rc)
		goto out;
	res->tables = res->restore.tables;
	logf_(log, "drill %s: restored %zu tables, row counts match the backup\n", target,
	      res->tables);
	rc = usher_pgsess_open(&dbconn, &s, err);
	if (rc)
		goto out;
	for (i = 0; i < d->sanity_sql.n; i++) {
		char first[128];
		struct usher_error e2 = {{0}};

		if (usher_pgsess_check(s, d->sanity_sql.v[i], first, sizeof(first), &e2)) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL, "sanity check %zu (%.80s) failed: %s",
					i + 1, d->sanity_sql.v[i], e2.msg);
			goto out;
		}
		logf_(log, "drill %s: sanity check %zu ok%s%s\n", target, i + 1, *first ? ": " : "",
		      first);
		res->checks++;
	}
	res->rto_ms = usher_mono_ms() - t0;
	res->rpo_s = (double)(usher_now_ms() - b->m->start_ms) / 1000.0;
out:
	usher_pgsess_close(s);
	if (created) {
		struct usher_error e2 = {{0}};

		if (usher_pgsess_drop_db(admin, res->scratch_db, &e2)) {
			logf_(log, "drill %s: could not drop %s: %s\n", target, res->scratch_db,
			      e2.msg);
			if (!rc)
				rc = usher_fail(err, USHER_ERR_IO, "dropping %s: %s", res->scratch_db,
						e2.msg);
		} else {
			logf_(log, "drill %s: dropped %s\n", target, res->scratch_db);
		}
	}
	usher_pgsess_close(admin);
	usher_pgconn_free(&scratch);
	usher_pgconn_free(&dbconn);
	write_drill_metrics(e, target, rc == USHER_OK, res);
	usher_repo_list_free(&list);
	return rc;
}
