/* The ticket integrations (Jira v2 and v3, GitHub Issues, Zendesk,
 * ServiceNow, generic ticket) against tests/integration/ticketmocks.py,
 * which checks every request against the vendor's documented shape: create
 * on firing, comment while firing, resolve, reopen when the group fires
 * again, the same ticket found again by its group-key label after a
 * "restart" (a fresh entry with no memory), 429 with Retry-After, 5xx and
 * dropped connections retried, other 4xx failing. Without
 * USHER_TICKET_MOCK the test re-runs itself under ticketmocks.py. */
#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/options.h"
#include "config/yaml.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/incident.h"
#include "notify/integration.h"
#include "notify/notifytmpl.h"

static const char *mock, *control;

/* ------------------------------------------------------------- mocks -- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	return usher_buf_add(arg, p, size * n) ? 0 : size * n;
}

static json_t *ctl(const char *path, const char *body)
{
	CURL *e = curl_easy_init();
	struct usher_buf b;
	char url[256];
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	json_t *j;

	usher_buf_init(&b, 64u << 20);
	snprintf(url, sizeof(url), "%s%s", control, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	assert_int_equal(curl_easy_perform(e), CURLE_OK);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	j = json_loads(usher_buf_str(&b), 0, NULL);
	usher_buf_free(&b);
	assert_non_null(j);
	return j;
}

static void inject(const char *vendor, const char *method, const char *path, int status,
		   int retry_after, bool drop)
{
	char body[512];
	char m[16];

	if (method)
		snprintf(m, sizeof(m), "\"%s\"", method);
	else
		snprintf(m, sizeof(m), "null");
	snprintf(body, sizeof(body),
		 "{\"vendor\":\"%s\",\"method\":%s,\"path\":\"%s\",\"status\":%d,"
		 "\"retry_after\":%d,\"drop\":%s}",
		 vendor, m, path, status, retry_after, drop ? "true" : "false");
	json_decref(ctl("/inject", body));
}

/* ------------------------------------------------------ integrations -- */

struct entry {
	const struct usher_integration_type *type;
	struct usher_arena *arena;
	void *opts;
};

static void entry_load(struct entry *en, const char *type, const char *fmt)
{
	struct usher_diags diags;
	struct usher_cfgctx ctx;
	struct usher_ynode *root = NULL;
	struct usher_integration_conf ic;
	struct usher_error err = {{0}};
	char yaml[2048], first[512];
	struct usher_buf y;
	const char *p;

	/* %s (or %1$s) in fmt stands for the mock's URL */
	usher_buf_init(&y, sizeof(yaml) - 1);
	for (p = fmt; *p; p++) {
		if (strncmp(p, "%1$s", 4) == 0 || strncmp(p, "%s", 2) == 0) {
			usher_buf_addstr(&y, mock);
			p += p[1] == '1' ? 3 : 1;
		} else {
			usher_buf_addc(&y, *p);
		}
	}
	snprintf(yaml, sizeof(yaml), "%s", usher_buf_str(&y));
	usher_buf_free(&y);
	en->type = usher_integration_type_find(type);
	assert_non_null(en->type);
	en->arena = usher_arena_new();
	en->opts = usher_arena_zalloc(en->arena, en->type->opts_size);
	usher_diags_init(&diags);
	ctx = (struct usher_cfgctx){.file = "t.yml", .arena = en->arena, .diags = &diags};
	assert_int_equal(usher_yaml_parse(en->arena, "t.yml", yaml, strlen(yaml), &root, &diags),
			 USHER_OK);
	if (usher_opts_apply1(&ctx, en->type->options, en->opts, root) ||
	    en->type->check(&ctx, en->opts, root))
		fail_msg("%s: %s", type, usher_diags_first(&diags, first, sizeof(first)));
	usher_diags_free(&diags);
	ic = (struct usher_integration_conf){.type = en->type, .opts = en->opts};
	if (usher_notifytmpl_bind(&ic, NULL, &err))
		fail_msg("%s: bind: %s", type, err.msg);
}

static void entry_free(struct entry *en)
{
	if (en->type->free)
		en->type->free(en->opts);
	usher_arena_free(en->arena);
}

static json_t *group(const char *key, const char *status)
{
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:i, s:{s:s}, s:{s:s, s:s}, s:{s:s}, s:s, s:[{s:s, "
	    "s:{s:s, s:s, s:s}, s:{s:s}, s:s, s:s, s:s, s:s}]}",
	    "version", "4", "groupKey", key, "status", status, "receiver", "tickets",
	    "truncatedAlerts", 0, "groupLabels", "alertname", "PaymentsDown", "commonLabels",
	    "alertname", "PaymentsDown", "severity", "critical", "commonAnnotations", "summary",
	    "payments failing", "externalURL", "http://usher.example:9469", "alerts", "status",
	    status, "labels", "alertname", "PaymentsDown", "severity", "critical", "instance",
	    "pay-1", "annotations", "summary", "payments failing", "startsAt",
	    "2026-11-28T06:00:00Z", "endsAt",
	    strcmp(status, "resolved") == 0 ? "2026-11-28T06:30:00Z" : "0001-01-01T00:00:00Z",
	    "generatorURL", "http://usher.example:9469/graph", "fingerprint", "00000000000000ab");
}

static enum usher_delivery_outcome deliver(struct entry *en, const char *key, const char *status,
					   struct usher_delivery_result *res)
{
	json_t *g = group(key, status);

	en->type->deliver(en->opts, g, key, 10000, res);
	json_decref(g);
	return res->outcome;
}

static void deliver_ok(struct entry *en, const char *key, const char *status)
{
	struct usher_delivery_result res;

	if (deliver(en, key, status, &res) != USHER_DELIVERY_OK)
		fail_msg("%s %s %s: outcome %d: %s", en->type->name, key, status, res.outcome,
			 res.err.msg);
}

/* ------------------------------------------------- the vendors' state -- */

/* What one vendor holds for a group: tickets, and of the newest one
 * whether it is resolved and how many comments it has. */
struct seen {
	int tickets;
	bool resolved;
	int comments;
};

static bool has_str(const json_t *arr, const char *want)
{
	const json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) if (json_is_string(v) &&
					  strcmp(json_string_value(v), want) == 0) return true;
	return false;
}

static struct seen look(const char *type, const char *key)
{
	json_t *st = ctl("/state", NULL), *all, *t;
	struct seen s = {0};
	char hash[65], tag[96];
	const char *k;

	usher_incident_group_hash(key, hash);
	if (json_array_size(json_object_get(st, "problems")))
		fail_msg("the mock saw malformed requests: %s",
			 json_dumps(json_object_get(st, "problems"), 0));
	if (strncmp(type, "jira", 4) == 0) {
		snprintf(tag, sizeof(tag), "ALERT{%s}", hash);
		all = json_object_get(st, "jira");
		json_object_foreach(all, k, t)
		{
			if (!has_str(json_object_get(t, "labels"), tag))
				continue;
			s.tickets++;
			s.resolved = json_is_true(json_object_get(t, "done"));
			s.comments = (int)json_array_size(json_object_get(t, "comments"));
		}
	} else if (strcmp(type, "github") == 0) {
		snprintf(tag, sizeof(tag), "alert-%.40s", hash);
		all = json_object_get(st, "github");
		json_object_foreach(all, k, t)
		{
			if (!has_str(json_object_get(t, "labels"), tag))
				continue;
			s.tickets++;
			s.resolved =
			    strcmp(json_string_value(json_object_get(t, "state")), "closed") == 0;
			s.comments = (int)json_array_size(json_object_get(t, "comments"));
		}
	} else if (strcmp(type, "zendesk") == 0) {
		snprintf(tag, sizeof(tag), "alert_%s", hash);
		all = json_object_get(st, "zendesk");
		json_object_foreach(all, k, t)
		{
			const char *status = json_string_value(json_object_get(t, "status"));

			if (!has_str(json_object_get(t, "tags"), tag))
				continue;
			s.tickets++;
			s.resolved = strcmp(status, "solved") == 0 || strcmp(status, "closed") == 0;
			s.comments = (int)json_array_size(json_object_get(t, "comments")) - 1;
		}
	} else {
		snprintf(tag, sizeof(tag), "usher:%s", hash);
		all = json_object_get(st, "servicenow");
		json_object_foreach(all, k, t)
		{
			if (strcmp(json_string_value(json_object_get(t, "correlation_id")), tag) !=
			    0)
				continue;
			s.tickets++;
			s.resolved =
			    strcmp(json_string_value(json_object_get(t, "state")), "6") == 0;
			s.comments = (int)json_array_size(json_object_get(t, "work_notes"));
		}
	}
	json_decref(st);
	return s;
}

#define EXPECT(type, key, n, res, com)                                                             \
	do {                                                                                       \
		struct seen s_ = look(type, key);                                                  \
		if (s_.tickets != (n) || s_.resolved != (res) || s_.comments != (com))             \
			fail_msg("%s %s: %d tickets (resolved %d, %d comments), want %d (%d, %d)", \
				 type, key, s_.tickets, s_.resolved, s_.comments, n, res, com);    \
	} while (0)

static const struct {
	const char *type, *name, *yaml, *create_path, *comment_path, *search_path;
} vendors[] = {
    {"jira", "jira",
     "url: %s/jira\nproject: OPS\nissue_type: Incident\nusername: bot@example.com\n"
     "password: tok\nresolve_transition: Done\nreopen_transition: Reopen\npriority: High\n"
     "labels: [usher]\n",
     "^/rest/api/2/issue$", "/comment$", "/search$"},
    {"jira3", "jira",
     "url: %s/jira\napi_version: \"3\"\nproject: OPS\nissue_type: Incident\ntoken: pat\n"
     "resolve_transition: done\nreopen_transition: reopen\n",
     "^/rest/api/3/issue$", "/comment$", "/search/jql$"},
    {"github", "github",
     "url: %s/github\nrepository: booking/platform\ntoken: ghp_x\nlabels: [incident]\n",
     "^/repos/booking/platform/issues$", "/comments$", "/issues$"},
    {"zendesk", "zendesk",
     "url: %s/zendesk\nemail: oncall@example.com\napi_token: zt\npriority: urgent\n"
     "tags: [usher]\n",
     "^/api/v2/tickets.json$", "^/api/v2/tickets/[0-9]+.json$", "/search.json$"},
    {"servicenow", "servicenow",
     "url: %s/servicenow\nusername: usher\npassword: pw\nurgency: \"1\"\nimpact: \"2\"\n",
     "^/api/now/table/incident$", "^/api/now/table/incident/", "^/api/now/table/incident$"},
};

static void test_lifecycle(void **state)
{
	size_t v;

	(void)state;
	for (v = 0; v < sizeof(vendors) / sizeof(vendors[0]); v++) {
		const char *t = vendors[v].type;
		char key[64];
		struct entry en, again;

		snprintf(key, sizeof(key), "{}:{alertname=\"PaymentsDown\",vendor=\"%s\"}", t);
		entry_load(&en, vendors[v].name, vendors[v].yaml);
		deliver_ok(&en, key, "firing");
		EXPECT(t, key, 1, false, 0);
		deliver_ok(&en, key, "firing");
		EXPECT(t, key, 1, false, 1);
		deliver_ok(&en, key, "resolved");
		EXPECT(t, key, 1, true, 2);
		deliver_ok(&en, key, "resolved"); /* nothing left to resolve */
		EXPECT(t, key, 1, true, 2);
		deliver_ok(&en, key, "firing"); /* reopened, not a second ticket */
		EXPECT(t, key, 1, false, 3);
		entry_free(&en);

		/* a restart: nothing remembered, the ticket is found by its label */
		entry_load(&again, vendors[v].name, vendors[v].yaml);
		deliver_ok(&again, key, "firing");
		EXPECT(t, key, 1, false, 4);
		entry_free(&again);
	}
}

static void test_failures(void **state)
{
	size_t v;

	(void)state;
	for (v = 0; v < sizeof(vendors) / sizeof(vendors[0]); v++) {
		const char *t = vendors[v].type, *vendor = strncmp(t, "jira", 4) == 0 ? "jira" : t;
		struct usher_delivery_result res;
		struct entry en;
		char key[64];

		snprintf(key, sizeof(key), "{}:{alertname=\"Retries\",vendor=\"%s\"}", t);
		entry_load(&en, vendors[v].name, vendors[v].yaml);
		/* 429 with Retry-After on the create: retry later, nothing made */
		inject(vendor, "POST", vendors[v].create_path, 429, 7, false);
		assert_int_equal(deliver(&en, key, "firing", &res), USHER_DELIVERY_RETRY);
		assert_int_equal(res.status, 429);
		assert_int_equal(res.retry_after_ms, 7000);
		EXPECT(t, key, 0, false, 0);
		/* a 503 on the search */
		inject(vendor, "GET", vendors[v].search_path, 503, 0, false);
		assert_int_equal(deliver(&en, key, "firing", &res), USHER_DELIVERY_RETRY);
		assert_int_equal(res.status, 503);
		deliver_ok(&en, key, "firing");
		EXPECT(t, key, 1, false, 0);
		/* a dropped connection while commenting, then the retry lands */
		inject(vendor, NULL, vendors[v].comment_path, 0, 0, true);
		assert_int_equal(deliver(&en, key, "firing", &res), USHER_DELIVERY_RETRY);
		assert_true(strlen(res.err.msg) > 0);
		deliver_ok(&en, key, "firing");
		EXPECT(t, key, 1, false, 1);
		/* a refusal is final */
		inject(vendor, "GET", vendors[v].search_path, 403, 0, false);
		assert_int_equal(deliver(&en, key, "firing", &res), USHER_DELIVERY_FAIL);
		assert_non_null(strstr(res.err.msg, "403"));
		/* a vendor slower than the attempt's timeout: retried */
		if (v == 0) {
			json_t *g = group(key, "firing");
			int64_t t0 = usher_mono_ms();

			json_decref(ctl("/inject", "{\"vendor\":\"jira\",\"method\":\"GET\","
						   "\"path\":\"/search$\",\"delay\":3}"));
			en.type->deliver(en.opts, g, key, 500, &res);
			json_decref(g);
			assert_int_equal(res.outcome, USHER_DELIVERY_RETRY);
			assert_true(usher_mono_ms() - t0 < 2500);
			assert_non_null(strstr(res.err.msg, "jira"));
		}
		entry_free(&en);
	}
}

/* An incident's operator events (incidents.tickets): comments on the open
 * ticket; a resolution by hand resolves it; nothing is created for them. */
static enum usher_delivery_outcome deliver_event(struct entry *en, const char *key,
						 const char *kind, const char *author,
						 const char *text,
						 struct usher_delivery_result *res)
{
	json_t *g = group(key, strcmp(kind, "resolved") == 0 ? "resolved" : "firing");

	json_object_set_new(g, "usherEvent",
			    json_pack("{s:i, s:s, s:s, s:s}", "incident", 7, "kind", kind, "author",
				      author, "text", text));
	en->type->deliver(en->opts, g, key, 10000, res);
	json_decref(g);
	return res->outcome;
}

/* Whether the newest comment of the group's ticket contains want. */
static bool last_comment_has(const char *type, const char *key, const char *want)
{
	json_t *st = ctl("/state", NULL), *t;
	char hash[65], tag[96];
	const char *k, *list, *field, *mark;
	bool found = false;

	usher_incident_group_hash(key, hash);
	if (strncmp(type, "jira", 4) == 0) {
		snprintf(tag, sizeof(tag), "ALERT{%s}", hash);
		list = "jira", field = "comments", mark = "labels";
	} else if (strcmp(type, "github") == 0) {
		snprintf(tag, sizeof(tag), "alert-%.40s", hash);
		list = "github", field = "comments", mark = "labels";
	} else if (strcmp(type, "zendesk") == 0) {
		snprintf(tag, sizeof(tag), "alert_%s", hash);
		list = "zendesk", field = "comments", mark = "tags";
	} else {
		snprintf(tag, sizeof(tag), "usher:%s", hash);
		list = "servicenow", field = "work_notes", mark = NULL;
	}
	json_object_foreach(json_object_get(st, list), k, t)
	{
		const json_t *c = json_object_get(t, field);
		const char *last = json_string_value(json_array_get(c, json_array_size(c) - 1));
		bool mine = mark ? has_str(json_object_get(t, mark), tag)
				 : strcmp(json_string_value(json_object_get(t, "correlation_id")),
					  tag) == 0;

		if (mine && last && strstr(last, want))
			found = true;
	}
	json_decref(st);
	return found;
}

static void test_incident_events(void **state)
{
	size_t v;

	(void)state;
	for (v = 0; v < sizeof(vendors) / sizeof(vendors[0]); v++) {
		const char *t = vendors[v].type;
		struct usher_delivery_result res;
		struct entry en;
		char key[64];

		snprintf(key, sizeof(key), "{}:{alertname=\"Events\",vendor=\"%s\"}", t);
		entry_load(&en, vendors[v].name, vendors[v].yaml);
		/* no ticket yet: an ack creates none */
		assert_int_equal(deliver_event(&en, key, "acknowledged", "alice", "", &res),
				 USHER_DELIVERY_OK);
		EXPECT(t, key, 0, false, 0);
		deliver_ok(&en, key, "firing");
		assert_int_equal(deliver_event(&en, key, "acknowledged", "alice", "", &res),
				 USHER_DELIVERY_OK);
		EXPECT(t, key, 1, false, 1);
		if (!last_comment_has(t, key, "Incident 7 acknowledged by alice."))
			fail_msg("%s: no ack comment", t);
		assert_int_equal(deliver_event(&en, key, "note", "bob", "rolled back", &res),
				 USHER_DELIVERY_OK);
		EXPECT(t, key, 1, false, 2);
		if (!last_comment_has(t, key, "Note by bob on incident 7: rolled back"))
			fail_msg("%s: no note comment", t);
		assert_int_equal(deliver_event(&en, key, "resolved", "carol", "", &res),
				 USHER_DELIVERY_OK);
		EXPECT(t, key, 1, true, 3);
		if (!last_comment_has(t, key, "Incident 7 resolved by carol."))
			fail_msg("%s: no resolution comment", t);
		/* a resolved ticket takes no more acks */
		assert_int_equal(deliver_event(&en, key, "acknowledged", "dave", "", &res),
				 USHER_DELIVERY_OK);
		EXPECT(t, key, 1, true, 3);
		entry_free(&en);
	}
}

static void test_zendesk_closed_means_new(void **state)
{
	struct entry en;
	json_t *st;
	const char *k;
	json_t *tk;
	const char *key = "{}:{alertname=\"Closed\"}";

	(void)state;
	entry_load(&en, "zendesk", vendors[3].yaml);
	deliver_ok(&en, key, "firing");
	deliver_ok(&en, key, "resolved");
	st = ctl("/state", NULL);
	json_object_foreach(json_object_get(st, "zendesk"), k, tk)
	{
		char body[64];

		if (json_array_size(json_object_get(tk, "comments")) == 2) {
			snprintf(body, sizeof(body), "{\"id\": %s}", k);
			json_decref(ctl("/zendesk-close", body));
		}
	}
	json_decref(st);
	deliver_ok(&en, key, "firing");
	EXPECT("zendesk", key, 2, false, 0);
	entry_free(&en);
}

static void test_generic(void **state)
{
	struct entry en;
	json_t *st, *gen, *first, *second;
	char hash[65];
	const char *key = "{}:{alertname=\"Generic\"}";

	(void)state;
	entry_load(&en, "ticket",
		   "url: %1$s/ticket/open\nresolve_url: %1$s/ticket/close\nresolve_method: PUT\n"
		   "username: u\npassword: p\nheaders: {X-Team: sre}\n");
	deliver_ok(&en, key, "firing");
	deliver_ok(&en, key, "resolved");
	entry_free(&en);
	st = ctl("/state", NULL);
	gen = json_object_get(st, "generic");
	assert_int_equal(json_array_size(gen), 2);
	first = json_array_get(gen, 0);
	second = json_array_get(gen, 1);
	usher_incident_group_hash(key, hash);
	assert_string_equal(json_string_value(json_object_get(first, "path")), "/open");
	assert_string_equal(json_string_value(json_object_get(second, "method")), "PUT");
	assert_string_equal(json_string_value(json_object_get(second, "path")), "/close");
	assert_string_equal(json_string_value(json_object_get(first, "x_team")), "sre");
	assert_string_equal(json_string_value(json_object_get(first, "authorization")),
			    "Basic dTpw");
	first = json_object_get(first, "body");
	assert_string_equal(json_string_value(json_object_get(first, "ticketKey")), hash);
	assert_string_equal(json_string_value(json_object_get(first, "action")),
			    "create_or_update");
	assert_non_null(strstr(json_string_value(json_object_get(first, "title")), "FIRING"));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(first, "notification"), "groupKey")),
	    key);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(second, "body"), "action")),
	    "resolve");
	json_decref(st);
}

static void test_config_errors(void **state)
{
	static const struct {
		const char *type, *yaml, *err;
	} cases[] = {
	    {"jira", "api_url: ftp://x\nproject: P\nissue_type: Bug\ntoken: t\n", "api_url"},
	    {"jira", "api_url: https://x\nproject: P\nissue_type: Bug\n", "credentials"},
	    {"jira", "api_url: https://x\nproject: P\nissue_type: Bug\ntoken: t\napi_version: 4\n",
	     "api_version"},
	    {"jira",
	     "api_url: https://x\nproject: P\nissue_type: Bug\ntoken: t\n"
	     "summary: \"{{ .Nope\"\n",
	     "summary"},
	    {"github", "repository: nope\ntoken: t\n", "OWNER/REPO"},
	    {"zendesk", "api_url: https://x\nemail: e\napi_token: t\npriority: asap\n", "priority"},
	    {"servicenow", "api_url: https://x\nusername: u\npassword: p\nurgency: \"5\"\n",
	     "urgency"},
	    {"ticket", "url: x\n", "url"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct usher_integration_type *t = usher_integration_type_find(cases[i].type);
		struct usher_arena *a = usher_arena_new();
		struct usher_diags diags;
		struct usher_cfgctx ctx = {.file = "t.yml", .arena = a, .diags = &diags};
		struct usher_ynode *root = NULL;
		void *opts = usher_arena_zalloc(a, t->opts_size);
		char first[512];
		bool ok;

		usher_diags_init(&diags);
		assert_int_equal(usher_yaml_parse(a, "t.yml", cases[i].yaml, strlen(cases[i].yaml),
						  &root, &diags),
				 USHER_OK);
		ok = usher_opts_apply1(&ctx, t->options, opts, root) == USHER_OK &&
		     t->check(&ctx, opts, root) == USHER_OK;
		usher_diags_first(&diags, first, sizeof(first));
		if (ok || !strstr(first, cases[i].err))
			fail_msg("case %zu: want an error about %s, got %s", i, cases[i].err,
				 ok ? "none" : first);
		usher_diags_free(&diags);
		if (t->free)
			t->free(opts);
		usher_arena_free(a);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_errors), cmocka_unit_test(test_lifecycle),
	    cmocka_unit_test(test_failures),      cmocka_unit_test(test_zendesk_closed_means_new),
	    cmocka_unit_test(test_generic),       cmocka_unit_test(test_incident_events),
	};
	int rc;

	(void)argc;
	mock = getenv("USHER_TICKET_MOCK");
	control = getenv("USHER_TICKET_MOCK_CONTROL");
	if (!mock || !control) {
		char *const wrap[] = {(char *)"python3", (char *)"-B",
				      (char *)USHER_SOURCE_DIR "/tests/integration/ticketmocks.py",
				      argv[0], NULL};

		execvp("python3", wrap);
		perror("test_tickets: cannot run python3 ticketmocks.py");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
