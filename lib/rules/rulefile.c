/* Rule file loading: the YAML tree (config/yaml.c) walked into groups and
 * rules, with promtool's checks and every error at its line and column. */
#include "rules/rulefile.h"

#include <errno.h>
#include <stdarg.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define MAX_FILE (64u << 20)

struct loader {
	const char *file;
	struct usher_arena *a;
	struct usher_diags *d;
	bool failed;
};

static void errorf(struct loader *l, const struct usher_ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errorf(struct loader *l, const struct usher_ynode *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	usher_diags_add(l->d, l->file, n ? n->line : 0, n ? n->col : 0, "%s", msg);
	l->failed = true;
}

bool usher_metric_name_ok(const char *s)
{
	size_t i;

	if (!s || !*s)
		return false;
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		int n;
		uint32_t cp;

		if (*p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0xC2 && *p <= 0xDF)
			n = 1, cp = *p & 0x1F;
		else if (*p >= 0xE0 && *p <= 0xEF)
			n = 2, cp = *p & 0x0F;
		else if (*p >= 0xF0 && *p <= 0xF4)
			n = 3, cp = *p & 0x07;
		else
			return false;
		p++;
		while (n--) {
			if ((*p & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (*p++ & 0x3F);
		}
		if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
	}
	return true;
}

/* A scalar's text, "" for null; a non-scalar is an error (NULL). */
static const char *scalar(struct loader *l, const struct usher_ynode *n, const char *what)
{
	if (!n || usher_ynode_is_null(n))
		return "";
	if (n->kind != USHER_Y_SCALAR) {
		errorf(l, n, "%s must be a string, not a %s", what, usher_ynode_kind_name(n->kind));
		return NULL;
	}
	return n->value;
}

static bool duration(struct loader *l, const struct usher_ynode *n, const char *what, int64_t *ms)
{
	const char *s = scalar(l, n, what);

	*ms = 0;
	if (!s)
		return false;
	if (!*s)
		return true;
	if (usher_duration_parse(s, ms)) {
		errorf(l, n, "%s: not a valid duration string: \"%s\"", what, s);
		return false;
	}
	return true;
}

/* Checks a map's keys against the allowed list. */
static bool known_keys(struct loader *l, const struct usher_ynode *map, const char *const *keys,
		       const char *where)
{
	size_t i, k;
	bool ok = true;

	for (i = 0; i < map->n; i++) {
		const char *key = map->pairs[i].key->value;

		for (k = 0; keys[k]; k++)
			if (strcmp(keys[k], key) == 0)
				break;
		if (!keys[k]) {
			errorf(l, map->pairs[i].key, "unknown key \"%s\" in %s", key, where);
			ok = false;
		}
	}
	return ok;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct usher_rule_pair *pa = a, *pb = b;

	return strcmp(pa->name, pb->name);
}

/* Reads a name → string map (labels, annotations) into pairs. */
static bool read_pairs(struct loader *l, const struct usher_ynode *n, const char *what,
		       struct usher_rule_pair **out, size_t *nout)
{
	size_t i;

	*out = NULL;
	*nout = 0;
	if (!n || usher_ynode_is_null(n))
		return true;
	if (n->kind != USHER_Y_MAP) {
		errorf(l, n, "%s must be a mapping, not a %s", what,
		       usher_ynode_kind_name(n->kind));
		return false;
	}
	*out = usher_arena_zalloc(l->a, (n->n ? n->n : 1) * sizeof(**out));
	for (i = 0; i < n->n; i++) {
		const struct usher_ynode *v = n->pairs[i].val;
		const char *s = scalar(l, v, what);

		if (!s)
			return false;
		(*out)[i].name = n->pairs[i].key->value;
		(*out)[i].value = s;
		(*out)[i].line = v->line;
		(*out)[i].col = v->col;
		/* the key's place, for name errors */
		(*out)[i].from_group = false;
	}
	*nout = n->n;
	return true;
}

static bool label_name_ok(const char *s)
{
	return usher_label_name_ok(s) && strcmp(s, USHER_METRIC_NAME_LABEL) != 0;
}

struct rule_ctx {
	struct loader *l;
	const char *group;
	size_t index; /* 1-based */
	const char *name;
	const struct usher_ynode *node;
};

static void rule_error(struct rule_ctx *c, const struct usher_ynode *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rule_error(struct rule_ctx *c, const struct usher_ynode *at, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errorf(c->l, at ? at : c->node, "group \"%s\", rule %zu, \"%s\": %s", c->group, c->index,
	       c->name, msg);
}

static const struct usher_ynode *key_node(const struct usher_ynode *map, const char *key)
{
	size_t i;

	for (i = 0; i < map->n; i++)
		if (strcmp(map->pairs[i].key->value, key) == 0)
			return map->pairs[i].key;
	return NULL;
}

/* Merges the group's labels under the rule's own, sorted by name. */
static void merge_labels(struct loader *l, const struct usher_rule_group *g, struct usher_rule *r)
{
	size_t i, j, n = r->nlabels;
	struct usher_rule_pair *all =
	    usher_arena_zalloc(l->a, (g->nlabels + r->nlabels + 1) * sizeof(*all));

	if (r->nlabels)
		memcpy(all, r->labels, r->nlabels * sizeof(*all));
	for (i = 0; i < g->nlabels; i++) {
		for (j = 0; j < r->nlabels; j++)
			if (strcmp(r->labels[j].name, g->labels[i].name) == 0)
				break;
		if (j < r->nlabels)
			continue;
		all[n].name = g->labels[i].name;
		all[n].value = g->labels[i].value;
		all[n].from_group = true;
		n++;
	}
	qsort(all, n, sizeof(*all), cmp_pair);
	r->labels = all;
	r->nlabels = n;
}

static void parse_rule(struct loader *l, const struct usher_rule_group *g,
		       const struct usher_ynode *n, size_t index, struct usher_rule *r)
{
	static const char *const keys[] = {"record",          "alert",  "expr",        "for",
					   "keep_firing_for", "labels", "annotations", NULL};
	const struct usher_ynode *record = usher_ynode_get(n, "record");
	const struct usher_ynode *alert = usher_ynode_get(n, "alert");
	const struct usher_ynode *expr = usher_ynode_get(n, "expr");
	const struct usher_ynode *labels = usher_ynode_get(n, "labels");
	const struct usher_ynode *annotations = usher_ynode_get(n, "annotations");
	const char *rec, *alt, *ex;
	struct rule_ctx c = {l, g->name, index, "", n};
	size_t i;

	r->line = n->line;
	r->col = n->col;
	if (!known_keys(l, n, keys, "rule"))
		return;
	rec = scalar(l, record, "record");
	alt = scalar(l, alert, "alert");
	ex = scalar(l, expr, "expr");
	if (!rec || !alt || !ex)
		return;
	c.name = *alt ? alt : rec;
	r->name = c.name;
	r->type = *alt ? USHER_RULE_ALERTING : USHER_RULE_RECORDING;
	r->expr_text = ex;
	if (*rec && *alt)
		rule_error(&c, alert, "only one of 'record' and 'alert' must be set");
	if (!*rec && !*alt)
		rule_error(&c, NULL, "one of 'record' or 'alert' must be set");
	if (!*ex) {
		rule_error(&c, expr, "field 'expr' must be set in rule");
	} else {
		struct usher_error err;

		usher_error_clear(&err);
		if (usher_promql_parse(ex, &r->expr, &err))
			rule_error(&c, expr, "could not parse expression: %s", err.msg);
	}
	if (!duration(l, usher_ynode_get(n, "for"), "for", &r->for_ms) ||
	    !duration(l, usher_ynode_get(n, "keep_firing_for"), "keep_firing_for",
		      &r->keep_firing_for_ms))
		return;
	if (!read_pairs(l, labels, "labels", &r->labels, &r->nlabels) ||
	    !read_pairs(l, annotations, "annotations", &r->annotations, &r->nannotations))
		return;
	if (*rec) {
		if (r->nannotations)
			rule_error(&c, key_node(n, "annotations"),
				   "invalid field 'annotations' in recording rule");
		if (r->for_ms)
			rule_error(&c, key_node(n, "for"), "invalid field 'for' in recording rule");
		if (r->keep_firing_for_ms)
			rule_error(&c, key_node(n, "keep_firing_for"),
				   "invalid field 'keep_firing_for' in recording rule");
		if (!usher_metric_name_ok(rec))
			rule_error(&c, record, "invalid recording rule name: %s", rec);
	}
	for (i = 0; labels && i < r->nlabels; i++) {
		if (!label_name_ok(r->labels[i].name))
			rule_error(&c, labels->pairs[i].key, "invalid label name: %s",
				   r->labels[i].name);
		if (!utf8_ok(r->labels[i].value))
			rule_error(&c, labels->pairs[i].val, "invalid label value: %s",
				   r->labels[i].value);
	}
	for (i = 0; annotations && i < r->nannotations; i++)
		if (!usher_label_name_ok(r->annotations[i].name))
			rule_error(&c, annotations->pairs[i].key, "invalid annotation name: %s",
				   r->annotations[i].name);
	merge_labels(l, g, r);
	if (r->nannotations)
		qsort(r->annotations, r->nannotations, sizeof(*r->annotations), cmp_pair);
	if (r->type != USHER_RULE_ALERTING)
		return;
	/* alert templates are compiled now, so a broken one fails the load */
	{
		const char *tname = usher_arena_printf(l->a, "__alert_%s", alt);
		int pass;

		for (pass = 0; pass < 2; pass++) {
			struct usher_rule_pair *v = pass ? r->annotations : r->labels;
			size_t nv = pass ? r->nannotations : r->nlabels;

			for (i = 0; i < nv; i++) {
				struct usher_error err;
				struct usher_ynode at = {.line = v[i].line, .col = v[i].col};

				usher_error_clear(&err);
				if (usher_template_parse(tname, v[i].value, &v[i].tmpl, &err))
					rule_error(&c, v[i].line ? &at : NULL, "%s \"%s\": %s",
						   pass ? "annotation" : "label", v[i].name,
						   err.msg);
			}
		}
	}
}

static void parse_group(struct loader *l, const struct usher_ynode *n, struct usher_rule_group *g)
{
	static const char *const keys[] = {"name",  "interval", "query_offset", "limit", "labels",
					   "rules", NULL};
	const struct usher_ynode *rules, *limit, *labels;
	struct usher_rule_pair *pairs;
	size_t i, npairs;
	const char *name;

	g->file = l->file;
	g->line = n->line;
	g->col = n->col;
	if (n->kind != USHER_Y_MAP) {
		errorf(l, n, "a group must be a mapping, not a %s", usher_ynode_kind_name(n->kind));
		return;
	}
	if (!known_keys(l, n, keys, "group"))
		return;
	name = scalar(l, usher_ynode_get(n, "name"), "name");
	if (!name)
		return;
	g->name = name;
	if (!duration(l, usher_ynode_get(n, "interval"), "interval", &g->interval_ms) ||
	    !duration(l, usher_ynode_get(n, "query_offset"), "query_offset", &g->query_offset_ms))
		return;
	g->has_query_offset = usher_ynode_get(n, "query_offset") != NULL &&
			      !usher_ynode_is_null(usher_ynode_get(n, "query_offset"));
	limit = usher_ynode_get(n, "limit");
	if (limit && !usher_ynode_is_null(limit)) {
		const char *s = scalar(l, limit, "limit");
		char *end;

		if (!s)
			return;
		errno = 0;
		g->limit = strtoll(s, &end, 10);
		if (end == s || *end || errno) {
			errorf(l, limit, "limit: cannot read \"%s\" as an integer", s);
			return;
		}
	}
	labels = usher_ynode_get(n, "labels");
	if (!read_pairs(l, labels, "labels", &pairs, &npairs))
		return;
	g->labels = usher_arena_zalloc(l->a, (npairs ? npairs : 1) * sizeof(*g->labels));
	for (i = 0; i < npairs; i++) {
		if (!label_name_ok(pairs[i].name))
			errorf(l, labels->pairs[i].key, "group \"%s\": invalid label name: %s",
			       name, pairs[i].name);
		if (!utf8_ok(pairs[i].value))
			errorf(l, labels->pairs[i].val, "group \"%s\": invalid label value: %s",
			       name, pairs[i].value);
		g->labels[i].name = pairs[i].name;
		g->labels[i].value = pairs[i].value;
	}
	g->nlabels = npairs;
	{
		struct usher_labels ls = {g->nlabels, g->labels};

		/* names are unique (YAML keys); this sorts them */
		(void)usher_labels_normalize(&ls, g->labels);
		g->nlabels = ls.n;
	}
	rules = usher_ynode_get(n, "rules");
	if (!rules || usher_ynode_is_null(rules))
		return;
	if (rules->kind != USHER_Y_SEQ) {
		errorf(l, rules, "rules must be a sequence, not a %s",
		       usher_ynode_kind_name(rules->kind));
		return;
	}
	g->rules = usher_arena_zalloc(l->a, (rules->n ? rules->n : 1) * sizeof(*g->rules));
	for (i = 0; i < rules->n; i++) {
		if (rules->items[i]->kind != USHER_Y_MAP) {
			errorf(l, rules->items[i], "a rule must be a mapping, not a %s",
			       usher_ynode_kind_name(rules->items[i]->kind));
			continue;
		}
		parse_rule(l, g, rules->items[i], i + 1, &g->rules[g->nrules]);
		g->nrules++;
	}
}

static void free_rules(struct usher_rulefile *f)
{
	size_t i, j, k;

	for (i = 0; i < f->ngroups; i++)
		for (j = 0; j < f->groups[i].nrules; j++) {
			struct usher_rule *r = &f->groups[i].rules[j];

			usher_promql_expr_free(r->expr);
			for (k = 0; k < r->nlabels; k++)
				usher_template_free(r->labels[k].tmpl);
			for (k = 0; k < r->nannotations; k++)
				usher_template_free(r->annotations[k].tmpl);
		}
}

void usher_rulefile_free(struct usher_rulefile *f)
{
	if (!f)
		return;
	free_rules(f);
	usher_arena_free(f->arena);
	free(f);
}

enum usher_err usher_rulefile_parse(const char *path, const char *text, size_t len,
				    struct usher_rulefile **out, struct usher_diags *d)
{
	struct usher_rulefile *f = usher_calloc(1, sizeof(*f));
	struct usher_ynode *root;
	const struct usher_ynode *groups;
	struct loader l;
	size_t i, j;

	*out = NULL;
	f->arena = usher_arena_new();
	f->path = usher_arena_strdup(f->arena, path);
	l.file = f->path;
	l.a = f->arena;
	l.d = d;
	l.failed = false;
	if (usher_yaml_parse(f->arena, f->path, text, len, &root, d)) {
		usher_rulefile_free(f);
		return USHER_ERR_INVALID;
	}
	if (root->kind != USHER_Y_MAP) {
		errorf(&l, root, "a rule file must be a mapping with \"groups\", not a %s",
		       usher_ynode_kind_name(root->kind));
		goto out;
	}
	{
		static const char *const keys[] = {"groups", NULL};

		if (!known_keys(&l, root, keys, "rule file"))
			goto out;
	}
	groups = usher_ynode_get(root, "groups");
	if (!groups || usher_ynode_is_null(groups))
		goto out;
	if (groups->kind != USHER_Y_SEQ) {
		errorf(&l, groups, "groups must be a sequence, not a %s",
		       usher_ynode_kind_name(groups->kind));
		goto out;
	}
	f->groups = usher_arena_zalloc(f->arena, (groups->n ? groups->n : 1) * sizeof(*f->groups));
	for (i = 0; i < groups->n; i++) {
		struct usher_rule_group *g = &f->groups[f->ngroups++];

		parse_group(&l, groups->items[i], g);
		if (!g->name)
			continue;
		if (!*g->name)
			errorf(&l, groups->items[i], "group name must not be empty");
		for (j = 0; j + 1 < f->ngroups; j++)
			if (f->groups[j].name && *g->name &&
			    strcmp(f->groups[j].name, g->name) == 0) {
				errorf(&l, groups->items[i],
				       "groupname: \"%s\" is repeated in the same file (first at "
				       "line %d)",
				       g->name, f->groups[j].line);
				break;
			}
	}
out:
	if (l.failed) {
		usher_rulefile_free(f);
		return USHER_ERR_INVALID;
	}
	*out = f;
	return USHER_OK;
}

enum usher_err usher_rulefile_load(const char *path, struct usher_rulefile **out,
				   struct usher_diags *d)
{
	struct usher_buf b;
	char chunk[8192];
	enum usher_err rc;
	FILE *fp;
	size_t n;

	*out = NULL;
	fp = fopen(path, "rb");
	if (!fp) {
		usher_diags_add(d, path, 0, 0, "cannot open: %s", strerror(errno));
		return USHER_ERR_IO;
	}
	usher_buf_init(&b, MAX_FILE);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (usher_buf_add(&b, chunk, n)) {
			fclose(fp);
			usher_buf_free(&b);
			usher_diags_add(d, path, 0, 0, "larger than %u bytes", MAX_FILE);
			return USHER_ERR_IO;
		}
	if (ferror(fp)) {
		fclose(fp);
		usher_buf_free(&b);
		usher_diags_add(d, path, 0, 0, "cannot read: %s", strerror(errno));
		return USHER_ERR_IO;
	}
	fclose(fp);
	rc = usher_rulefile_parse(path, usher_buf_str(&b), b.len, out, d);
	usher_buf_free(&b);
	return rc;
}

size_t usher_rulefile_count_rules(const struct usher_rulefile *f)
{
	size_t i, n = 0;

	for (i = 0; i < f->ngroups; i++)
		n += f->groups[i].nrules;
	return n;
}

/* Orders rules by name, then by their own labels. */
static int cmp_rule(const struct usher_rule *a, const struct usher_rule *b)
{
	size_t i = 0, j = 0;
	int c = strcmp(a->name, b->name);

	if (c)
		return c;
	for (;;) {
		while (i < a->nlabels && a->labels[i].from_group)
			i++;
		while (j < b->nlabels && b->labels[j].from_group)
			j++;
		if (i == a->nlabels || j == b->nlabels)
			return (i < a->nlabels) - (j < b->nlabels);
		c = strcmp(a->labels[i].name, b->labels[j].name);
		if (!c)
			c = strcmp(a->labels[i].value, b->labels[j].value);
		if (c)
			return c;
		i++;
		j++;
	}
}

static int cmp_rule_ptr(const void *a, const void *b)
{
	return cmp_rule(*(const struct usher_rule *const *)a, *(const struct usher_rule *const *)b);
}

size_t usher_rulefile_duplicates(const struct usher_rulefile *f, struct usher_arena *a,
				 struct usher_rule_dup **out)
{
	size_t total = usher_rulefile_count_rules(f), i, j, k = 0, n = 0;
	const struct usher_rule **all = usher_arena_alloc(a, (total ? total : 1) * sizeof(*all));

	*out = usher_arena_alloc(a, (total ? total : 1) * sizeof(**out));
	for (i = 0; i < f->ngroups; i++)
		for (j = 0; j < f->groups[i].nrules; j++)
			all[k++] = &f->groups[i].rules[j];
	qsort(all, total, sizeof(*all), cmp_rule_ptr);
	for (i = 1; i < total; i++)
		if (cmp_rule(all[i - 1], all[i]) == 0 &&
		    (n == 0 || cmp_rule((*out)[n - 1].rule, all[i]) != 0)) {
			(*out)[n].name = all[i]->name;
			(*out)[n].rule = all[i];
			n++;
		}
	return n;
}

/* ---- rule_files globs ----------------------------------------------------- */

enum usher_err usher_rulefiles_load_globs(const char *cfg_path, const char *base_dir,
					  const char *const *globs, size_t nglobs,
					  struct usher_rulefile ***out, size_t *n,
					  struct usher_diags *d)
{
	struct usher_rulefile **files = NULL;
	size_t nfiles = 0, i, j, k;
	enum usher_err rc = USHER_OK;
	char pattern[8192];

	*out = NULL;
	*n = 0;
	for (i = 0; i < nglobs; i++) {
		const char *g = globs[i];
		glob_t gl;
		int grc;

		if (g[0] == '/' || !base_dir)
			snprintf(pattern, sizeof(pattern), "%s", g);
		else
			snprintf(pattern, sizeof(pattern), "%s/%s", base_dir, g);
		grc = glob(pattern, GLOB_ERR, NULL, &gl);
		if (grc == GLOB_NOMATCH) {
			if (!strpbrk(g, "*?[")) {
				usher_diags_add(d, cfg_path, 0, 0, "rule_files: %s: no such file",
						pattern);
				rc = USHER_ERR_INVALID;
			}
			globfree(&gl);
			continue;
		}
		if (grc != 0) {
			usher_diags_add(d, cfg_path, 0, 0, "rule_files: cannot read %s: %s", pattern,
					strerror(errno));
			rc = USHER_ERR_INVALID;
			continue;
		}
		for (j = 0; j < gl.gl_pathc; j++) {
			struct usher_rulefile *f = NULL;
			bool seen = false;

			for (k = 0; k < nfiles && !seen; k++)
				seen = strcmp(files[k]->path, gl.gl_pathv[j]) == 0;
			if (seen)
				continue;
			if (usher_rulefile_load(gl.gl_pathv[j], &f, d) != USHER_OK) {
				rc = USHER_ERR_INVALID;
				continue;
			}
			files = usher_realloc(files, (nfiles + 1) * sizeof(*files));
			files[nfiles++] = f;
		}
		globfree(&gl);
	}
	if (rc != USHER_OK) {
		for (k = 0; k < nfiles; k++)
			usher_rulefile_free(files[k]);
		free(files);
		return rc;
	}
	*out = files;
	*n = nfiles;
	return USHER_OK;
}
