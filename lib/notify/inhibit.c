/* Inhibition rules: parsing, and the check of a target against the firing
 * sources, with Alertmanager's exclusion of two-sided matches. */
#include "notify/inhibit.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

static const char *const rule_keys[] = {
    "source_matchers", "target_matchers", "source_match", "source_match_re",
    "target_match",    "target_match_re", "equal",        NULL};

static enum usher_err add_strs(struct usher_cfgctx *ctx, const struct usher_ynode *v,
			       struct usher_am_matchers *ms)
{
	enum usher_err rc = USHER_OK;
	size_t i, n = v->kind == USHER_Y_SEQ ? v->n : 1;

	if (v->kind != USHER_Y_SEQ && v->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, v, "expected a list of matchers (\"name=value\")");
	for (i = 0; i < n; i++) {
		const struct usher_ynode *it = v->kind == USHER_Y_SEQ ? v->items[i] : v;
		struct usher_error err;

		usher_error_clear(&err);
		if (it->kind != USHER_Y_SCALAR)
			rc = usher_cfg_error(ctx, it, "expected a matcher string");
		else if (usher_am_matchers_parse(ms, it->value, &err))
			rc = usher_cfg_error(ctx, it, "%s", err.msg);
	}
	return rc;
}

static enum usher_err add_map(struct usher_cfgctx *ctx, const struct usher_ynode *v,
			      enum usher_am_match_type t, struct usher_am_matchers *ms)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	if (v->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, v, "expected a map of label names to values");
	for (i = 0; i < v->n; i++) {
		struct usher_error err;

		usher_error_clear(&err);
		if (v->pairs[i].val->kind != USHER_Y_SCALAR)
			rc = usher_cfg_error(ctx, v->pairs[i].val, "expected a string");
		else if (usher_am_matchers_add(ms, t, v->pairs[i].key->value,
					       v->pairs[i].val->value, &err))
			rc = usher_cfg_error(ctx, v->pairs[i].val, "%s", err.msg);
	}
	return rc;
}

enum usher_err usher_inhibit_rules_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					 struct usher_inhibit_rule **out, size_t *n)
{
	enum usher_err rc = USHER_OK;
	size_t i, j, k;

	*n = 0;
	*out = NULL;
	if (usher_ynode_is_null(node))
		return USHER_OK;
	if (node->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, node, "inhibit_rules must be a list");
	*out = usher_arena_zalloc(ctx->arena, (node->n + 1) * sizeof(**out));
	*n = node->n;
	for (i = 0; i < node->n; i++) {
		const struct usher_ynode *it = node->items[i], *v;
		struct usher_inhibit_rule *r = &(*out)[i];

		r->line = it->line;
		r->col = it->col;
		r->source.arena = r->target.arena = ctx->arena;
		if (it->kind != USHER_Y_MAP) {
			rc = usher_cfg_error(ctx, it, "an inhibit rule must be a map");
			continue;
		}
		for (j = 0; j < it->n; j++) {
			for (k = 0; rule_keys[k]; k++)
				if (strcmp(it->pairs[j].key->value, rule_keys[k]) == 0)
					break;
			if (!rule_keys[k])
				rc = usher_cfg_error(
				    ctx, it->pairs[j].key,
				    "unknown inhibit rule key \"%s\" (source_matchers, "
				    "target_matchers, equal)",
				    it->pairs[j].key->value);
		}
		if ((v = usher_ynode_get(it, "source_matchers")) && add_strs(ctx, v, &r->source))
			rc = USHER_ERR_INVALID;
		if ((v = usher_ynode_get(it, "source_match")) &&
		    add_map(ctx, v, USHER_AM_MATCH_EQ, &r->source))
			rc = USHER_ERR_INVALID;
		if ((v = usher_ynode_get(it, "source_match_re")) &&
		    add_map(ctx, v, USHER_AM_MATCH_RE, &r->source))
			rc = USHER_ERR_INVALID;
		if ((v = usher_ynode_get(it, "target_matchers")) && add_strs(ctx, v, &r->target))
			rc = USHER_ERR_INVALID;
		if ((v = usher_ynode_get(it, "target_match")) &&
		    add_map(ctx, v, USHER_AM_MATCH_EQ, &r->target))
			rc = USHER_ERR_INVALID;
		if ((v = usher_ynode_get(it, "target_match_re")) &&
		    add_map(ctx, v, USHER_AM_MATCH_RE, &r->target))
			rc = USHER_ERR_INVALID;
		if ((v = usher_ynode_get(it, "equal"))) {
			size_t m = v->kind == USHER_Y_SEQ ? v->n : 1;

			if (v->kind != USHER_Y_SEQ && v->kind != USHER_Y_SCALAR) {
				rc = usher_cfg_error(ctx, v, "equal must be a list of label names");
				continue;
			}
			r->equal.n = m;
			r->equal.v = usher_arena_zalloc(ctx->arena, (m + 1) * sizeof(char *));
			for (j = 0; j < m; j++) {
				const struct usher_ynode *e =
				    v->kind == USHER_Y_SEQ ? v->items[j] : v;

				if (e->kind != USHER_Y_SCALAR || !usher_label_name_valid(e->value))
					rc = usher_cfg_error(ctx, e, "invalid label name in equal");
				else
					r->equal.v[j] = e->value;
			}
		}
	}
	return rc;
}

struct source_list {
	size_t n, cap;
	const struct usher_am_alert **v;
};

struct usher_inhibitor {
	const struct usher_inhibit_rule *rules;
	size_t nrules;
	struct source_list *src; /* per rule */
};

struct usher_inhibitor *usher_inhibitor_new(const struct usher_inhibit_rule *rules, size_t n)
{
	struct usher_inhibitor *ih = usher_calloc(1, sizeof(*ih));

	ih->rules = rules;
	ih->nrules = n;
	ih->src = usher_calloc(n + 1, sizeof(*ih->src));
	return ih;
}

void usher_inhibitor_free(struct usher_inhibitor *ih)
{
	size_t i;

	if (!ih)
		return;
	for (i = 0; i < ih->nrules; i++)
		free(ih->src[i].v);
	free(ih->src);
	free(ih);
}

void usher_inhibitor_reset(struct usher_inhibitor *ih)
{
	size_t i;

	for (i = 0; i < ih->nrules; i++)
		ih->src[i].n = 0;
}

void usher_inhibitor_add(struct usher_inhibitor *ih, const struct usher_am_alert *a, int64_t now_ns)
{
	size_t i;

	if (usher_am_alert_resolved(a, now_ns))
		return;
	for (i = 0; i < ih->nrules; i++) {
		struct source_list *s = &ih->src[i];

		if (!usher_am_matchers_match(&ih->rules[i].source, &a->labels))
			continue;
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 16;
			s->v = usher_realloc(s->v, s->cap * sizeof(*s->v));
		}
		s->v[s->n++] = a;
	}
}

static bool equal_labels(const struct usher_strlist *eq, const struct usher_am_labels *a,
			 const struct usher_am_labels *b)
{
	size_t i;

	for (i = 0; i < eq->n; i++) {
		const char *x = usher_am_labels_get(a, eq->v[i]),
			   *y = usher_am_labels_get(b, eq->v[i]);

		if (strcmp(x ? x : "", y ? y : ""))
			return false;
	}
	return true;
}

bool usher_inhibitor_mutes(const struct usher_inhibitor *ih, const struct usher_am_labels *l,
			   uint64_t *by)
{
	size_t i, j;

	for (i = 0; i < ih->nrules; i++) {
		const struct usher_inhibit_rule *r = &ih->rules[i];
		bool two_sided;

		if (!usher_am_matchers_match(&r->target, l))
			continue;
		two_sided = usher_am_matchers_match(&r->source, l);
		for (j = 0; j < ih->src[i].n; j++) {
			const struct usher_am_alert *s = ih->src[i].v[j];

			if (!equal_labels(&r->equal, &s->labels, l))
				continue;
			if (two_sided && usher_am_matchers_match(&r->target, &s->labels))
				continue;
			if (by)
				*by = s->fp;
			return true;
		}
	}
	return false;
}
