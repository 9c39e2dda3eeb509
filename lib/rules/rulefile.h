/* Prometheus rule files: loading (libyaml through config/yaml.h) and the
 * checks `promtool check rules` makes, each reported as file:line:col, with
 * every expression parsed and every alert template compiled at load. */
#ifndef USHER_RULES_RULEFILE_H
#define USHER_RULES_RULEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/diag.h"
#include "core/arena.h"
#include "core/err.h"
#include "promql/ast.h"
#include "rules/template.h"
#include "tsdb/labels.h"

enum usher_rule_type {
	USHER_RULE_RECORDING,
	USHER_RULE_ALERTING,
};

/* A label or annotation of a rule. */
struct usher_rule_pair {
	const char *name;
	const char *value;
	/* alerting rules: the value parsed as a template; NULL for recording
	 * rules, whose labels are used as written */
	struct usher_template *tmpl;
	bool from_group; /* inherited from the group's labels */
	int line, col;   /* the value's position */
};

struct usher_rule {
	enum usher_rule_type type;
	const char *name; /* the record or alert name */
	const char *expr_text;
	struct usher_promql_expr *expr;
	int64_t for_ms;             /* alerting: how long a condition must hold */
	int64_t keep_firing_for_ms; /* alerting: how long to keep firing after it stops */
	/* labels sorted by name: the group's labels, then the rule's own,
	 * which win on a clash */
	struct usher_rule_pair *labels;
	size_t nlabels;
	struct usher_rule_pair *annotations; /* sorted by name */
	size_t nannotations;
	int line, col; /* the rule's mapping */
};

struct usher_rule_group {
	const char *name;
	const char *file;
	int64_t interval_ms;        /* 0: the global evaluation_interval */
	int64_t query_offset_ms;    /* evaluate at t - query_offset */
	bool has_query_offset;      /* set in the file (else the global default) */
	int64_t limit;              /* series / alerts a rule may produce; <= 0: no limit */
	struct usher_label *labels; /* the group's labels, sorted */
	size_t nlabels;
	struct usher_rule *rules;
	size_t nrules;
	int line, col;
};

/* A loaded rule file. Everything, including the parsed expressions and
 * templates, belongs to it and is immutable once loaded: groups built from
 * it may evaluate from any thread. */
struct usher_rulefile {
	const char *path;
	struct usher_rule_group *groups;
	size_t ngroups;
	struct usher_arena *arena;
};

/* Loads every file matching globs (a config's rule_files: relative
 * patterns are taken from base_dir), each file once, in glob order. A glob
 * matching nothing is fine, as in Prometheus, unless it has no wildcard (a
 * missing file is a mistake). Problems go to d (cfg_path names the config
 * for those that are not in a rule file). On success *out is an array of
 * *n files (free each with usher_rulefile_free, then the array with
 * free); on failure (USHER_ERR_INVALID) nothing is returned. */
enum usher_err usher_rulefiles_load_globs(const char *cfg_path, const char *base_dir,
					  const char *const *globs, size_t nglobs,
					  struct usher_rulefile ***out, size_t *n,
					  struct usher_diags *d);

/* Reads and checks the rule file at path. Every problem goes into d as
 * "path:line:col: message" (wording as promtool's where promtool has one:
 * `group "g", rule 2, "HighLatency": could not parse expression: 1:8:
 * parse error: …`). Returns USHER_OK and a new file in *out, or
 * USHER_ERR_IO (unreadable, too large: 64 MiB) / USHER_ERR_INVALID with
 * *out NULL: a file with any error is rejected whole. */
enum usher_err usher_rulefile_load(const char *path, struct usher_rulefile **out,
				   struct usher_diags *d);

/* Same, from len bytes of text; path names it in messages. */
enum usher_err usher_rulefile_parse(const char *path, const char *text, size_t len,
				    struct usher_rulefile **out, struct usher_diags *d);

/* Frees the file, its expressions and templates. Accepts NULL. */
void usher_rulefile_free(struct usher_rulefile *f);

/* The number of rules in all groups. */
size_t usher_rulefile_count_rules(const struct usher_rulefile *f);

/* A rule that another rule of the file duplicates: same record or alert
 * name and the same own labels (promtool's duplicate-rules lint). */
struct usher_rule_dup {
	const char *name;
	const struct usher_rule *rule;
};

/* The duplicated rules, one entry per distinct (name, labels), in arena a.
 * Returns how many. */
size_t usher_rulefile_duplicates(const struct usher_rulefile *f, struct usher_arena *a,
				 struct usher_rule_dup **out);

/* Whether s is a valid metric name as Prometheus 2 checks recording rule
 * names ([a-zA-Z_:][a-zA-Z0-9_:]*). */
bool usher_metric_name_ok(const char *s);

#endif
