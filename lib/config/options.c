/* Filling structs from YAML maps through option tables, with secret
 * references resolved and every problem reported at its file:line:col. */
#include "config/options.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"

#define SECRET_FILE_MAX (64 * 1024)

enum usher_err usher_cfg_error(struct usher_cfgctx *ctx, const struct usher_ynode *node,
			       const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	usher_diags_add(ctx->diags, ctx->file, node ? node->line : 0, node ? node->col : 0, "%s",
			msg);
	return USHER_ERR_INVALID;
}

static enum usher_err read_secret_file(const char *path, struct usher_buf *out, int *err)
{
	char chunk[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	enum usher_err rc = USHER_OK;

	if (fd < 0) {
		*err = errno;
		return USHER_ERR_IO;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err = errno;
			rc = USHER_ERR_IO;
			break;
		}
		if (n == 0)
			break;
		rc = usher_buf_add(out, chunk, (size_t)n);
		if (rc)
			break;
	}
	close(fd);
	if (!rc && out->len && out->data[out->len - 1] == '\n') {
		out->data[--out->len] = '\0';
		if (out->len && out->data[out->len - 1] == '\r')
			out->data[--out->len] = '\0';
	}
	return rc;
}

enum usher_err usher_cfg_resolve_secret(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					const char *s, const char **out)
{
	struct usher_buf b, file;
	const char *p = s;
	enum usher_err rc = USHER_OK;

	if (!strstr(s, "${")) {
		*out = s;
		return USHER_OK;
	}
	usher_buf_init(&b, SECRET_FILE_MAX * 4);
	while (*p && !rc) {
		const char *start = strstr(p, "${"), *end;
		char ref[1024];
		size_t rlen;

		if (!start) {
			rc = usher_buf_addstr(&b, p);
			break;
		}
		usher_buf_add(&b, p, (size_t)(start - p));
		end = strchr(start, '}');
		if (!end) {
			rc = usher_cfg_error(ctx, node, "unterminated ${ reference: expected "
						    "${env:NAME} or ${file:/path}");
			break;
		}
		rlen = (size_t)(end - start - 2);
		if (rlen >= sizeof(ref)) {
			rc = usher_cfg_error(ctx, node, "reference too long");
			break;
		}
		memcpy(ref, start + 2, rlen);
		ref[rlen] = '\0';
		if (strncmp(ref, "env:", 4) == 0) {
			const char *v = getenv(ref + 4);

			if (!ref[4]) {
				rc = usher_cfg_error(ctx, node, "empty variable name in ${env:}");
			} else if (!v) {
				rc = usher_cfg_error(ctx, node,
						     "environment variable %s is not set", ref + 4);
			} else {
				rc = usher_buf_addstr(&b, v);
			}
		} else if (strncmp(ref, "file:", 5) == 0) {
			int err = 0;
			enum usher_err frc;

			usher_buf_init(&file, SECRET_FILE_MAX);
			frc = read_secret_file(ref + 5, &file, &err);
			if (frc == USHER_ERR_TOOBIG)
				rc = usher_cfg_error(ctx, node, "secret file %s is larger than %d bytes",
						     ref + 5, SECRET_FILE_MAX);
			else if (frc)
				rc = usher_cfg_error(ctx, node, "cannot read secret file %s: %s",
						     ref + 5, strerror(err));
			else
				rc = usher_buf_add(&b, file.data ? file.data : "", file.len);
			usher_buf_free(&file);
		} else {
			rc = usher_cfg_error(ctx, node,
					     "unknown reference ${%.*s:...}: use ${env:NAME} or "
					     "${file:/path}",
					     (int)strcspn(ref, ":"), ref);
		}
		p = end + 1;
	}
	if (!rc)
		*out = usher_arena_strndup(ctx->arena, usher_buf_str(&b), b.len);
	/* wipe the secret from the scratch buffer before it is freed */
	if (b.data)
		memset(b.data, 0, b.cap);
	usher_buf_free(&b);
	return rc == USHER_ERR_TOOBIG ? usher_cfg_error(ctx, node, "secret too large") : rc;
}

static const char *type_name(enum usher_opt_type t)
{
	switch (t) {
	case USHER_OPT_STR:
	case USHER_OPT_SECRET: return "string";
	case USHER_OPT_BOOL: return "boolean";
	case USHER_OPT_INT: return "integer";
	case USHER_OPT_DURATION: return "duration";
	case USHER_OPT_SIZE: return "size";
	case USHER_OPT_STRLIST: return "list of strings";
	case USHER_OPT_STRMAP:
	case USHER_OPT_SECRETMAP: return "map of strings";
	case USHER_OPT_SECTION: return "mapping";
	case USHER_OPT_LIST: return "list of mappings";
	case USHER_OPT_CUSTOM: return "value";
	}
	return "value";
}

static enum usher_err want_scalar(struct usher_cfgctx *ctx, const struct usher_option *o,
				  const struct usher_ynode *n)
{
	if (n->kind == USHER_Y_SCALAR)
		return USHER_OK;
	return usher_cfg_error(ctx, n, "%s: expected a %s, got a %s", o->key, type_name(o->type),
			       usher_ynode_kind_name(n->kind));
}

static enum usher_err parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "True", "TRUE", "yes", "on"};
	static const char *const no[] = {"false", "False", "FALSE", "no", "off"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return USHER_OK;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return USHER_OK;
		}
	}
	return USHER_ERR_INVALID;
}

static enum usher_err parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return USHER_ERR_INVALID;
	*out = v;
	return USHER_OK;
}

static enum usher_err fill_sections(struct usher_cfgctx *ctx, const struct usher_option *o,
				    const struct usher_ynode *n, void *field);

/* Parses scalar text (from the file, or a default when n is NULL). */
static enum usher_err fill_scalar(struct usher_cfgctx *ctx, const struct usher_option *o,
				  const struct usher_ynode *n, const char *s, void *field)
{
	int64_t i64;
	uint64_t u64;
	bool b;

	switch (o->type) {
	case USHER_OPT_STR:
		*(const char **)field = usher_arena_strdup(ctx->arena, s);
		return USHER_OK;
	case USHER_OPT_SECRET:
		return usher_cfg_resolve_secret(ctx, n, usher_arena_strdup(ctx->arena, s),
						(const char **)field);
	case USHER_OPT_BOOL:
		if (parse_bool(s, &b))
			return usher_cfg_error(ctx, n, "%s: expected true or false, got \"%s\"",
					       o->key, s);
		*(bool *)field = b;
		return USHER_OK;
	case USHER_OPT_INT:
		if (parse_int(s, &i64))
			return usher_cfg_error(ctx, n, "%s: expected an integer, got \"%s\"",
					       o->key, s);
		if ((o->flags & USHER_OPT_POSITIVE) && i64 <= 0)
			return usher_cfg_error(ctx, n, "%s: must be greater than 0", o->key);
		*(int64_t *)field = i64;
		return USHER_OK;
	case USHER_OPT_DURATION:
		if (usher_duration_parse(s, &i64))
			return usher_cfg_error(ctx, n,
					       "%s: invalid duration \"%s\": use a number with a "
					       "unit, like 500ms, 15s, 1m30s or 2h",
					       o->key, s);
		if ((o->flags & USHER_OPT_POSITIVE) && i64 <= 0)
			return usher_cfg_error(ctx, n, "%s: must be longer than 0s", o->key);
		*(int64_t *)field = i64;
		return USHER_OK;
	case USHER_OPT_SIZE:
		if (usher_size_parse(s, &u64))
			return usher_cfg_error(ctx, n,
					       "%s: invalid size \"%s\": use bytes or a unit, "
					       "like 512KiB or 10MiB",
					       o->key, s);
		if ((o->flags & USHER_OPT_POSITIVE) && u64 == 0)
			return usher_cfg_error(ctx, n, "%s: must be greater than 0", o->key);
		*(uint64_t *)field = u64;
		return USHER_OK;
	default:
		return USHER_ERR_INTERNAL;
	}
}

static enum usher_err fill_strlist(struct usher_cfgctx *ctx, const struct usher_option *o,
				   const struct usher_ynode *n, void *field)
{
	struct usher_strlist *l = field;
	size_t i;

	if (n->kind == USHER_Y_SCALAR) {
		l->n = 1;
		l->v = usher_arena_alloc(ctx->arena, sizeof(*l->v));
		l->v[0] = n->value;
		return USHER_OK;
	}
	if (n->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, n, "%s: expected a list of strings, got a %s", o->key,
				       usher_ynode_kind_name(n->kind));
	l->n = 0;
	l->v = usher_arena_alloc(ctx->arena, (n->n ? n->n : 1) * sizeof(*l->v));
	for (i = 0; i < n->n; i++) {
		if (n->items[i]->kind != USHER_Y_SCALAR)
			return usher_cfg_error(ctx, n->items[i], "%s: expected a string, got a %s",
					       o->key, usher_ynode_kind_name(n->items[i]->kind));
		l->v[l->n++] = n->items[i]->value;
	}
	return USHER_OK;
}

static enum usher_err fill_strmap(struct usher_cfgctx *ctx, const struct usher_option *o,
				  const struct usher_ynode *n, void *field)
{
	struct usher_strmap *m = field;
	enum usher_err rc = USHER_OK;
	size_t i;

	if (usher_ynode_is_null(n)) {
		m->n = 0;
		return USHER_OK;
	}
	if (n->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, n, "%s: expected a mapping of strings, got a %s",
				       o->key, usher_ynode_kind_name(n->kind));
	m->n = 0;
	m->v = usher_arena_alloc(ctx->arena, (n->n ? n->n : 1) * sizeof(*m->v));
	for (i = 0; i < n->n; i++) {
		const struct usher_ynode *v = n->pairs[i].val;
		const char *value = v->value;

		if (v->kind != USHER_Y_SCALAR) {
			rc = usher_cfg_error(ctx, v, "%s.%s: expected a string, got a %s", o->key,
					     n->pairs[i].key->value, usher_ynode_kind_name(v->kind));
			continue;
		}
		if (o->type == USHER_OPT_SECRETMAP &&
		    usher_cfg_resolve_secret(ctx, v, v->value, &value)) {
			rc = USHER_ERR_INVALID;
			continue;
		}
		m->v[m->n].key = n->pairs[i].key->value;
		m->v[m->n].value = value;
		m->n++;
	}
	return rc;
}

static enum usher_err fill_one(struct usher_cfgctx *ctx, const struct usher_option *o,
			       const struct usher_ynode *n, void *base)
{
	void *field = (char *)base + o->offset;

	switch (o->type) {
	case USHER_OPT_STR:
	case USHER_OPT_SECRET:
	case USHER_OPT_BOOL:
	case USHER_OPT_INT:
	case USHER_OPT_DURATION:
	case USHER_OPT_SIZE:
		if (want_scalar(ctx, o, n))
			return USHER_ERR_INVALID;
		return fill_scalar(ctx, o, n, n->value, field);
	case USHER_OPT_STRLIST:
		return fill_strlist(ctx, o, n, field);
	case USHER_OPT_STRMAP:
	case USHER_OPT_SECRETMAP:
		return fill_strmap(ctx, o, n, field);
	case USHER_OPT_SECTION:
		if (usher_ynode_is_null(n))
			return usher_opts_apply1(ctx, o->sub, field, NULL);
		if (n->kind != USHER_Y_MAP)
			return usher_cfg_error(ctx, n, "%s: expected a mapping, got a %s", o->key,
					       usher_ynode_kind_name(n->kind));
		return usher_opts_apply1(ctx, o->sub, field, n);
	case USHER_OPT_LIST:
		return fill_sections(ctx, o, n, field);
	case USHER_OPT_CUSTOM:
		return o->parse(ctx, n, field);
	}
	return USHER_ERR_INTERNAL;
}

static enum usher_err fill_sections(struct usher_cfgctx *ctx, const struct usher_option *o,
				    const struct usher_ynode *n, void *field)
{
	struct usher_list *l = field;
	enum usher_err rc = USHER_OK;
	size_t i;

	l->n = 0;
	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, n, "%s: expected a list, got a %s", o->key,
				       usher_ynode_kind_name(n->kind));
	l->v = usher_arena_zalloc(ctx->arena, (n->n ? n->n : 1) * o->sub_size);
	for (i = 0; i < n->n; i++) {
		void *item = (char *)l->v + i * o->sub_size;

		if (n->items[i]->kind != USHER_Y_MAP) {
			rc = usher_cfg_error(ctx, n->items[i], "%s: expected a mapping, got a %s",
					     o->key, usher_ynode_kind_name(n->items[i]->kind));
			continue;
		}
		if (usher_opts_apply1(ctx, o->sub, item, n->items[i]))
			rc = USHER_ERR_INVALID;
	}
	l->n = n->n;
	return rc;
}

static enum usher_err apply_default(struct usher_cfgctx *ctx, const struct usher_option *o,
				    void *base)
{
	void *field = (char *)base + o->offset;

	if (o->type == USHER_OPT_SECTION)
		return usher_opts_apply1(ctx, o->sub, field, NULL);
	if (!o->def)
		return USHER_OK;
	/* defaults are written by us, in the table: a bad one is a bug */
	return fill_scalar(ctx, o, NULL, o->def, field) ? USHER_ERR_INTERNAL : USHER_OK;
}

/* Edit distance of a and b, capped: anything above 3 is "far". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, row[64];

	if (la >= sizeof(row) / sizeof(row[0]) || lb >= sizeof(row) / sizeof(row[0]))
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[lb];
}

/* The closest known key to an unknown one, to suggest ("did you mean"). */
static const char *suggest(const struct usher_option *const *tables, size_t n, const char *key)
{
	const struct usher_option *o, *best = NULL;
	size_t t, best_d = strlen(key) > 4 ? 2 : 1;

	for (t = 0; t < n; t++) {
		for (o = tables[t]; o->key; o++) {
			size_t d = distance(key, o->key);

			if (d <= best_d && (!best || d < distance(key, best->key)))
				best = o;
		}
	}
	return best ? best->key : NULL;
}

static bool takes_null(const struct usher_option *o)
{
	return o->type == USHER_OPT_STR || o->type == USHER_OPT_SECRET;
}

/* Keys are filled in table order, not file order, so a table can rely on
 * its earlier keys (probes take their defaults from global). */
enum usher_err usher_opts_apply(struct usher_cfgctx *ctx, const struct usher_option *const *tables,
				void *const *bases, size_t n, const struct usher_ynode *map)
{
	enum usher_err rc = USHER_OK;
	const struct usher_option *o;
	size_t t, i;

	if (map && map->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, map, "expected a mapping, got a %s",
				       usher_ynode_kind_name(map->kind));
	for (t = 0; t < n; t++) {
		for (o = tables[t]; o->key; o++) {
			const struct usher_ynode *v = usher_ynode_get(map, o->key);

			if (v && !(usher_ynode_is_null(v) && !takes_null(o))) {
				if (fill_one(ctx, o, v, bases[t]))
					rc = USHER_ERR_INVALID;
				continue;
			}
			/* absent, or "key:" with no value: the default */
			if (apply_default(ctx, o, bases[t]))
				rc = USHER_ERR_INVALID;
			if (!v && (o->flags & USHER_OPT_REQUIRED))
				rc = usher_cfg_error(ctx, map, "missing required key \"%s\"", o->key);
		}
	}
	for (i = 0; map && i < map->n; i++) {
		const struct usher_ynode *k = map->pairs[i].key;
		const char *s;
		bool found = false;

		for (t = 0; t < n && !found; t++)
			for (o = tables[t]; o->key && !found; o++)
				found = strcmp(o->key, k->value) == 0;
		if (found)
			continue;
		s = suggest(tables, n, k->value);
		if (s)
			rc = usher_cfg_error(ctx, k, "unknown key \"%s\" (did you mean \"%s\"?)",
					     k->value, s);
		else
			rc = usher_cfg_error(ctx, k, "unknown key \"%s\"", k->value);
	}
	return rc;
}

enum usher_err usher_opts_apply1(struct usher_cfgctx *ctx, const struct usher_option *table,
				 void *base, const struct usher_ynode *map)
{
	return usher_opts_apply(ctx, &table, &base, 1, map);
}

const char *usher_strmap_get(const struct usher_strmap *m, const char *key)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->v[i].key, key) == 0)
			return m->v[i].value;
	return NULL;
}

void usher_opts_describe(FILE *out, const struct usher_option *table, int depth)
{
	const struct usher_option *o;

	for (o = table; o->key; o++) {
		fprintf(out, "%*s%s (%s%s%s%s)%s%s\n", depth * 2, "", o->key, type_name(o->type),
			(o->flags & USHER_OPT_REQUIRED) ? ", required" : "",
			o->def ? ", default " : "", o->def ? o->def : "", o->help ? ": " : "",
			o->help ? o->help : "");
		if (o->sub)
			usher_opts_describe(out, o->sub, depth + 1);
	}
}
