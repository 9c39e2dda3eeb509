/* RFC 6901 JSON Pointer evaluation over jansson documents: syntax check,
 * token decoding (~0, ~1) and the walk through objects and arrays. */
#include "probes/jsonptr.h"

#include <stdint.h>
#include <string.h>

#include "core/buf.h"

enum usher_err usher_jsonptr_check(const char *ptr, struct usher_error *err)
{
	const char *p;

	if (!*ptr)
		return USHER_OK;
	if (*ptr != '/')
		return usher_fail(err, USHER_ERR_INVALID,
				  "must be empty (the whole document) or start with \"/\"");
	for (p = ptr; *p; p++) {
		if (*p != '~')
			continue;
		if (p[1] != '0' && p[1] != '1')
			return usher_fail(
			    err, USHER_ERR_INVALID,
			    "\"~\" at offset %zu must be followed by 0 or 1 (write ~0 "
			    "for \"~\" and ~1 for \"/\")",
			    (size_t)(p - ptr));
		p++;
	}
	return USHER_OK;
}

const char *usher_jsonptr_typename(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "value";
}

/* Decodes the token that starts at p (after its "/") into tok; returns
 * where it ends (the next "/" or the terminating NUL). The pointer has
 * passed usher_jsonptr_check, so every "~" is followed by 0 or 1. */
static const char *decode_token(const char *p, struct usher_buf *tok)
{
	usher_buf_reset(tok);
	for (; *p && *p != '/'; p++) {
		char c = *p;

		if (c == '~')
			c = *++p == '1' ? '/' : '~';
		/* cannot fail: tok's maximum is the pointer's length */
		usher_buf_addc(tok, c);
	}
	return p;
}

/* Reads an array index token: 0 or a digit string without a leading zero.
 * Returns USHER_ERR_NOTFOUND for anything that is not digits (including
 * "-") and USHER_ERR_INVALID for a leading zero. */
static enum usher_err parse_index(const char *t, size_t len, size_t *idx)
{
	size_t i, v = 0;

	if (len == 0)
		return USHER_ERR_NOTFOUND;
	for (i = 0; i < len; i++)
		if (t[i] < '0' || t[i] > '9')
			return USHER_ERR_NOTFOUND;
	if (len > 1 && t[0] == '0')
		return USHER_ERR_INVALID;
	for (i = 0; i < len; i++) {
		size_t d = (size_t)(t[i] - '0');

		if (v > (SIZE_MAX - d) / 10) {
			*idx = SIZE_MAX; /* past the end of any array */
			return USHER_OK;
		}
		v = v * 10 + d;
	}
	*idx = v;
	return USHER_OK;
}

/* Takes one step from cur by tok. prefix (plen bytes) is the pointer up to
 * cur, for messages. */
static enum usher_err step(json_t *cur, const struct usher_buf *tok, const char *prefix,
			   size_t plen, json_t **next, struct usher_error *err)
{
	const char *t = usher_buf_str(tok);
	const char *at = plen ? "" : "the document root";
	int alen = (int)plen;
	size_t idx = 0;
	enum usher_err rc;

	switch (json_typeof(cur)) {
	case JSON_OBJECT:
		*next = json_object_get(cur, t);
		if (!*next)
			return usher_fail(err, USHER_ERR_NOTFOUND,
					  "no member \"%s\" in the object at %s%.*s", t, at, alen,
					  prefix);
		return USHER_OK;
	case JSON_ARRAY:
		if (strcmp(t, "-") == 0)
			return usher_fail(err, USHER_ERR_NOTFOUND,
					  "\"-\" is past the end of the array at %s%.*s", at, alen,
					  prefix);
		rc = parse_index(t, tok->len, &idx);
		if (rc == USHER_ERR_INVALID)
			return usher_fail(err, rc, "array index \"%s\" has a leading zero", t);
		if (rc)
			return usher_fail(err, rc, "\"%s\" is not an index of the array at %s%.*s",
					  t, at, alen, prefix);
		*next = json_array_get(cur, idx);
		if (!*next)
			return usher_fail(err, USHER_ERR_NOTFOUND,
					  "index %s is past the end of the array at %s%.*s (%zu "
					  "elements)",
					  t, at, alen, prefix, json_array_size(cur));
		return USHER_OK;
	default:
		return usher_fail(
		    err, USHER_ERR_NOTFOUND, "the value at %s%.*s is %s%s, not an object or array",
		    at, alen, prefix, json_is_null(cur) ? "" : "a ", usher_jsonptr_typename(cur));
	}
}

enum usher_err usher_jsonptr_get(const json_t *doc, const char *ptr, json_t **out,
				 struct usher_error *err)
{
	/* jansson's getters take const and hand back non-const values */
	json_t *cur = (json_t *)doc;
	struct usher_buf tok;
	const char *p = ptr;
	enum usher_err rc;

	*out = NULL;
	rc = usher_jsonptr_check(ptr, err);
	if (rc)
		return rc;
	usher_buf_init(&tok, strlen(ptr));
	while (*p) {
		const char *end = decode_token(p + 1, &tok);

		rc = step(cur, &tok, ptr, (size_t)(p - ptr), &cur, err);
		if (rc)
			goto out;
		p = end;
	}
	*out = cur;
out:
	usher_buf_free(&tok);
	return rc;
}
