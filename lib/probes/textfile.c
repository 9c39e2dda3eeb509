/* The textfile directory, as node_exporter's textfile collector reads it:
 * each *.prom file parsed whole (text format 0.0.4; a bad file is left out
 * entirely, never half-imported, and named in a rate-limited log line),
 * families that disagree across files dropped after the first, and
 * node_textfile_mtime_seconds / node_textfile_scrape_error. */
#include "probes/textfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "metrics/ingest.h"
#include "metrics/textparse.h"
#include "probes/host.h"
#include "probes/scrape.h"

/* Files listed per run: a directory with more is an error past these. */
#define MAX_FILES 4096

static const struct usher_metric_desc desc_mtime = {
    "node_textfile_mtime_seconds", USHER_METRIC_GAUGE,
    "Unixtime mtime of textfiles successfully read."};
static const struct usher_metric_desc desc_error = {
    "node_textfile_scrape_error", USHER_METRIC_GAUGE,
    "1 if there was an error opening or reading a file, 0 otherwise"};

/* ---- config ------------------------------------------------------------- */

enum usher_err usher_textfile_parse_dir(struct usher_cfgctx *ctx, const struct usher_ynode *n,
					void *field)
{
	struct usher_config *cfg = ctx->root;
	const char **dir = field;
	struct usher_textfile_opts *o;
	struct usher_probe_conf *pc;

	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, n, "textfile_dir: expected a directory path, got a %s",
				       usher_ynode_kind_name(n->kind));
	if (!*n->value)
		return usher_cfg_error(ctx, n, "textfile_dir must not be empty");
	*dir = usher_arena_strdup(ctx->arena, n->value);
	o = usher_arena_zalloc(ctx->arena, sizeof(*o));
	o->dir = *dir;
	pc = usher_config_add_probe(ctx);
	/* a '/' in the name: no name under probes: can be the same */
	pc->name = usher_arena_printf(ctx->arena, "textfile:%s%s", **dir == '/' ? "" : "./", *dir);
	pc->type_name = usher_probe_textfile.name;
	pc->type = &usher_probe_textfile;
	pc->interval_ms = cfg->global.scrape_interval_ms;
	pc->timeout_ms = usher_config_default_timeout(cfg, pc->interval_ms);
	pc->job = "textfile";
	pc->instance = usher_host_name(ctx->arena);
	pc->opts = o;
	pc->line = n->line;
	pc->col = n->col;
	return USHER_OK;
}

/* ---- the probe type ----------------------------------------------------- */

/* What is remembered of a file between runs: its complaint state. */
struct file_state {
	char *name;
	struct usher_complain complain;
	bool seen; /* listed in the current run */
};

struct textfile {
	const char *dir;
	struct usher_log *log;
	const char *target[5]; /* job, instance: the scheduler's base labels */
	struct usher_complain dir_complain;
	struct file_state *files;
	size_t nfiles, capfiles;
	atomic_bool cancel;
};

static void textfile_free(void *ctx)
{
	struct textfile *t = ctx;
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nfiles; i++)
		free(t->files[i].name);
	free(t->files);
	free(t);
}

static enum usher_err textfile_init(const struct usher_probe_conf *pc,
				    const struct usher_probe_env *env, void **ctx,
				    struct usher_error *err)
{
	struct textfile *t = usher_calloc(1, sizeof(*t));
	const struct usher_textfile_opts *o = pc->opts;

	(void)err;
	t->dir = o->dir;
	t->log = env->log;
	t->target[0] = "job";
	t->target[1] = pc->job;
	t->target[2] = "instance";
	t->target[3] = pc->instance;
	t->target[4] = NULL;
	atomic_init(&t->cancel, false);
	*ctx = t;
	return USHER_OK;
}

static void textfile_cancel(void *ctx, struct usher_probe_run *run)
{
	struct textfile *t = ctx;

	(void)run;
	atomic_store(&t->cancel, true);
}

static struct file_state *file_state(struct textfile *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->nfiles; i++)
		if (strcmp(t->files[i].name, name) == 0)
			return &t->files[i];
	if (t->nfiles == t->capfiles) {
		t->capfiles = t->capfiles ? t->capfiles * 2 : 8;
		t->files = usher_realloc(t->files, t->capfiles * sizeof(*t->files));
	}
	memset(&t->files[t->nfiles], 0, sizeof(t->files[0]));
	t->files[t->nfiles].name = usher_strdup(name);
	return &t->files[t->nfiles++];
}

/* Forgets files that are gone, so one that comes back is news again. */
static void prune_files(struct textfile *t)
{
	size_t i, k = 0;

	for (i = 0; i < t->nfiles; i++) {
		if (t->files[i].seen) {
			t->files[i].seen = false;
			t->files[k++] = t->files[i];
		} else {
			free(t->files[i].name);
		}
	}
	t->nfiles = k;
}

/* One failure of path (a file, or the directory), logged once and then at
 * most every 10 minutes; whole says the file's samples were all left out. */
static void complain(struct textfile *t, struct usher_complain *c, const char *path,
		     const char *msg, bool whole)
{
	uint64_t held = 0;

	if (!usher_complain(c, usher_now_ms(), &held))
		return;
	{
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "textfile-failed"),
		    USHER_LFS("event.kind", "event"),
		    USHER_LFS("event.outcome", "failure"),
		    USHER_LFS("file.path", path),
		    USHER_LFS("error.message", msg),
		    USHER_LFI("usher.textfile.failures_held_back", (int64_t)held),
		};
		usher_log_event(t->log, USHER_LOG_WARN, f, sizeof(f) / sizeof(f[0]),
				"textfile %s: %s%s", path, msg,
				whole ? "; its samples are left out" : "");
	}
}

static void recovered(struct textfile *t, struct usher_complain *c, const char *path)
{
	if (!usher_complain_release(c))
		return;
	{
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "textfile-recovered"),
		    USHER_LFS("event.kind", "event"),
		    USHER_LFS("event.outcome", "success"),
		    USHER_LFS("file.path", path),
		};
		usher_log_event(t->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
				"textfile %s is read again", path);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The *.prom names in dir, sorted (node_exporter's order), in a. */
static enum usher_err list_files(const char *dir, struct usher_arena *a, const char ***out,
				 size_t *n, char *msg, size_t msglen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	const char **v;
	size_t cap = 64;

	*n = 0;
	if (!d) {
		snprintf(msg, msglen, "cannot read the textfile directory: %s", strerror(errno));
		return USHER_ERR_IO;
	}
	v = usher_arena_alloc(a, cap * sizeof(*v));
	errno = 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l <= 5 || strcmp(e->d_name + l - 5, ".prom") != 0)
			continue;
		if (*n == MAX_FILES) {
			snprintf(msg, msglen, "more than %d *.prom files; the rest are left out",
				 MAX_FILES);
			break;
		}
		if (*n == cap) {
			const char **w = usher_arena_alloc(a, 2 * cap * sizeof(*w));

			memcpy(w, v, cap * sizeof(*w));
			v = w;
			cap *= 2;
		}
		v[(*n)++] = usher_arena_strdup(a, e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_str);
	*out = v;
	return *n == MAX_FILES && msg[0] ? USHER_ERR_TOOBIG : USHER_OK;
}

/* Reads path whole into b (bounded by USHER_TEXTFILE_MAX); *mtime from the
 * same open file. A FIFO or device is refused without blocking on it. */
static enum usher_err read_file(const char *path, struct usher_buf *b, double *mtime, char *msg,
				size_t msglen)
{
	char chunk[16384];
	struct stat st;
	enum usher_err rc = USHER_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		snprintf(msg, msglen, "cannot open: %s", strerror(errno));
		return USHER_ERR_IO;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(msg, msglen, "cannot stat: %s", strerror(errno));
		rc = USHER_ERR_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(msg, msglen, "not a regular file");
		rc = USHER_ERR_INVALID;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(msg, msglen, "cannot read: %s", strerror(errno));
			rc = USHER_ERR_IO;
			break;
		}
		if (n == 0)
			break;
		if (usher_buf_add(b, chunk, (size_t)n)) {
			snprintf(msg, msglen, "larger than %d MiB", USHER_TEXTFILE_MAX >> 20);
			rc = USHER_ERR_TOOBIG;
			break;
		}
	}
	/* node_exporter: whole seconds of the mtime */
	*mtime = (double)st.st_mtime;
out:
	close(fd);
	return rc;
}

/* Reads, checks and stages one file; false (with msg) when it is left out. */
static bool one_file(struct textfile *t, struct usher_ingest *ing, struct usher_arena *a,
		     const char *path, double *mtime, bool *conflict, char *msg, size_t msglen)
{
	struct usher_tp_limits lim = {.reject_duplicates = true};
	struct usher_ingest_stats st;
	struct usher_tp_result r;
	struct usher_tp_error perr;
	struct usher_buf b;
	bool ok = false;
	size_t i;

	(void)t;
	usher_buf_init(&b, USHER_TEXTFILE_MAX);
	if (read_file(path, &b, mtime, msg, msglen))
		goto out;
	if (usher_textparse(b.data ? b.data : "", b.len, USHER_TP_TEXT, &lim, a, &r, &perr)) {
		snprintf(msg, msglen, "line %d:%d: %s", perr.line, perr.col, perr.msg);
		goto out;
	}
	for (i = 0; i < r.nsamples; i++) {
		if (r.samples[i].has_timestamp) {
			snprintf(msg, msglen,
				 "line %d: samples in textfiles must not carry timestamps",
				 r.samples[i].line);
			goto out;
		}
	}
	usher_ingest_add(ing, &r, USHER_TP_TEXT, path,
			 usher_arena_printf(a, "Metric read from %s", path), &st);
	usher_ingest_commit(ing);
	if (st.conflicts) {
		/* the file itself is fine and imported, minus that family */
		*conflict = true;
		snprintf(msg, msglen, "%s", st.conflict);
	}
	ok = true;
out:
	usher_buf_free(&b);
	return ok;
}

static void textfile_run(void *ctx, struct usher_probe_run *run)
{
	struct textfile *t = ctx;
	struct usher_ingest *ing = usher_ingest_new(
	    run->samples, run->arena, &(struct usher_ingest_opts){.target = t->target});
	const char **names = NULL, **paths;
	double *mtimes;
	bool *good, error = false;
	size_t n = 0, i;
	char msg[512] = "";

	atomic_store(&t->cancel, false);
	if (list_files(t->dir, run->arena, &names, &n, msg, sizeof(msg))) {
		error = true;
		complain(t, &t->dir_complain, t->dir, msg, false);
	} else {
		recovered(t, &t->dir_complain, t->dir);
	}
	paths = usher_arena_alloc(run->arena, (n ? n : 1) * sizeof(*paths));
	mtimes = usher_arena_zalloc(run->arena, (n ? n : 1) * sizeof(*mtimes));
	good = usher_arena_zalloc(run->arena, (n ? n : 1) * sizeof(*good));
	usher_probe_reserve_generic(ing, run->arena, t->target, USHER_SERIES_PROBE);
	usher_ingest_reserve(ing, desc_error.name, t->target);
	usher_ingest_declare(ing, &desc_error);
	usher_ingest_declare(ing, &desc_mtime);
	for (i = 0; i < n; i++) {
		const char *pairs[] = {t->target[0], t->target[1], t->target[2], t->target[3],
				       "file",       NULL,         NULL};

		paths[i] =
		    usher_arena_printf(run->arena, "%s%s%s", t->dir,
				       t->dir[strlen(t->dir) - 1] == '/' ? "" : "/", names[i]);
		pairs[5] = paths[i];
		usher_ingest_reserve(ing, desc_mtime.name, pairs);
	}
	for (i = 0; i < n; i++) {
		struct file_state *fs = file_state(t, names[i]);
		bool conflict = false;

		fs->seen = true;
		if (atomic_load(&t->cancel)) {
			usher_probe_fail(run, USHER_FAIL_TIMEOUT,
					 "stopped after %zu of %zu textfiles: out of time", i, n);
			error = true;
			break;
		}
		msg[0] = '\0';
		good[i] =
		    one_file(t, ing, run->arena, paths[i], &mtimes[i], &conflict, msg, sizeof(msg));
		if (!good[i] || conflict) {
			error = true;
			complain(t, &fs->complain, paths[i], msg, !good[i]);
		} else {
			recovered(t, &fs->complain, paths[i]);
		}
	}
	for (i = 0; i < n; i++)
		if (good[i])
			usher_sample_add(run->samples, &desc_mtime, mtimes[i], "file", paths[i],
					 NULL);
	usher_sample_add(run->samples, &desc_error, error ? 1 : 0, NULL);
	if (!atomic_load(&t->cancel))
		prune_files(t);
}

const struct usher_probe_type usher_probe_textfile = {
    .name = "textfile",
    .help = "the *.prom files of textfile_dir (node_exporter's textfile collector)",
    .series = USHER_SERIES_PROBE,
    .opts_size = sizeof(struct usher_textfile_opts),
    .init = textfile_init,
    .run = textfile_run,
    .cancel = textfile_cancel,
    .free = textfile_free,
};
