/* Silences, as Alertmanager keeps them: matchers and a time range, pending
 * before it starts, active while it runs, expired after; created, updated
 * and expired through API v2 (amtool), persisted in the state store so a
 * restart keeps them. An update that Alertmanager would not do in place
 * (other matchers, an active silence's start moved) expires the old
 * silence and creates a new one with a new id.
 *
 * Threads: every function may be called from any thread. */
#ifndef USHER_NOTIFY_SILENCE_H
#define USHER_NOTIFY_SILENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "notify/alert.h"
#include "notify/matchers.h"
#include "store/store.h"

#define USHER_SILENCE_RETENTION_MS (120LL * 3600 * 1000) /* Alertmanager's --data.retention */

enum usher_silence_state {
	USHER_SILENCE_PENDING,
	USHER_SILENCE_ACTIVE,
	USHER_SILENCE_EXPIRED,
};

struct usher_silences;

/* Opens the silences kept in st (module "silences"; borrowed, must
 * outlive them; NULL keeps them in memory only). */
enum usher_err usher_silences_new(struct usher_store *st, struct usher_silences **out,
				  struct usher_error *err);
void usher_silences_free(struct usher_silences *s);

/* Creates or updates a silence from a postableSilence body (id, matchers
 * [{name, value, isRegex, isEqual}], startsAt, endsAt, createdBy, comment)
 * at now_ns, with Alertmanager's checks. *id_out (37 bytes) gets the id of
 * the silence that now holds it. USHER_ERR_INVALID (err says why),
 * USHER_ERR_NOTFOUND for an update of an unknown id, USHER_ERR_IO when it
 * cannot be saved. */
enum usher_err usher_silences_set_json(struct usher_silences *s, const json_t *body, int64_t now_ns,
				       char id_out[37], struct usher_error *err);
/* Expires a silence now. USHER_ERR_NOTFOUND, or USHER_ERR_INVALID when
 * it has expired already. */
enum usher_err usher_silences_expire(struct usher_silences *s, const char *id, int64_t now_ns,
				     struct usher_error *err);
/* One silence as gettableSilence JSON, or NULL when unknown. */
json_t *usher_silences_get_json(struct usher_silences *s, const char *id, int64_t now_ns);
/* Every silence (gettableSilences), filtered by the label matchers of
 * filter (NULL: all; a silence passes when its matchers equal-match the
 * filter as Alertmanager's API does), ordered as Alertmanager orders them. */
json_t *usher_silences_list_json(struct usher_silences *s, const struct usher_am_matchers *filter,
				 int64_t now_ns);
/* The ids of the active silences that match l, as a JSON array of strings
 * (empty when none). */
json_t *usher_silences_mutes(struct usher_silences *s, const struct usher_am_labels *l,
			     int64_t now_ns);
/* Drops silences expired more than retention_ms ago. */
void usher_silences_gc(struct usher_silences *s, int64_t now_ns, int64_t retention_ms);
/* A counter bumped by every change (cache invalidation). */
uint64_t usher_silences_version(struct usher_silences *s);
/* How many silences are in each state: for metrics. */
void usher_silences_count(struct usher_silences *s, int64_t now_ns, int counts[3]);
const char *usher_silence_state_name(enum usher_silence_state st);

#endif
