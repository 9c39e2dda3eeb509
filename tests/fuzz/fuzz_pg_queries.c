/* Fuzz target: the postgres probe's own parsing. Input starting with 'D'
 * is a DSN for the instance label, the redacted description and the
 * failure reason; anything else is a query result (a line of column names,
 * then rows, cells separated by '|', "\N" for NULL) turned into samples. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "core/arena.h"
#include "core/buf.h"
#include "metrics/registry.h"
#include "probes/pg_queries.h"
#include "probes/postgres.h"

#define MAX_COLS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char query_yaml[] = "probes:\n"
				 "  - name: db\n"
				 "    type: postgres\n"
				 "    dsn: host=db\n"
				 "    queries:\n"
				 "      - name: q\n"
				 "        sql: x\n"
				 "        labels: [k, j]\n"
				 "        max_series: 40\n"
				 "        values:\n"
				 "          - {column: a}\n"
				 "          - {column: b, type: counter}\n";

static size_t split(char *line, const char **cells, size_t max)
{
	size_t n = 0;

	while (n < max) {
		char *bar = strchr(line, '|');

		if (bar)
			*bar = '\0';
		cells[n++] = strcmp(line, "\\N") == 0 ? NULL : line;
		if (!bar)
			break;
		line = bar + 1;
	}
	return n;
}

/* A non-empty value of key, or NULL. */
static const char *opt(const PQconninfoOption *o, const char *key)
{
	for (; o && o->keyword; o++)
		if (strcmp(o->keyword, key) == 0)
			return o->val && *o->val ? o->val : NULL;
	return NULL;
}

static void fuzz_dsn(const char *s)
{
	struct usher_arena *a = usher_arena_new();
	const char *what = usher_pg_describe(a, s), *inst = usher_pg_instance(a, s);
	PQconninfoOption *o = PQconninfoParse(s, NULL);

	usher_pg_connect_reason(s);
	/* the description depends on the user, whether there is a password,
	 * the instance and the database, and on nothing else: the password's
	 * value can never be in it */
	if (o) {
		const char *user = opt(o, "user"), *pw = opt(o, "password"), *db = opt(o, "dbname");
		const char *want = usher_arena_printf(
		    a, "postgresql://%s%s%s%s%s%s", user ? user : "", user && pw ? ":***" : "",
		    user || pw ? "@" : "", inst, db ? "/" : "", db ? db : "");

		if (strcmp(what, want) != 0)
			abort();
		PQconninfoFree(o);
	}
	usher_arena_free(a);
}

static void fuzz_result(char *text)
{
	static struct usher_config *cfg;
	const struct usher_pg_opts *o;
	struct usher_pgq_state *st;
	struct usher_sample_set *set;
	struct usher_registry *r;
	const char *names[MAX_COLS], *cells[MAX_COLS];
	bool bools[MAX_COLS];
	struct usher_buf b;
	char *line, *next;
	size_t n, i;

	if (!cfg) {
		struct usher_diags d;

		usher_diags_init(&d);
		usher_config_load_text("fuzz.yml", query_yaml, strlen(query_yaml), &cfg, &d);
		usher_diags_free(&d);
		if (!cfg)
			abort();
	}
	o = cfg->probes[0].opts;
	st = usher_pgq_state_new(o->queries.v);
	usher_pgq_begin(st, 0);
	next = strchr(text, '\n');
	if (next)
		*next++ = '\0';
	n = split(text, names, MAX_COLS);
	for (i = 0; i < n; i++) {
		bools[i] = names[i] && names[i][0] == 'b';
		if (!names[i])
			names[i] = "";
	}
	if (usher_pgq_columns(st, n, names, bools) == USHER_OK) {
		for (line = next; line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			for (i = 0; i < MAX_COLS; i++)
				cells[i] = NULL;
			split(line, cells, n);
			if (usher_pgq_row(st, cells) != USHER_OK)
				break;
		}
	}
	usher_pgq_end(st, 0.001);
	set = usher_sample_set_new(NULL);
	usher_pgq_emit(st, set);
	usher_pgq_emit_stats(st, set);
	r = usher_registry_new();
	usher_registry_publish(r, st, set);
	usher_buf_init(&b, 1 << 22);
	if (usher_registry_render(r, USHER_EXPO_OPENMETRICS, &b) != USHER_OK)
		abort();
	usher_buf_free(&b);
	usher_registry_free(r);
	usher_pgq_state_free(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (size && s[0] == 'D')
		fuzz_dsn(s + 1);
	else
		fuzz_result(s);
	free(s);
	return 0;
}
