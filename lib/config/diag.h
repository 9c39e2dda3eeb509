/* Diagnostics: a list of "file:line:col: message" errors, so one pass over
 * a config reports every mistake at once. */
#ifndef USHER_CONFIG_DIAG_H
#define USHER_CONFIG_DIAG_H

#include <stdio.h>

struct usher_diag {
	char *file;
	int line, col; /* 0 when the error has no place in the file */
	char *msg;
};

struct usher_diags {
	struct usher_diag *v;
	size_t n, cap;
};

void usher_diags_init(struct usher_diags *d);
void usher_diags_free(struct usher_diags *d);
void usher_diags_add(struct usher_diags *d, const char *file, int line, int col,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Writes each as "file:line:col: msg\n" (or "file: msg" without a place). */
void usher_diags_print(const struct usher_diags *d, FILE *out);
/* The first diagnostic formatted into buf, or "" when there is none. */
const char *usher_diags_first(const struct usher_diags *d, char *buf, size_t len);

#endif
