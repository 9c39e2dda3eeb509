/* Alertmanager's routing tree: each route matches alerts by label
 * matchers, inherits what it does not set (receiver, group_by, the three
 * intervals, incident) from its parent, and routes are walked depth-first,
 * stopping at the first matching child unless it says `continue`. An alert
 * lands in one aggregation group per matched route, keyed as Alertmanager
 * keys it: "<route key>:<group labels>", the route key being the chain of
 * the routes' sorted matchers, "{}/{severity=\"page\"}". */
#ifndef USHER_NOTIFY_ROUTE_H
#define USHER_NOTIFY_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "notify/alert.h"
#include "notify/matchers.h"

#define USHER_ROUTE_GROUP_WAIT      "30s"
#define USHER_ROUTE_GROUP_INTERVAL  "5m"
#define USHER_ROUTE_REPEAT_INTERVAL "4h"

/* One node of the tree, everything in the config's arena. Inherited
 * values are already filled in. */
struct usher_route {
	struct usher_route *parent;
	const char *receiver;
	struct usher_am_matchers matchers; /* sorted (Alertmanager's order) */
	bool cont;                         /* continue */
	bool group_by_all;                 /* group_by: ['...'] */
	struct usher_strlist group_by;     /* label names */
	int64_t group_wait_ms, group_interval_ms, repeat_interval_ms;
	struct usher_strlist mute_time_intervals, active_time_intervals;
	/* incident: 1 true, 0 false, -1 not said (severity page or critical) */
	int incident;
	struct usher_route **routes;
	size_t nroutes;
	const char *key; /* Route.Key() */
	const char *id;  /* a stable id: the path of child indexes, "0.1.2" */
	int line, col;
};

/* Parses a `route:` node (root when parent is NULL: receiver required, no
 * matchers, no continue) into the config's arena. Errors go to ctx. */
enum usher_err usher_route_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
				 struct usher_route *parent, const char *id,
				 struct usher_route **out);

/* The routes alert labels l land on, depth-first (Route.Match): fills
 * out[] (up to max) and returns how many matched (maybe more than max). */
size_t usher_route_match(const struct usher_route *root, const struct usher_am_labels *l,
			 const struct usher_route **out, size_t max);

/* The group labels of l on route r (group_by, or all of l for '...'),
 * into g (emptied first). */
void usher_route_group_labels(const struct usher_route *r, const struct usher_am_labels *l,
			      struct usher_am_labels *g);
/* "<route key>:<group labels>": malloc'd. */
char *usher_route_group_key(const struct usher_route *r, const struct usher_am_labels *group);

/* Calls fn on every route, depth-first. */
void usher_route_walk(const struct usher_route *r,
		      void (*fn)(void *arg, const struct usher_route *r), void *arg);

#endif
