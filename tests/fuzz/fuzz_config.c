/* Fuzz target: the whole config loader (YAML, option tables, probe options,
 * durations, sizes, regexes) on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct usher_diags d;
	struct usher_config *cfg = NULL;

	usher_diags_init(&d);
	usher_config_load_text("fuzz.yml", (const char *)data, size, &cfg, &d);
	/* exactly one of: a config, or at least one diagnostic */
	if ((cfg == NULL) != (d.n > 0))
		abort();
	usher_config_free(cfg);
	usher_diags_free(&d);
	return 0;
}
