/* Option tables: each config section declares its keys once (name, type,
 * default, offsetof, help), and usher_opts_apply fills the struct from a YAML
 * map, rejecting unknown keys and wrong types with file:line:col. The same
 * tables drive `usher check-config` and the reference docs (fluent-bit's
 * config_map, nginx's ngx_command_t). */
#ifndef USHER_CONFIG_OPTIONS_H
#define USHER_CONFIG_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "config/diag.h"
#include "config/yaml.h"

struct usher_strlist {
	size_t n;
	const char **v;
};

struct usher_kv {
	const char *key;
	const char *value;
};

/* A string map in file order (labels, headers). */
struct usher_strmap {
	size_t n;
	struct usher_kv *v;
};

/* A list of structs, each sub_size bytes (a list of sections). */
struct usher_list {
	size_t n;
	void *v;
};

/* What a config load is working on: where errors go and where values live. */
struct usher_cfgctx {
	const char *file;
	struct usher_arena *arena; /* owns every value filled in */
	struct usher_diags *diags;
	void *root; /* the struct usher_config being filled (for cross-section defaults) */
};

typedef enum usher_err usher_opt_parse_fn(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					  void *field);

enum usher_opt_type {
	USHER_OPT_STR,      /* const char * */
	USHER_OPT_SECRET,   /* const char *, with ${env:NAME} / ${file:/path} resolved; never echoed */
	USHER_OPT_BOOL,     /* bool */
	USHER_OPT_INT,      /* int64_t */
	USHER_OPT_DURATION, /* int64_t milliseconds, Prometheus syntax */
	USHER_OPT_SIZE,     /* uint64_t bytes ("10MiB") */
	USHER_OPT_STRLIST,  /* struct usher_strlist; a scalar is a list of one */
	USHER_OPT_STRMAP,   /* struct usher_strmap (scalar values) */
	USHER_OPT_SECRETMAP,/* struct usher_strmap whose values are secrets */
	USHER_OPT_SECTION,  /* an embedded struct filled by .sub */
	USHER_OPT_LIST,     /* struct usher_list of .sub_size structs filled by .sub */
	USHER_OPT_CUSTOM,   /* .parse fills the field */
};

#define USHER_OPT_REQUIRED 0x1u /* the key must be present */
#define USHER_OPT_POSITIVE 0x2u /* INT, DURATION, SIZE: zero is not allowed */

struct usher_option {
	const char *key;
	enum usher_opt_type type;
	size_t offset;
	const char *def;  /* default, in config syntax; NULL leaves the field zeroed */
	unsigned flags;
	const char *help; /* one line, for check-config and the docs */
	const struct usher_option *sub; /* SECTION, LIST */
	size_t sub_size;                /* LIST */
	usher_opt_parse_fn *parse;      /* CUSTOM */
};

#define USHER_OPT_END {.key = NULL}

/* Fills the structs at bases[i] from map using tables[i] (i < n): each key
 * of map must be in one of the tables. Defaults are applied first for keys
 * that are absent. Problems go to ctx->diags; returns USHER_ERR_INVALID if
 * there was any. A NULL map applies the defaults only. */
enum usher_err usher_opts_apply(struct usher_cfgctx *ctx, const struct usher_option *const *tables,
				void *const *bases, size_t n, const struct usher_ynode *map);
/* The one-table case. */
enum usher_err usher_opts_apply1(struct usher_cfgctx *ctx, const struct usher_option *table,
				 void *base, const struct usher_ynode *map);

/* Adds a diagnostic at node's place. Returns USHER_ERR_INVALID. */
enum usher_err usher_cfg_error(struct usher_cfgctx *ctx, const struct usher_ynode *node,
			       const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Resolves ${env:NAME} and ${file:/path} references in s (a file's content
 * loses one trailing newline). On failure, adds a diagnostic at node that
 * names the reference but never a value. */
enum usher_err usher_cfg_resolve_secret(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					const char *s, const char **out);

/* The value of key in m, or NULL. */
const char *usher_strmap_get(const struct usher_strmap *m, const char *key);

/* Writes a reference of table (key, type, default, help) indented by depth. */
void usher_opts_describe(FILE *out, const struct usher_option *table, int depth);

#endif
