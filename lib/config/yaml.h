/* YAML loading (libyaml's document API) into a small tree of nodes that
 * remember their line and column, so every later check can point at the
 * exact place in the file. Only this file touches libyaml. */
#ifndef USHER_CONFIG_YAML_H
#define USHER_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "config/diag.h"
#include "core/err.h"

enum usher_ynode_kind {
	USHER_Y_SCALAR,
	USHER_Y_MAP,
	USHER_Y_SEQ,
};

struct usher_ynode;

struct usher_ypair {
	struct usher_ynode *key; /* always a scalar */
	struct usher_ynode *val;
};

struct usher_ynode {
	enum usher_ynode_kind kind;
	int line, col;  /* 1-based */
	const char *value; /* scalar text */
	bool plain;        /* an unquoted scalar (so "null", "~", "" mean null) */
	size_t n;          /* pairs (map) or items (seq) */
	struct usher_ypair *pairs;
	struct usher_ynode **items;
};

/* Parses text (len bytes) from file (named in errors) into *root, all of it
 * allocated in a. A syntax error, duplicate key or non-scalar key adds a
 * diagnostic and returns USHER_ERR_INVALID. An empty document gives an
 * empty map. Multiple documents are an error. */
enum usher_err usher_yaml_parse(struct usher_arena *a, const char *file, const char *text,
				size_t len, struct usher_ynode **root, struct usher_diags *d);

/* The value for key in a map node, or NULL. */
const struct usher_ynode *usher_ynode_get(const struct usher_ynode *map, const char *key);
/* True for a plain scalar that YAML reads as null (~, null, Null, NULL, ""). */
bool usher_ynode_is_null(const struct usher_ynode *n);
const char *usher_ynode_kind_name(enum usher_ynode_kind k);

#endif
