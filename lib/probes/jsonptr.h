/* JSON Pointer (RFC 6901) over jansson values: "/a/b~1c/0" picks member "a",
 * then member "b/c", then array element 0. Used by the HTTP probe's json
 * assertions and, later, by journey steps that extract values. */
#ifndef USHER_PROBES_JSONPTR_H
#define USHER_PROBES_JSONPTR_H

#include <jansson.h>

#include "core/err.h"

/* Checks the syntax of ptr: empty (the whole document), or reference tokens
 * each introduced by "/", where "~" is only ever followed by "0" or "1".
 * Returns USHER_OK, or USHER_ERR_INVALID with the reason in err. */
enum usher_err usher_jsonptr_check(const char *ptr, struct usher_error *err);

/* Finds the value ptr points at in doc. On USHER_OK *out is that value,
 * borrowed from doc (no reference is taken). Returns USHER_ERR_NOTFOUND when
 * the document has no such value (a missing member, an index past the end,
 * "-", a token applied to a scalar), USHER_ERR_INVALID when ptr is not a
 * valid pointer or uses an array index with a leading zero (which RFC 6901
 * forbids). On failure *out is NULL and err says which token failed. */
enum usher_err usher_jsonptr_get(const json_t *doc, const char *ptr, json_t **out,
				 struct usher_error *err);

/* The JSON type of v as people say it: "object", "array", "string",
 * "number", "boolean" or "null". Never NULL. */
const char *usher_jsonptr_typename(const json_t *v);

#endif
