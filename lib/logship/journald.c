/* The journald sink (the one file that uses libsystemd's sd-journal):
 * sd_journal_sendv with the fields usher_journald_encode builds. */
#include "logship/journald.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>

#include "core/ecs.h"
#include "core/mem.h"

size_t usher_journald_field_name(const char *key, char *out, size_t len)
{
	size_t n = 0;

	while (*key && !((*key >= 'a' && *key <= 'z') || (*key >= 'A' && *key <= 'Z') ||
			 (*key >= '0' && *key <= '9')))
		key++;
	if (*key >= '0' && *key <= '9' && len > 1)
		out[n++] = 'F';
	for (; *key && n + 1 < len && n < 64; key++) {
		char c = *key;

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			c = '_';
		out[n++] = c;
	}
	out[n] = '\0';
	return n;
}

/* Offsets into the buffer while it may still move. */
struct span {
	size_t off, len;
};

struct enc {
	struct usher_buf *b;
	struct span *sp;
	size_t n, max;
	enum usher_err rc;
};

static void begin(struct enc *x, const char *name)
{
	if (x->rc)
		return;
	if (x->n == x->max) {
		x->rc = USHER_ERR_TOOBIG;
		return;
	}
	x->sp[x->n].off = x->b->len;
	x->rc = usher_buf_addstr(x->b, name);
	if (!x->rc)
		x->rc = usher_buf_addc(x->b, '=');
}

static void end(struct enc *x)
{
	if (x->rc)
		return;
	x->sp[x->n].len = x->b->len - x->sp[x->n].off;
	x->n++;
}

static void add(struct enc *x, const char *name, const char *value)
{
	begin(x, name);
	if (!x->rc)
		x->rc = usher_buf_addstr(x->b, value);
	end(x);
}

/* One field per element of a comma-separated list (journal fields repeat). */
static void add_list(struct enc *x, const char *name, const char *list)
{
	const char *p = list;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		begin(x, name);
		if (!x->rc)
			x->rc = usher_buf_add(x->b, p, n);
		end(x);
		if (!comma || x->rc)
			break;
		p = comma + 1;
	}
}

static bool has_key(const struct usher_log_record *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nfields; i++)
		if (strcmp(r->fields[i].key, key) == 0)
			return true;
	return false;
}

static const char *str_of(const struct usher_log_record *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nfields; i++)
		if (r->fields[i].type == USHER_LF_STR && strcmp(r->fields[i].key, key) == 0)
			return r->fields[i].s;
	return NULL;
}

static void add_field(struct enc *x, const struct usher_log_field *f)
{
	char name[72], num[40];

	if (strncmp(f->key, "labels.", 7) == 0) {
		char lk[64], full[72];

		usher_ecs_label_key(f->key + 7, lk, sizeof(lk));
		memcpy(full, "labels_", 7);
		memcpy(full + 7, lk, strlen(lk) + 1);
		usher_journald_field_name(full, name, sizeof(name));
	} else if (!usher_journald_field_name(f->key, name, sizeof(name))) {
		return;
	}
	switch (f->type) {
	case USHER_LF_STR:
		if (strcmp(f->key, "event.category") == 0 || strcmp(f->key, "event.type") == 0)
			add_list(x, name, f->s);
		else
			add(x, name, f->s);
		return;
	case USHER_LF_INT: snprintf(num, sizeof(num), "%lld", (long long)f->i); break;
	case USHER_LF_DOUBLE: snprintf(num, sizeof(num), "%.17g", f->d); break;
	case USHER_LF_BOOL: snprintf(num, sizeof(num), "%s", f->i ? "true" : "false"); break;
	}
	add(x, name, num);
}

enum usher_err usher_journald_encode(const struct usher_log_entry *e, struct usher_buf *b,
				     struct iovec *iov, size_t max, size_t *n)
{
	static const char *const prio[] = {"7", "6", "4", "3"}; /* debug info warn error */
	static const char *const lvl[] = {"debug", "info", "warn", "error"};
	const struct usher_log_record *r = e->rec;
	struct span sp[USHER_JOURNALD_MAX_FIELDS];
	struct enc x = {.b = b,
			.sp = sp,
			.max = max < USHER_JOURNALD_MAX_FIELDS ? max : USHER_JOURNALD_MAX_FIELDS};
	struct usher_ecs_class cls =
	    usher_ecs_classify(str_of(r, "event.action"), str_of(r, "usher.probe.type"));
	char num[32];
	size_t i, j;

	usher_buf_reset(b);
	add(&x, "MESSAGE", r->message);
	add(&x, "PRIORITY", prio[r->level]);
	add(&x, "SYSLOG_IDENTIFIER", r->service);
	add(&x, "LOG_LEVEL", lvl[r->level]);
	add(&x, "ECS_VERSION", USHER_ECS_VERSION);
	if (!has_key(r, "service.name"))
		add(&x, "SERVICE_NAME", r->service);
	if (!has_key(r, "event.kind"))
		add(&x, "EVENT_KIND", cls.kind);
	if (!has_key(r, "event.category") && cls.category)
		add_list(&x, "EVENT_CATEGORY", cls.category);
	if (!has_key(r, "event.type") && cls.type)
		add_list(&x, "EVENT_TYPE", cls.type);
	for (i = 0; i < r->nfields; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(r->fields[j].key, r->fields[i].key) == 0)
				break;
		if (j == i && strcmp(r->fields[i].key, "message") != 0 &&
		    strcmp(r->fields[i].key, "@timestamp") != 0 &&
		    strcmp(r->fields[i].key, "log.level") != 0)
			add_field(&x, &r->fields[i]);
	}
	for (i = 0; i < e->nextra; i++)
		if (!has_key(r, e->extra[i].key))
			add_field(&x, &e->extra[i]);
	if (e->id) {
		add(&x, "EVENT_ID", e->id);
		snprintf(num, sizeof(num), "%llu", (unsigned long long)e->seq);
		add(&x, "EVENT_SEQUENCE", num);
	}
	if (x.rc)
		return x.rc;
	for (i = 0; i < x.n; i++) {
		iov[i].iov_base = b->data + sp[i].off;
		iov[i].iov_len = sp[i].len;
	}
	*n = x.n;
	return USHER_OK;
}

struct jd {
	struct usher_buf b;
	struct usher_log_sink_stats *stats;
	bool complained;
};

static enum usher_err jd_init(const struct usher_log_sink_conf *sc,
			      const struct usher_log_sink_env *env, void **ctx,
			      struct usher_error *err)
{
	struct jd *j = usher_calloc(1, sizeof(*j));

	(void)sc;
	(void)err;
	usher_buf_init(&j->b, 256 * 1024);
	j->stats = env->stats;
	*ctx = j;
	return USHER_OK;
}

static void jd_write(void *ctx, const struct usher_log_entry *e)
{
	struct jd *j = ctx;
	struct iovec iov[USHER_JOURNALD_MAX_FIELDS];
	size_t n = 0;
	int rc;

	if (usher_journald_encode(e, &j->b, iov, USHER_JOURNALD_MAX_FIELDS, &n)) {
		atomic_fetch_add_explicit(&j->stats->failed, 1, memory_order_relaxed);
		return;
	}
	rc = sd_journal_sendv(iov, (int)n);
	if (rc < 0) {
		if (!j->complained)
			fprintf(stderr, "usher: log sink journald: %s\n", strerror(-rc));
		j->complained = true;
		atomic_fetch_add_explicit(&j->stats->failed, 1, memory_order_relaxed);
		return;
	}
	j->complained = false;
	atomic_fetch_add_explicit(&j->stats->delivered, 1, memory_order_relaxed);
}

static void jd_free(void *ctx)
{
	struct jd *j = ctx;

	if (!j)
		return;
	usher_buf_free(&j->b);
	free(j);
}

const struct usher_log_sink_type usher_log_sink_journald = {
    .name = "journald",
    .help = "the systemd journal (sd_journal_send), ECS fields as uppercase fields",
    .init = jd_init,
    .write = jd_write,
    .free = jd_free,
};
