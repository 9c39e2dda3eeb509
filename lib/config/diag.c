/* The diagnostics list. */
#include "config/diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

void usher_diags_init(struct usher_diags *d)
{
	d->v = NULL;
	d->n = 0;
	d->cap = 0;
}

void usher_diags_free(struct usher_diags *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	usher_diags_init(d);
}

void usher_diags_add(struct usher_diags *d, const char *file, int line, int col,
		     const char *fmt, ...)
{
	va_list ap;
	char msg[1024];
	struct usher_diag *g;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->v = usher_realloc(d->v, d->cap * sizeof(*d->v));
	}
	g = &d->v[d->n++];
	g->file = usher_strdup(file ? file : "");
	g->line = line;
	g->col = col;
	g->msg = usher_strdup(msg);
}

static void format_one(const struct usher_diag *g, char *buf, size_t len)
{
	if (g->line > 0)
		snprintf(buf, len, "%s:%d:%d: %s", g->file, g->line, g->col, g->msg);
	else
		snprintf(buf, len, "%s: %s", g->file, g->msg);
}

void usher_diags_print(const struct usher_diags *d, FILE *out)
{
	char buf[2048];
	size_t i;

	for (i = 0; i < d->n; i++) {
		format_one(&d->v[i], buf, sizeof(buf));
		fprintf(out, "%s\n", buf);
	}
}

const char *usher_diags_first(const struct usher_diags *d, char *buf, size_t len)
{
	if (len)
		buf[0] = '\0';
	if (d->n)
		format_one(&d->v[0], buf, len);
	return buf;
}
