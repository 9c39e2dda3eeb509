/* parse_promql: checks PromQL expressions with usher's own parser (lib/promql),
 * for the pack's dashboard test (tests/pack/test_pack_files.py).
 *
 *   parse_promql EXPR...
 *   parse_promql --file FILE   one expression per line; blank lines and lines
 *                              starting with # are skipped
 *
 * Prints "FILE:LINE: EXPR: ERROR" (or "argN: ...") for each expression that
 * does not parse and exits 1 if any did not, 2 on a usage or I/O error, 0
 * when all parsed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "promql/ast.h"

#define LINE_MAX_BYTES 65536

/* Parses one expression; prints a line naming where and why when it fails.
 * Returns 1 on a parse failure, 0 on success. */
static int check(const char *where, const char *expr)
{
	struct usher_promql_expr *e = NULL;
	struct usher_error err;
	enum usher_err rc;

	usher_error_clear(&err);
	rc = usher_promql_parse(expr, &e, &err);
	if (rc != USHER_OK) {
		printf("%s: %s: %s\n", where, expr, usher_error_msg(&err, rc));
		return 1;
	}
	usher_promql_expr_free(e);
	return 0;
}

static int check_file(const char *path, size_t *count)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, where[512];
	size_t lineno = 0;
	int bad = 0;

	if (!f) {
		fprintf(stderr, "parse_promql: %s: %s\n", path, strerror(errno));
		return -1;
	}
	line = malloc(LINE_MAX_BYTES);
	if (!line) {
		fclose(f);
		fprintf(stderr, "parse_promql: out of memory\n");
		return -1;
	}
	while (fgets(line, LINE_MAX_BYTES, f)) {
		size_t len = strlen(line);

		lineno++;
		if (len && line[len - 1] != '\n' && !feof(f)) {
			fprintf(stderr, "parse_promql: %s:%zu: line longer than %d bytes\n", path,
				lineno, LINE_MAX_BYTES - 1);
			bad = -1;
			break;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len || line[0] == '#')
			continue;
		snprintf(where, sizeof(where), "%s:%zu", path, lineno);
		bad |= check(where, line);
		(*count)++;
	}
	if (bad >= 0 && ferror(f)) {
		fprintf(stderr, "parse_promql: %s: read error\n", path);
		bad = -1;
	}
	free(line);
	fclose(f);
	return bad;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int bad = 0;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: parse_promql EXPR... | parse_promql --file FILE\n");
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--file") == 0) {
		if (argc != 3) {
			fprintf(stderr, "usage: parse_promql --file FILE\n");
			return 2;
		}
		bad = check_file(argv[2], &count);
		if (bad < 0)
			return 2;
	} else {
		for (int i = 1; i < argc; i++) {
			char where[32];

			snprintf(where, sizeof(where), "arg%d", i);
			bad |= check(where, argv[i]);
			count++;
		}
	}
	printf("%zu expressions, %s\n", count, bad ? "some did not parse" : "all parsed");
	return bad ? 1 : 0;
}
