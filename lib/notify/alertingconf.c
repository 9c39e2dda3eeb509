/* The `alerting:` section: its option table, receivers through the
 * integration types, and the checks across route, receivers and time
 * intervals (every name used is defined). */
#include "notify/alertingconf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config/config.h"
#include "core/timeutil.h"

static enum usher_err parse_route(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				  void *field)
{
	return usher_route_parse(ctx, node, NULL, "0", field);
}

static enum usher_err parse_inhibit(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				    void *field)
{
	struct usher_alerting_conf *c =
	    (void *)((char *)field - offsetof(struct usher_alerting_conf, inhibit_rules));

	return usher_inhibit_rules_parse(ctx, node, &c->inhibit_rules, &c->ninhibit_rules);
}

static enum usher_err add_intervals(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				    struct usher_alerting_conf *c)
{
	struct usher_time_interval *v = NULL, *all;
	enum usher_err rc;
	size_t n = 0, i, j;

	if (usher_ynode_is_null(node))
		return USHER_OK;
	rc = usher_time_intervals_parse(ctx, node, &v, &n);
	if (rc)
		return rc;
	all = usher_arena_zalloc(ctx->arena, (c->ntime_intervals + n + 1) * sizeof(*all));
	if (c->ntime_intervals)
		memcpy(all, c->time_intervals, c->ntime_intervals * sizeof(*all));
	for (i = 0; i < n; i++) {
		for (j = 0; j < c->ntime_intervals; j++)
			if (strcmp(c->time_intervals[j].name, v[i].name) == 0)
				rc = usher_cfg_error(
				    ctx, node, "time interval \"%s\" defined twice", v[i].name);
		all[c->ntime_intervals + i] = v[i];
	}
	c->time_intervals = all;
	c->ntime_intervals += n;
	return rc;
}

static enum usher_err parse_intervals(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				      void *field)
{
	return add_intervals(
	    ctx, node,
	    (void *)((char *)field - offsetof(struct usher_alerting_conf, time_intervals)));
}

/* mute_time_intervals: the same list under its pre-0.24 name. Its field is
 * a dummy (ntime_intervals' neighbour) so the table can point at it. */
static enum usher_err parse_mute_intervals(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					   void *field)
{
	return add_intervals(
	    ctx, node,
	    (void *)((char *)field - offsetof(struct usher_alerting_conf, ntime_intervals)));
}

static const char *type_names(struct usher_arena *a)
{
	const struct usher_integration_type *const *t;
	const char *s = "";

	for (t = usher_integration_types; *t; t++)
		s = usher_arena_printf(a, "%s%s%s_configs", s, *s ? ", " : "", (*t)->name);
	return s;
}

static enum usher_err parse_receiver(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				     struct usher_receiver_conf *r)
{
	enum usher_err rc = USHER_OK;
	const struct usher_ynode *name;
	size_t i, j, total = 0;

	r->line = node->line;
	r->col = node->col;
	if (node->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, node,
				       "a receiver must be a map (name, webhook_configs, "
				       "slack_configs, ...)");
	name = usher_ynode_get(node, "name");
	if (!name || name->kind != USHER_Y_SCALAR || !*name->value)
		return usher_cfg_error(ctx, node, "a receiver needs a name");
	r->name = name->value;
	for (i = 0; i < node->n; i++) {
		const struct usher_ynode *v = node->pairs[i].val;

		if (v->kind == USHER_Y_SEQ)
			total += v->n;
	}
	r->integrations = usher_arena_zalloc(ctx->arena, (total + 1) * sizeof(*r->integrations));
	for (i = 0; i < node->n; i++) {
		const char *k = node->pairs[i].key->value, *suffix;
		const struct usher_ynode *v = node->pairs[i].val;
		const struct usher_integration_type *t = NULL;
		char tname[64];
		size_t kl = strlen(k);

		if (strcmp(k, "name") == 0)
			continue;
		suffix = kl > 8 ? k + kl - 8 : NULL;
		if (suffix && strcmp(suffix, "_configs") == 0 && kl - 8 < sizeof(tname)) {
			memcpy(tname, k, kl - 8);
			tname[kl - 8] = '\0';
			t = usher_integration_type_find(tname);
		}
		if (!t) {
			rc = usher_cfg_error(ctx, node->pairs[i].key,
					     "unknown receiver key \"%s\" (name, %s)", k,
					     type_names(ctx->arena));
			continue;
		}
		if (usher_ynode_is_null(v))
			continue;
		if (v->kind != USHER_Y_SEQ) {
			rc = usher_cfg_error(ctx, v, "%s must be a list", k);
			continue;
		}
		for (j = 0; j < v->n; j++) {
			struct usher_integration_conf *ic = &r->integrations[r->nintegrations];

			ic->type = t;
			ic->index = (int)j;
			ic->line = v->items[j]->line;
			ic->col = v->items[j]->col;
			ic->opts = usher_arena_zalloc(ctx->arena, t->opts_size ? t->opts_size : 1);
			if (v->items[j]->kind != USHER_Y_MAP) {
				rc = usher_cfg_error(ctx, v->items[j],
						     "an entry of %s must be a map", k);
				continue;
			}
			if (usher_opts_apply1(ctx, t->options, ic->opts, v->items[j]) ||
			    (t->check && t->check(ctx, ic->opts, v->items[j]))) {
				rc = USHER_ERR_INVALID;
				continue;
			}
			r->nintegrations++;
		}
	}
	return rc;
}

static enum usher_err parse_receivers(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				      void *field)
{
	struct usher_alerting_conf *c =
	    (void *)((char *)field - offsetof(struct usher_alerting_conf, receivers));
	enum usher_err rc = USHER_OK;
	size_t i, j;

	if (usher_ynode_is_null(node))
		return USHER_OK;
	if (node->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, node, "receivers must be a list");
	c->receivers = usher_arena_zalloc(ctx->arena, (node->n + 1) * sizeof(*c->receivers));
	for (i = 0; i < node->n; i++) {
		struct usher_receiver_conf *r = &c->receivers[c->nreceivers];

		if (parse_receiver(ctx, node->items[i], r)) {
			rc = USHER_ERR_INVALID;
			if (!r->name)
				continue;
		}
		for (j = 0; j < c->nreceivers; j++)
			if (strcmp(c->receivers[j].name, r->name) == 0)
				rc = usher_cfg_error(ctx, node->items[i],
						     "receiver \"%s\" defined twice", r->name);
		c->nreceivers++;
	}
	return rc;
}

const struct usher_option usher_alerting_options[] = {
    {"route", USHER_OPT_CUSTOM, offsetof(struct usher_alerting_conf, route), NULL,
     USHER_OPT_REQUIRED, "the routing tree (Alertmanager's route)", NULL, 0, parse_route},
    {"receivers", USHER_OPT_CUSTOM, offsetof(struct usher_alerting_conf, receivers), NULL, 0,
     "named receivers, each with <type>_configs lists", NULL, 0, parse_receivers},
    {"inhibit_rules", USHER_OPT_CUSTOM, offsetof(struct usher_alerting_conf, inhibit_rules), NULL,
     0, "source_matchers mute target_matchers with the same equal labels", NULL, 0, parse_inhibit},
    {"time_intervals", USHER_OPT_CUSTOM, offsetof(struct usher_alerting_conf, time_intervals), NULL,
     0, "named time intervals for mute_time_intervals / active_time_intervals", NULL, 0,
     parse_intervals},
    {"mute_time_intervals", USHER_OPT_CUSTOM, offsetof(struct usher_alerting_conf, ntime_intervals),
     NULL, 0, "the older name of time_intervals (both may be used)", NULL, 0, parse_mute_intervals},
    {"templates", USHER_OPT_STRLIST, offsetof(struct usher_alerting_conf, templates), NULL, 0,
     "template files (globs) for the receivers' texts"},
    {"resolve_timeout", USHER_OPT_DURATION,
     offsetof(struct usher_alerting_conf, resolve_timeout_ms), "5m", USHER_OPT_POSITIVE,
     "an alert posted without endsAt resolves after this (global.resolve_timeout)"},
    {"external_url", USHER_OPT_STR, offsetof(struct usher_alerting_conf, external_url), NULL, 0,
     "externalURL in notifications (default: server.external_url, else http://LISTEN)"},
    {"send_resolved_silenced", USHER_OPT_BOOL,
     offsetof(struct usher_alerting_conf, send_resolved_silenced), "false", 0,
     "send the resolved notice of an alert silenced after it was notified firing "
     "(Alertmanager drops it; its #226)"},
    {"resolve_immediately", USHER_OPT_BOOL,
     offsetof(struct usher_alerting_conf, resolve_immediately), "false", 0,
     "flush a group as soon as one of its alerts resolves, without waiting for "
     "group_interval (Alertmanager's #1510)"},
    USHER_OPT_END,
};

static void check_route(struct usher_cfgctx *ctx, const struct usher_alerting_conf *c,
			const struct usher_route *r, enum usher_err *rc)
{
	size_t i;

	if (r->receiver && !usher_alerting_receiver(c, r->receiver)) {
		*rc = USHER_ERR_INVALID;
		usher_diags_add(ctx->diags, ctx->file, r->line, r->col,
				"undefined receiver \"%s\" used in route", r->receiver);
	}
	for (i = 0; i < r->mute_time_intervals.n + r->active_time_intervals.n; i++) {
		const char *n = i < r->mute_time_intervals.n
				    ? r->mute_time_intervals.v[i]
				    : r->active_time_intervals.v[i - r->mute_time_intervals.n];

		if (!usher_alerting_time_interval(c, n)) {
			*rc = USHER_ERR_INVALID;
			usher_diags_add(ctx->diags, ctx->file, r->line, r->col,
					"undefined time interval \"%s\" used in route", n);
		}
	}
	for (i = 0; i < r->nroutes; i++)
		check_route(ctx, c, r->routes[i], rc);
}

/* Reads the files of `templates:` (globs relative to the config file's
 * directory, like rule_files) and binds every integration entry to them:
 * their defines replace the defaults, and each field is expanded once over
 * sample data, so a {{ template "missing" . }} fails the load at the
 * field's file:line:col. */
static enum usher_err load_templates(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				     struct usher_alerting_conf *c)
{
	struct usher_error err = {{0}};
	enum usher_err rc = USHER_OK;
	char dir[4096];
	size_t i, j;

	dir[0] = '\0';
	if (ctx->root)
		usher_config_dir(ctx->root, dir, sizeof(dir));
	if (c->templates.n &&
	    usher_notifytmpl_lib_new(&c->templates, dir, &c->tmpl_lib, &err) != USHER_OK) {
		const struct usher_ynode *at = usher_ynode_get(node, "templates");

		return usher_cfg_error(ctx, at ? at : node, "%s", err.msg);
	}
	for (i = 0; i < c->nreceivers; i++)
		for (j = 0; j < c->receivers[i].nintegrations; j++) {
			const struct usher_integration_conf *ic = &c->receivers[i].integrations[j];
			const struct usher_notify_common *nc = ic->opts;

			usher_error_clear(&err);
			if (usher_notifytmpl_bind(ic, c->tmpl_lib, &err) == USHER_OK)
				continue;
			rc = USHER_ERR_INVALID;
			usher_diags_add(ctx->diags, ctx->file,
					nc->failed && nc->failed->line ? nc->failed->line
								       : ic->line,
					nc->failed && nc->failed->line ? nc->failed->col : ic->col,
					"receiver \"%s\": %s", c->receivers[i].name, err.msg);
		}
	return rc;
}

void usher_alerting_conf_release(struct usher_alerting_conf *c)
{
	if (!c)
		return;
	usher_notifytmpl_lib_free(c->tmpl_lib);
	c->tmpl_lib = NULL;
}

enum usher_err usher_alerting_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				    void *field)
{
	struct usher_alerting_conf **out = field, *c;
	enum usher_err rc;

	*out = NULL;
	if (usher_ynode_is_null(node))
		return USHER_OK;
	if (node->kind != USHER_Y_MAP)
		return usher_cfg_error(ctx, node,
				       "alerting must be a map (route, receivers, "
				       "inhibit_rules, time_intervals, templates)");
	c = usher_arena_zalloc(ctx->arena, sizeof(*c));
	rc = usher_opts_apply1(ctx, usher_alerting_options, c, node);
	if (c->route)
		check_route(ctx, c, c->route, &rc);
	*out = c;
	if (!rc)
		rc = load_templates(ctx, node, c);
	return rc;
}

const struct usher_receiver_conf *usher_alerting_receiver(const struct usher_alerting_conf *c,
							  const char *name)
{
	size_t i;

	for (i = 0; c && i < c->nreceivers; i++)
		if (strcmp(c->receivers[i].name, name) == 0)
			return &c->receivers[i];
	return NULL;
}

const struct usher_time_interval *usher_alerting_time_interval(const struct usher_alerting_conf *c,
							       const char *name)
{
	size_t i;

	for (i = 0; c && i < c->ntime_intervals; i++)
		if (strcmp(c->time_intervals[i].name, name) == 0)
			return &c->time_intervals[i];
	return NULL;
}

const struct usher_integration_conf *usher_alerting_integration(const struct usher_alerting_conf *c,
								const char *receiver,
								const char *integration, int index)
{
	const struct usher_receiver_conf *r = usher_alerting_receiver(c, receiver);
	size_t i;

	for (i = 0; r && i < r->nintegrations; i++)
		if (strcmp(r->integrations[i].type->name, integration) == 0 &&
		    r->integrations[i].index == index)
			return &r->integrations[i];
	return NULL;
}

static json_t *duration_json(int64_t ms)
{
	char b[64];

	usher_duration_format(ms, b, sizeof(b));
	return json_string(b);
}

static json_t *strlist_json(const struct usher_strlist *l)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < l->n; i++)
		json_array_append_new(a, json_string(l->v[i]));
	return a;
}

static json_t *matchers_json(const struct usher_am_matchers *ms)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < ms->n; i++) {
		char *m = usher_am_matcher_string_append(NULL, &ms->v[i]);

		json_array_append_new(a, json_string(m));
		free(m);
	}
	return a;
}

static json_t *route_json(const struct usher_route *r)
{
	json_t *o = json_object();
	size_t i;

	json_object_set_new(o, "receiver", json_string(r->receiver));
	if (r->group_by_all)
		json_object_set_new(o, "group_by", json_pack("[s]", "..."));
	else
		json_object_set_new(o, "group_by", strlist_json(&r->group_by));
	if (r->matchers.n)
		json_object_set_new(o, "matchers", matchers_json(&r->matchers));
	if (r->parent)
		json_object_set_new(o, "continue", json_boolean(r->cont));
	json_object_set_new(o, "group_wait", duration_json(r->group_wait_ms));
	json_object_set_new(o, "group_interval", duration_json(r->group_interval_ms));
	json_object_set_new(o, "repeat_interval", duration_json(r->repeat_interval_ms));
	if (r->mute_time_intervals.n)
		json_object_set_new(o, "mute_time_intervals",
				    strlist_json(&r->mute_time_intervals));
	if (r->active_time_intervals.n)
		json_object_set_new(o, "active_time_intervals",
				    strlist_json(&r->active_time_intervals));
	if (r->nroutes) {
		json_t *a = json_array();

		for (i = 0; i < r->nroutes; i++)
			json_array_append_new(a, route_json(r->routes[i]));
		json_object_set_new(o, "routes", a);
	}
	return o;
}

char *usher_alerting_conf_text(const struct usher_alerting_conf *c)
{
	json_t *o = json_object(), *recv = json_array(), *inh = json_array(), *ti = json_array();
	char *out;
	size_t i;

	if (!c || !c->route) {
		json_object_set_new(o, "route", json_pack("{s:s}", "receiver", "none"));
		json_array_append_new(recv, json_pack("{s:s}", "name", "none"));
	} else {
		json_object_set_new(o, "route", route_json(c->route));
		for (i = 0; i < c->nreceivers; i++)
			json_array_append_new(recv,
					      json_pack("{s:s}", "name", c->receivers[i].name));
		for (i = 0; i < c->ninhibit_rules; i++)
			json_array_append_new(
			    inh,
			    json_pack("{s:o, s:o, s:o}", "source_matchers",
				      matchers_json(&c->inhibit_rules[i].source), "target_matchers",
				      matchers_json(&c->inhibit_rules[i].target), "equal",
				      strlist_json(&c->inhibit_rules[i].equal)));
		for (i = 0; i < c->ntime_intervals; i++)
			json_array_append_new(
			    ti, json_pack("{s:s}", "name", c->time_intervals[i].name));
	}
	json_object_set_new(o, "receivers", recv);
	json_object_set_new(o, "inhibit_rules", inh);
	json_object_set_new(o, "time_intervals", ti);
	out = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return out;
}
