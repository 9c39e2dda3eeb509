/* Postings: label name -> value -> sorted series ids, plus the list of all
 * ids, with intersection and union for matcher selection. */
#include "tsdb/index.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "tsdb/hashmap.h"

struct postings {
	uint32_t *ids;
	size_t n, cap;
};

struct lvalue {
	char *value;
	struct lvalue *next; /* same hash */
	size_t pos;          /* in lname.list */
	struct postings p;
};

struct lname {
	char *name;
	struct lname *next; /* same hash */
	size_t pos;         /* in usher_index.list */
	struct usher_u64map values;
	struct lvalue **list;
	size_t nvalues, cap;
};

struct usher_index {
	struct usher_u64map names;
	struct lname **list;
	size_t nnames, cap;
	struct postings all;
	size_t bytes; /* strings and structs; tables and postings are summed on demand */
};

struct usher_index *usher_index_new(void)
{
	return usher_calloc(1, sizeof(struct usher_index));
}

static void lname_free(struct lname *ln)
{
	size_t i;

	for (i = 0; i < ln->nvalues; i++) {
		free(ln->list[i]->p.ids);
		free(ln->list[i]->value);
		free(ln->list[i]);
	}
	free(ln->list);
	usher_u64map_free(&ln->values);
	free(ln->name);
	free(ln);
}

void usher_index_free(struct usher_index *ix)
{
	size_t i;

	if (!ix)
		return;
	for (i = 0; i < ix->nnames; i++)
		lname_free(ix->list[i]);
	free(ix->list);
	usher_u64map_free(&ix->names);
	free(ix->all.ids);
	free(ix);
}

static void postings_append(struct postings *p, uint32_t id)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 4;
		p->ids = usher_realloc(p->ids, p->cap * sizeof(*p->ids));
	}
	p->ids[p->n++] = id;
}

static void postings_remove(struct postings *p, uint32_t id)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < p->n && p->ids[lo] == id) {
		memmove(p->ids + lo, p->ids + lo + 1, (p->n - lo - 1) * sizeof(*p->ids));
		p->n--;
		if (p->cap > 16 && p->n * 4 < p->cap) {
			p->cap /= 2;
			p->ids = usher_realloc(p->ids, p->cap * sizeof(*p->ids));
		}
	}
}

static struct lname *find_name(const struct usher_index *ix, const char *name)
{
	struct lname *ln = usher_u64map_get(&ix->names, usher_strhash(name));

	while (ln && strcmp(ln->name, name) != 0)
		ln = ln->next;
	return ln;
}

static struct lvalue *find_value(const struct lname *ln, const char *value)
{
	struct lvalue *lv = usher_u64map_get(&ln->values, usher_strhash(value));

	while (lv && strcmp(lv->value, value) != 0)
		lv = lv->next;
	return lv;
}

static void *list_push(void *list, size_t *n, size_t *cap, void *item)
{
	void **l = list;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		l = usher_realloc(l, *cap * sizeof(*l));
	}
	l[(*n)++] = item;
	return l;
}

void usher_index_add(struct usher_index *ix, uint32_t id, const struct usher_labels *l)
{
	size_t i;

	postings_append(&ix->all, id);
	for (i = 0; i < l->n; i++) {
		struct lname *ln = find_name(ix, l->v[i].name);
		struct lvalue *lv;

		if (!ln) {
			uint64_t h = usher_strhash(l->v[i].name);

			ln = usher_calloc(1, sizeof(*ln));
			ln->name = usher_strdup(l->v[i].name);
			ln->next = usher_u64map_get(&ix->names, h);
			usher_u64map_put(&ix->names, h, ln);
			ln->pos = ix->nnames;
			ix->list = list_push(ix->list, &ix->nnames, &ix->cap, ln);
			ix->bytes += sizeof(*ln) + strlen(ln->name) + 1;
		}
		lv = find_value(ln, l->v[i].value);
		if (!lv) {
			uint64_t h = usher_strhash(l->v[i].value);

			lv = usher_calloc(1, sizeof(*lv));
			lv->value = usher_strdup(l->v[i].value);
			lv->next = usher_u64map_get(&ln->values, h);
			usher_u64map_put(&ln->values, h, lv);
			lv->pos = ln->nvalues;
			ln->list = list_push(ln->list, &ln->nvalues, &ln->cap, lv);
			ix->bytes += sizeof(*lv) + strlen(lv->value) + 1;
		}
		postings_append(&lv->p, id);
	}
}

/* Unlinks x from the hash chain rooted at key in map m. */
#define CHAIN_UNLINK(m, key, type, x)                                                              \
	do {                                                                                       \
		type *head_ = usher_u64map_get((m), (key)), *prev_ = NULL, *cur_;                  \
		for (cur_ = head_; cur_ && cur_ != (x); cur_ = cur_->next)                         \
			prev_ = cur_;                                                              \
		if (!cur_)                                                                         \
			break;                                                                     \
		if (prev_)                                                                         \
			prev_->next = cur_->next;                                                  \
		else if (cur_->next)                                                               \
			usher_u64map_put((m), (key), cur_->next);                                  \
		else                                                                               \
			usher_u64map_del((m), (key));                                              \
	} while (0)

void usher_index_remove(struct usher_index *ix, uint32_t id, const struct usher_labels *l)
{
	size_t i;

	postings_remove(&ix->all, id);
	for (i = 0; i < l->n; i++) {
		struct lname *ln = find_name(ix, l->v[i].name);
		struct lvalue *lv = ln ? find_value(ln, l->v[i].value) : NULL;

		if (!lv)
			continue;
		postings_remove(&lv->p, id);
		if (lv->p.n)
			continue;
		CHAIN_UNLINK(&ln->values, usher_strhash(lv->value), struct lvalue, lv);
		ln->list[lv->pos] = ln->list[--ln->nvalues];
		ln->list[lv->pos]->pos = lv->pos;
		ix->bytes -= sizeof(*lv) + strlen(lv->value) + 1;
		free(lv->p.ids);
		free(lv->value);
		free(lv);
		if (ln->nvalues)
			continue;
		CHAIN_UNLINK(&ix->names, usher_strhash(ln->name), struct lname, ln);
		ix->list[ln->pos] = ix->list[--ix->nnames];
		ix->list[ln->pos]->pos = ln->pos;
		ix->bytes -= sizeof(*ln) + strlen(ln->name) + 1;
		lname_free(ln);
	}
}

static int id_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/* The union of the postings of every value of m's label that m matches. */
static void matching_union(const struct usher_index *ix, const struct usher_matcher *m,
			   struct postings *out)
{
	const struct lname *ln = find_name(ix, m->name);
	size_t i, j, k;

	memset(out, 0, sizeof(*out));
	if (!ln)
		return;
	if (m->type == USHER_MATCH_EQ) {
		const struct lvalue *lv = find_value(ln, m->value);

		if (lv && lv->p.n) {
			out->ids = usher_malloc(lv->p.n * sizeof(*out->ids));
			memcpy(out->ids, lv->p.ids, lv->p.n * sizeof(*out->ids));
			out->n = out->cap = lv->p.n;
		}
		return;
	}
	for (i = 0; i < ln->nvalues; i++) {
		const struct lvalue *lv = ln->list[i];

		if (!usher_matcher_matches(m, lv->value))
			continue;
		for (j = 0; j < lv->p.n; j++)
			postings_append(out, lv->p.ids[j]);
	}
	/* a series has one value per name, so the lists are disjoint: sort only */
	if (out->n > 1)
		qsort(out->ids, out->n, sizeof(*out->ids), id_cmp);
	for (i = k = 0; i < out->n; i++)
		if (k == 0 || out->ids[k - 1] != out->ids[i])
			out->ids[k++] = out->ids[i];
	out->n = k;
}

static void intersect(struct postings *a, const struct postings *b)
{
	size_t i = 0, j = 0, k = 0;

	while (i < a->n && j < b->n) {
		if (a->ids[i] < b->ids[j])
			i++;
		else if (a->ids[i] > b->ids[j])
			j++;
		else {
			a->ids[k++] = a->ids[i];
			i++;
			j++;
		}
	}
	a->n = k;
}

void usher_index_select(const struct usher_index *ix, const struct usher_matcher *m, size_t nm,
			uint32_t **ids, size_t *n)
{
	struct postings acc = {0}, cur;
	bool have = false;
	size_t i;

	for (i = 0; i < nm; i++) {
		if (m[i].matches_empty)
			continue;
		matching_union(ix, &m[i], &cur);
		if (!have) {
			acc = cur;
			have = true;
		} else {
			intersect(&acc, &cur);
			free(cur.ids);
		}
		if (acc.n == 0)
			break;
	}
	if (!have && ix->all.n) {
		acc.ids = usher_malloc(ix->all.n * sizeof(*acc.ids));
		memcpy(acc.ids, ix->all.ids, ix->all.n * sizeof(*acc.ids));
		acc.n = ix->all.n;
	}
	*ids = acc.ids;
	*n = acc.n;
}

void usher_index_names(const struct usher_index *ix, void (*fn)(void *arg, const char *name),
		       void *arg)
{
	size_t i;

	for (i = 0; i < ix->nnames; i++)
		fn(arg, ix->list[i]->name);
}

void usher_index_values(const struct usher_index *ix, const char *name,
			void (*fn)(void *arg, const char *value), void *arg)
{
	const struct lname *ln = find_name(ix, name);
	size_t i;

	for (i = 0; ln && i < ln->nvalues; i++)
		fn(arg, ln->list[i]->value);
}

size_t usher_index_bytes(const struct usher_index *ix)
{
	size_t b = sizeof(*ix) + ix->bytes + usher_u64map_bytes(&ix->names) +
		   ix->cap * sizeof(*ix->list) + ix->all.cap * sizeof(uint32_t);
	size_t i, j;

	for (i = 0; i < ix->nnames; i++) {
		const struct lname *ln = ix->list[i];

		b += usher_u64map_bytes(&ln->values) + ln->cap * sizeof(*ln->list);
		for (j = 0; j < ln->nvalues; j++)
			b += ln->list[j]->p.cap * sizeof(uint32_t);
	}
	return b;
}
