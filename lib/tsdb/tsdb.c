/* The series store: series with Gorilla chunks, a postings index, a table
 * by label hash for appends, retention, staleness batches and selection. */
#include "tsdb/tsdb.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "tsdb/chunk.h"
#include "tsdb/hashmap.h"
#include "tsdb/index.h"

/* How often (in sample time) appends drop what fell out of retention. */
#define TRUNCATE_EVERY_MS 60000

struct series {
	uint32_t id;
	uint32_t alloc; /* bytes of this allocation (struct, pairs, strings) */
	uint64_t hash;
	struct series *hnext; /* same label hash */
	struct usher_labels labels;
	struct usher_chunk *chunks; /* oldest first; the last one is the head */
	uint32_t nchunks, cap;
	struct usher_chunk_state st; /* the head's appender state */
};

struct usher_tsdb {
	pthread_rwlock_t lock;
	struct usher_tsdb_options opts;
	struct usher_u64map by_id;   /* id -> series */
	struct usher_u64map by_hash; /* label hash -> series chain */
	struct usher_index *index;
	uint32_t next_id;
	int64_t mint, maxt; /* newest sample ever appended: maxt */
	bool empty;
	int64_t last_truncate;
	uint64_t appended, out_of_order, limit_hits, created, removed;
};

double usher_stale_nan(void)
{
	uint64_t u = USHER_STALE_NAN_BITS;
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

bool usher_is_stale(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u == USHER_STALE_NAN_BITS;
}

static uint64_t bits_of(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

void usher_tsdb_options_default(struct usher_tsdb_options *o)
{
	o->retention_ms = USHER_TSDB_DEFAULT_RETENTION_MS;
	o->max_series = USHER_TSDB_DEFAULT_MAX_SERIES;
}

void usher_tsdb_set_options(struct usher_tsdb *db, const struct usher_tsdb_options *o)
{
	pthread_rwlock_wrlock(&db->lock);
	db->opts = *o;
	pthread_rwlock_unlock(&db->lock);
}

struct usher_tsdb *usher_tsdb_new(const struct usher_tsdb_options *o)
{
	struct usher_tsdb *db = usher_calloc(1, sizeof(*db));
	pthread_rwlockattr_t attr;

	pthread_rwlockattr_init(&attr);
	/* queries come from several threads; the probe loop must not starve */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&db->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (o)
		db->opts = *o;
	else
		usher_tsdb_options_default(&db->opts);
	db->index = usher_index_new();
	db->next_id = 1;
	db->empty = true;
	return db;
}

static void series_free(struct series *s)
{
	uint32_t i;

	for (i = 0; i < s->nchunks; i++)
		usher_chunk_free(&s->chunks[i]);
	free(s->chunks);
	free(s);
}

void usher_tsdb_free(struct usher_tsdb *db)
{
	size_t i;

	if (!db)
		return;
	for (i = 0; i < db->by_id.cap; i++)
		if (db->by_id.vals[i])
			series_free(db->by_id.vals[i]);
	usher_u64map_free(&db->by_id);
	usher_u64map_free(&db->by_hash);
	usher_index_free(db->index);
	pthread_rwlock_destroy(&db->lock);
	free(db);
}

static struct series *find_series(const struct usher_tsdb *db, const struct usher_labels *l,
				  uint64_t h)
{
	struct series *s;

	for (s = usher_u64map_get(&db->by_hash, h); s; s = s->hnext)
		if (usher_labels_equal(&s->labels, l))
			return s;
	return NULL;
}

static bool labels_valid(const struct usher_labels *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (!l->v[i].name[0] || !l->v[i].value[0])
			return false;
		if (i > 0 && strcmp(l->v[i - 1].name, l->v[i].name) >= 0)
			return false;
	}
	return true;
}

static struct series *create_series(struct usher_tsdb *db, const struct usher_labels *l, uint64_t h,
				    struct usher_error *err, enum usher_err *rc)
{
	size_t bytes = sizeof(struct series) + l->n * sizeof(struct usher_label), i;
	struct usher_label *pairs;
	struct series *s;
	char *p;

	if (db->opts.max_series && db->by_id.n >= db->opts.max_series) {
		db->limit_hits++;
		*rc = usher_fail(err, USHER_ERR_TOOBIG,
				 "series limit of %zu reached: new series %s refused (raise "
				 "storage.max_series or drop labels)",
				 db->opts.max_series,
				 usher_labels_get(l, USHER_METRIC_NAME_LABEL)
				     ? usher_labels_get(l, USHER_METRIC_NAME_LABEL)
				     : "{}");
		return NULL;
	}
	for (i = 0; i < l->n; i++)
		bytes += strlen(l->v[i].name) + strlen(l->v[i].value) + 2;
	s = usher_calloc(1, bytes);
	s->alloc = (uint32_t)bytes;
	pairs = (struct usher_label *)(s + 1);
	p = (char *)(pairs + l->n);
	for (i = 0; i < l->n; i++) {
		size_t nn = strlen(l->v[i].name) + 1, vn = strlen(l->v[i].value) + 1;

		memcpy(p, l->v[i].name, nn);
		pairs[i].name = p;
		p += nn;
		memcpy(p, l->v[i].value, vn);
		pairs[i].value = p;
		p += vn;
	}
	s->labels.n = l->n;
	s->labels.v = pairs;
	s->hash = h;
	s->id = db->next_id++;
	if (db->next_id == 0)
		db->next_id = 1; /* after four billion series; postings order breaks, not memory */
	s->hnext = usher_u64map_get(&db->by_hash, h);
	usher_u64map_put(&db->by_hash, h, s);
	usher_u64map_put(&db->by_id, s->id, s);
	usher_index_add(db->index, s->id, &s->labels);
	db->created++;
	return s;
}

static void remove_series(struct usher_tsdb *db, struct series *s)
{
	struct series *head = usher_u64map_get(&db->by_hash, s->hash), *prev = NULL, *cur;

	for (cur = head; cur && cur != s; cur = cur->hnext)
		prev = cur;
	if (prev)
		prev->hnext = s->hnext;
	else if (s->hnext)
		usher_u64map_put(&db->by_hash, s->hash, s->hnext);
	else
		usher_u64map_del(&db->by_hash, s->hash);
	usher_u64map_del(&db->by_id, s->id);
	usher_index_remove(db->index, s->id, &s->labels);
	db->removed++;
	series_free(s);
}

static bool has_samples(const struct series *s)
{
	return s->nchunks > 0 && s->chunks[s->nchunks - 1].n > 0;
}

/* Appends to s under the write lock. */
static enum usher_err series_append(struct usher_tsdb *db, struct series *s, int64_t t, double v,
				    struct usher_error *err)
{
	struct usher_chunk *head;

	if (has_samples(s) && t <= s->st.t) {
		if (usher_is_stale(v))
			return USHER_OK;
		if (t == s->st.t && bits_of(v) == s->st.v)
			return USHER_OK;
		db->out_of_order++;
		if (t == s->st.t)
			return usher_fail(err, USHER_ERR_INVALID, "duplicate sample for timestamp");
		return usher_fail(err, USHER_ERR_INVALID, "out of order sample");
	}
	if (!db->empty && db->opts.retention_ms && t < db->maxt - db->opts.retention_ms) {
		db->out_of_order++;
		return usher_fail(err, USHER_ERR_INVALID,
				  "out of bounds: sample older than retention");
	}
	if (s->nchunks == 0 || s->chunks[s->nchunks - 1].n >= USHER_CHUNK_SAMPLES) {
		if (s->nchunks)
			usher_chunk_seal(&s->chunks[s->nchunks - 1]);
		if (s->nchunks == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 2;
			s->chunks = usher_realloc(s->chunks, s->cap * sizeof(*s->chunks));
		}
		memset(&s->chunks[s->nchunks++], 0, sizeof(*s->chunks));
	}
	head = &s->chunks[s->nchunks - 1];
	usher_chunk_append(head, &s->st, t, v);
	if (db->empty || t > db->maxt)
		db->maxt = t;
	if (db->empty || t < db->mint)
		db->mint = t;
	db->empty = false;
	db->appended++;
	return USHER_OK;
}

static void truncate_locked(struct usher_tsdb *db, int64_t mint)
{
	struct series **dead = NULL;
	size_t ndead = 0, cap = 0, i;
	bool any = false;
	int64_t newmint = 0;

	for (i = 0; i < db->by_id.cap; i++) {
		struct series *s = db->by_id.vals[i];
		uint32_t k = 0, j;

		if (!s)
			continue;
		while (k < s->nchunks && s->chunks[k].maxt < mint)
			k++;
		if (k == s->nchunks) {
			if (ndead == cap) {
				cap = cap ? cap * 2 : 16;
				dead = usher_realloc(dead, cap * sizeof(*dead));
			}
			dead[ndead++] = s;
			continue;
		}
		for (j = 0; j < k; j++)
			usher_chunk_free(&s->chunks[j]);
		if (k) {
			memmove(s->chunks, s->chunks + k, (s->nchunks - k) * sizeof(*s->chunks));
			s->nchunks -= k;
		}
		if (!any || s->chunks[0].mint < newmint)
			newmint = s->chunks[0].mint;
		any = true;
	}
	for (i = 0; i < ndead; i++)
		remove_series(db, dead[i]);
	free(dead);
	if (any)
		db->mint = newmint;
}

static void maybe_truncate(struct usher_tsdb *db)
{
	if (!db->opts.retention_ms || db->empty)
		return;
	if (db->maxt - db->last_truncate < TRUNCATE_EVERY_MS)
		return;
	db->last_truncate = db->maxt;
	truncate_locked(db, db->maxt - db->opts.retention_ms);
}

void usher_tsdb_truncate(struct usher_tsdb *db, int64_t mint)
{
	pthread_rwlock_wrlock(&db->lock);
	truncate_locked(db, mint);
	pthread_rwlock_unlock(&db->lock);
}

/* Finds or creates the series for l, under the write lock. */
static struct series *get_series(struct usher_tsdb *db, const struct usher_labels *l,
				 struct usher_error *err, enum usher_err *rc)
{
	uint64_t h;
	struct series *s;

	if (!labels_valid(l)) {
		*rc = usher_fail(
		    err, USHER_ERR_INVALID,
		    "invalid label set: names must be sorted and unique, values non-empty");
		return NULL;
	}
	h = usher_labels_hash(l);
	s = find_series(db, l, h);
	return s ? s : create_series(db, l, h, err, rc);
}

enum usher_err usher_tsdb_append(struct usher_tsdb *db, const struct usher_labels *l, int64_t t,
				 double v, struct usher_error *err)
{
	enum usher_err rc = USHER_OK;
	struct series *s;

	pthread_rwlock_wrlock(&db->lock);
	s = get_series(db, l, err, &rc);
	if (s)
		rc = series_append(db, s, t, v, err);
	maybe_truncate(db);
	pthread_rwlock_unlock(&db->lock);
	return rc;
}

struct batch_entry {
	struct usher_labels labels;
	int64_t t;
	double v;
};

struct usher_tsdb_batch {
	struct usher_tsdb *db;
	struct usher_arena *arena; /* the entries of the run being built */
	struct batch_entry *e;
	size_t n, cap;
	struct usher_u64map prev; /* ids written by the last commit */
};

struct usher_tsdb_batch *usher_tsdb_batch_new(struct usher_tsdb *db)
{
	struct usher_tsdb_batch *b = usher_calloc(1, sizeof(*b));

	b->db = db;
	b->arena = usher_arena_new();
	return b;
}

void usher_tsdb_batch_add(struct usher_tsdb_batch *b, const struct usher_labels *l, int64_t t,
			  double v)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->e = usher_realloc(b->e, b->cap * sizeof(*b->e));
	}
	usher_labels_copy(b->arena, l, &b->e[b->n].labels);
	b->e[b->n].t = t;
	b->e[b->n].v = v;
	b->n++;
}

void usher_tsdb_batch_addv(struct usher_tsdb_batch *b, const char *const *pairs, int64_t t,
			   double v)
{
	struct usher_label tmp[64];
	struct usher_labels l = {0};
	size_t n = 0;

	while (pairs && pairs[2 * n] && n < 64) {
		tmp[n].name = pairs[2 * n];
		tmp[n].value = pairs[2 * n + 1] ? pairs[2 * n + 1] : "";
		n++;
	}
	l.n = n;
	if (!usher_labels_normalize(&l, tmp))
		l.n = 0; /* a duplicate name: commit reports it as an empty (invalid) set */
	usher_tsdb_batch_add(b, &l, t, v);
}

static void mark_stale(struct usher_tsdb *db, uint32_t id, int64_t t)
{
	struct series *s = usher_u64map_get(&db->by_id, id);

	if (s && has_samples(s) && s->st.v != USHER_STALE_NAN_BITS && t > s->st.t)
		(void)series_append(db, s, t, usher_stale_nan(), NULL);
}

enum usher_err usher_tsdb_batch_commit(struct usher_tsdb_batch *b, int64_t t, size_t *nrejected,
				       struct usher_error *err)
{
	struct usher_tsdb *db = b->db;
	struct usher_u64map cur = {0};
	enum usher_err first = USHER_OK;
	size_t i, rejected = 0;

	pthread_rwlock_wrlock(&db->lock);
	for (i = 0; i < b->n; i++) {
		enum usher_err rc = USHER_OK;
		struct series *s =
		    b->e[i].labels.n ? get_series(db, &b->e[i].labels, err, &rc) : NULL;

		if (!s && !rc)
			rc = usher_fail(err, USHER_ERR_INVALID, "a sample without labels");
		if (s) {
			usher_u64map_put(&cur, s->id, (void *)1);
			rc = series_append(db, s, b->e[i].t, b->e[i].v, err);
		}
		if (rc) {
			rejected++;
			if (!first)
				first = rc;
		}
	}
	for (i = 0; i < b->prev.cap; i++)
		if (b->prev.vals[i] && !usher_u64map_get(&cur, b->prev.keys[i]))
			mark_stale(db, (uint32_t)b->prev.keys[i], t);
	maybe_truncate(db);
	pthread_rwlock_unlock(&db->lock);
	usher_u64map_free(&b->prev);
	b->prev = cur;
	b->n = 0;
	usher_arena_reset(b->arena);
	if (nrejected)
		*nrejected = rejected;
	return first;
}

void usher_tsdb_batch_free(struct usher_tsdb_batch *b, int64_t t)
{
	size_t i;

	if (!b)
		return;
	if (t >= 0) {
		pthread_rwlock_wrlock(&b->db->lock);
		for (i = 0; i < b->prev.cap; i++)
			if (b->prev.vals[i])
				mark_stale(b->db, (uint32_t)b->prev.keys[i], t);
		pthread_rwlock_unlock(&b->db->lock);
	}
	usher_u64map_free(&b->prev);
	usher_arena_free(b->arena);
	free(b->e);
	free(b);
}

static int series_cmp(const void *x, const void *y)
{
	const struct usher_series *a = x, *b = y;

	return usher_labels_cmp(&a->labels, &b->labels);
}

static enum usher_err select_series(struct usher_tsdb *db, const struct usher_matcher *m,
				    size_t nm, int64_t mint, int64_t maxt, struct usher_arena *a,
				    size_t *budget, struct usher_series **out, size_t *nout,
				    bool sorted, struct usher_error *err)
{
	enum usher_err rc = USHER_OK;
	struct usher_series *res = NULL;
	size_t nres = 0, i, j, n, scratch_cap = 0;
	int64_t *scratch_t = NULL, *ts;
	double *scratch_v = NULL, *vs;
	uint32_t *ids;

	pthread_rwlock_rdlock(&db->lock);
	usher_index_select(db->index, m, nm, &ids, &n);
	if (n)
		res = usher_arena_alloc(a, n * sizeof(*res));
	for (i = 0; i < n; i++) {
		const struct series *s = usher_u64map_get(&db->by_id, ids[i]);
		size_t upper = 0, k = 0;
		bool ok = true;

		if (!s)
			continue;
		for (j = 0; j < nm && ok; j++)
			if (m[j].matches_empty)
				ok = usher_matcher_matches(&m[j],
							   usher_labels_get(&s->labels, m[j].name));
		if (!ok)
			continue;
		for (j = 0; j < s->nchunks; j++)
			if (s->chunks[j].n && s->chunks[j].maxt >= mint &&
			    s->chunks[j].mint <= maxt)
				upper += s->chunks[j].n;
		if (!upper)
			continue;
		/* decode into the scratch, then copy just what is in range: a
		 * 5m window of a 30m chunk keeps a sixth of what it decodes */
		if (upper > scratch_cap) {
			scratch_cap = upper * 2;
			scratch_t = usher_realloc(scratch_t, scratch_cap * sizeof(*scratch_t));
			scratch_v = usher_realloc(scratch_v, scratch_cap * sizeof(*scratch_v));
		}
		for (j = 0; j < s->nchunks; j++) {
			if (!s->chunks[j].n || s->chunks[j].maxt < mint || s->chunks[j].mint > maxt)
				continue;
			k += usher_chunk_decode(&s->chunks[j], mint, maxt, scratch_t + k,
						scratch_v + k);
		}
		if (!k)
			continue;
		if (budget) {
			if (*budget < k) {
				rc = usher_fail(err, USHER_ERR_TOOBIG,
						"query processing would load too many samples into "
						"memory in query execution");
				break;
			}
			*budget -= k;
		}
		usher_labels_copy(a, &s->labels, &res[nres].labels);
		res[nres].n = k;
		res[nres].t = ts = usher_arena_alloc(a, k * sizeof(*ts));
		res[nres].v = vs = usher_arena_alloc(a, k * sizeof(*vs));
		memcpy(ts, scratch_t, k * sizeof(*ts));
		memcpy(vs, scratch_v, k * sizeof(*vs));
		nres++;
	}
	pthread_rwlock_unlock(&db->lock);
	free(ids);
	free(scratch_t);
	free(scratch_v);
	if (rc)
		nres = 0;
	if (sorted && nres > 1)
		qsort(res, nres, sizeof(*res), series_cmp);
	*out = res;
	*nout = nres;
	return rc;
}

struct strlist {
	struct usher_arena *a;
	const char **v;
	size_t n, cap;
};

static void strlist_add(void *arg, const char *s)
{
	struct strlist *l = arg;

	if (l->n == l->cap) {
		const char **nv;

		l->cap = l->cap ? l->cap * 2 : 16;
		nv = usher_arena_alloc(l->a, l->cap * sizeof(*nv));
		if (l->n)
			memcpy(nv, l->v, l->n * sizeof(*nv));
		l->v = nv;
	}
	l->v[l->n++] = usher_arena_strdup(l->a, s);
}

static int str_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

void usher_tsdb_label_names(struct usher_tsdb *db, struct usher_arena *a, const char ***out,
			    size_t *n)
{
	struct strlist l = {a, NULL, 0, 0};

	pthread_rwlock_rdlock(&db->lock);
	usher_index_names(db->index, strlist_add, &l);
	pthread_rwlock_unlock(&db->lock);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), str_cmp);
	*out = l.v;
	*n = l.n;
}

void usher_tsdb_label_values(struct usher_tsdb *db, const char *name, struct usher_arena *a,
			     const char ***out, size_t *n)
{
	struct strlist l = {a, NULL, 0, 0};

	pthread_rwlock_rdlock(&db->lock);
	usher_index_values(db->index, name, strlist_add, &l);
	pthread_rwlock_unlock(&db->lock);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), str_cmp);
	*out = l.v;
	*n = l.n;
}

void usher_tsdb_stats(struct usher_tsdb *db, struct usher_tsdb_stats *st)
{
	size_t i;
	uint32_t j;

	memset(st, 0, sizeof(*st));
	pthread_rwlock_rdlock(&db->lock);
	st->bytes = sizeof(*db) + usher_u64map_bytes(&db->by_id) +
		    usher_u64map_bytes(&db->by_hash) + usher_index_bytes(db->index);
	for (i = 0; i < db->by_id.cap; i++) {
		const struct series *s = db->by_id.vals[i];

		if (!s)
			continue;
		st->series++;
		st->bytes += s->alloc + s->cap * sizeof(*s->chunks);
		for (j = 0; j < s->nchunks; j++) {
			st->chunks++;
			st->samples += s->chunks[j].n;
			st->bytes += usher_chunk_bytes(&s->chunks[j]);
		}
	}
	if (!db->empty) {
		st->mint = db->mint;
		st->maxt = db->maxt;
	}
	st->appended = db->appended;
	st->out_of_order = db->out_of_order;
	st->series_limit_hits = db->limit_hits;
	st->series_created = db->created;
	st->series_removed = db->removed;
	pthread_rwlock_unlock(&db->lock);
}

enum usher_err usher_tsdb_select(struct usher_tsdb *db, const struct usher_matcher *m, size_t nm,
				 int64_t mint, int64_t maxt, struct usher_arena *a, size_t *budget,
				 struct usher_series **out, size_t *nout, struct usher_error *err)
{
	return select_series(db, m, nm, mint, maxt, a, budget, out, nout, true, err);
}

/* The evaluator needs no order (it matches and groups by hash, and sorts
 * what it returns where order is defined), so it is spared the sort by
 * labels, a tenth of a typical query's time. */
static enum usher_err tsdb_select_fn(void *ctx, const struct usher_matcher *m, size_t nm,
				     int64_t mint, int64_t maxt, struct usher_arena *a,
				     size_t *budget, struct usher_series **out, size_t *nout,
				     struct usher_error *err)
{
	return select_series(ctx, m, nm, mint, maxt, a, budget, out, nout, false, err);
}

struct usher_storage usher_tsdb_storage(struct usher_tsdb *db)
{
	struct usher_storage s = {tsdb_select_fn, db};

	return s;
}
