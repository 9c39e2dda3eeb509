/* Alertmanager's label matchers: `name="value"`, `!=`, `=~`, `!~`, as
 * routes, inhibit rules, silences and amtool write them. Parsing follows
 * Alertmanager's (pkg/labels/parse.go): an optional pair of braces around
 * a comma-separated list, values quoted or bare (amtool's `a=b`), `\"`,
 * `\\` and `\n` escapes; a label name may also be double-quoted (the UTF-8
 * syntax: {"service name"="checkout"}). Regular expressions are fully
 * anchored (^(?:re)$, as Alertmanager compiles them) and run on PCRE2. */
#ifndef USHER_NOTIFY_MATCHERS_H
#define USHER_NOTIFY_MATCHERS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/err.h"
#include "notify/alert.h"

enum usher_am_match_type {
	USHER_AM_MATCH_EQ,  /* = */
	USHER_AM_MATCH_NE,  /* != */
	USHER_AM_MATCH_RE,  /* =~ */
	USHER_AM_MATCH_NRE, /* !~ */
};

struct usher_am_matcher {
	enum usher_am_match_type type;
	char *name;
	char *value;
	void *re; /* pcre2_code for RE and NRE */
};

/* A list of matchers; all must match. Owns its matchers: on the heap, or,
 * when arena is set before the first add, in that arena (a config's
 * matchers live and die with the config; usher_am_matchers_free is then a
 * no-op and the regexes are not JIT-compiled). */
struct usher_am_matchers {
	size_t n;
	struct usher_am_matcher *v;
	struct usher_arena *arena;
};

/* "=", "!=", "=~", "!~". */
const char *usher_am_match_type_str(enum usher_am_match_type t);

/* Appends one matcher (name and value copied; a regex compiled). Returns
 * USHER_ERR_INVALID with err naming the problem for a bad regex. */
enum usher_err usher_am_matchers_add(struct usher_am_matchers *ms, enum usher_am_match_type t,
				     const char *name, const char *value, struct usher_error *err);

/* Parses s, one or more matchers, appending them to ms (Alertmanager's
 * labels.ParseMatchers). On failure ms keeps what it had before the call
 * and err says what is wrong and where. */
enum usher_err usher_am_matchers_parse(struct usher_am_matchers *ms, const char *s,
				       struct usher_error *err);

/* Whether m matches value (NULL = the label is absent = ""). */
bool usher_am_matcher_matches(const struct usher_am_matcher *m, const char *value);
/* Whether every matcher matches the label set (an empty list matches). */
bool usher_am_matchers_match(const struct usher_am_matchers *ms, const struct usher_am_labels *l);

/* Sorts as Alertmanager's labels.Matchers: name, value, type. */
void usher_am_matchers_sort(struct usher_am_matchers *ms);
/* Appends Alertmanager's Matcher.String() (name, operator, Go-quoted
 * value) to out; returns the new string (see usher_go_quote_append). */
char *usher_am_matcher_string_append(char *out, const struct usher_am_matcher *m);
/* {m1,m2,…}: Matchers.String(), the form in route keys. malloc'd. */
char *usher_am_matchers_string(const struct usher_am_matchers *ms);
/* A heap copy of src (dst is overwritten). */
void usher_am_matchers_copy(struct usher_am_matchers *dst, const struct usher_am_matchers *src);
void usher_am_matchers_free(struct usher_am_matchers *ms);

#endif
