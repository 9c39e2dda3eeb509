/* The registry of log sink types (an explicit, NULL-terminated array) and
 * the parser of `logging.sinks`, which fills each entry from the common
 * keys and its type's option table. */
#include <stddef.h>
#include <string.h>

#include "config/config.h"
#include "logship/sink.h"

const struct usher_log_sink_type *const usher_log_sink_types[] = {
    &usher_log_sink_stdout,        &usher_log_sink_file,     &usher_log_sink_journald,
    &usher_log_sink_elasticsearch, &usher_log_sink_logstash, NULL,
};

const struct usher_log_sink_type *usher_log_sink_type_find(const char *name)
{
	const struct usher_log_sink_type *const *t;

	for (t = usher_log_sink_types; *t; t++)
		if (strcmp((*t)->name, name) == 0)
			return *t;
	return NULL;
}

const struct usher_option usher_log_sink_common_options[] = {
    {"type", USHER_OPT_STR, offsetof(struct usher_log_sink_conf, type_name), NULL,
     USHER_OPT_REQUIRED, "stdout, file, journald, elasticsearch or logstash"},
    {"name", USHER_OPT_STR, offsetof(struct usher_log_sink_conf, name), NULL, 0,
     "the sink label of the usher_log_* metrics and the spool directory's name "
     "(default: the type); unique"},
    USHER_OPT_END,
};

static const char *known_types(struct usher_arena *a)
{
	const struct usher_log_sink_type *const *t;
	const char *s = "";

	for (t = usher_log_sink_types; *t; t++)
		s = usher_arena_printf(a, "%s%s%s", s, *s ? ", " : "", (*t)->name);
	return s;
}

static bool name_valid(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return n > 0 && n < 64;
}

static enum usher_err parse_sink(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				 struct usher_log_sink_conf *sc)
{
	const struct usher_ynode *type = usher_ynode_get(n, "type");
	const struct usher_option *tables[2] = {usher_log_sink_common_options, NULL};
	void *bases[2] = {sc, NULL};
	enum usher_err rc;

	sc->line = n->line;
	sc->col = n->col;
	if (!type || type->kind != USHER_Y_SCALAR)
		return usher_cfg_error(ctx, type ? type : n,
				       type ? "type: expected a string"
					    : "missing required key \"type\" (one of: %s)",
				       known_types(ctx->arena));
	sc->type = usher_log_sink_type_find(type->value);
	if (!sc->type)
		return usher_cfg_error(ctx, type, "unknown log sink type \"%s\" (known: %s)",
				       type->value, known_types(ctx->arena));
	sc->opts = usher_arena_zalloc(ctx->arena, sc->type->opts_size ? sc->type->opts_size : 1);
	tables[1] = sc->type->options;
	bases[1] = sc->opts;
	rc = usher_opts_apply(ctx, tables, bases, sc->type->options ? 2 : 1, n);
	if (rc)
		return rc;
	if (!sc->name)
		sc->name = sc->type->name;
	if (!name_valid(sc->name))
		return usher_cfg_error(
		    ctx, usher_ynode_get(n, "name"),
		    "invalid sink name \"%s\": use up to 63 letters, digits, '_', "
		    "'-' and '.'",
		    sc->name);
	if (sc->type->check && sc->type->check(ctx, sc, n))
		return USHER_ERR_INVALID;
	return USHER_OK;
}

enum usher_err usher_log_sinks_parse(struct usher_cfgctx *ctx, const struct usher_ynode *n,
				     void *field)
{
	struct usher_list *list = field;
	struct usher_log_sink_conf *v;
	enum usher_err rc = USHER_OK;
	size_t i, j, k = 0;

	if (usher_ynode_is_null(n))
		return USHER_OK;
	if (n->kind != USHER_Y_SEQ)
		return usher_cfg_error(ctx, n, "logging.sinks: expected a list, got a %s",
				       usher_ynode_kind_name(n->kind));
	v = usher_arena_zalloc(ctx->arena, (n->n ? n->n : 1) * sizeof(*v));
	for (i = 0; i < n->n; i++) {
		if (n->items[i]->kind != USHER_Y_MAP) {
			rc = usher_cfg_error(ctx, n->items[i],
					     "logging.sinks: expected a mapping, got a %s",
					     usher_ynode_kind_name(n->items[i]->kind));
			continue;
		}
		if (parse_sink(ctx, n->items[i], &v[k])) {
			rc = USHER_ERR_INVALID;
			continue;
		}
		for (j = 0; j < k; j++)
			if (strcmp(v[j].name, v[k].name) == 0)
				break;
		if (j < k) {
			rc = usher_cfg_error(ctx, n->items[i],
					     "duplicate sink name \"%s\" (first at line %d): give "
					     "each sink of one type its own name",
					     v[k].name, v[j].line);
			continue;
		}
		k++;
	}
	list->n = k;
	list->v = v;
	return rc;
}
