/* logship: event numbering and ids, one encoding per event, fan-out to the
 * sinks, reloads, SIGUSR1 reopening and the usher_log_* metrics. */
#include "logship/logship.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/ecs.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "logship/sink.h"

#define ENCODED_MAX (128 * 1024)
/* event.sequence = epoch << SEQ_BITS | n: growing across restarts without
 * writing anything per event */
#define SEQ_BITS 40

struct instance {
	const struct usher_log_sink_type *type;
	char *name;
	void *ctx;
	struct usher_log_sink_stats *stats;
};

struct usher_logship_plan {
	struct instance *v;
	size_t n;
	char *base; /* state_dir/logship, where spools live */
	struct usher_arena *arena; /* the static labels */
	struct usher_log_field *extra;
	size_t nextra;
};

struct usher_logship {
	struct usher_log *log;
	long pid;
	pthread_mutex_t lock; /* the sinks, the sequence, the scratch buffers */
	struct usher_logship_plan *cur;
	bool want_text;
	uint64_t seq_base, seq_next;
	bool have_epoch;
	struct usher_buf ecs, text;
	/* counters by sink name, kept for the life of the logship */
	struct usher_log_sink_stats **stats;
	size_t nstats;
	/* spools left by sinks no longer configured (renamed or removed) */
	struct orphan {
		char *name;
		uint64_t bytes;
	} *orphans;
	size_t norphans;
};

static const struct usher_metric_desc desc_events = {
    "usher_log_events", USHER_METRIC_COUNTER,
    "Log events handled by each sink, by outcome (delivered, failed, retried, dead_letter)"};
static const struct usher_metric_desc desc_dropped = {
    "usher_log_dropped", USHER_METRIC_COUNTER,
    "Log events a sink dropped, by reason (queue_full, spool_full, spool_error, corrupt)"};
static const struct usher_metric_desc desc_spool = {
    "usher_log_spool_bytes", USHER_METRIC_GAUGE,
    "Bytes of log events in a sink's disk spool, not yet acknowledged"};

static const struct usher_metric_desc desc_orphaned = {
    "usher_log_spool_orphaned_bytes", USHER_METRIC_GAUGE,
    "Bytes of undelivered log events in the spool of a sink that is no longer configured"};

static const char *const drop_names[USHER_DROP_NREASONS] = {"queue_full", "spool_full",
							    "spool_error", "corrupt"};

struct usher_logship *usher_logship_new(struct usher_log *log)
{
	struct usher_logship *ls = usher_calloc(1, sizeof(*ls));

	ls->log = log;
	ls->pid = (long)getpid();
	pthread_mutex_init(&ls->lock, NULL);
	usher_buf_init(&ls->ecs, ENCODED_MAX);
	usher_buf_init(&ls->text, ENCODED_MAX);
	return ls;
}

static struct usher_log_sink_stats *stats_for(struct usher_logship *ls, const char *name,
					      bool network)
{
	struct usher_log_sink_stats *s;
	size_t i;

	for (i = 0; i < ls->nstats; i++)
		if (strcmp(ls->stats[i]->name, name) == 0) {
			ls->stats[i]->network = network;
			return ls->stats[i];
		}
	s = usher_calloc(1, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->network = network;
	ls->stats = usher_realloc(ls->stats, (ls->nstats + 1) * sizeof(*ls->stats));
	ls->stats[ls->nstats++] = s;
	return s;
}

static enum usher_err mkdirs(const char *dir, struct usher_error *err)
{
	char path[4096];
	size_t i, len = strlen(dir);

	if (len >= sizeof(path))
		return usher_fail(err, USHER_ERR_INVALID, "path too long: %s", dir);
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST)
			return usher_fail(err, USHER_ERR_IO, "cannot create %s: %s", path,
					  strerror(errno));
		path[i] = dir[i];
	}
	return USHER_OK;
}

/* Reads the epoch in dir, and stores the next one (synced: a reused epoch
 * would reuse event ids). */
static enum usher_err next_epoch(const char *dir, uint64_t *epoch, struct usher_error *err)
{
	char path[4096], tmp[4096], line[32];
	uint64_t e = 0;
	ssize_t n;
	int fd;

	if (snprintf(path, sizeof(path), "%s/epoch", dir) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/epoch.tmp", dir) >= (int)sizeof(tmp))
		return usher_fail(err, USHER_ERR_INVALID, "path too long: %s", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, line, sizeof(line) - 1);
		close(fd);
		if (n > 0) {
			line[n] = '\0';
			e = strtoull(line, NULL, 10);
		}
	}
	e++;
	if (e >= (1ULL << (63 - SEQ_BITS)))
		e = 1;
	n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)e);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
		int saved = errno;

		if (fd >= 0)
			close(fd);
		return usher_fail(err, USHER_ERR_IO, "cannot write %s: %s", tmp, strerror(saved));
	}
	close(fd);
	if (rename(tmp, path) != 0)
		return usher_fail(err, USHER_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
	*epoch = e;
	return USHER_OK;
}

void usher_logship_plan_free(struct usher_logship_plan *plan)
{
	size_t i;

	if (!plan)
		return;
	for (i = 0; i < plan->n; i++) {
		plan->v[i].type->free(plan->v[i].ctx);
		free(plan->v[i].name);
	}
	free(plan->v);
	free(plan->base);
	usher_arena_free(plan->arena);
	free(plan);
}

enum usher_err usher_logship_prepare(struct usher_logship *ls, const struct usher_config *cfg,
				     struct usher_logship_plan **out, struct usher_error *err)
{
	static const struct usher_log_sink_conf default_sink = {
	    .name = "stdout", .type_name = "stdout", .type = &usher_log_sink_stdout};
	const struct usher_log_sink_conf *confs = cfg->logging.sinks.v;
	size_t nconfs = cfg->logging.sinks.n, i;
	struct usher_logship_plan *plan = usher_calloc(1, sizeof(*plan));
	const struct usher_strmap *ext = &cfg->global.external_labels;
	char base[4096];
	enum usher_err rc = USHER_OK;

	*out = NULL;
	if (!nconfs) {
		confs = &default_sink;
		nconfs = 1;
	}
	if (snprintf(base, sizeof(base), "%s/logship", cfg->state_dir) >= (int)sizeof(base) - 80) {
		rc = usher_fail(err, USHER_ERR_INVALID, "state_dir path too long");
		goto out;
	}
	rc = mkdirs(base, err);
	if (rc)
		goto out;
	if (!ls->have_epoch) {
		uint64_t epoch = 0;

		rc = next_epoch(base, &epoch, err);
		if (rc)
			goto out;
		pthread_mutex_lock(&ls->lock);
		ls->seq_base = epoch << SEQ_BITS;
		ls->have_epoch = true;
		pthread_mutex_unlock(&ls->lock);
	}
	plan->arena = usher_arena_new();
	plan->base = usher_strdup(base);
	if (ext->n) {
		plan->extra = usher_arena_zalloc(plan->arena, ext->n * sizeof(*plan->extra));
		for (i = 0; i < ext->n; i++)
			plan->extra[i] =
			    USHER_LFS(usher_arena_printf(plan->arena, "labels.%s", ext->v[i].key),
				      usher_arena_strdup(plan->arena, ext->v[i].value));
		plan->nextra = ext->n;
	}
	plan->v = usher_calloc(nconfs, sizeof(*plan->v));
	for (i = 0; i < nconfs; i++) {
		const struct usher_log_sink_conf *sc = &confs[i];
		struct usher_log_sink_env env = {
		    .log = ls->log,
		    .stdout_format = cfg->logging.format && strcmp(cfg->logging.format, "text") == 0
					 ? USHER_LOG_FORMAT_TEXT
					 : USHER_LOG_FORMAT_ECS,
		};
		char dir[4096];
		void *ctx = NULL;
		bool network = sc->type->start != NULL;

		if (snprintf(dir, sizeof(dir), "%s/%s", base, sc->name) >= (int)sizeof(dir)) {
			rc = usher_fail(err, USHER_ERR_INVALID, "state_dir path too long");
			goto out;
		}
		if (network) {
			rc = mkdirs(dir, err);
			if (rc)
				goto out;
		}
		env.dir = dir;
		pthread_mutex_lock(&ls->lock);
		env.stats = stats_for(ls, sc->name, network);
		pthread_mutex_unlock(&ls->lock);
		rc = sc->type->init(sc, &env, &ctx, err);
		if (rc)
			goto out;
		plan->v[plan->n].type = sc->type;
		plan->v[plan->n].name = usher_strdup(sc->name);
		plan->v[plan->n].ctx = ctx;
		plan->v[plan->n].stats = env.stats;
		plan->n++;
	}
out:
	if (rc) {
		usher_logship_plan_free(plan);
		return rc;
	}
	*out = plan;
	return USHER_OK;
}

/* The bytes of the regular files in dir (a spool). */
static uint64_t dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t total = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char path[4096];
		struct stat sb;

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
			continue;
		if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
			total += (uint64_t)sb.st_size;
	}
	closedir(d);
	return total;
}

/* Spools in plan->base that no sink of plan owns: a sink renamed or
 * removed with events still undelivered. They are kept (the events are
 * not ours to throw away) and reported: a warning naming the directory
 * and a gauge, so the data is not forgotten silently. */
static void find_orphans(struct usher_logship *ls, const struct usher_logship_plan *plan)
{
	struct orphan *found = NULL;
	size_t nfound = 0, i;
	struct dirent *e;
	DIR *d;

	if (!plan->base || !(d = opendir(plan->base)))
		return;
	while ((e = readdir(d))) {
		char dir[4096];
		struct stat sb;
		uint64_t bytes;
		bool owned = false;

		if (e->d_name[0] == '.')
			continue;
		for (i = 0; i < plan->n && !owned; i++)
			owned = strcmp(plan->v[i].name, e->d_name) == 0;
		if (owned ||
		    snprintf(dir, sizeof(dir), "%s/%s", plan->base, e->d_name) >= (int)sizeof(dir) ||
		    stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
			continue;
		bytes = dir_bytes(dir);
		if (!bytes)
			continue;
		found = usher_realloc(found, (nfound + 1) * sizeof(*found));
		found[nfound].name = usher_strdup(e->d_name);
		found[nfound].bytes = bytes;
		nfound++;
		{
			struct usher_log_field f[] = {
			    USHER_LFS("event.action", "log-spool-orphaned"),
			    USHER_LFS("usher.log.sink", e->d_name),
			    USHER_LFS("file.directory", dir),
			    USHER_LFI("file.size", (int64_t)bytes),
			};
			usher_log_event(ls->log, USHER_LOG_WARN, f, sizeof(f) / sizeof(f[0]),
					"the spool of log sink %s (%llu bytes of undelivered events) "
					"belongs to no configured sink: name a sink %s again to deliver "
					"them, or delete %s",
					e->d_name, (unsigned long long)bytes, e->d_name, dir);
		}
	}
	closedir(d);
	pthread_mutex_lock(&ls->lock);
	for (i = 0; i < ls->norphans; i++)
		free(ls->orphans[i].name);
	free(ls->orphans);
	ls->orphans = found;
	ls->norphans = nfound;
	pthread_mutex_unlock(&ls->lock);
}

void usher_logship_commit(struct usher_logship *ls, struct usher_logship_plan *plan)
{
	struct usher_logship_plan *old;
	bool text = false;
	size_t i;

	for (i = 0; i < plan->n; i++)
		if (plan->v[i].type->wants_text && plan->v[i].type->wants_text(plan->v[i].ctx))
			text = true;
	pthread_mutex_lock(&ls->lock);
	old = ls->cur;
	ls->cur = plan;
	ls->want_text = text;
	pthread_mutex_unlock(&ls->lock);
	/* the old instances hand their queues to their spools before the new
	 * ones of the same name open them */
	usher_logship_plan_free(old);
	for (i = 0; i < plan->n; i++) {
		struct instance *in = &plan->v[i];
		struct usher_error err;

		usher_error_clear(&err);
		if (!in->type->start || !in->type->start(in->ctx, &err))
			continue;
		{
			struct usher_log_field f[] = {
			    USHER_LFS("event.action", "log-sink-failed"),
			    USHER_LFS("event.outcome", "failure"),
			    USHER_LFS("usher.log.sink", in->name),
			    USHER_LFS("error.message", err.msg),
			};
			struct instance gone;

			pthread_mutex_lock(&ls->lock);
			gone = *in;
			memmove(in, in + 1, (plan->n - i - 1) * sizeof(*in));
			plan->n--;
			pthread_mutex_unlock(&ls->lock);
			gone.type->free(gone.ctx);
			usher_log_event(ls->log, USHER_LOG_ERROR, f, sizeof(f) / sizeof(f[0]),
					"log sink %s cannot start, events will not go there: %s",
					gone.name, err.msg);
			free(gone.name);
			i--;
		}
	}
	find_orphans(ls, plan);
}

void usher_logship_emit(void *arg, const struct usher_log_record *r)
{
	struct usher_logship *ls = arg;
	struct usher_log_entry e;
	struct usher_ecs_meta m;
	char id[USHER_ECS_ID_LEN + 1];
	size_t i;

	pthread_mutex_lock(&ls->lock);
	if (!ls->cur || !ls->cur->n) {
		pthread_mutex_unlock(&ls->lock);
		return;
	}
	memset(&m, 0, sizeof(m));
	m.has_seq = true;
	m.seq = ls->seq_base + ls->seq_next++;
	usher_ecs_event_id(r->hostname, r->service, r->ts_ns, m.seq, id);
	m.id = id;
	m.pid = ls->pid;
	m.extra = ls->cur->extra;
	m.nextra = ls->cur->nextra;
	usher_buf_reset(&ls->ecs);
	if (usher_ecs_encode(&ls->ecs, r, &m)) {
		/* too large: the event still happened; say so without its fields */
		struct usher_log_record small = *r;
		char msg[512];

		snprintf(msg, sizeof(msg), "(event too large to log, %zu fields) %.300s",
			 r->nfields, r->message);
		small.message = msg;
		small.fields = NULL;
		small.nfields = 0;
		usher_buf_reset(&ls->ecs);
		usher_ecs_encode(&ls->ecs, &small, &m);
	}
	memset(&e, 0, sizeof(e));
	e.rec = r;
	e.ecs = ls->ecs.data;
	e.ecs_len = ls->ecs.len;
	e.id = id;
	e.seq = m.seq;
	e.extra = m.extra;
	e.nextra = m.nextra;
	if (ls->want_text) {
		usher_buf_reset(&ls->text);
		if (usher_text_encode(&ls->text, r) && ls->text.len)
			ls->text.data[ls->text.len - 1] = '\n';
		e.text = ls->text.data;
		e.text_len = ls->text.len;
	}
	for (i = 0; i < ls->cur->n; i++)
		ls->cur->v[i].type->write(ls->cur->v[i].ctx, &e);
	pthread_mutex_unlock(&ls->lock);
}

void usher_logship_reopen(struct usher_logship *ls)
{
	size_t i, n = 0;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; ls->cur && i < ls->cur->n; i++)
		if (ls->cur->v[i].type->reopen) {
			ls->cur->v[i].type->reopen(ls->cur->v[i].ctx);
			n++;
		}
	pthread_mutex_unlock(&ls->lock);
	{
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "log-reopened"),
		    USHER_LFS("event.outcome", "success"),
		    USHER_LFI("usher.log.files", (int64_t)n),
		};
		usher_log_event(ls->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
				"SIGUSR1: reopened %zu log files", n);
	}
}

static struct usher_sample_set *collect(void *arg)
{
	struct usher_logship *ls = arg;
	struct usher_sample_set *set = usher_sample_set_new(NULL);
	size_t i;
	int d;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; ls->cur && i < ls->cur->n; i++) {
		const struct usher_log_sink_stats *s = ls->cur->v[i].stats;
		const char *name = s->name;

		usher_sample_add(set, &desc_events, (double)atomic_load(&s->delivered), "sink",
				 name, "outcome", "delivered", NULL);
		if (!s->network) {
			usher_sample_add(set, &desc_events, (double)atomic_load(&s->failed), "sink",
					 name, "outcome", "failed", NULL);
			continue;
		}
		usher_sample_add(set, &desc_events, (double)atomic_load(&s->retried), "sink", name,
				 "outcome", "retried", NULL);
		usher_sample_add(set, &desc_events, (double)atomic_load(&s->dead_letter), "sink",
				 name, "outcome", "dead_letter", NULL);
		for (d = 0; d < USHER_DROP_NREASONS; d++)
			usher_sample_add(set, &desc_dropped, (double)atomic_load(&s->dropped[d]),
					 "sink", name, "reason", drop_names[d], NULL);
		usher_sample_add(set, &desc_spool, (double)atomic_load(&s->spool_bytes), "sink",
				 name, NULL);
	}
	for (i = 0; i < ls->norphans; i++)
		usher_sample_add(set, &desc_orphaned, (double)ls->orphans[i].bytes, "sink",
				 ls->orphans[i].name, NULL);
	pthread_mutex_unlock(&ls->lock);
	return set;
}

void usher_logship_register_metrics(struct usher_logship *ls, struct usher_registry *reg)
{
	usher_registry_add_collector(reg, collect, ls);
}

void usher_logship_drain(struct usher_logship *ls, int64_t wait_ms)
{
	int64_t deadline = usher_mono_ms() + wait_ms;
	size_t i;

	pthread_mutex_lock(&ls->lock);
	for (i = 0; ls->cur && i < ls->cur->n; i++)
		if (ls->cur->v[i].type->flush)
			ls->cur->v[i].type->flush(ls->cur->v[i].ctx);
	pthread_mutex_unlock(&ls->lock);
	while (usher_mono_ms() < deadline) {
		uint64_t pending = 0;
		struct timespec ts = {0, 20 * 1000 * 1000};

		pthread_mutex_lock(&ls->lock);
		for (i = 0; ls->cur && i < ls->cur->n; i++)
			if (ls->cur->v[i].type->pending)
				pending += ls->cur->v[i].type->pending(ls->cur->v[i].ctx);
		pthread_mutex_unlock(&ls->lock);
		if (!pending)
			break;
		nanosleep(&ts, NULL);
	}
}

void usher_logship_free(struct usher_logship *ls)
{
	size_t i;

	if (!ls)
		return;
	usher_logship_plan_free(ls->cur);
	for (i = 0; i < ls->nstats; i++)
		free(ls->stats[i]);
	free(ls->stats);
	for (i = 0; i < ls->norphans; i++)
		free(ls->orphans[i].name);
	free(ls->orphans);
	usher_buf_free(&ls->ecs);
	usher_buf_free(&ls->text);
	pthread_mutex_destroy(&ls->lock);
	free(ls);
}
