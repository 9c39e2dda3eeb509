/* RESP through hiredis: a redisReader with our own reply constructors, so the
 * limits on a reply are enforced while it is parsed (hiredis would otherwise
 * allocate whatever element count a server announces). */
#include "probes/resp.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/mem.h"

/* What the reply in progress holds so far; the reader's privdata. */
struct budget {
	size_t max_bytes, max_elements;
	size_t bytes, elements;
	struct usher_arena *arena; /* the reply's, when it is an array */
};

struct usher_resp_reader {
	redisReader *r;
	struct budget b;
};

void usher_resp_free(struct usher_resp *r)
{
	if (!r)
		return;
	/* an array's elements, and their strings, live in its arena; a
	 * string lives in the same block as its reply */
	usher_arena_free(r->arena);
	free(r);
}

/* ---- hiredis' object callbacks ------------------------------------------ */

/* A new object with room for bytes of string after it, linked into its
 * parent array. A reply's own object is malloc'd; an array reply gets an
 * arena that holds its elements, so a SCAN reply of 1000 keys is a few
 * blocks, not 1000 allocations. NULL (hiredis then reports out of memory,
 * which we turn into "too big") when over budget. */
static struct usher_resp *make(const redisReadTask *t, enum usher_resp_type type, size_t bytes)
{
	struct budget *b = t->privdata;
	struct usher_resp *o;

	if (b->elements >= b->max_elements || bytes > b->max_bytes - b->bytes)
		return NULL;
	b->elements++;
	b->bytes += bytes;
	if (!t->parent) {
		o = usher_malloc(sizeof(*o) + bytes + 1);
		memset(o, 0, sizeof(*o));
		if (type == USHER_RESP_ARRAY)
			o->arena = b->arena = usher_arena_new();
	} else {
		struct usher_resp *p = t->parent->obj;

		o = usher_arena_zalloc(b->arena, sizeof(*o) + bytes + 1);
		/* hiredis counts idx within the announced elements */
		p->elem[t->idx] = o;
	}
	o->type = type;
	return o;
}

static void *create_string(const redisReadTask *t, char *s, size_t len)
{
	enum usher_resp_type type = t->type == REDIS_REPLY_STATUS  ? USHER_RESP_STATUS
				    : t->type == REDIS_REPLY_ERROR ? USHER_RESP_ERROR
								   : USHER_RESP_STRING;
	struct usher_resp *o = make(t, type, len);

	if (!o)
		return NULL;
	o->str = (char *)(o + 1);
	memcpy(o->str, s, len);
	o->str[len] = '\0';
	o->len = len;
	return o;
}

static void *create_array(const redisReadTask *t, int n)
{
	struct budget *b = t->privdata;
	struct usher_resp *o;

	if (n < 0 || (size_t)n > b->max_elements - b->elements)
		return NULL;
	o = make(t, USHER_RESP_ARRAY, 0);
	if (!o)
		return NULL;
	/* elements are created later and counted then */
	o->elem = usher_arena_zalloc(b->arena, (n ? (size_t)n : 1) * sizeof(*o->elem));
	o->n = (size_t)n;
	return o;
}

static void *create_integer(const redisReadTask *t, long long v)
{
	struct usher_resp *o = make(t, USHER_RESP_INTEGER, 0);

	if (o)
		o->integer = v;
	return o;
}

static void *create_nil(const redisReadTask *t)
{
	return make(t, USHER_RESP_NIL, 0);
}

/* hiredis frees only whole replies (r->reply), also one given up on
 * mid-way: its arena holds the elements parsed so far. */
static void free_object(void *p)
{
	usher_resp_free(p);
}

/* hiredis wants a mutable pointer; it never writes through it. */
static redisReplyObjectFunctions reply_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

/* ---- the reader --------------------------------------------------------- */

struct usher_resp_reader *usher_resp_reader_new(size_t max_bytes, size_t max_elements)
{
	struct usher_resp_reader *r = usher_calloc(1, sizeof(*r));

	r->b.max_bytes = max_bytes;
	r->b.max_elements = max_elements;
	usher_resp_reader_reset(r);
	return r;
}

void usher_resp_reader_free(struct usher_resp_reader *r)
{
	if (!r)
		return;
	if (r->r)
		redisReaderFree(r->r);
	free(r);
}

void usher_resp_reader_reset(struct usher_resp_reader *r)
{
	if (r->r)
		redisReaderFree(r->r);
	r->r = redisReaderCreateWithFunctions(&reply_functions);
	if (!r->r)
		abort(); /* out of memory, as usher_malloc does */
	r->r->privdata = &r->b;
	r->b.bytes = 0;
	r->b.elements = 0;
	r->b.arena = NULL; /* a partial reply's was freed with it */
}

enum usher_err usher_resp_reader_feed(struct usher_resp_reader *r, const void *buf, size_t len,
				      struct usher_error *err)
{
	size_t pending = r->r->len - r->r->pos;

	if (len > r->b.max_bytes || pending > r->b.max_bytes - len)
		return usher_fail(err, USHER_ERR_TOOBIG,
				  "a reply holds more than %zu bytes: giving up on it",
				  r->b.max_bytes);
	if (redisReaderFeed(r->r, buf, len) != REDIS_OK)
		return usher_fail(err, USHER_ERR_PROTOCOL, "reading the reply: %s", r->r->errstr);
	return USHER_OK;
}

enum usher_err usher_resp_reader_next(struct usher_resp_reader *r, struct usher_resp **out,
				      struct usher_error *err)
{
	void *reply = NULL;

	*out = NULL;
	if (redisReaderGetReply(r->r, &reply) != REDIS_OK) {
		if (r->r->err == REDIS_ERR_OOM)
			return usher_fail(err, USHER_ERR_TOOBIG,
					  "a reply has more than %zu elements or %zu bytes",
					  r->b.max_elements, r->b.max_bytes);
		return usher_fail(err, USHER_ERR_PROTOCOL, "not a Redis reply: %s", r->r->errstr);
	}
	if (reply) {
		*out = reply;
		r->b.bytes = 0;
		r->b.elements = 0;
		r->b.arena = NULL; /* the reply's now */
	}
	return USHER_OK;
}

/* ---- commands ----------------------------------------------------------- */

enum usher_err usher_resp_format(struct usher_buf *out, int argc, const char *const *argv,
				 const size_t *lens)
{
	size_t stack[16], *l = stack;
	char *cmd = NULL;
	enum usher_err rc;
	int i, n;

	if (!lens) {
		if (argc > (int)(sizeof(stack) / sizeof(stack[0])))
			l = usher_calloc((size_t)argc, sizeof(*l));
		for (i = 0; i < argc; i++)
			l[i] = strlen(argv[i]);
		lens = l;
	}
	/* hiredis takes char ** but only reads the arguments */
	n = redisFormatCommandArgv(&cmd, argc, (const char **)argv, lens);
	if (l != stack)
		free(l);
	if (n < 0)
		abort(); /* hiredis' only failure is out of memory */
	rc = usher_buf_add(out, cmd, (size_t)n);
	redisFreeCommand(cmd);
	return rc;
}

const char *usher_resp_describe(const struct usher_resp *r, char *buf, size_t len)
{
	switch (r->type) {
	case USHER_RESP_STATUS:
	case USHER_RESP_ERROR:
		snprintf(buf, len, "%c%.*s", r->type == USHER_RESP_STATUS ? '+' : '-',
			 (int)(r->len > 200 ? 200 : r->len), r->str);
		break;
	case USHER_RESP_INTEGER: snprintf(buf, len, ":%lld", r->integer); break;
	case USHER_RESP_NIL: snprintf(buf, len, "$-1"); break;
	case USHER_RESP_ARRAY: snprintf(buf, len, "*%zu", r->n); break;
	case USHER_RESP_STRING: snprintf(buf, len, "$%zu", r->len); break;
	}
	return buf;
}
