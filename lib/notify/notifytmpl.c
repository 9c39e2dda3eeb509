/* Notification templates: Alertmanager-compatible default templates (same
 * define names, same data model), the `templates:` files, and the fields of
 * integration entries parsed at load and expanded per notification over
 * the webhook-v4 JSON. */
#include "notify/notifytmpl.h"

#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "rules/template.h"

#define FIELD_MAX (1024 * 1024)
#define FILE_MAX  (4 * 1024 * 1024)

/* Written for usher after the define names and output of Alertmanager's
 * default.tmpl, so configs that call them keep working. */
const char usher_notifytmpl_defaults[] =
    "{{ define \"__alertmanager\" }}usher{{ end }}"
    "{{ define \"__alertmanagerURL\" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | "
    "urlquery }}{{ end }}"
    "{{ define \"__subject\" }}[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ "
    ".Alerts.Firing | len }}{{ end }}] "
    "{{ .GroupLabels.SortedPairs.Values | join \" \" }} "
    "{{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove "
    ".GroupLabels.Names }}{{ .Values | join \" \" }}{{ end }}){{ end }}{{ end }}"
    "{{ define \"__description\" }}{{ end }}"
    "{{ define \"__text_alert_list\" }}{{ range . }}Labels:\n"
    "{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}\n{{ end }}Annotations:\n"
    "{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}\n{{ end }}Source: {{ "
    ".GeneratorURL }}\n{{ end }}{{ end }}"
    "{{ define \"__text_alert_list_markdown\" }}{{ range . }}\nLabels:\n"
    "{{ range .Labels.SortedPairs }}  - {{ .Name }} = {{ .Value }}\n{{ end }}\nAnnotations:\n"
    "{{ range .Annotations.SortedPairs }}  - {{ .Name }} = {{ .Value }}\n{{ end }}\nSource: {{ "
    ".GeneratorURL }}\n{{ end }}{{ end }}"
    /* Slack */
    "{{ define \"slack.default.title\" }}{{ template \"__subject\" . }}{{ end }}"
    "{{ define \"slack.default.username\" }}{{ template \"__alertmanager\" . }}{{ end }}"
    "{{ define \"slack.default.fallback\" }}{{ template \"slack.default.title\" . }} | {{ template "
    "\"slack.default.titlelink\" . }}{{ end }}"
    "{{ define \"slack.default.callbackid\" }}{{ end }}"
    "{{ define \"slack.default.pretext\" }}{{ end }}"
    "{{ define \"slack.default.titlelink\" }}{{ template \"__alertmanagerURL\" . }}{{ end }}"
    "{{ define \"slack.default.iconemoji\" }}{{ end }}"
    "{{ define \"slack.default.iconurl\" }}{{ end }}"
    "{{ define \"slack.default.text\" }}{{ end }}"
    "{{ define \"slack.default.footer\" }}{{ end }}"
    /* PagerDuty */
    "{{ define \"pagerduty.default.description\" }}{{ template \"__subject\" . }}{{ end }}"
    "{{ define \"pagerduty.default.client\" }}{{ template \"__alertmanager\" . }}{{ end }}"
    "{{ define \"pagerduty.default.clientURL\" }}{{ template \"__alertmanagerURL\" . }}{{ end }}"
    "{{ define \"pagerduty.default.instances\" }}{{ template \"__text_alert_list\" . }}{{ end }}"
    /* Opsgenie */
    "{{ define \"opsgenie.default.message\" }}{{ template \"__subject\" . }}{{ end }}"
    "{{ define \"opsgenie.default.description\" }}{{ .CommonAnnotations.SortedPairs.Values | join "
    "\" \" }}\n"
    "{{ if gt (len .Alerts.Firing) 0 -}}\nAlerts Firing:\n{{ template \"__text_alert_list\" "
    ".Alerts.Firing }}\n{{- end }}\n"
    "{{ if gt (len .Alerts.Resolved) 0 -}}\nAlerts Resolved:\n{{ template \"__text_alert_list\" "
    ".Alerts.Resolved }}\n{{- end }}\n{{- end }}"
    "{{ define \"opsgenie.default.source\" }}{{ template \"__alertmanagerURL\" . }}{{ end }}"
    /* webhook-style generic text, e-mail */
    "{{ define \"email.default.subject\" }}{{ template \"__subject\" . }}{{ end }}"
    "{{ define \"email.default.text\" }}{{ template \"__subject\" . }}\n\n"
    "View in {{ template \"__alertmanager\" . }}: {{ template \"__alertmanagerURL\" . }}\n"
    "{{ if gt (len .Alerts.Firing) 0 }}\n[{{ .Alerts.Firing | len }}] Firing\n{{ template "
    "\"__text_alert_list\" .Alerts.Firing }}{{ end }}"
    "{{ if gt (len .Alerts.Resolved) 0 }}\n[{{ .Alerts.Resolved | len }}] Resolved\n{{ template "
    "\"__text_alert_list\" .Alerts.Resolved }}{{ end }}{{ end }}"
    "{{ define \"__email_html_alert\" }}<tr><td style=\"padding:8px 12px;border-top:1px solid "
    "#e9e9e9\">"
    "<strong>Labels</strong><br>{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ "
    "end }}"
    "{{ if gt (len .Annotations) 0 }}<strong>Annotations</strong><br>{{ end }}"
    "{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}"
    "<a href=\"{{ .GeneratorURL }}\">Source</a></td></tr>{{ end }}"
    "{{ define \"email.default.html\" }}<!DOCTYPE html>\n<html><head><meta charset=\"UTF-8\">"
    "<title>{{ template \"__subject\" . }}</title></head>\n"
    "<body "
    "style=\"font-family:Helvetica,Arial,sans-serif;font-size:14px;background:#f6f6f6;margin:0\">\n"
    "<table width=\"100%\" style=\"max-width:640px;margin:0 auto;background:#fff\">"
    "<tr><td style=\"padding:16px;color:#fff;background:{{ if eq .Status \"firing\" }}#e45959{{ "
    "else }}#68b90f{{ end }}\">"
    "{{ .Alerts | len }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for {{ range "
    ".GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}</td></tr>\n"
    "<tr><td style=\"padding:12px\"><a href=\"{{ template \"__alertmanagerURL\" . }}\">View in {{ "
    "template \"__alertmanager\" . }}</a></td></tr>\n"
    "{{ if gt (len .Alerts.Firing) 0 }}<tr><td style=\"padding:8px 12px\"><strong>[{{ "
    ".Alerts.Firing | len }}] Firing</strong></td></tr>"
    "{{ range .Alerts.Firing }}{{ template \"__email_html_alert\" . }}{{ end }}{{ end }}\n"
    "{{ if gt (len .Alerts.Resolved) 0 }}<tr><td style=\"padding:8px 12px\"><strong>[{{ "
    ".Alerts.Resolved | len }}] Resolved</strong></td></tr>"
    "{{ range .Alerts.Resolved }}{{ template \"__email_html_alert\" . }}{{ end }}{{ end }}\n"
    "<tr><td style=\"padding:12px;color:#999;font-size:12px\">Sent by {{ template "
    "\"__alertmanager\" . }}</td></tr>"
    "</table>\n</body></html>\n{{ end }}";

struct usher_notifytmpl_lib {
	struct usher_template **files; /* files[i]->lib = files[i-1], files[0]->lib = defaults */
	size_t n;
};

/* The defaults, parsed once per process: immutable after that. */
static pthread_once_t defaults_once = PTHREAD_ONCE_INIT;
static struct usher_template *defaults_t;

static void defaults_init(void)
{
	struct usher_error err = {{0}};

	if (usher_template_parse_json("default.tmpl", usher_notifytmpl_defaults, NULL, &defaults_t,
				      &err) != USHER_OK) {
		/* the defaults are part of the binary: a bug */
		fprintf(stderr, "usher: default notification templates: %s\n", err.msg);
		abort();
	}
}

static const struct usher_template *defaults(void)
{
	pthread_once(&defaults_once, defaults_init);
	return defaults_t;
}

static const struct usher_template *lib_top(const struct usher_notifytmpl_lib *lib)
{
	return lib && lib->n ? lib->files[lib->n - 1] : defaults();
}

static enum usher_err read_file(const char *path, char **out, struct usher_error *err)
{
	FILE *f = fopen(path, "rb");
	struct usher_buf b;
	char chunk[8192];
	size_t n;
	enum usher_err rc = USHER_OK;

	*out = NULL;
	if (!f)
		return usher_fail(err, USHER_ERR_IO, "templates: cannot open %s: %s", path,
				  strerror(errno));
	usher_buf_init(&b, FILE_MAX);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (usher_buf_add(&b, chunk, n) != USHER_OK) {
			rc = usher_fail(err, USHER_ERR_TOOBIG,
					"templates: %s is larger than %d bytes", path, FILE_MAX);
			break;
		}
	if (!rc && ferror(f))
		rc = usher_fail(err, USHER_ERR_IO, "templates: cannot read %s", path);
	fclose(f);
	if (rc) {
		usher_buf_free(&b);
		return rc;
	}
	*out = usher_strdup(usher_buf_str(&b));
	usher_buf_free(&b);
	return USHER_OK;
}

enum usher_err usher_notifytmpl_lib_new(const struct usher_strlist *globs, const char *base_dir,
					struct usher_notifytmpl_lib **out, struct usher_error *err)
{
	struct usher_notifytmpl_lib *lib = usher_calloc(1, sizeof(*lib));
	enum usher_err rc = USHER_OK;
	size_t g, i;

	*out = NULL;
	for (g = 0; globs && g < globs->n && !rc; g++) {
		char pattern[4096];
		glob_t gl;
		int grc;

		if (globs->v[g][0] != '/' && base_dir && *base_dir)
			snprintf(pattern, sizeof(pattern), "%s/%s", base_dir, globs->v[g]);
		else
			snprintf(pattern, sizeof(pattern), "%s", globs->v[g]);
		memset(&gl, 0, sizeof(gl));
		grc = glob(pattern, 0, NULL, &gl);
		if (grc == GLOB_NOMATCH) {
			globfree(&gl);
			continue;
		}
		if (grc != 0) {
			globfree(&gl);
			rc = usher_fail(err, USHER_ERR_IO, "templates: cannot expand %s", pattern);
			break;
		}
		for (i = 0; i < gl.gl_pathc && !rc; i++) {
			char *text = NULL;
			struct usher_template *t = NULL;

			rc = read_file(gl.gl_pathv[i], &text, err);
			if (!rc)
				rc = usher_template_parse_json(gl.gl_pathv[i], text, lib_top(lib),
							       &t, err);
			free(text);
			if (!rc) {
				lib->files =
				    usher_realloc(lib->files, (lib->n + 1) * sizeof(*lib->files));
				lib->files[lib->n++] = t;
			}
		}
		globfree(&gl);
	}
	if (rc) {
		usher_notifytmpl_lib_free(lib);
		return rc;
	}
	*out = lib;
	return USHER_OK;
}

void usher_notifytmpl_lib_free(struct usher_notifytmpl_lib *lib)
{
	size_t i;

	if (!lib)
		return;
	for (i = lib->n; i-- > 0;)
		usher_template_free(lib->files[i]);
	free(lib->files);
	free(lib);
}

enum usher_err usher_notifytmpl_field(struct usher_cfgctx *ctx, struct usher_notify_common *c,
				      const struct usher_ynode *node, const char *key,
				      const char *text, struct usher_notifytmpl **out)
{
	struct usher_notifytmpl *f = usher_arena_zalloc(ctx->arena, sizeof(*f));
	struct usher_error err = {{0}};
	struct usher_template *t = NULL;

	*out = f;
	f->key = key;
	f->text = text ? text : "";
	f->owner = c;
	{
		/* the key's value when it is in the entry, else the entry */
		const struct usher_ynode *at =
		    node && node->kind == USHER_Y_MAP ? usher_ynode_get(node, key) : NULL;

		if (!at)
			at = node;
		f->line = at ? at->line : 0;
		f->col = at ? at->col : 0;
		if (!*f->text)
			return USHER_OK;
		if (usher_template_parse_json(key, f->text, defaults(), &t, &err) != USHER_OK)
			return usher_cfg_error(ctx, at, "%s: %s", key, err.msg);
	}
	usher_template_free(t);
	if (c->nfields < USHER_NOTIFY_FIELDS_MAX)
		c->fields[c->nfields++] = f;
	return USHER_OK;
}

void usher_notifytmpl_common_free(struct usher_notify_common *c)
{
	(void)c;
}

json_t *usher_notifytmpl_sample_data(void)
{
	return json_pack(
	    "{s:s, s:s, s:i, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:s}, s:{s:s}, s:s, s:["
	    "{s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s}, s:s, s:s, s:s, s:s},"
	    "{s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s}, s:s, s:s, s:s, s:s}]}",
	    "version", "4", "groupKey", "{}:{alertname=\"SeatHoldsHigh\"}", "truncatedAlerts", 0,
	    "status", "firing", "receiver", "oncall", "groupLabels", "alertname", "SeatHoldsHigh",
	    "commonLabels", "alertname", "SeatHoldsHigh", "severity", "page", "service", "booking",
	    "commonAnnotations", "summary", "seat holds are piling up", "externalURL",
	    "http://usher.example:9469", "alerts", "status", "firing", "labels", "alertname",
	    "SeatHoldsHigh", "severity", "page", "service", "booking", "instance", "api-1:8080",
	    "annotations", "summary", "seat holds are piling up", "description", "12000 holds",
	    "startsAt", "2026-01-01T10:00:00Z", "endsAt", "0001-01-01T00:00:00Z", "generatorURL",
	    "http://usher.example:9469/graph", "fingerprint", "0a1b2c3d4e5f6071", "status",
	    "resolved", "labels", "alertname", "SeatHoldsHigh", "severity", "page", "service",
	    "booking", "instance", "api-2:8080", "annotations", "summary",
	    "seat holds are piling up", "startsAt", "2026-01-01T09:00:00Z", "endsAt",
	    "2026-01-01T09:30:00Z", "generatorURL", "http://usher.example:9469/graph",
	    "fingerprint", "1a1b2c3d4e5f6071");
}

enum usher_err usher_notifytmpl_bind(const struct usher_integration_conf *ic,
				     const struct usher_notifytmpl_lib *lib,
				     struct usher_error *err)
{
	struct usher_notify_common *c = ic->opts;
	json_t *sample = usher_notifytmpl_sample_data();
	struct usher_error e = {{0}};
	enum usher_err rc = USHER_OK;
	int i;

	c->failed = NULL;
	for (i = 0; i < c->nfields && !rc; i++) {
		struct usher_notifytmpl *f = c->fields[i];
		struct usher_template *t = NULL;
		struct usher_buf b;

		rc = usher_template_parse_json(f->key, f->text, lib_top(lib), &t, &e);
		if (!rc) {
			usher_buf_init(&b, FIELD_MAX);
			rc = usher_template_expand_json(t, NULL, sample, &b, &e);
			usher_buf_free(&b);
		}
		usher_template_free(t);
		if (rc)
			c->failed = f;
	}
	json_decref(sample);
	if (rc)
		return usher_fail(err, rc, "%s_configs[%d].%s: %s", ic->type->name, ic->index,
				  c->failed->key, e.msg);
	c->lib = lib;
	return USHER_OK;
}

enum usher_err usher_notifytmpl_expand(const struct usher_notifytmpl *f, const json_t *data,
				       struct usher_buf *out, struct usher_error *err)
{
	struct usher_template *t = NULL;
	enum usher_err rc;

	usher_buf_reset(out);
	if (!f || !f->text || !*f->text)
		return USHER_OK;
	rc = usher_template_parse_json(f->key, f->text, lib_top(f->owner ? f->owner->lib : NULL),
				       &t, err);
	if (rc == USHER_OK)
		rc = usher_template_expand_json(t, NULL, data, out, err);
	usher_template_free(t);
	return rc;
}

char *usher_notifytmpl_str(const struct usher_notifytmpl *f, const json_t *data,
			   struct usher_error *err)
{
	struct usher_buf b;
	char *s;

	usher_buf_init(&b, FIELD_MAX);
	if (usher_notifytmpl_expand(f, data, &b, err) != USHER_OK)
		usher_buf_reset(&b);
	s = usher_strdup(usher_buf_str(&b));
	usher_buf_free(&b);
	return s;
}
