/* usher alerts: the alerts usherd holds (its Alertmanager API v2), as a
 * table or --json; amtool's `alert query` for people without amtool. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apiclient.h"
#include "cli.h"
#include "core/buf.h"
#include "core/mem.h"
#include "notify/matchers.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: usher alerts [options] [MATCHER...]\n"
		     "\n"
		     "Lists the alerts usherd holds, firing and not yet resolved, with their\n"
		     "state (active, or suppressed by a silence or an inhibition). MATCHERs\n"
		     "filter them, as amtool's: alertname=CheckoutDown 'severity=~page|critical'.\n"
		     "\n"
		     "options:\n"
		     "  -u, --url URL        usherd's address (default: $USHER_URL, else the\n"
		     "                       server.listen of the configuration)\n"
		     "  -c, --config FILE    configuration to read server.listen from\n"
		     "                       (default: $USHER_CONFIG, else /etc/usher/usher.yml)\n"
		     "  -r, --receiver RE    only alerts routed to a receiver matching RE\n"
		     "      --active-only    leave out silenced and inhibited alerts\n"
		     "      --json           the API's JSON (gettableAlerts)\n"
		     "  -h, --help           show this help\n"
		     "\n"
		     "exit status: 0 success, 1 usherd unreachable or refused, 2 invalid usage\n");
}

static char *query(int nfilters, char **filters, const char *receiver, bool active_only)
{
	struct usher_buf q;
	int i;

	usher_buf_init(&q, 1 << 20);
	usher_buf_addstr(&q, "?active=true");
	usher_buf_addstr(&q, active_only ? "&silenced=false&inhibited=false"
					 : "&silenced=true&inhibited=true");
	for (i = 0; i < nfilters; i++) {
		char *e = usher_api_escape(filters[i]);

		usher_buf_addf(&q, "&filter=%s", e);
		free(e);
	}
	if (receiver) {
		char *e = usher_api_escape(receiver);

		usher_buf_addf(&q, "&receiver=%s", e);
		free(e);
	}
	return usher_buf_take(&q);
}

static void print_table(const json_t *alerts)
{
	size_t i;
	json_t *a;

	if (json_array_size(alerts) == 0) {
		printf("no alerts\n");
		return;
	}
	printf("%-28s %-10s %-22s %s\n", "ALERTNAME", "STATE", "STARTS AT", "LABELS");
	json_array_foreach(alerts, i, a)
	{
		json_t *labels = json_object_get(a, "labels"), *v;
		const char *k,
		    *state =
			json_string_value(json_object_get(json_object_get(a, "status"), "state"));
		const char *starts = json_string_value(json_object_get(a, "startsAt"));
		struct usher_buf lb;

		usher_buf_init(&lb, 1 << 20);
		json_object_foreach(labels, k, v)
		{
			if (strcmp(k, "alertname") == 0)
				continue;
			usher_buf_addf(&lb, "%s%s=%s", lb.len ? " " : "", k, json_string_value(v));
		}
		printf("%-28s %-10s %-22.19s %s\n",
		       json_string_value(json_object_get(labels, "alertname")) ?: "-",
		       state ? state : "-", starts ? starts : "-", usher_buf_str(&lb));
		usher_buf_free(&lb);
	}
}

int usher_cmd_alerts(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"url", required_argument, NULL, 'u'},
	    {"config", required_argument, NULL, 'c'},
	    {"receiver", required_argument, NULL, 'r'},
	    {"active-only", no_argument, NULL, 'A'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *url = NULL, *config = NULL, *receiver = NULL;
	bool json = false, active_only = false;
	struct usher_api api;
	struct usher_error err;
	json_t *out = NULL;
	char *path, *q;
	int opt, i;
	enum usher_err rc;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "u:c:r:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 'c': config = optarg; break;
		case 'r': receiver = optarg; break;
		case 'A': active_only = true; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return USHER_EXIT_OK;
		default: usage(stderr); return USHER_EXIT_INVALID;
		}
	}
	usher_error_clear(&err);
	for (i = optind; i < argc; i++) {
		struct usher_am_matchers ms = {0};

		if (usher_am_matchers_parse(&ms, argv[i], &err)) {
			fprintf(stderr, "usher alerts: %s\n", err.msg);
			return USHER_EXIT_INVALID;
		}
		usher_am_matchers_free(&ms);
	}
	if (usher_api_init(&api, url, config, &err)) {
		fprintf(stderr, "usher alerts: %s\n", err.msg);
		return USHER_EXIT_INVALID;
	}
	q = query(argc - optind, argv + optind, receiver, active_only);
	path = usher_malloc(strlen(q) + 32);
	snprintf(path, strlen(q) + 32, "/api/v2/alerts%s", q);
	rc = usher_api_request(&api, "GET", path, NULL, &out, &err);
	free(q);
	free(path);
	if (rc) {
		fprintf(stderr, "usher alerts: %s\n", usher_error_msg(&err, rc));
		return rc == USHER_ERR_INVALID ? USHER_EXIT_INVALID : USHER_EXIT_FAILURE;
	}
	if (!json_is_array(out)) {
		fprintf(stderr,
			"usher alerts: usherd answered something that is not a list of alerts\n");
		json_decref(out);
		return USHER_EXIT_FAILURE;
	}
	if (json)
		usher_api_print_json(stdout, out);
	else
		print_table(out);
	json_decref(out);
	return USHER_EXIT_OK;
}
