/* Alert templates: the subset of Go's text/template that Prometheus rule
 * authors use in labels and annotations, with Prometheus' functions
 * (humanize*, printf, reReplaceAll, query, …). Parsed once when the rules
 * load, so a broken template fails `usher check rules`; expanded per alert. */
#ifndef USHER_RULES_TEMPLATE_H
#define USHER_RULES_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "tsdb/labels.h"

/* One sample of a `query` result, as the template sees it. */
struct usher_template_sample {
	struct usher_labels labels;
	double value;
};

/* Runs query at the expansion's time; the result (and its labels) go in
 * arena a. Errors are reported as the template's execution error. */
typedef enum usher_err usher_template_query_fn(void *ctx, const char *query, int64_t t_ms,
					       struct usher_arena *a,
					       struct usher_template_sample **out, size_t *n,
					       struct usher_error *err);

/* What an alert template sees: `.Labels` / `$labels`, `.ExternalLabels` /
 * `$externalLabels`, `.ExternalURL` / `$externalURL`, `.Value` / `$value`.
 * Everything is borrowed for the duration of one expansion. */
struct usher_template_data {
	struct usher_labels labels;
	struct usher_labels external_labels;
	const char *external_url; /* may be NULL: "" */
	double value;
	int64_t time_ms;                /* the evaluation time, for `query` */
	usher_template_query_fn *query; /* NULL: `query` fails when called */
	void *query_ctx;
};

struct usher_template;

/* Parses text as Go's text/template does (delimiters {{ }}, trim markers,
 * comments, pipelines, variables, if/else if/else/with/range/break/
 * continue/define/template/block/end), checking function and variable
 * names, so the error surfaces at load time. name is the template's name in
 * messages ("__alert_<alertname>" for rules). Errors (USHER_ERR_INVALID) are
 * worded as Go's: "template: NAME:LINE: function \"x\" not defined". On
 * success *out is a new template (free with usher_template_free). */
enum usher_err usher_template_parse(const char *name, const char *text, struct usher_template **out,
				    struct usher_error *err);
/* Accepts NULL. */
void usher_template_free(struct usher_template *t);

/* Expands t with d, appending to out. On an execution error (a function
 * failing, incompatible types for a comparison, …) returns
 * USHER_ERR_INVALID with Go's wording in err ("error executing template
 * NAME: template: NAME:1:115: executing \"NAME\" at <gt $value 80>: error
 * calling gt: incompatible types for comparison"; positions count
 * Prometheus' variable definitions in front of the text, as Prometheus'
 * messages do); out then holds what was written before the error.
 * USHER_ERR_TOOBIG when out's maximum is reached. A parsed template is
 * immutable: several threads may expand it at once. */
enum usher_err usher_template_expand(const struct usher_template *t,
				     const struct usher_template_data *d, struct usher_buf *out,
				     struct usher_error *err);

/* Expands as Prometheus' rule evaluation does: on failure the result is
 * "<error expanding template: MESSAGE>". The string is allocated in a. */
const char *usher_template_expand_alert(const struct usher_template *t,
					const struct usher_template_data *d, struct usher_arena *a);

/* Whether text contains no action, so expanding it gives the text itself
 * (rules skip the expansion). */
bool usher_template_is_literal(const struct usher_template *t);

/* Notification templates (Alertmanager's dialect; lib/notify/notifytmpl).
 * Parsed like usher_template_parse, but with Alertmanager's functions
 * (toUpper, toLower, title, trimSpace, join, match, safeHtml, safeUrl,
 * urlUnescape, reReplaceAll, stringSlice, humanizeDuration and Go's
 * builtins; Prometheus' query functions are refused), only `$` predefined,
 * and `{{template "x" .}}` finding x among the template's own defines and
 * then lib's (borrowed: it must outlive the template; NULL for none). */
enum usher_err usher_template_parse_json(const char *name, const char *text,
					 const struct usher_template *lib,
					 struct usher_template **out, struct usher_error *err);

/* Expands a notification template over dot, a JSON object holding
 * Alertmanager's template data as its webhook sends it ("status",
 * "receiver", "groupLabels", "alerts"…). Go's field names reach the JSON
 * keys (.CommonLabels → "commonLabels", .StartsAt → "startsAt"); label
 * maps read a missing key as "" and have SortedPairs, Names, Values and
 * Remove; alert lists have Firing and Resolved. define, when not NULL,
 * expands that define (of t or its lib) instead of t's text. Errors as
 * usher_template_expand; USHER_ERR_NOTFOUND for an unknown define. */
struct json_t;
enum usher_err usher_template_expand_json(const struct usher_template *t, const char *define,
					  const struct json_t *dot, struct usher_buf *out,
					  struct usher_error *err);

/* Whether t or its lib defines name. */
bool usher_template_has_define(const struct usher_template *t, const char *name);

/* Go's %v of a float64 (strconv 'g' shortest, exponent from 1e+06 and
 * below 1e-04: "1e+06", "123456", "1e-05", "NaN", "+Inf"). len >= 32. */
void usher_template_format_float(double v, char *out, size_t len);

#endif
