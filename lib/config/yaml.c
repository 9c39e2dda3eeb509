/* libyaml adapter: parses one YAML document into usher_ynode trees with
 * 1-based line and column for every node. */
#include "config/yaml.h"

#include <string.h>
#include <yaml.h>

static const char *kind_names[] = {"scalar", "mapping", "sequence"};

const char *usher_ynode_kind_name(enum usher_ynode_kind k)
{
	return kind_names[k];
}

struct conv {
	struct usher_arena *a;
	const char *file;
	struct usher_diags *d;
	yaml_document_t *doc;
	int depth;
	size_t count;
	bool failed;
};

#define MAX_DEPTH 64
/* aliases are expanded, so a few lines can name millions of nodes */
#define MAX_NODES 1000000

static struct usher_ynode *convert(struct conv *c, yaml_node_t *yn)
{
	struct usher_ynode *n = usher_arena_zalloc(c->a, sizeof(*n));
	size_t i, count;

	n->line = (int)yn->start_mark.line + 1;
	n->col = (int)yn->start_mark.column + 1;
	if (++c->depth > MAX_DEPTH || ++c->count > MAX_NODES) {
		/* also stops alias cycles and alias bombs */
		if (!c->failed)
			usher_diags_add(c->d, c->file, n->line, n->col,
					"document too large or nested deeper than %d levels "
					"(a recursive alias?)", MAX_DEPTH);
		c->failed = true;
		c->depth--;
		n->kind = USHER_Y_SCALAR;
		n->value = "";
		return n;
	}
	switch (yn->type) {
	case YAML_SCALAR_NODE:
		n->kind = USHER_Y_SCALAR;
		n->value = usher_arena_strndup(c->a, (const char *)yn->data.scalar.value,
					       yn->data.scalar.length);
		n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
			   yn->data.scalar.style == YAML_ANY_SCALAR_STYLE;
		break;
	case YAML_SEQUENCE_NODE:
		n->kind = USHER_Y_SEQ;
		count = (size_t)(yn->data.sequence.items.top - yn->data.sequence.items.start);
		n->items = usher_arena_zalloc(c->a, (count ? count : 1) * sizeof(*n->items));
		for (i = 0; i < count; i++) {
			yaml_node_t *item =
				yaml_document_get_node(c->doc, yn->data.sequence.items.start[i]);
			n->items[n->n++] = convert(c, item);
		}
		break;
	case YAML_MAPPING_NODE:
		n->kind = USHER_Y_MAP;
		count = (size_t)(yn->data.mapping.pairs.top - yn->data.mapping.pairs.start);
		n->pairs = usher_arena_zalloc(c->a, (count ? count : 1) * sizeof(*n->pairs));
		for (i = 0; i < count; i++) {
			yaml_node_pair_t *p = &yn->data.mapping.pairs.start[i];
			struct usher_ynode *k = convert(c, yaml_document_get_node(c->doc, p->key));
			struct usher_ynode *v = convert(c, yaml_document_get_node(c->doc, p->value));
			size_t j;

			if (k->kind != USHER_Y_SCALAR) {
				usher_diags_add(c->d, c->file, k->line, k->col,
						"mapping keys must be scalars, not a %s",
						kind_names[k->kind]);
				c->failed = true;
				continue;
			}
			for (j = 0; j < n->n; j++) {
				if (strcmp(n->pairs[j].key->value, k->value) == 0) {
					usher_diags_add(c->d, c->file, k->line, k->col,
							"duplicate key \"%s\" (first at line %d)",
							k->value, n->pairs[j].key->line);
					c->failed = true;
					break;
				}
			}
			if (j < n->n)
				continue;
			n->pairs[n->n].key = k;
			n->pairs[n->n].val = v;
			n->n++;
		}
		break;
	default:
		n->kind = USHER_Y_SCALAR;
		n->value = "";
		n->plain = true;
	}
	c->depth--;
	return n;
}

enum usher_err usher_yaml_parse(struct usher_arena *a, const char *file, const char *text,
				size_t len, struct usher_ynode **root, struct usher_diags *d)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *top;
	struct conv c = {.a = a, .file = file, .d = d};
	enum usher_err rc = USHER_OK;
	bool have_doc = false;

	*root = NULL;
	if (!yaml_parser_initialize(&parser))
		return USHER_ERR_NOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		usher_diags_add(d, file, (int)parser.problem_mark.line + 1,
				(int)parser.problem_mark.column + 1, "yaml: %s%s%s",
				parser.problem ? parser.problem : "syntax error",
				parser.context ? " " : "", parser.context ? parser.context : "");
		rc = USHER_ERR_INVALID;
		goto out;
	}
	have_doc = true;
	top = yaml_document_get_root_node(&doc);
	if (!top) {
		/* an empty file is an empty mapping: all defaults */
		*root = usher_arena_zalloc(a, sizeof(**root));
		(*root)->kind = USHER_Y_MAP;
		(*root)->line = 1;
		(*root)->col = 1;
		goto out;
	}
	c.doc = &doc;
	*root = convert(&c, top);
	if (c.failed)
		rc = USHER_ERR_INVALID;
	/* a second document is almost always a mistake in a config file */
	if (yaml_parser_load(&parser, &extra)) {
		if (yaml_document_get_root_node(&extra)) {
			usher_diags_add(d, file, (int)extra.start_mark.line + 1,
					(int)extra.start_mark.column + 1,
					"only one YAML document is allowed");
			rc = USHER_ERR_INVALID;
		}
		yaml_document_delete(&extra);
	} else if (parser.error != YAML_NO_ERROR) {
		usher_diags_add(d, file, (int)parser.problem_mark.line + 1,
				(int)parser.problem_mark.column + 1, "yaml: %s",
				parser.problem ? parser.problem : "syntax error");
		rc = USHER_ERR_INVALID;
	}
out:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc)
		*root = NULL;
	return rc;
}

const struct usher_ynode *usher_ynode_get(const struct usher_ynode *map, const char *key)
{
	size_t i;

	if (!map || map->kind != USHER_Y_MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->pairs[i].key->value, key) == 0)
			return map->pairs[i].val;
	return NULL;
}

bool usher_ynode_is_null(const struct usher_ynode *n)
{
	if (!n || n->kind != USHER_Y_SCALAR || !n->plain)
		return false;
	return !*n->value || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
	       strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}
