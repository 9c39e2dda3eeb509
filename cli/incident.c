/* usher incident list|show|ack|note|resolve|report: the on-call engineer's
 * view of incidents, through usherd's /api/v1/incidents. */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apiclient.h"
#include "cli.h"
#include "core/buf.h"
#include "notify/incident.h"

struct opts {
	const char *url, *config, *status, *author, *output;
	long limit;
	bool json;
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: usher incident COMMAND [options]\n"
	    "\n"
	    "commands:\n"
	    "  list [--status S] [--limit N]  incidents, newest first (S: open, acknowledged,\n"
	    "                                 resolved)\n"
	    "  show ID                        one incident: its alerts and timeline\n"
	    "  ack ID                         acknowledge: you are on it\n"
	    "  note ID TEXT                   add a note to the timeline\n"
	    "  resolve ID                     resolve (it reopens if the alerts fire again\n"
	    "                                 within incidents.reopen_window)\n"
	    "  report ID [-o FILE]            a Markdown postmortem draft: timeline, impact\n"
	    "                                 window, alerts, notifications, acks\n"
	    "\n"
	    "options:\n"
	    "      --url URL        usherd's address (default: $USHER_URL, else server.listen\n"
	    "                       of --config, $USHER_CONFIG or %s)\n"
	    "  -c, --config FILE    the configuration that names usherd's address\n"
	    "      --author NAME    who acts (ack, note, resolve; default: $USHER_AUTHOR, else\n"
	    "                       your login name)\n"
	    "  -o, --output FILE    report: write the Markdown to FILE instead of stdout\n"
	    "      --json           print the API's JSON instead of text\n"
	    "  -h, --help           show this help\n"
	    "\n"
	    "exit status: 0 success, 1 failure (usherd unreachable, no such incident,\n"
	    "an ack of a resolved incident), 2 invalid usage\n",
	    USHER_API_DEFAULT_CONFIG);
}

static const char *default_author(void)
{
	const char *a = getenv("USHER_AUTHOR");
	struct passwd *pw;

	if (a && *a)
		return a;
	a = getenv("USER");
	if (a && *a)
		return a;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : NULL;
}

static const char *s(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

/* "2026-11-28T06:00:00.123Z" as "2026-11-28 06:00:00Z" for tables. */
static const char *short_time(const char *t, char *buf, size_t len)
{
	if (strlen(t) < 19)
		return *t ? t : "-";
	snprintf(buf, len, "%.10s %.8sZ", t, t + 11);
	return buf;
}

static void print_list(const json_t *arr)
{
	const json_t *o;
	size_t i;
	char t[40];

	if (!json_array_size(arr)) {
		printf("no incidents\n");
		return;
	}
	printf("%-6s %-13s %-9s %-21s %-14s %s\n", "ID", "STATUS", "SEVERITY", "OPENED", "SERVICE",
	       "TITLE");
	json_array_foreach(arr, i, o)
	{
		printf("%-6lld %-13s %-9s %-21s %-14s %s\n",
		       (long long)json_integer_value(json_object_get(o, "id")), s(o, "status"),
		       *s(o, "severity") ? s(o, "severity") : "-",
		       short_time(s(o, "openedAt"), t, sizeof(t)),
		       *s(o, "service") ? s(o, "service") : "-", s(o, "title"));
	}
}

static void print_incident(const json_t *o)
{
	const json_t *a, *e;
	size_t i;
	char t[40];
	const char *k;
	json_t *v;

	printf("incident %lld: %s\n", (long long)json_integer_value(json_object_get(o, "id")),
	       s(o, "title"));
	printf("  status:       %s\n", s(o, "status"));
	printf("  severity:     %s\n", *s(o, "severity") ? s(o, "severity") : "-");
	printf("  service:      %s\n", *s(o, "service") ? s(o, "service") : "-");
	printf("  group:        %s\n", s(o, "groupKey"));
	printf("  opened:       %s\n", s(o, "openedAt"));
	if (*s(o, "reopenedAt"))
		printf("  reopened:     %s (%lld times)\n", s(o, "reopenedAt"),
		       (long long)json_integer_value(json_object_get(o, "reopenCount")));
	if (*s(o, "acknowledgedAt"))
		printf("  acknowledged: %s by %s\n", s(o, "acknowledgedAt"),
		       s(o, "acknowledgedBy"));
	if (*s(o, "resolvedAt"))
		printf("  resolved:     %s by %s\n", s(o, "resolvedAt"), s(o, "resolvedBy"));
	printf("\nalerts (%zu):\n", json_array_size(json_object_get(o, "alerts")));
	json_array_foreach(json_object_get(o, "alerts"), i, a)
	{
		bool first = true;

		printf("  %-8s %s{", s(a, "status"), s(json_object_get(a, "labels"), "alertname"));
		json_object_foreach(json_object_get(a, "labels"), k, v)
		{
			if (strcmp(k, "alertname") == 0)
				continue;
			printf("%s%s=\"%s\"", first ? "" : ", ", k,
			       json_string_value(v) ? json_string_value(v) : "");
			first = false;
		}
		printf("} since %s\n", short_time(s(a, "startsAt"), t, sizeof(t)));
	}
	printf("\ntimeline:\n");
	json_array_foreach(json_object_get(o, "timeline"), i, e)
	    printf("  %s  %-13s %-10s %s\n", short_time(s(e, "at"), t, sizeof(t)), s(e, "kind"),
		   s(e, "author"), s(e, "text"));
}

static int fail(const struct usher_error *err, enum usher_err rc)
{
	fprintf(stderr, "usher incident: %s\n", usher_error_msg(err, rc));
	/* a --config that cannot be read is an invalid configuration */
	return rc == USHER_ERR_INVALID ? USHER_EXIT_INVALID : USHER_EXIT_FAILURE;
}

static bool parse_id(const char *arg, long long *id)
{
	char *end;

	if (!arg || !*arg)
		return false;
	*id = strtoll(arg, &end, 10);
	return *end == '\0' && *id > 0;
}

int usher_cmd_incident(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"config", required_argument, NULL, 'c'},
	    {"status", required_argument, NULL, 's'},
	    {"limit", required_argument, NULL, 'n'},
	    {"author", required_argument, NULL, 'a'},
	    {"output", required_argument, NULL, 'o'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct opts o = {0};
	struct usher_api api;
	struct usher_error err;
	enum usher_err rc;
	const char *cmd;
	char path[256];
	long long id = 0;
	json_t *res = NULL, *body = NULL;
	int opt, nargs, status = USHER_EXIT_OK;

	usher_error_clear(&err);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u': o.url = optarg; break;
		case 'c': o.config = optarg; break;
		case 's': o.status = optarg; break;
		case 'a': o.author = optarg; break;
		case 'o': o.output = optarg; break;
		case 'j': o.json = true; break;
		case 'n': {
			char *end;

			o.limit = strtol(optarg, &end, 10);
			if (*end || o.limit <= 0) {
				fprintf(stderr,
					"usher incident: --limit must be a positive number\n");
				return USHER_EXIT_INVALID;
			}
			break;
		}
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	cmd = argv[optind];
	nargs = argc - optind - 1;
	if (strcmp(cmd, "list") == 0) {
		if (nargs != 0)
			goto bad_usage;
	} else if (strcmp(cmd, "show") == 0 || strcmp(cmd, "ack") == 0 ||
		   strcmp(cmd, "resolve") == 0 || strcmp(cmd, "report") == 0) {
		if (nargs != 1 || !parse_id(argv[optind + 1], &id))
			goto bad_usage;
	} else if (strcmp(cmd, "note") == 0) {
		if (nargs != 2 || !parse_id(argv[optind + 1], &id) || !*argv[optind + 2])
			goto bad_usage;
	} else {
		fprintf(stderr, "usher incident: unknown command \"%s\"\n\n", cmd);
		usage(stderr);
		return USHER_EXIT_INVALID;
	}
	if (o.status && strcmp(cmd, "list") != 0) {
		fprintf(stderr, "usher incident: --status goes with list\n");
		return USHER_EXIT_INVALID;
	}
	if (o.status) {
		enum usher_incident_status st;

		if (usher_incident_status_parse(o.status, &st)) {
			fprintf(stderr,
				"usher incident: --status %s: use open, acknowledged or "
				"resolved\n",
				o.status);
			return USHER_EXIT_INVALID;
		}
	}
	rc = usher_api_init(&api, o.url, o.config, &err);
	if (rc)
		return fail(&err, rc);

	if (strcmp(cmd, "list") == 0) {
		snprintf(path, sizeof(path), "/api/v1/incidents%s%s%s", o.status ? "?status=" : "",
			 o.status ? o.status : "",
			 o.limit ? (o.status ? "&limit=" : "?limit=") : "");
		if (o.limit) {
			size_t len = strlen(path);

			snprintf(path + len, sizeof(path) - len, "%ld", o.limit);
		}
		rc = usher_api_request(&api, "GET", path, NULL, &res, &err);
		if (rc)
			goto out;
		if (o.json)
			usher_api_print_json(stdout, res);
		else
			print_list(res);
	} else if (strcmp(cmd, "show") == 0 || strcmp(cmd, "report") == 0) {
		snprintf(path, sizeof(path), "/api/v1/incidents/%lld", id);
		rc = usher_api_request(&api, "GET", path, NULL, &res, &err);
		if (rc)
			goto out;
		if (strcmp(cmd, "show") == 0) {
			if (o.json)
				usher_api_print_json(stdout, res);
			else
				print_incident(res);
		} else {
			struct usher_buf md;
			FILE *f = stdout;

			usher_buf_init(&md, 64u << 20);
			rc = usher_incident_report(res, &md);
			if (rc) {
				usher_buf_free(&md);
				usher_fail(&err, rc,
					   "usherd's answer for incident %lld is not an incident",
					   id);
				goto out;
			}
			if (o.output && !(f = fopen(o.output, "w"))) {
				usher_buf_free(&md);
				rc =
				    usher_fail(&err, USHER_ERR_IO, "cannot write %s: %m", o.output);
				goto out;
			}
			if (o.json) {
				json_t *j = json_pack("{s:I, s:s}", "id", (json_int_t)id,
						      "markdown", usher_buf_str(&md));

				usher_api_print_json(f, j);
				json_decref(j);
			} else {
				fputs(usher_buf_str(&md), f);
			}
			usher_buf_free(&md);
			if (f != stdout && fclose(f) != 0) {
				rc =
				    usher_fail(&err, USHER_ERR_IO, "cannot write %s: %m", o.output);
				goto out;
			}
			if (f != stdout && !o.json)
				fprintf(stderr,
					"wrote the postmortem draft of incident %lld to %s\n", id,
					o.output);
		}
	} else {
		const char *author = o.author ? o.author : default_author();
		const char *action = strcmp(cmd, "ack") == 0 ? "ack" : cmd;

		if (!author || !*author) {
			fprintf(stderr, "usher incident: who is acting? give --author NAME\n");
			return USHER_EXIT_INVALID;
		}
		body = json_pack("{s:s}", "author", author);
		if (strcmp(cmd, "note") == 0)
			json_object_set_new(body, "text", json_string(argv[optind + 2]));
		snprintf(path, sizeof(path), "/api/v1/incidents/%lld/%s", id, action);
		rc = usher_api_request(&api, "POST", path, body, &res, &err);
		if (rc)
			goto out;
		if (o.json)
			usher_api_print_json(stdout, res);
		else if (strcmp(cmd, "ack") == 0)
			printf("incident %lld acknowledged by %s\n", id, author);
		else if (strcmp(cmd, "resolve") == 0)
			printf("incident %lld resolved by %s\n", id, author);
		else
			printf("note added to incident %lld\n", id);
	}
out:
	json_decref(res);
	json_decref(body);
	if (rc) {
		fprintf(stderr, "usher incident %s: %s\n", cmd, usher_error_msg(&err, rc));
		status = USHER_EXIT_FAILURE;
	}
	return status;

bad_usage:
	fprintf(stderr, "usher incident %s: wrong arguments\n\n", cmd);
	usage(stderr);
	return USHER_EXIT_INVALID;
}
