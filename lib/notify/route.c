/* The routing tree: parsing with inheritance from the parent, depth-first
 * matching with `continue`, group labels and Alertmanager's group keys. */
#include "notify/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timeutil.h"

static const char *const route_keys[] = {
    "receiver",
    "group_by",
    "continue",
    "match",
    "match_re",
    "matchers",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "mute_time_intervals",
    "active_time_intervals",
    "routes",
    "incident",
    NULL,
};

static enum usher_err get_bool(struct usher_cfgctx *ctx, const struct usher_ynode *v, bool *out)
{
	if (v->kind == USHER_Y_SCALAR) {
		if (strcmp(v->value, "true") == 0 || strcmp(v->value, "True") == 0) {
			*out = true;
			return USHER_OK;
		}
		if (strcmp(v->value, "false") == 0 || strcmp(v->value, "False") == 0) {
			*out = false;
			return USHER_OK;
		}
	}
	return usher_cfg_error(ctx, v, "expected true or false");
}

static enum usher_err get_duration(struct usher_cfgctx *ctx, const struct usher_ynode *v,
				   int64_t *out)
{
	if (v->kind != USHER_Y_SCALAR || usher_duration_parse(v->value, out))
		return usher_cfg_error(ctx, v, "invalid duration \"%s\" (e.g. 30s, 5m, 4h)",
				       v->kind == USHER_Y_SCALAR ? v->value : "");
	return USHER_OK;
}

static enum usher_err get_strlist(struct usher_cfgctx *ctx, const struct usher_ynode *v,
				  struct usher_strlist *out)
{
	size_t i;

	if (v->kind == USHER_Y_SCALAR) {
		out->n = 1;
		out->v = usher_arena_zalloc(ctx->arena, sizeof(*out->v));
		out->v[0] = v->value;
		return USHER_OK;
	}
	if (v->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, v, "expected a list of strings");
	out->n = v->n;
	out->v = usher_arena_zalloc(ctx->arena, (v->n + 1) * sizeof(*out->v));
	for (i = 0; i < v->n; i++) {
		if (v->items[i]->kind != USHER_Y_SCALAR)
			return usher_cfg_error(ctx, v->items[i], "expected a string");
		out->v[i] = v->items[i]->value;
	}
	return USHER_OK;
}

static enum usher_err add_map_matchers(struct usher_cfgctx *ctx, const struct usher_ynode *v,
				       enum usher_am_match_type t, struct usher_am_matchers *ms)
{
	enum usher_err rc = USHER_OK;
	size_t i;

	if (v->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, v, "expected a map of label names to %s",
				       t == USHER_AM_MATCH_EQ ? "values" : "regular expressions");
	for (i = 0; i < v->n; i++) {
		const struct usher_ynode *val = v->pairs[i].val;
		struct usher_error err;

		usher_error_clear(&err);
		if (!usher_label_name_valid(v->pairs[i].key->value)) {
			rc = usher_cfg_error(ctx, v->pairs[i].key, "invalid label name \"%s\"",
					     v->pairs[i].key->value);
			continue;
		}
		if (val->kind != USHER_Y_SCALAR) {
			rc = usher_cfg_error(ctx, val, "expected a string");
			continue;
		}
		if (usher_am_matchers_add(ms, t, v->pairs[i].key->value, val->value, &err))
			rc = usher_cfg_error(ctx, val, "%s", err.msg);
	}
	return rc;
}

enum usher_err usher_route_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				 struct usher_route *parent, const char *id,
				 struct usher_route **out)
{
	struct usher_route *r = usher_arena_zalloc(ctx->arena, sizeof(*r));
	enum usher_err rc = USHER_OK;
	const struct usher_ynode *v;
	size_t i, j;

	*out = r;
	r->parent = parent;
	r->id = id;
	r->line = node->line;
	r->col = node->col;
	r->matchers.arena = ctx->arena;
	r->incident = parent ? parent->incident : -1;
	if (parent) {
		r->receiver = parent->receiver;
		r->group_by = parent->group_by;
		r->group_by_all = parent->group_by_all;
		r->group_wait_ms = parent->group_wait_ms;
		r->group_interval_ms = parent->group_interval_ms;
		r->repeat_interval_ms = parent->repeat_interval_ms;
	} else {
		usher_duration_parse(USHER_ROUTE_GROUP_WAIT, &r->group_wait_ms);
		usher_duration_parse(USHER_ROUTE_GROUP_INTERVAL, &r->group_interval_ms);
		usher_duration_parse(USHER_ROUTE_REPEAT_INTERVAL, &r->repeat_interval_ms);
	}
	if (node->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, node,
				       "a route must be a map (receiver, matchers, "
				       "group_by, routes, ...)");
	for (i = 0; i < node->n; i++) {
		const char *k = node->pairs[i].key->value;

		for (j = 0; route_keys[j]; j++)
			if (strcmp(k, route_keys[j]) == 0)
				break;
		if (!route_keys[j])
			rc = usher_cfg_error(
			    ctx, node->pairs[i].key,
			    "unknown route key \"%s\" (receiver, matchers, continue, "
			    "group_by, group_wait, group_interval, repeat_interval, "
			    "mute_time_intervals, active_time_intervals, routes, "
			    "incident)",
			    k);
	}
	if ((v = usher_ynode_get(node, "receiver"))) {
		if (v->kind != USHER_Y_SCALAR || !*v->value)
			rc = usher_cfg_error(ctx, v, "receiver must be a receiver's name");
		else
			r->receiver = v->value;
	}
	if (!parent && !r->receiver)
		rc = usher_cfg_error(ctx, node, "the root route needs a receiver");
	if ((v = usher_ynode_get(node, "continue"))) {
		if (get_bool(ctx, v, &r->cont))
			rc = USHER_ERR_INVALID;
		else if (!parent && r->cont)
			rc = usher_cfg_error(ctx, v, "the root route cannot have continue set");
	}
	if ((v = usher_ynode_get(node, "incident"))) {
		bool b;

		if (get_bool(ctx, v, &b))
			rc = USHER_ERR_INVALID;
		else
			r->incident = b;
	}
	if ((v = usher_ynode_get(node, "group_by"))) {
		struct usher_strlist gb = {0};

		if (get_strlist(ctx, v, &gb)) {
			rc = USHER_ERR_INVALID;
		} else {
			r->group_by_all = false;
			for (j = 0; j < gb.n; j++) {
				if (strcmp(gb.v[j], "...") == 0) {
					r->group_by_all = true;
					if (gb.n > 1)
						rc = usher_cfg_error(ctx, v,
								     "cannot have wildcard "
								     "group_by ('...') and "
								     "other labels at the same "
								     "time");
				} else if (!usher_label_name_valid(gb.v[j])) {
					rc = usher_cfg_error(
					    ctx, v, "invalid label name \"%s\" in group_by",
					    gb.v[j]);
				}
				for (i = 0; i < j; i++)
					if (strcmp(gb.v[i], gb.v[j]) == 0)
						rc = usher_cfg_error(
						    ctx, v, "duplicated label \"%s\" in group_by",
						    gb.v[j]);
			}
			r->group_by = r->group_by_all ? (struct usher_strlist){0} : gb;
		}
	}
	if ((v = usher_ynode_get(node, "group_wait")) && get_duration(ctx, v, &r->group_wait_ms))
		rc = USHER_ERR_INVALID;
	if ((v = usher_ynode_get(node, "group_interval"))) {
		if (get_duration(ctx, v, &r->group_interval_ms))
			rc = USHER_ERR_INVALID;
		else if (r->group_interval_ms <= 0)
			rc = usher_cfg_error(ctx, v, "group_interval cannot be zero");
	}
	if ((v = usher_ynode_get(node, "repeat_interval"))) {
		if (get_duration(ctx, v, &r->repeat_interval_ms))
			rc = USHER_ERR_INVALID;
		else if (r->repeat_interval_ms <= 0)
			rc = usher_cfg_error(ctx, v, "repeat_interval cannot be zero");
	}
	if ((v = usher_ynode_get(node, "mute_time_intervals")) &&
	    get_strlist(ctx, v, &r->mute_time_intervals))
		rc = USHER_ERR_INVALID;
	if ((v = usher_ynode_get(node, "active_time_intervals")) &&
	    get_strlist(ctx, v, &r->active_time_intervals))
		rc = USHER_ERR_INVALID;
	if ((v = usher_ynode_get(node, "match")) &&
	    add_map_matchers(ctx, v, USHER_AM_MATCH_EQ, &r->matchers))
		rc = USHER_ERR_INVALID;
	if ((v = usher_ynode_get(node, "match_re")) &&
	    add_map_matchers(ctx, v, USHER_AM_MATCH_RE, &r->matchers))
		rc = USHER_ERR_INVALID;
	if ((v = usher_ynode_get(node, "matchers"))) {
		struct usher_strlist ml = {0};

		if (get_strlist(ctx, v, &ml)) {
			rc = USHER_ERR_INVALID;
		} else {
			for (j = 0; j < ml.n; j++) {
				struct usher_error err;

				usher_error_clear(&err);
				if (usher_am_matchers_parse(&r->matchers, ml.v[j], &err))
					rc = usher_cfg_error(
					    ctx, v->kind == USHER_Y_SEQ ? v->items[j] : v, "%s",
					    err.msg);
			}
		}
	}
	if (!parent && r->matchers.n)
		rc = usher_cfg_error(ctx, node, "the root route must not have any matchers");
	if (!parent && (r->mute_time_intervals.n || r->active_time_intervals.n))
		rc = usher_cfg_error(ctx, node, "the root route cannot have time intervals");
	usher_am_matchers_sort(&r->matchers);
	{
		char *ms = usher_am_matchers_string(&r->matchers);

		r->key = parent ? usher_arena_printf(ctx->arena, "%s/%s", parent->key, ms)
				: usher_arena_strdup(ctx->arena, ms);
		free(ms);
	}
	if ((v = usher_ynode_get(node, "routes")) && !usher_ynode_is_null(v)) {
		if (v->kind != USHER_Y_SEQ)
			return usher_cfg_error(ctx, v, "routes must be a list of routes");
		r->nroutes = v->n;
		r->routes = usher_arena_zalloc(ctx->arena, (v->n + 1) * sizeof(*r->routes));
		for (j = 0; j < v->n; j++) {
			const char *cid = usher_arena_printf(ctx->arena, "%s.%zu", id, j);

			if (usher_route_parse(ctx, v->items[j], r, cid, &r->routes[j]))
				rc = USHER_ERR_INVALID;
		}
	}
	return rc;
}

static size_t match(const struct usher_route *r, const struct usher_am_labels *l,
		    const struct usher_route **out, size_t max, size_t n)
{
	size_t i, before;

	if (!usher_am_matchers_match(&r->matchers, l))
		return n;
	before = n;
	for (i = 0; i < r->nroutes; i++) {
		size_t got = match(r->routes[i], l, out, max, n);

		if (got > n && !r->routes[i]->cont) {
			n = got;
			break;
		}
		n = got;
	}
	/* no child matched: this route is the one */
	if (n == before) {
		if (n < max)
			out[n] = r;
		n++;
	}
	return n;
}

size_t usher_route_match(const struct usher_route *root, const struct usher_am_labels *l,
			 const struct usher_route **out, size_t max)
{
	return match(root, l, out, max, 0);
}

void usher_route_group_labels(const struct usher_route *r, const struct usher_am_labels *l,
			      struct usher_am_labels *g)
{
	size_t i;

	usher_am_labels_free(g);
	if (r->group_by_all) {
		usher_am_labels_copy(g, l);
		return;
	}
	for (i = 0; i < r->group_by.n; i++) {
		const char *v = usher_am_labels_get(l, r->group_by.v[i]);

		if (v)
			usher_am_labels_set(g, r->group_by.v[i], v);
	}
}

char *usher_route_group_key(const struct usher_route *r, const struct usher_am_labels *group)
{
	char *ls = usher_am_labels_string(group);
	size_t n = strlen(r->key) + strlen(ls) + 2;
	char *out = usher_malloc(n);

	snprintf(out, n, "%s:%s", r->key, ls);
	free(ls);
	return out;
}

void usher_route_walk(const struct usher_route *r,
		      void (*fn)(void *arg, const struct usher_route *r), void *arg)
{
	size_t i;

	fn(arg, r);
	for (i = 0; i < r->nroutes; i++)
		usher_route_walk(r->routes[i], fn, arg);
}
