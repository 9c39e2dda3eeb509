/* usher silence add|list|expire: silences on usherd through its
 * Alertmanager API v2 (what amtool's `silence` does). */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apiclient.h"
#include "cli.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "notify/alert.h"
#include "notify/matchers.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usher silence add MATCHER... --comment TEXT [--duration D] [--author A]\n"
		"       usher silence list [--expired] [MATCHER...]\n"
		"       usher silence expire ID...\n"
		"\n"
		"Silences mute the notifications of the alerts their matchers match\n"
		"(alertname=CheckoutDown 'instance=~\"web-[0-9]+\"'), on usherd's API v2.\n"
		"\n"
		"options:\n"
		"  -d, --duration D     how long the silence lasts (default 1h; 30m, 2h, 1d)\n"
		"  -m, --comment TEXT   why (required for add)\n"
		"  -a, --author NAME    who (default: $USER)\n"
		"  -e, --expired        list: include expired silences\n"
		"  -u, --url URL        usherd's address (default: $USHER_URL, else the\n"
		"                       server.listen of the configuration)\n"
		"  -c, --config FILE    configuration to read server.listen from\n"
		"      --json           print the API's JSON\n"
		"  -h, --help           show this help\n"
		"\n"
		"exit status: 0 success, 1 usherd unreachable or refused, 2 invalid usage\n");
}

struct opts {
	const char *url, *config, *comment, *author, *duration;
	bool json, expired;
};

static int fail(enum usher_err rc, const struct usher_error *err)
{
	fprintf(stderr, "usher silence: %s\n", usher_error_msg(err, rc));
	return rc == USHER_ERR_INVALID ? USHER_EXIT_INVALID : USHER_EXIT_FAILURE;
}

static const char *default_author(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u && *u)
		return u;
	pw = getpwuid(getuid());
	return pw && pw->pw_name ? pw->pw_name : "usher";
}

static int cmd_add(struct usher_api *api, const struct opts *o, int n, char **args)
{
	struct usher_am_matchers ms = {0};
	struct usher_error err;
	json_t *body, *arr, *out = NULL;
	char starts[48], ends[48];
	int64_t dur_ms, now = usher_now_ns();
	enum usher_err rc;
	size_t i;
	int k;

	usher_error_clear(&err);
	if (n == 0) {
		fprintf(stderr, "usher silence add: give at least one MATCHER (alertname=Name)\n");
		return USHER_EXIT_INVALID;
	}
	if (!o->comment || !*o->comment) {
		fprintf(stderr, "usher silence add: --comment is required: say why\n");
		return USHER_EXIT_INVALID;
	}
	if (usher_duration_parse(o->duration ? o->duration : "1h", &dur_ms) || dur_ms <= 0) {
		fprintf(stderr, "usher silence add: invalid --duration \"%s\" (e.g. 30m, 2h, 1d)\n",
			o->duration);
		return USHER_EXIT_INVALID;
	}
	for (k = 0; k < n; k++)
		if (usher_am_matchers_parse(&ms, args[k], &err)) {
			usher_am_matchers_free(&ms);
			fprintf(stderr, "usher silence add: %s\n", err.msg);
			return USHER_EXIT_INVALID;
		}
	arr = json_array();
	for (i = 0; i < ms.n; i++) {
		const struct usher_am_matcher *m = &ms.v[i];

		json_array_append_new(
		    arr,
		    json_pack("{s:s, s:s, s:b, s:b}", "name", m->name, "value", m->value, "isRegex",
			      m->type == USHER_AM_MATCH_RE || m->type == USHER_AM_MATCH_NRE,
			      "isEqual",
			      m->type == USHER_AM_MATCH_EQ || m->type == USHER_AM_MATCH_RE));
	}
	usher_am_matchers_free(&ms);
	usher_time_format_nano(now, starts, sizeof(starts));
	usher_time_format_nano(now + dur_ms * 1000000LL, ends, sizeof(ends));
	body = json_pack("{s:o, s:s, s:s, s:s, s:s}", "matchers", arr, "startsAt", starts, "endsAt",
			 ends, "createdBy", o->author ? o->author : default_author(), "comment",
			 o->comment);
	rc = usher_api_request(api, "POST", "/api/v2/silences", body, &out, &err);
	json_decref(body);
	if (rc)
		return fail(rc, &err);
	if (o->json)
		usher_api_print_json(stdout, out);
	else
		printf("%s\n", json_string_value(json_object_get(out, "silenceID")) ?: "");
	json_decref(out);
	return USHER_EXIT_OK;
}

static void print_silences(const json_t *list, bool expired)
{
	size_t i, shown = 0;
	json_t *s;

	json_array_foreach(list, i, s)
	{
		const char *state =
		    json_string_value(json_object_get(json_object_get(s, "status"), "state"));
		json_t *ms = json_object_get(s, "matchers"), *m;
		struct usher_buf b;
		size_t j;

		if (!expired && state && strcmp(state, "expired") == 0)
			continue;
		if (shown++ == 0)
			printf("%-36s %-8s %-20s %-12s %-30s %s\n", "ID", "STATE", "ENDS AT",
			       "AUTHOR", "MATCHERS", "COMMENT");
		usher_buf_init(&b, 1 << 20);
		json_array_foreach(ms, j, m)
		{
			bool re = json_is_true(json_object_get(m, "isRegex"));
			json_t *eqj = json_object_get(m, "isEqual");
			bool eq = !eqj || json_is_true(eqj);

			usher_buf_addf(&b, "%s%s%s%s", b.len ? " " : "",
				       json_string_value(json_object_get(m, "name")),
				       re ? (eq ? "=~" : "!~") : (eq ? "=" : "!="),
				       json_string_value(json_object_get(m, "value")));
		}
		printf("%-36s %-8s %-20.19s %-12s %-30s %s\n",
		       json_string_value(json_object_get(s, "id")) ?: "", state ? state : "",
		       json_string_value(json_object_get(s, "endsAt")) ?: "",
		       json_string_value(json_object_get(s, "createdBy")) ?: "", usher_buf_str(&b),
		       json_string_value(json_object_get(s, "comment")) ?: "");
		usher_buf_free(&b);
	}
	if (!shown)
		printf("no silences\n");
}

static int cmd_list(struct usher_api *api, const struct opts *o, int n, char **args)
{
	struct usher_error err;
	struct usher_buf path;
	json_t *out = NULL;
	enum usher_err rc;
	int k;

	usher_error_clear(&err);
	usher_buf_init(&path, 1 << 20);
	usher_buf_addstr(&path, "/api/v2/silences");
	for (k = 0; k < n; k++) {
		struct usher_am_matchers ms = {0};
		char *e;

		if (usher_am_matchers_parse(&ms, args[k], &err)) {
			usher_buf_free(&path);
			fprintf(stderr, "usher silence list: %s\n", err.msg);
			return USHER_EXIT_INVALID;
		}
		usher_am_matchers_free(&ms);
		e = usher_api_escape(args[k]);
		usher_buf_addf(&path, "%cfilter=%s", k ? '&' : '?', e);
		free(e);
	}
	rc = usher_api_request(api, "GET", usher_buf_str(&path), NULL, &out, &err);
	usher_buf_free(&path);
	if (rc)
		return fail(rc, &err);
	if (o->json) {
		json_t *filtered = json_array(), *s;
		size_t i;

		json_array_foreach(out, i, s)
		{
			const char *st = json_string_value(
			    json_object_get(json_object_get(s, "status"), "state"));

			if (o->expired || !st || strcmp(st, "expired"))
				json_array_append(filtered, s);
		}
		usher_api_print_json(stdout, filtered);
		json_decref(filtered);
	} else {
		print_silences(out, o->expired);
	}
	json_decref(out);
	return USHER_EXIT_OK;
}

static int cmd_expire(struct usher_api *api, const struct opts *o, int n, char **args)
{
	int k, status = USHER_EXIT_OK;
	json_t *done = json_array();

	if (n == 0) {
		fprintf(stderr,
			"usher silence expire: give the ID of a silence (usher silence list)\n");
		json_decref(done);
		return USHER_EXIT_INVALID;
	}
	for (k = 0; k < n; k++) {
		struct usher_error err;
		char *e = usher_api_escape(args[k]), path[256];
		enum usher_err rc;

		usher_error_clear(&err);
		snprintf(path, sizeof(path), "/api/v2/silence/%.200s", e);
		free(e);
		rc = usher_api_request(api, "DELETE", path, NULL, NULL, &err);
		if (rc) {
			status = fail(rc, &err);
			continue;
		}
		json_array_append_new(done, json_string(args[k]));
		if (!o->json)
			printf("expired %s\n", args[k]);
	}
	if (o->json)
		usher_api_print_json(stdout, json_pack("{s:O}", "expired", done));
	json_decref(done);
	return status;
}

int usher_cmd_silence(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"duration", required_argument, NULL, 'd'},
	    {"comment", required_argument, NULL, 'm'},
	    {"author", required_argument, NULL, 'a'},
	    {"expired", no_argument, NULL, 'e'},
	    {"url", required_argument, NULL, 'u'},
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	struct usher_api api;
	struct usher_error err;
	const char *sub;
	int opt;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? USHER_EXIT_INVALID : USHER_EXIT_OK;
	}
	sub = argv[1];
	if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "expire") &&
	    strcmp(sub, "query")) {
		fprintf(stderr, "usher silence: unknown sub-command \"%s\" (add, list, expire)\n\n",
			sub);
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	argc--;
	argv++;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "d:m:a:eu:c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': o.duration = optarg; break;
		case 'm': o.comment = optarg; break;
		case 'a': o.author = optarg; break;
		case 'e': o.expired = true; break;
		case 'u': o.url = optarg; break;
		case 'c': o.config = optarg; break;
		case 'j': o.json = true; break;
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	usher_error_clear(&err);
	if (usher_api_init(&api, o.url, o.config, &err)) {
		fprintf(stderr, "usher silence: %s\n", err.msg);
		return USHER_EXIT_INVALID;
	}
	if (strcmp(sub, "add") == 0)
		return cmd_add(&api, &o, argc - optind, argv + optind);
	if (strcmp(sub, "expire") == 0)
		return cmd_expire(&api, &o, argc - optind, argv + optind);
	return cmd_list(&api, &o, argc - optind, argv + optind);
}
