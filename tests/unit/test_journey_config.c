/* Unit tests of the journey probe's configuration: a good journey loads,
 * and each mistake gives the exact file:line:col message `usher
 * check-config` prints (unknown {{variables}}, variables used before the
 * step that extracts them, duplicate step names, ...). Also the pure
 * helpers: body redaction and URL escaping of substituted values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "probes/journey.h"

/* Loads text; returns every diagnostic, one per line, or "" when valid. */
static const char *load(const char *text)
{
	static char all[8192];
	struct usher_config *cfg = NULL;
	struct usher_diags d;
	size_t i, off = 0;

	usher_diags_init(&d);
	usher_config_load_text("j.yml", text, strlen(text), &cfg, &d);
	all[0] = '\0';
	for (i = 0; i < d.n; i++) {
		struct usher_diags single = {.v = d.v + i, .n = 1};
		char one[2048];

		usher_diags_first(&single, one, sizeof(one));
		off += (size_t)snprintf(all + off, sizeof(all) - off, "%s%s", off ? "\n" : "", one);
	}
	usher_diags_free(&d);
	assert_true((cfg == NULL) == (all[0] != '\0'));
	if (cfg) {
		assert_ptr_equal(cfg->probes[0].type, &usher_probe_journey);
		usher_config_free(cfg);
	}
	return all;
}

#define HEAD                                                                                       \
	"probes:\n"                                                                                \
	"  - name: j\n"                                                                            \
	"    type: journey\n"                                                                      \
	"    interval: 10s\n"                                                                      \
	"    timeout: 8s\n"                                                                        \
	"    base_url: http://127.0.0.1:8089\n"

static void test_good_journey_loads(void **state)
{
	(void)state;
	setenv("JOURNEY_UNIT_KEY", "k", 1);
	assert_string_equal(
	    load(HEAD "    variables: {q: swan, key: \"${env:JOURNEY_UNIT_KEY}\", "
		      "both: \"{{q}}-{{uuid}}\"}\n"
		      "    headers: {X-Key: \"{{key}}\", Authorization: \"Bearer {{token}}\"}\n"
		      "    redact: [/card/number, /token]\n"
		      "    steps:\n"
		      "      - name: login\n"
		      "        request: {method: POST, url: /login, body: \"k={{key}}\"}\n"
		      "        extract: {token: {json: /token, secret: true}}\n"
		      "      - name: search\n"
		      "        request: {url: \"/api/events?q={{q}}&t={{now_unix}}\"}\n"
		      "        expect: {valid_status_codes: [200], json: [{pointer: /events, "
		      "type: array}]}\n"
		      "        extract: {id: {json: /events/0/id}, loc: {header: Location}, "
		      "r: {regex: 'id=(\\d+)'}}\n"
		      "      - name: hold\n"
		      "        timeout: 2s\n"
		      "        request: {method: POST, url: \"http://other:1/h\", json: {id: "
		      "\"{{id}}\", n: 3, ok: true, none: null, tags: [\"{{r}}\", x]}}\n"
		      "      - name: release\n"
		      "        always: true\n"
		      "        request: {method: DELETE, url: \"/h/{{id}}\"}\n"),
	    "");
}

struct bad_case {
	const char *name;
	const char *yaml; /* after HEAD */
	const char *want; /* the whole diagnostic output */
};

static const struct bad_case bad_cases[] = {
    {"unknown variable, exact column",
     "    steps:\n"
     "      - name: a\n"
     "        request:\n"
     "          url: /api/{{nope}}\n",
     "j.yml:10:21: unknown variable {{nope}}: not a built-in (uuid, now_unix, random_int), not in "
     "variables, not extracted by any step"},
    {"unknown variable in a quoted scalar",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: \"/x?a={{ missing }}\"}\n",
     "j.yml:9:30: unknown variable {{missing}}: not a built-in (uuid, now_unix, random_int), not "
     "in variables, not extracted by any step"},
    {"variable extracted by a later step",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: \"/h/{{id}}\"}\n"
     "      - name: b\n"
     "        request: {url: /x}\n"
     "        extract: {id: {json: /id}}\n",
     "j.yml:9:28: {{id}} is extracted by step \"b\", which runs after this one"},
    {"variable extracted by the same step",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: \"/h/{{id}}\"}\n"
     "        extract: {id: {json: /id}}\n",
     "j.yml:9:28: {{id}} is extracted by this step (\"a\") itself: it has no value yet when the "
     "request is sent"},
    {"duplicate step names",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n"
     "      - name: a\n"
     "        request: {url: /y}\n",
     "j.yml:10:15: steps: the name \"a\" is used by an earlier step: step names must be unique"},
    {"no steps", "    steps: []\n", "j.yml:7:12: steps: a journey needs at least one step"},
    {"relative url without base_url",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n",
     NULL /* built below without base_url */},
    {"body and json",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x, method: POST, body: b, json: {a: 1}}\n",
     "j.yml:9:57: set body or json, not both"},
    {"invalid variable name",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: \"/x/{{9a}}\"}\n",
     "j.yml:9:28: invalid variable reference {{9a}}: a name is letters, digits and _, not starting "
     "with a digit"},
    {"unterminated reference",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: \"/x/{{id\"}\n",
     "j.yml:9:28: unterminated {{: write a variable as {{name}}"},
    {"two ways to extract",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n"
     "        extract: {id: {json: /id, header: X-Id}}\n",
     "j.yml:10:23: extract: id: set exactly one of json, header, regex"},
    {"extracting into a built-in",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n"
     "        extract: {uuid: {json: /id}}\n",
     "j.yml:10:19: extract: uuid is already a built-in variable"},
    {"a step longer than the journey",
     "    steps:\n"
     "      - name: a\n"
     "        timeout: 9s\n"
     "        request: {url: /x}\n",
     "j.yml:9:18: step timeout 9s is longer than the journey's timeout 8s"},
    {"cleanup_timeout not shorter than the timeout",
     "    cleanup_timeout: 8s\n"
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n",
     "j.yml:7:22: cleanup_timeout must be shorter than the timeout"},
    {"a key expect does not know",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n"
     "        expect: {url: /y}\n",
     "j.yml:10:18: unknown key \"url\""},
    {"a bad regex in expect",
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n"
     "        expect: {fail_if_body_matches_regexp: ['(']}\n",
     NULL /* checked by prefix below */},
    {"a bad JSON Pointer in redact",
     "    redact: [token]\n"
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n",
     NULL},
    {"an unset secret",
     "    headers: {X-Key: \"${env:JOURNEY_UNIT_UNSET}\"}\n"
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n",
     "j.yml:7:22: environment variable JOURNEY_UNIT_UNSET is not set"},
    {"a variable using a later one",
     "    variables: {a: \"{{b}}\", b: x}\n"
     "    steps:\n"
     "      - name: a\n"
     "        request: {url: /x}\n",
     "j.yml:7:21: unknown variable {{b}}: not a built-in (uuid, now_unix, random_int), not in "
     "variables, not extracted by any step"},
};

static void test_bad_configs(void **state)
{
	char text[4096];
	size_t i;
	int bad = 0;

	(void)state;
	unsetenv("JOURNEY_UNIT_UNSET");
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		const char *got;

		snprintf(text, sizeof(text), HEAD "%s", c->yaml);
		if (strstr(c->name, "relative url")) {
			/* the same journey without its base_url */
			char *b = strstr(text, "    base_url:");
			char *e = strchr(b, '\n') + 1;

			memmove(b, e, strlen(e) + 1);
			got = load(text);
			printf("# %s: %s\n", c->name, got);
			assert_string_equal(got,
					    "j.yml:8:24: url \"/x\" is relative, but the journey "
					    "has no base_url");
			continue;
		}
		got = load(text);
		printf("# %s: %s\n", c->name, got);
		if (strstr(c->name, "bad regex")) {
			assert_non_null(strstr(got, "j.yml:10:48: invalid regexp"));
			continue;
		}
		if (strstr(c->name, "redact")) {
			assert_non_null(
			    strstr(got, "j.yml:7:14: redact: invalid JSON Pointer \"token\""));
			continue;
		}
		if (strcmp(got, c->want) != 0) {
			printf("# MISMATCH %s\n#  got:  %s\n#  want: %s\n", c->name, got, c->want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_redact(void **state)
{
	struct usher_strlist ptrs;
	const char *v[] = {"/card/number", "/token", "/items/1", "/missing/x", "/a~1b"};
	const char *secrets[] = {"hunter22", "ab", NULL};
	const char *doc = "{\"card\": {\"number\": \"4111\", \"cvc\": 1}, \"token\": \"t\", "
			  "\"items\": [1, 2, 3], \"a/b\": 5, \"note\": \"pw hunter22 ab\"}";
	const char *html = "<html>hunter22\x01 and more text</html>";
	struct usher_buf out;

	(void)state;
	ptrs.n = sizeof(v) / sizeof(v[0]);
	ptrs.v = v;
	usher_buf_init(&out, 4096);
	usher_journey_redact(doc, strlen(doc), &ptrs, secrets, 1024, &out);
	assert_string_equal(
	    usher_buf_str(&out),
	    "{\"card\":{\"number\":\"***\",\"cvc\":1},\"token\":\"***\",\"items\":[1,"
	    "\"***\",3],\"a/b\":\"***\",\"note\":\"pw *** ab\"}");
	/* not JSON: as received, secrets masked, cut with ... */
	usher_buf_reset(&out);
	usher_journey_redact(html, strlen(html), &ptrs, secrets, 20, &out);
	assert_string_equal(usher_buf_str(&out), "<html>***? and more ...");
	usher_buf_reset(&out);
	usher_journey_redact(NULL, 0, &ptrs, NULL, 20, &out);
	assert_string_equal(usher_buf_str(&out), "");
	usher_buf_free(&out);
}

static void test_url_escape(void **state)
{
	const char *s = "Swan Lake/\"x\"?a=1&b=%20\xc3\xa9";
	struct usher_buf out;

	(void)state;
	usher_buf_init(&out, 256);
	assert_int_equal(usher_journey_url_escape(&out, s, strlen(s)), USHER_OK);
	assert_string_equal(usher_buf_str(&out), "Swan%20Lake/%22x%22?a=1&b=%20%C3%A9");
	usher_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_journey_loads),
	    cmocka_unit_test(test_bad_configs),
	    cmocka_unit_test(test_redact),
	    cmocka_unit_test(test_url_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
