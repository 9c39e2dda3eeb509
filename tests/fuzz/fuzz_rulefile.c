/* Fuzz target: rule file loading (YAML, structure, names, PromQL, alert
 * templates), then one evaluation of every group that loads over a tiny
 * store. A rejected file must carry at least one diagnostic; a loaded one
 * must evaluate without crashing, leaking or tripping the sanitizers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promql/engine.h"
#include "rules/group.h"
#include "rules/rulefile.h"
#include "tsdb/tsdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const up_a[] = {"__name__", "up", "job", "api", "instance", "a", NULL};
	static const char *const up_b[] = {"__name__", "up", "job", "db", "instance", "b", NULL};
	static struct usher_promql_engine *eng;
	struct usher_tsdb_options to = {0, 2000};
	struct usher_rulefile *f;
	struct usher_tsdb_batch *b;
	struct usher_diags d;
	struct usher_tsdb *db;
	size_t i;

	if (size > 16384)
		return 0;
	if (!eng) {
		struct usher_promql_options o;

		usher_promql_options_default(&o);
		o.max_samples = 20000;
		o.timeout_ms = 100;
		eng = usher_promql_engine_new(&o);
	}
	usher_diags_init(&d);
	if (usher_rulefile_parse("fuzz.yml", (const char *)data, size, &f, &d)) {
		if (d.n == 0 || f)
			abort();
		usher_diags_free(&d);
		return 0;
	}
	usher_diags_free(&d);
	db = usher_tsdb_new(&to);
	b = usher_tsdb_batch_new(db);
	usher_tsdb_batch_addv(b, up_a, 0, 0);
	usher_tsdb_batch_addv(b, up_b, 0, 1);
	usher_tsdb_batch_commit(b, 0, NULL, NULL);
	usher_tsdb_batch_free(b, -1);
	for (i = 0; i < f->ngroups && i < 8; i++) {
		struct usher_group_options o;
		struct usher_group *g;
		struct usher_error err;

		usher_group_options_default(&o);
		o.engine = eng;
		o.storage = usher_tsdb_storage(db);
		o.db = db;
		g = usher_group_new(&f->groups[i], &o);
		usher_error_clear(&err);
		if (usher_group_eval(g, 60000, &err) && !err.msg[0])
			abort();
		usher_group_free(g, 120000);
	}
	usher_tsdb_free(db);
	usher_rulefile_free(f);
	return 0;
}
