/* Fuzz target: backup manifests (lib/backup/manifest.c). Whatever parses
 * must dump back to JSON that parses to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usher_manifest *m = NULL, *again = NULL;
	struct usher_error err = {{0}};
	char *text;
	size_t i;

	if (usher_manifest_parse((const char *)data, size, &m, &err) != USHER_OK) {
		if (m || !err.msg[0])
			abort(); /* a refusal leaves nothing and says why */
		return 0;
	}
	text = usher_manifest_dump(m);
	if (!text || usher_manifest_parse(text, strlen(text), &again, &err) != USHER_OK)
		abort();
	if (!same(m->id, again->id) || !same(m->database, again->database) ||
	    m->raw_bytes != again->raw_bytes || m->stop_ms != again->stop_ms ||
	    m->ntables != again->ntables)
		abort();
	for (i = 0; i < m->ntables; i++)
		if (m->tables[i].rows != again->tables[i].rows ||
		    !same(m->tables[i].name, again->tables[i].name))
			abort();
	free(text);
	usher_manifest_free(m);
	usher_manifest_free(again);
	return 0;
}
