/* Notification templates: the titles and bodies of Slack messages,
 * PagerDuty events, Opsgenie alerts and e-mails, written in Go's
 * text/template over Alertmanager's template data, with Alertmanager's
 * default templates ({{ template "slack.default.title" . }}, "__subject",
 * "email.default.html"…) and the user's files of `templates:` (globs).
 *
 * A field is parsed when the config loads (a syntax error or an unknown
 * function fails the load) and bound to the template library once the
 * `templates:` files are read (usher_notifytmpl_bind), when each field is
 * also expanded once over sample data so that a reference to a define
 * that does not exist fails the load rather than a page. */
#ifndef USHER_NOTIFY_NOTIFYTMPL_H
#define USHER_NOTIFY_NOTIFYTMPL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "core/buf.h"
#include "core/err.h"
#include "notify/integration.h"

/* The default templates plus the files of `templates:`. */
struct usher_notifytmpl_lib;

/* Reads every file matching globs (relative ones against base_dir, which
 * may be NULL) in glob order, later defines replacing earlier and the
 * defaults. A glob matching nothing is not an error (Alertmanager's
 * behaviour); an unreadable file or a parse error is (USHER_ERR_IO,
 * USHER_ERR_INVALID, with the file's name in err). */
enum usher_err usher_notifytmpl_lib_new(const struct usher_strlist *globs, const char *base_dir,
					struct usher_notifytmpl_lib **out, struct usher_error *err);
void usher_notifytmpl_lib_free(struct usher_notifytmpl_lib *lib);

struct usher_notify_common;

/* One templated field of an integration entry. Checked when the config
 * loads, parsed again at each expansion (a notification is rare next to
 * the cost of a parse), so it holds nothing but config-arena memory and
 * needs no freeing. */
struct usher_notifytmpl {
	const char *key;                         /* the option's key, for messages ("title") */
	const char *text;                        /* the source */
	const struct usher_notify_common *owner; /* whose library it sees */
	int line, col;                           /* where its text is in the config */
};

/* The head every integration's options struct starts with: the keys all
 * entries share and the templated fields found by check. */
#define USHER_NOTIFY_FIELDS_MAX 64
struct usher_notify_common {
	bool send_resolved;
	int64_t timeout_ms;   /* one attempt */
	int64_t retry_for_ms; /* how long the queue retries */
	struct usher_notifytmpl *fields[USHER_NOTIFY_FIELDS_MAX];
	int nfields;
	const struct usher_notifytmpl_lib *lib; /* set by bind; NULL: the defaults */
	const struct usher_notifytmpl *failed;  /* the field the last bind failed on */
};

/* Parses text as a field of c (against the default templates), filling
 * *out (allocated in ctx->arena). A parse error becomes a diagnostic at
 * node's value for key when node is a map holding key, else at node
 * (file:line:col), and USHER_ERR_INVALID. text NULL or "" gives an empty
 * field. */
enum usher_err usher_notifytmpl_field(struct usher_cfgctx *ctx, struct usher_notify_common *c,
				      const struct usher_ynode *node, const char *key,
				      const char *text, struct usher_notifytmpl **out);
/* Nothing to free any more (fields live in the config arena); kept so
 * integration types can name it as their .free. */
void usher_notifytmpl_common_free(struct usher_notify_common *c);

/* Binds the entry ic to lib (NULL: the defaults only), which must then
 * outlive ic's use: each field is parsed against lib and expanded once
 * over sample data, so a {{template}} of a define that exists nowhere
 * fails here. On failure err names the field and ic keeps its previous
 * library. Call after the config loaded, before deliveries use ic. */
enum usher_err usher_notifytmpl_bind(const struct usher_integration_conf *ic,
				     const struct usher_notifytmpl_lib *lib,
				     struct usher_error *err);

/* Expands field f over data into out (cleared first). A NULL or empty f
 * gives "". */
enum usher_err usher_notifytmpl_expand(const struct usher_notifytmpl *f, const json_t *data,
				       struct usher_buf *out, struct usher_error *err);
/* The same into a malloc'd string (on error: "", and err set); never NULL. */
char *usher_notifytmpl_str(const struct usher_notifytmpl *f, const json_t *data,
			   struct usher_error *err);

/* The default templates' source (for docs and tests). */
extern const char usher_notifytmpl_defaults[];

/* A notification of two alerts (one firing, one resolved) used to try
 * templates at load (and by tests). New reference. */
json_t *usher_notifytmpl_sample_data(void);

#endif
