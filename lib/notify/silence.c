/* Silences: Alertmanager's create / update / expire rules, matching, the
 * API's JSON shapes, and persistence in the state store. */
#include "notify/silence.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/matchers.h"

#define COMMENT_MAX 4096

struct silence {
	char id[37];
	struct usher_am_matchers matchers;
	int64_t starts_at, ends_at, updated_at;
	char *created_by, *comment;
};

struct usher_silences {
	pthread_mutex_t mu;
	struct usher_store *st;
	struct silence **v;
	size_t n, cap;
	uint64_t version;
};

static const char *const migrations[] = {
    "CREATE TABLE silences (id TEXT PRIMARY KEY, body TEXT NOT NULL)",
    NULL,
};

const char *usher_silence_state_name(enum usher_silence_state st)
{
	switch (st) {
	case USHER_SILENCE_PENDING: return "pending";
	case USHER_SILENCE_ACTIVE: return "active";
	case USHER_SILENCE_EXPIRED: return "expired";
	}
	return "?";
}

static enum usher_silence_state state_of(const struct silence *s, int64_t now)
{
	if (s->ends_at <= now)
		return USHER_SILENCE_EXPIRED;
	if (s->starts_at <= now)
		return USHER_SILENCE_ACTIVE;
	return USHER_SILENCE_PENDING;
}

static void silence_free(struct silence *s)
{
	if (!s)
		return;
	usher_am_matchers_free(&s->matchers);
	free(s->created_by);
	free(s->comment);
	free(s);
}

static void new_id(char out[37])
{
	unsigned char b[16];
	size_t i;
	char *o = out;

	if (RAND_bytes(b, sizeof(b)) != 1) {
		/* the kernel's entropy failing is beyond recovery here; fall back
		 * to the clock so ids stay distinct */
		int64_t t = usher_now_ns();

		memcpy(b, &t, sizeof(t));
		memcpy(b + 8, &t, sizeof(t));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		snprintf(o, 3, "%02x", b[i]);
		o += 2;
	}
	*o = '\0';
}

static json_t *matchers_json(const struct usher_am_matchers *ms)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < ms->n; i++) {
		const struct usher_am_matcher *m = &ms->v[i];

		json_array_append_new(
		    a, json_pack("{s:b, s:b, s:s, s:s}", "isEqual",
				 m->type == USHER_AM_MATCH_EQ || m->type == USHER_AM_MATCH_RE,
				 "isRegex",
				 m->type == USHER_AM_MATCH_RE || m->type == USHER_AM_MATCH_NRE,
				 "name", m->name, "value", m->value));
	}
	return a;
}

static json_t *gettable(const struct silence *s, int64_t now)
{
	char starts[48], ends[48], upd[48];

	usher_time_format_nano(s->starts_at, starts, sizeof(starts));
	usher_time_format_nano(s->ends_at, ends, sizeof(ends));
	usher_time_format_nano(s->updated_at, upd, sizeof(upd));
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:{s:s}, s:s}", "comment", s->comment,
			 "createdBy", s->created_by, "endsAt", ends, "id", s->id, "matchers",
			 matchers_json(&s->matchers), "startsAt", starts, "status", "state",
			 usher_silence_state_name(state_of(s, now)), "updatedAt", upd);
}

/* The stored form: exact nanoseconds. */
static char *stored(const struct silence *s)
{
	json_t *j =
	    json_pack("{s:s, s:o, s:I, s:I, s:I, s:s, s:s}", "id", s->id, "matchers",
		      matchers_json(&s->matchers), "startsAt", (json_int_t)s->starts_at, "endsAt",
		      (json_int_t)s->ends_at, "updatedAt", (json_int_t)s->updated_at, "createdBy",
		      s->created_by, "comment", s->comment);
	char *out = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	return out;
}

static enum usher_err parse_matchers(const json_t *arr, struct usher_am_matchers *ms,
				     struct usher_error *err)
{
	size_t i;
	json_t *m;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return usher_fail(err, USHER_ERR_INVALID, "at least one matcher required");
	json_array_foreach(arr, i, m)
	{
		const json_t *name = json_object_get(m, "name"),
			     *value = json_object_get(m, "value");
		const json_t *isre = json_object_get(m, "isRegex"),
			     *iseq = json_object_get(m, "isEqual");
		bool re, eq = true;
		enum usher_err rc;

		if (!json_is_string(name) || !json_is_string(value) || !json_is_boolean(isre))
			return usher_fail(err, USHER_ERR_INVALID,
					  "matcher %zu: name, value and isRegex are required", i);
		if (!*json_string_value(name))
			return usher_fail(err, USHER_ERR_INVALID, "matcher %zu: empty label name",
					  i);
		re = json_is_true(isre);
		if (iseq && !json_is_null(iseq)) {
			if (!json_is_boolean(iseq))
				return usher_fail(err, USHER_ERR_INVALID,
						  "matcher %zu: isEqual must be a boolean", i);
			eq = json_is_true(iseq);
		}
		rc = usher_am_matchers_add(ms,
					   re ? (eq ? USHER_AM_MATCH_RE : USHER_AM_MATCH_NRE)
					      : (eq ? USHER_AM_MATCH_EQ : USHER_AM_MATCH_NE),
					   json_string_value(name), json_string_value(value), err);
		if (rc)
			return rc;
	}
	for (i = 0; i < ms->n; i++)
		if (!usher_am_matcher_matches(&ms->v[i], ""))
			return USHER_OK;
	return usher_fail(err, USHER_ERR_INVALID,
			  "at least one matcher must not match the empty string");
}

static enum usher_err get_time(const json_t *body, const char *key, int64_t *ns,
			       struct usher_error *err)
{
	const json_t *v = json_object_get(body, key);

	if (!json_is_string(v) || usher_time_parse_rfc3339(json_string_value(v), ns) ||
	    *ns == USHER_TIME_ZERO)
		return usher_fail(err, USHER_ERR_INVALID,
				  "%s is required: an RFC 3339 time (\"2026-11-28T03:04:05Z\")",
				  key);
	return USHER_OK;
}

/* A silence from a postable body; id copied when given. */
static struct silence *from_body(const json_t *body, struct usher_error *err)
{
	struct silence *s = usher_calloc(1, sizeof(*s));
	const json_t *by = json_object_get(body, "createdBy"),
		     *c = json_object_get(body, "comment");
	const json_t *id = json_object_get(body, "id");

	if (!json_is_object(body)) {
		usher_fail(err, USHER_ERR_INVALID, "a silence must be a JSON object");
		goto fail;
	}
	if (parse_matchers(json_object_get(body, "matchers"), &s->matchers, err) ||
	    get_time(body, "startsAt", &s->starts_at, err) ||
	    get_time(body, "endsAt", &s->ends_at, err))
		goto fail;
	if (!json_is_string(by) || !*json_string_value(by)) {
		usher_fail(err, USHER_ERR_INVALID, "createdBy is required");
		goto fail;
	}
	if (!json_is_string(c) || !*json_string_value(c)) {
		usher_fail(err, USHER_ERR_INVALID, "comment is required");
		goto fail;
	}
	if (strlen(json_string_value(c)) > COMMENT_MAX ||
	    strlen(json_string_value(by)) > COMMENT_MAX) {
		usher_fail(err, USHER_ERR_INVALID, "comment or createdBy longer than %d bytes",
			   COMMENT_MAX);
		goto fail;
	}
	if (s->ends_at < s->starts_at) {
		usher_fail(err, USHER_ERR_INVALID, "end time must not be before start time");
		goto fail;
	}
	if (id && !json_is_null(id)) {
		if (!json_is_string(id) || strlen(json_string_value(id)) >= sizeof(s->id)) {
			usher_fail(err, USHER_ERR_INVALID, "id must be a silence id");
			goto fail;
		}
		snprintf(s->id, sizeof(s->id), "%s", json_string_value(id));
	}
	s->created_by = usher_strdup(json_string_value(by));
	s->comment = usher_strdup(json_string_value(c));
	return s;
fail:
	silence_free(s);
	return NULL;
}

static enum usher_err save(struct usher_silences *ss, const struct silence *s,
			   struct usher_error *err)
{
	sqlite3_stmt *stmt = NULL;
	char *body;
	int rc;

	if (!ss->st)
		return USHER_OK;
	body = stored(s);
	rc = sqlite3_prepare_v2(usher_store_db(ss->st),
				"INSERT INTO silences (id, body) VALUES (?1, ?2) "
				"ON CONFLICT (id) DO UPDATE SET body = excluded.body",
				-1, &stmt, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(stmt, 1, s->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, body, -1, SQLITE_STATIC);
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	sqlite3_finalize(stmt);
	free(body);
	if (rc != SQLITE_OK)
		return usher_store_fail(ss->st, rc, "save silence", err);
	return USHER_OK;
}

static void add(struct usher_silences *ss, struct silence *s)
{
	if (ss->n == ss->cap) {
		ss->cap = ss->cap ? 2 * ss->cap : 16;
		ss->v = usher_realloc(ss->v, ss->cap * sizeof(*ss->v));
	}
	ss->v[ss->n++] = s;
}

static struct silence *find(struct usher_silences *ss, const char *id)
{
	size_t i;

	for (i = 0; i < ss->n; i++)
		if (strcmp(ss->v[i]->id, id) == 0)
			return ss->v[i];
	return NULL;
}

static enum usher_err load(struct usher_silences *ss, struct usher_error *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	rc = sqlite3_prepare_v2(usher_store_db(ss->st), "SELECT body FROM silences", -1, &stmt,
				NULL);
	if (rc != SQLITE_OK)
		return usher_store_fail(ss->st, rc, "load silences", err);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(stmt, 0);
		json_t *j = body ? json_loads(body, 0, NULL) : NULL;
		struct silence *s = usher_calloc(1, sizeof(*s));
		struct usher_error e2;

		usher_error_clear(&e2);
		if (!j || parse_matchers(json_object_get(j, "matchers"), &s->matchers, &e2) ||
		    !json_is_string(json_object_get(j, "id"))) {
			/* a row we cannot read is skipped, not fatal */
			silence_free(s);
			json_decref(j);
			continue;
		}
		snprintf(s->id, sizeof(s->id), "%s", json_string_value(json_object_get(j, "id")));
		s->starts_at = json_integer_value(json_object_get(j, "startsAt"));
		s->ends_at = json_integer_value(json_object_get(j, "endsAt"));
		s->updated_at = json_integer_value(json_object_get(j, "updatedAt"));
		s->created_by =
		    usher_strdup(json_string_value(json_object_get(j, "createdBy")) ?: "");
		s->comment = usher_strdup(json_string_value(json_object_get(j, "comment")) ?: "");
		json_decref(j);
		add(ss, s);
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE)
		return usher_store_fail(ss->st, rc, "load silences", err);
	return USHER_OK;
}

enum usher_err usher_silences_new(struct usher_store *st, struct usher_silences **out,
				  struct usher_error *err)
{
	struct usher_silences *ss = usher_calloc(1, sizeof(*ss));
	enum usher_err rc = USHER_OK;

	pthread_mutex_init(&ss->mu, NULL);
	ss->st = st;
	if (st) {
		rc = usher_store_migrate(st, "silences", migrations, err);
		if (!rc)
			rc = load(ss, err);
	}
	if (rc) {
		usher_silences_free(ss);
		*out = NULL;
		return rc;
	}
	*out = ss;
	return USHER_OK;
}

void usher_silences_free(struct usher_silences *ss)
{
	size_t i;

	if (!ss)
		return;
	for (i = 0; i < ss->n; i++)
		silence_free(ss->v[i]);
	free(ss->v);
	pthread_mutex_destroy(&ss->mu);
	free(ss);
}

static bool same_matchers(const struct usher_am_matchers *a, const struct usher_am_matchers *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (a->v[i].type != b->v[i].type || strcmp(a->v[i].name, b->v[i].name) ||
		    strcmp(a->v[i].value, b->v[i].value))
			return false;
	return true;
}

/* Alertmanager's canUpdate. */
static bool can_update(const struct silence *a, const struct silence *b, int64_t now)
{
	if (!same_matchers(&a->matchers, &b->matchers))
		return false;
	switch (state_of(a, now)) {
	case USHER_SILENCE_ACTIVE:
		return b->starts_at / 1000000000 == a->starts_at / 1000000000 && b->ends_at >= now;
	case USHER_SILENCE_PENDING: return b->starts_at >= now;
	default: return false;
	}
}

enum usher_err usher_silences_set_json(struct usher_silences *ss, const json_t *body,
				       int64_t now_ns, char id_out[37], struct usher_error *err)
{
	struct silence *s = from_body(body, err), *old;
	enum usher_err rc = USHER_OK;

	if (!s)
		return USHER_ERR_INVALID;
	if (s->ends_at < now_ns) {
		silence_free(s);
		return usher_fail(err, USHER_ERR_INVALID, "end time can't be in the past");
	}
	pthread_mutex_lock(&ss->mu);
	old = *s->id ? find(ss, s->id) : NULL;
	if (*s->id && !old) {
		rc = usher_fail(err, USHER_ERR_NOTFOUND, "silence %s not found", s->id);
		goto out;
	}
	s->updated_at = now_ns;
	if (old && can_update(old, s, now_ns)) {
		old->starts_at = s->starts_at;
		old->ends_at = s->ends_at;
		old->updated_at = now_ns;
		free(old->comment);
		free(old->created_by);
		old->comment = s->comment;
		old->created_by = s->created_by;
		s->comment = s->created_by = NULL;
		rc = save(ss, old, err);
		snprintf(id_out, 37, "%s", old->id);
		goto out;
	}
	if (old && state_of(old, now_ns) != USHER_SILENCE_EXPIRED) {
		/* expire the old one, then create anew */
		if (old->starts_at > now_ns)
			old->starts_at = now_ns;
		old->ends_at = now_ns;
		old->updated_at = now_ns;
		rc = save(ss, old, err);
		if (rc)
			goto out;
	}
	new_id(s->id);
	if (s->starts_at < now_ns)
		s->starts_at = now_ns;
	rc = save(ss, s, err);
	if (rc)
		goto out;
	add(ss, s);
	snprintf(id_out, 37, "%s", s->id);
	s = NULL;
out:
	if (!rc)
		ss->version++;
	pthread_mutex_unlock(&ss->mu);
	silence_free(s);
	return rc;
}

enum usher_err usher_silences_expire(struct usher_silences *ss, const char *id, int64_t now_ns,
				     struct usher_error *err)
{
	struct silence *s;
	enum usher_err rc = USHER_OK;

	pthread_mutex_lock(&ss->mu);
	s = find(ss, id);
	if (!s) {
		rc = usher_fail(err, USHER_ERR_NOTFOUND, "silence %s not found", id);
	} else if (state_of(s, now_ns) == USHER_SILENCE_EXPIRED) {
		rc = usher_fail(err, USHER_ERR_INVALID, "silence %s already expired", id);
	} else {
		if (s->starts_at > now_ns)
			s->starts_at = now_ns;
		s->ends_at = now_ns;
		s->updated_at = now_ns;
		rc = save(ss, s, err);
		ss->version++;
	}
	pthread_mutex_unlock(&ss->mu);
	return rc;
}

json_t *usher_silences_get_json(struct usher_silences *ss, const char *id, int64_t now_ns)
{
	struct silence *s;
	json_t *j = NULL;

	pthread_mutex_lock(&ss->mu);
	s = find(ss, id);
	if (s)
		j = gettable(s, now_ns);
	pthread_mutex_unlock(&ss->mu);
	return j;
}

static bool filter_matches(const struct usher_am_matchers *filter, const struct silence *s)
{
	size_t i, j;

	for (i = 0; filter && i < filter->n; i++) {
		const struct usher_am_matcher *m = &filter->v[i];
		const char *v = NULL;

		for (j = 0; j < s->matchers.n; j++)
			if (strcmp(s->matchers.v[j].name, m->name) == 0)
				v = s->matchers.v[j].value;
		if (m->type == USHER_AM_MATCH_NE || m->type == USHER_AM_MATCH_NRE) {
			if (!*m->value && v)
				continue;
		} else if (!*m->value && !v) {
			continue;
		}
		if (!usher_am_matcher_matches(m, v ? v : ""))
			return false;
	}
	return true;
}

struct sort_item {
	struct silence *s;
	enum usher_silence_state st;
};

static int cmp_sil(const void *x, const void *y)
{
	const struct sort_item *a = x, *b = y;

	if (a->st != b->st)
		return a->st == USHER_SILENCE_ACTIVE    ? -1
		       : b->st == USHER_SILENCE_ACTIVE  ? 1
		       : a->st == USHER_SILENCE_PENDING ? -1
							: 1;
	switch (a->st) {
	case USHER_SILENCE_ACTIVE:
		return a->s->ends_at < b->s->ends_at ? -1 : a->s->ends_at > b->s->ends_at;
	case USHER_SILENCE_PENDING:
		return a->s->starts_at < b->s->starts_at ? -1 : a->s->starts_at > b->s->starts_at;
	default: return a->s->ends_at > b->s->ends_at ? -1 : a->s->ends_at < b->s->ends_at;
	}
}

json_t *usher_silences_list_json(struct usher_silences *ss, const struct usher_am_matchers *filter,
				 int64_t now_ns)
{
	json_t *arr = json_array();
	struct sort_item *items;
	size_t i, n = 0;

	pthread_mutex_lock(&ss->mu);
	items = usher_calloc(ss->n + 1, sizeof(*items));
	for (i = 0; i < ss->n; i++)
		if (filter_matches(filter, ss->v[i])) {
			items[n].s = ss->v[i];
			items[n].st = state_of(ss->v[i], now_ns);
			n++;
		}
	qsort(items, n, sizeof(*items), cmp_sil);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, gettable(items[i].s, now_ns));
	pthread_mutex_unlock(&ss->mu);
	free(items);
	return arr;
}

json_t *usher_silences_mutes(struct usher_silences *ss, const struct usher_am_labels *l,
			     int64_t now_ns)
{
	json_t *ids = json_array();
	size_t i;

	pthread_mutex_lock(&ss->mu);
	for (i = 0; i < ss->n; i++)
		if (state_of(ss->v[i], now_ns) == USHER_SILENCE_ACTIVE &&
		    usher_am_matchers_match(&ss->v[i]->matchers, l))
			json_array_append_new(ids, json_string(ss->v[i]->id));
	pthread_mutex_unlock(&ss->mu);
	return ids;
}

void usher_silences_gc(struct usher_silences *ss, int64_t now_ns, int64_t retention_ms)
{
	size_t i, j = 0;

	pthread_mutex_lock(&ss->mu);
	for (i = 0; i < ss->n; i++) {
		struct silence *s = ss->v[i];

		if (s->ends_at + retention_ms * 1000000LL < now_ns) {
			if (ss->st) {
				sqlite3_stmt *stmt = NULL;

				if (sqlite3_prepare_v2(usher_store_db(ss->st),
						       "DELETE FROM silences WHERE id = ?1", -1,
						       &stmt, NULL) == SQLITE_OK) {
					sqlite3_bind_text(stmt, 1, s->id, -1, SQLITE_STATIC);
					sqlite3_step(stmt);
				}
				sqlite3_finalize(stmt);
			}
			silence_free(s);
			ss->version++;
			continue;
		}
		ss->v[j++] = s;
	}
	ss->n = j;
	pthread_mutex_unlock(&ss->mu);
}

uint64_t usher_silences_version(struct usher_silences *ss)
{
	uint64_t v;

	pthread_mutex_lock(&ss->mu);
	v = ss->version;
	pthread_mutex_unlock(&ss->mu);
	return v;
}

void usher_silences_count(struct usher_silences *ss, int64_t now_ns, int counts[3])
{
	size_t i;

	counts[0] = counts[1] = counts[2] = 0;
	pthread_mutex_lock(&ss->mu);
	for (i = 0; i < ss->n; i++)
		counts[state_of(ss->v[i], now_ns)]++;
	pthread_mutex_unlock(&ss->mu);
}
