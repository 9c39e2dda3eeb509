/* ecs_check: checks log events against the ECS field definitions
 * (ecs_flat.yml, read in place from ../shared/conformance/ecs) and the ECS
 * logging spec: @timestamp, log.level, message first; required fields;
 * every field known to ECS (or under usher.* / labels.*) with the right
 * JSON type; allowed values of event.kind/category/type/outcome; each
 * event.type expected for one of the event's categories.
 *
 *   ecs_check ECS_FLAT_YML [--require-actions a,b,...] [--catalogue] [--markdown] FILE...
 *
 * FILE holds one JSON event per line (non-JSON lines are skipped), or with
 * --markdown the ```json blocks of a Markdown file, one event each;
 * --catalogue checks one encoded event per action of usher's catalogue. Exit
 * status 0 when every event conforms (and every required action was seen),
 * 1 otherwise; problems go to stderr, one line each. */
#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/diag.h"
#include "config/yaml.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/ecs.h"

static const struct usher_ynode *ecs;
static int problems;
static size_t nevents;
static const char *seen_actions[256];
static size_t nseen;

static void problem(const char *where, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(const char *where, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	problems++;
}

static bool read_file(const char *path, struct usher_buf *b)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;

	if (!f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return false;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (usher_buf_add(b, chunk, n)) {
			fclose(f);
			fprintf(stderr, "%s: too large\n", path);
			return false;
		}
	fclose(f);
	return true;
}

static const char *scalar(const struct usher_ynode *n, const char *key)
{
	const struct usher_ynode *v = usher_ynode_get(n, key);

	return v && v->kind == USHER_Y_SCALAR ? v->value : NULL;
}

static bool in_list(const struct usher_ynode *seq, const char *v)
{
	size_t i;

	for (i = 0; seq && seq->kind == USHER_Y_SEQ && i < seq->n; i++)
		if (seq->items[i]->kind == USHER_Y_SCALAR && strcmp(seq->items[i]->value, v) == 0)
			return true;
	return false;
}

/* The allowed_values entry named v of field def, or NULL. */
static const struct usher_ynode *allowed(const struct usher_ynode *def, const char *v)
{
	const struct usher_ynode *av = usher_ynode_get(def, "allowed_values");
	size_t i;

	for (i = 0; av && av->kind == USHER_Y_SEQ && i < av->n; i++) {
		const char *name = scalar(av->items[i], "name");

		if (name && strcmp(name, v) == 0)
			return av->items[i];
	}
	return NULL;
}

static bool is_string_type(const char *t)
{
	static const char *const s[] = {
	    "keyword", "constant_keyword", "wildcard", "text", "match_only_text",
	    "ip",      "version",          "date",     NULL};
	size_t i;

	for (i = 0; s[i]; i++)
		if (strcmp(t, s[i]) == 0)
			return true;
	return false;
}

static bool is_int_type(const char *t)
{
	return !strcmp(t, "long") || !strcmp(t, "integer") || !strcmp(t, "short") ||
	       !strcmp(t, "byte") || !strcmp(t, "unsigned_long");
}

static bool is_float_type(const char *t)
{
	return !strcmp(t, "float") || !strcmp(t, "double") || !strcmp(t, "scaled_float") ||
	       !strcmp(t, "half_float");
}

static bool rfc3339(const char *s)
{
	/* 2026-11-28T03:49:16.123Z (fraction optional, Z or an offset) */
	size_t n = strlen(s);

	return n >= 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' &&
	       s[16] == ':' && (s[n - 1] == 'Z' || s[n - 3] == ':');
}

static void check_value(const char *where, const char *key, json_t *v)
{
	const struct usher_ynode *def;
	const char *type, *normalize_array = NULL;
	const struct usher_ynode *norm;

	if (strncmp(key, "usher.", 6) == 0) {
		if (json_is_object(v) || json_is_array(v))
			problem(where, "%s: usher.* fields are scalars%s", key, "");
		return;
	}
	if (strncmp(key, "labels.", 7) == 0) {
		const char *p;

		for (p = key + 7; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
				problem(where, "%s: label key not sanitised%s", key, "");
		if (!key[7])
			problem(where, "%s: empty label key%s", key, "");
		if (!json_is_string(v))
			problem(where, "%s: labels are keywords (strings)%s", key, "");
		return;
	}
	def = usher_ynode_get(ecs, key);
	if (!def) {
		problem(where, "%s: not an ECS field (put usher's own under usher.*)%s", key, "");
		return;
	}
	type = scalar(def, "type");
	norm = usher_ynode_get(def, "normalize");
	if (in_list(norm, "array"))
		normalize_array = "array";
	if (json_is_array(v)) {
		size_t i;

		if (!normalize_array && !is_string_type(type ? type : ""))
			problem(where, "%s: an array for a field ECS does not normalize to one%s",
				key, "");
		for (i = 0; i < json_array_size(v); i++)
			check_value(where, key, json_array_get(v, i));
		return;
	}
	if (!type)
		return;
	if (is_string_type(type)) {
		if (!json_is_string(v))
			problem(where, "%s: ECS type %s wants a string", key, type);
		else if (!strcmp(type, "date") && !rfc3339(json_string_value(v)))
			problem(where, "%s: not an RFC 3339 date: %s", key, json_string_value(v));
	} else if (is_int_type(type)) {
		if (!json_is_integer(v))
			problem(where, "%s: ECS type %s wants an integer", key, type);
	} else if (is_float_type(type)) {
		if (!json_is_number(v))
			problem(where, "%s: ECS type %s wants a number", key, type);
	} else if (!strcmp(type, "boolean")) {
		if (!json_is_boolean(v))
			problem(where, "%s: ECS type %s wants true or false", key, type);
	}
	if (json_is_string(v) && usher_ynode_get(def, "allowed_values") &&
	    !allowed(def, json_string_value(v)))
		problem(where, "%s: \"%s\" is not one of ECS' allowed values", key,
			json_string_value(v));
}

/* Flattens nested objects into dotted keys, checking each leaf. */
static void check_object(const char *where, const char *prefix, json_t *o, json_t *flat)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
	{
		char key[512];

		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", k);
		if (json_is_object(v) && strcmp(key, "labels") != 0 &&
		    !(usher_ynode_get(ecs, key) &&
		      (scalar(usher_ynode_get(ecs, key), "type") &&
		       !strcmp(scalar(usher_ynode_get(ecs, key), "type"), "flattened")))) {
			check_object(where, key, v, flat);
			continue;
		}
		if (json_is_object(v)) { /* labels as an object */
			const char *lk;
			json_t *lv;

			json_object_foreach(v, lk, lv)
			{
				char full[1100];

				snprintf(full, sizeof(full), "%s.%s", key, lk);
				check_value(where, full, lv);
				json_object_set(flat, full, lv);
			}
			continue;
		}
		if (json_object_get(flat, key))
			problem(where, "%s: given twice%s", key, "");
		check_value(where, key, v);
		json_object_set(flat, key, v);
	}
}

static void check_event(const char *where, json_t *ev)
{
	static const char *const first[] = {"@timestamp", "log.level", "message"};
	json_t *flat = json_object(), *cats, *types, *lvl, *action;
	const char *k;
	json_t *v;
	size_t i = 0, j, t;

	nevents++;
	json_object_foreach(ev, k, v)
	{
		if (i < 3 && strcmp(k, first[i]) != 0)
			problem(where,
				"\"%s\" where \"%s\" belongs: the ECS logging spec puts "
				"@timestamp, log.level, message first",
				k, first[i]);
		i++;
	}
	check_object(where, "", ev, flat);
	if (!json_is_string(json_object_get(flat, "@timestamp")))
		problem(where, "@timestamp is required%s%s", "", "");
	if (!json_is_string(json_object_get(flat, "ecs.version")))
		problem(where, "ecs.version is required%s%s", "", "");
	if (!json_is_string(json_object_get(flat, "message")))
		problem(where, "message is required%s%s", "", "");
	lvl = json_object_get(flat, "log.level");
	if (!json_is_string(lvl) ||
	    (strcmp(json_string_value(lvl), "debug") && strcmp(json_string_value(lvl), "info") &&
	     strcmp(json_string_value(lvl), "warn") && strcmp(json_string_value(lvl), "error")))
		problem(where, "log.level must be debug, info, warn or error%s%s", "", "");
	if (!json_is_string(json_object_get(flat, "event.kind")))
		problem(where, "event.kind is missing%s%s", "", "");
	cats = json_object_get(flat, "event.category");
	types = json_object_get(flat, "event.type");
	if (types && !cats)
		problem(where, "event.type without event.category%s%s", "", "");
	for (t = 0; types && cats && t < (json_is_array(types) ? json_array_size(types) : 1); t++) {
		json_t *tv = json_is_array(types) ? json_array_get(types, t) : types;
		bool ok = false;

		for (j = 0; j < (json_is_array(cats) ? json_array_size(cats) : 1); j++) {
			json_t *cv = json_is_array(cats) ? json_array_get(cats, j) : cats;
			const struct usher_ynode *a;

			if (!json_is_string(cv) || !json_is_string(tv))
				continue;
			a = allowed(usher_ynode_get(ecs, "event.category"), json_string_value(cv));
			if (a && in_list(usher_ynode_get(a, "expected_event_types"),
					 json_string_value(tv)))
				ok = true;
		}
		if (!ok && json_is_string(tv))
			problem(where,
				"event.type \"%s\" is not expected for the event's categories%s",
				json_string_value(tv), "");
	}
	action = json_object_get(flat, "event.action");
	if (json_is_string(action)) {
		for (j = 0; j < nseen; j++)
			if (!strcmp(seen_actions[j], json_string_value(action)))
				break;
		if (j == nseen && nseen < sizeof(seen_actions) / sizeof(seen_actions[0]))
			seen_actions[nseen++] = strdup(json_string_value(action));
	}
	json_decref(flat);
}

static void check_text(const char *path, const char *text, bool markdown)
{
	const char *p = text;
	int line = 1;

	while (*p) {
		const char *eol = strchr(p, '\n'), *start = p;
		size_t len;
		char where[600];
		json_t *ev;
		json_error_t jerr;

		if (markdown) {
			/* a ```json block is one event */
			if (strncmp(p, "```json\n", 8) != 0) {
				line++;
				p = eol ? eol + 1 : p + strlen(p);
				continue;
			}
			start = p + 8;
			eol = strstr(start, "\n```");
			if (!eol)
				break;
		}
		if (!eol)
			eol = p + strlen(p);
		len = (size_t)(eol - start);
		snprintf(where, sizeof(where), "%s:%d", path, line);
		ev = json_loadb(start, len, JSON_REJECT_DUPLICATES, &jerr);
		if (markdown && !ev)
			problem(where, "not a JSON event: %s%s", jerr.text, "");
		if (ev && json_is_object(ev))
			check_event(where, ev);
		json_decref(ev);
		for (; p < eol; p++)
			line += *p == '\n';
		if (markdown)
			eol += 4;
		p = *eol ? eol + 1 : eol;
		line++;
	}
}

/* One event per catalogue action (per probe type for probe-*), as the
 * encoder writes them. */
static void check_catalogue(void)
{
	static const char *const probe_types[] = {"http", "postgres", "redis",    "memcached",
						  "host", "scrape",   "textfile", "other"};
	const struct usher_ecs_action *act;
	size_t k;

	for (act = usher_ecs_actions; act->action; act++) {
		for (k = 0;
		     k < (act->by_probe_type ? sizeof(probe_types) / sizeof(probe_types[0]) : 1);
		     k++) {
			struct usher_log_field f[] = {
			    USHER_LFS("event.action", act->action),
			    USHER_LFS("usher.probe.type", probe_types[k]),
			    USHER_LFS("labels.env.name", "prod"),
			};
			struct usher_log_record r = {
			    .ts_ns = 1795838956123000000LL,
			    .level = USHER_LOG_WARN,
			    .message = act->summary,
			    .fields = f,
			    .nfields = 3,
			    .service = "usherd",
			    .hostname = "host-1",
			};
			struct usher_ecs_meta m = {.has_seq = true, .seq = 7, .id = "x", .pid = 42};
			struct usher_buf b;
			char where[128];

			usher_buf_init(&b, 65536);
			usher_ecs_encode(&b, &r, &m);
			snprintf(where, sizeof(where), "catalogue %s/%s", act->action,
				 probe_types[k]);
			check_text(where, usher_buf_str(&b), false);
			usher_buf_free(&b);
		}
	}
}

int main(int argc, char **argv)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_diags d;
	struct usher_buf yml;
	struct usher_ynode *root;
	const char *require = NULL;
	bool markdown = false;
	int i;

	if (argc < 3) {
		fprintf(stderr, "usage: ecs_check ECS_FLAT_YML [--require-actions a,b] "
				"[--markdown] FILE...\n");
		return 2;
	}
	usher_buf_init(&yml, 64 * 1024 * 1024);
	usher_diags_init(&d);
	if (!read_file(argv[1], &yml) ||
	    usher_yaml_parse(a, argv[1], usher_buf_str(&yml), yml.len, &root, &d)) {
		fprintf(stderr, "cannot load %s\n", argv[1]);
		return 2;
	}
	ecs = root;
	for (i = 2; i < argc; i++) {
		struct usher_buf b;

		if (!strcmp(argv[i], "--require-actions") && i + 1 < argc) {
			require = argv[++i];
			continue;
		}
		if (!strcmp(argv[i], "--markdown")) {
			markdown = true;
			continue;
		}
		if (!strcmp(argv[i], "--catalogue")) {
			check_catalogue();
			continue;
		}
		usher_buf_init(&b, 256 * 1024 * 1024);
		if (!read_file(argv[i], &b))
			return 2;
		check_text(argv[i], usher_buf_str(&b), markdown);
		usher_buf_free(&b);
	}
	if (require) {
		const char *p = require;

		while (*p) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p), j;

			for (j = 0; j < nseen; j++)
				if (strlen(seen_actions[j]) == n && !strncmp(seen_actions[j], p, n))
					break;
			if (j == nseen) {
				fprintf(stderr, "no event with event.action %.*s\n", (int)n, p);
				problems++;
			}
			p = comma ? comma + 1 : p + n;
		}
	}
	if (!nevents) {
		fprintf(stderr, "no events found: a check of nothing is not a pass\n");
		problems++;
	}
	printf("%zu events, %zu actions, %d problems\n", nevents, nseen, problems);
	usher_diags_free(&d);
	usher_buf_free(&yml);
	usher_arena_free(a);
	return problems ? 1 : 0;
}
