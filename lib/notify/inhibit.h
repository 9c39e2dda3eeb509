/* Alertmanager's inhibition: an alert matching a rule's target_matchers
 * is muted while a firing alert matches its source_matchers and has the
 * same values (absent = empty) for every `equal` label. An alert that
 * matches both sides is never inhibited by an alert that also matches
 * both (no self-inhibition), as in Alertmanager's InhibitRule.hasEqual. */
#ifndef USHER_NOTIFY_INHIBIT_H
#define USHER_NOTIFY_INHIBIT_H

#include <stdbool.h>
#include <stdint.h>

#include "config/options.h"
#include "notify/alert.h"
#include "notify/matchers.h"

struct usher_inhibit_rule {
	struct usher_am_matchers source, target; /* in the config's arena */
	struct usher_strlist equal;
	int line, col;
};

/* Parses `inhibit_rules:` (source_matchers / target_matchers, or the
 * legacy source_match(_re) / target_match(_re) maps, and equal). */
enum usher_err usher_inhibit_rules_parse(struct usher_cfgctx *ctx, const struct usher_ynode *node,
					 struct usher_inhibit_rule **out, size_t *n);

/* The sources of each rule at one moment: built from the current alerts,
 * then asked about targets. Borrows the rules and the alerts. */
struct usher_inhibitor;

struct usher_inhibitor *usher_inhibitor_new(const struct usher_inhibit_rule *rules, size_t n);
void usher_inhibitor_free(struct usher_inhibitor *ih);
/* Forgets every source. */
void usher_inhibitor_reset(struct usher_inhibitor *ih);
/* Offers alert a (borrowed until the next reset) as a source: kept for the
 * rules whose source matchers it matches, when it is firing at now_ns. */
void usher_inhibitor_add(struct usher_inhibitor *ih, const struct usher_am_alert *a,
			 int64_t now_ns);
/* Whether labels l are inhibited; *by gets the fingerprint of the
 * inhibiting alert (may be NULL). */
bool usher_inhibitor_mutes(const struct usher_inhibitor *ih, const struct usher_am_labels *l,
			   uint64_t *by);

#endif
