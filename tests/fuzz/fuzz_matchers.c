/* Fuzz target: the alerting parsers fed by the network and the command
 * line: Alertmanager matchers (API filters, amtool and usher silence
 * arguments, config), RFC 3339 times (must format back to the same
 * instant), and postableAlert / postableSilence JSON bodies. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "notify/alert.h"
#include "notify/matchers.h"
#include "notify/silence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct usher_am_matchers ms = {0};
	struct usher_error err;
	int64_t ns;

	memcpy(s, data, size);
	s[size] = '\0';
	usher_error_clear(&err);
	if (usher_am_matchers_parse(&ms, s, &err) == USHER_OK) {
		struct usher_am_labels l = {0};
		char *str = usher_am_matchers_string(&ms);
		size_t i;

		if (ms.n == 0 || !str)
			abort();
		for (i = 0; i < ms.n; i++)
			usher_am_labels_set(&l, ms.v[i].name, ms.v[i].value);
		/* an equality matcher matches the value it names */
		for (i = 0; i < ms.n; i++)
			if (ms.v[i].type == USHER_AM_MATCH_EQ &&
			    !usher_am_matcher_matches(&ms.v[i], ms.v[i].value))
				abort();
		usher_am_matchers_match(&ms, &l);
		usher_am_matchers_sort(&ms);
		usher_am_labels_free(&l);
		free(str);
	} else if (!err.msg[0]) {
		abort(); /* a failure always says why */
	}
	usher_am_matchers_free(&ms);
	if (usher_time_parse_rfc3339(s, &ns) == USHER_OK) {
		char out[48];
		int64_t again;

		usher_time_format_nano(ns, out, sizeof(out));
		if (usher_time_parse_rfc3339(out, &again) != USHER_OK || again != ns)
			abort();
	}
	{
		json_t *j = json_loadb(s, size, JSON_DECODE_ANY, NULL);

		if (j) {
			struct usher_am_alert *a;
			struct usher_silences *sil;
			char id[37];

			usher_error_clear(&err);
			a = usher_am_alert_from_json(j, 1800000000000000000LL, 300000, &err);
			if (a) {
				json_t *w = usher_am_alert_webhook_json(a, 1800000000000000000LL);

				if (!w)
					abort();
				json_decref(w);
			}
			usher_am_alert_free(a);
			if (usher_silences_new(NULL, &sil, &err) == USHER_OK) {
				usher_silences_set_json(sil, j, 1800000000000000000LL, id, &err);
				usher_silences_free(sil);
			}
			json_decref(j);
		}
	}
	free(s);
	return 0;
}
