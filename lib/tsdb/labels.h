/* Label sets (sorted name/value pairs) and label matchers (=, !=, =~, !~
 * with fully anchored PCRE2 regexes), shared by the series store and PromQL. */
#ifndef USHER_TSDB_LABELS_H
#define USHER_TSDB_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"

#define USHER_METRIC_NAME_LABEL "__name__"

struct usher_label {
	const char *name;
	const char *value;
};

/* A label set: n pairs sorted by name, names unique, no empty values
 * (Prometheus treats an empty value as an absent label). The pairs and
 * strings are borrowed from whoever built the set (an arena, a series). */
struct usher_labels {
	size_t n;
	const struct usher_label *v;
};

/* Orders label sets as Prometheus' labels.Compare does: pair by pair, name
 * then value, a shorter prefix first. */
int usher_labels_cmp(const struct usher_labels *a, const struct usher_labels *b);
bool usher_labels_equal(const struct usher_labels *a, const struct usher_labels *b);
/* A 64-bit hash of the whole set (FNV-1a over names and values). */
uint64_t usher_labels_hash(const struct usher_labels *l);
/* The value of name, or NULL when the set has no such label. */
const char *usher_labels_get(const struct usher_labels *l, const char *name);

/* Writes l as Prometheus' Labels.String() does: {a="b", c="d"}, values
 * quoted with Go's escapes. */
enum usher_err usher_labels_format(const struct usher_labels *l, struct usher_buf *out);
/* The same into a C string in arena a. */
char *usher_labels_str(struct usher_arena *a, const struct usher_labels *l);

/* Sorts pairs by name in place (an unsorted set built by hand); returns
 * false when a name occurs twice. Pairs with an empty value are dropped. */
bool usher_labels_normalize(struct usher_labels *l, struct usher_label *pairs);
/* Deep copy into arena a. */
void usher_labels_copy(struct usher_arena *a, const struct usher_labels *in,
		       struct usher_labels *out);
/* out = in with name set to value (copied into a); an empty or NULL value
 * removes the label. in's strings are shared, not copied. */
void usher_labels_set(struct usher_arena *a, const struct usher_labels *in, const char *name,
		      const char *value, struct usher_labels *out);
/* out = in keeping only (keep=true) or dropping (keep=false) the names
 * listed; the pair array is allocated in a, strings are shared. */
void usher_labels_filter(struct usher_arena *a, const struct usher_labels *in,
			 const char *const *names, size_t nnames, bool keep,
			 struct usher_labels *out);

/* Whether s is a valid label name ([a-zA-Z_][a-zA-Z0-9_]*). */
bool usher_label_name_ok(const char *s);

enum usher_match_type {
	USHER_MATCH_EQ,  /* = */
	USHER_MATCH_NEQ, /* != */
	USHER_MATCH_RE,  /* =~ */
	USHER_MATCH_NRE, /* !~ */
};

/* One label matcher. A regex is anchored at both ends (Prometheus wraps it
 * in ^(?:…)$), `.` matches newlines, and it runs on the bytes as UTF-8. */
struct usher_matcher {
	enum usher_match_type type;
	const char *name;
	const char *value;
	void *re;           /* pcre2_code for RE and NRE; NULL otherwise */
	bool matches_empty; /* whether a series without the label matches */
};

/* Initialises m; name and value are borrowed and must outlive m. A bad
 * regex is USHER_ERR_INVALID with PCRE2's message in err. On failure m
 * needs no fini. */
enum usher_err usher_matcher_init(struct usher_matcher *m, enum usher_match_type type,
				  const char *name, const char *value, struct usher_error *err);
/* Frees the compiled regex. Accepts a zeroed matcher. */
void usher_matcher_fini(struct usher_matcher *m);
/* Whether value (NULL or "" for an absent label) matches. Thread-safe. */
bool usher_matcher_matches(const struct usher_matcher *m, const char *value);
/* Whether every matcher matches the set. */
bool usher_matchers_match(const struct usher_matcher *m, size_t n, const struct usher_labels *l);
/* "=", "!=", "=~", "!~". */
const char *usher_match_type_str(enum usher_match_type t);

/* A compiled, fully anchored regex for label_replace and friends: the same
 * dialect as matchers. */
struct usher_regex;
enum usher_err usher_regex_compile(const char *pattern, struct usher_regex **out,
				   struct usher_error *err);
void usher_regex_free(struct usher_regex *re);
/* Matches the whole of s; on success expands the Go-style template tmpl
 * ($1, ${1}, $name, ${name}, $$) into out (allocated in a) and returns true. */
bool usher_regex_replace(const struct usher_regex *re, const char *s, const char *tmpl,
			 struct usher_arena *a, const char **out);

#endif
