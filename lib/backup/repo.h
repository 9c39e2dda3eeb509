/* The backup repository on disk:
 *
 *   REPO/<id>/manifest.json, REPO/<id>/<data_file>   a complete backup
 *   REPO/<id>.partial/                               one being written
 *   REPO/<id>.deleting/                              one being removed
 *   REPO/locks/<target>.lock                         flock()ed by a running backup
 *
 * A backup becomes complete in one rename of its directory, after its
 * files are fsynced, so a crash never leaves one that looks complete.
 * Ids are "<target>_<YYYYMMDDTHHMMSSZ>" (UTC), unique per repository. */
#ifndef USHER_BACKUP_REPO_H
#define USHER_BACKUP_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/conf.h"
#include "backup/manifest.h"
#include "core/err.h"

#define USHER_BACKUP_ID_MAX 200

/* One complete backup. */
struct usher_repo_entry {
	char *id;
	char *dir; /* REPO/<id> */
	struct usher_manifest *m;
};

struct usher_repo_list {
	struct usher_repo_entry *v; /* oldest first (by start time, then id) */
	size_t n;
	char **bad; /* "id: why" of directories whose manifest did not load */
	size_t nbad;
};

/* Lists the complete backups in repo, of target only when target is not
 * NULL. A missing repo is an empty list. */
enum usher_err usher_repo_list(const char *repo, const char *target, struct usher_repo_list *out,
			       struct usher_error *err);
void usher_repo_list_free(struct usher_repo_list *l);
/* The entry with id, or NULL. */
const struct usher_repo_entry *usher_repo_find(const struct usher_repo_list *l, const char *id);

/* True if s can name a target in ids and lock files: 1 to 100 of
 * [A-Za-z0-9._:-], not starting with '.'. */
bool usher_repo_target_valid(const char *s);

/* Creates repo (mode 0700) and repo/locks when missing. */
enum usher_err usher_repo_init(const char *repo, struct usher_error *err);

/* Takes the lock of target, waiting up to wait_ms for another holder to
 * let go. USHER_ERR_TIMEOUT with "already running (pid N)" when it cannot;
 * on success *fd is the lock, released by usher_repo_unlock (or by the
 * process's death: a kill -9 leaves no stale lock). */
enum usher_err usher_repo_lock(const char *repo, const char *target, int64_t wait_ms, int *fd,
			       struct usher_error *err);
void usher_repo_unlock(int fd);

/* A new id for target at now_ms, not used in repo yet (the second is
 * bumped while REPO/<id> or its .partial exist). */
void usher_repo_new_id(const char *repo, const char *target, int64_t now_ms, char *id,
		       size_t len);

/* Removes directory dir and the plain files in it. */
enum usher_err usher_repo_rmdir(const char *dir, struct usher_error *err);
/* Removes the .partial and .deleting directories left by killed runs of
 * target. Call with the target's lock held. Returns how many went. */
size_t usher_repo_clean_leftovers(const char *repo, const char *target);
/* Removes a complete backup: renamed to .deleting first, so a crash
 * half-way never leaves a backup that looks complete but is not. */
enum usher_err usher_repo_remove(const char *repo, const char *id, struct usher_error *err);
/* fsyncs a directory. */
enum usher_err usher_fsync_dir(const char *dir, struct usher_error *err);

/* Why retention keeps a backup (bits). */
#define USHER_KEEP_LAST 0x1u
#define USHER_KEEP_DAILY 0x2u
#define USHER_KEEP_WEEKLY 0x4u
#define USHER_KEEP_MONTHLY 0x8u

/* Applies r to the stop times times_ms[0..n) (newest first, as ms since
 * the epoch, UTC calendar): keep[i] gets the USHER_KEEP_* bits of the
 * rules that keep backup i; 0 means it goes. When every count of r is 0
 * every backup is kept (with bits 0: callers check usher_retention_set). */
void usher_retention_apply(const struct usher_backup_retention_conf *r, const int64_t *times_ms,
			   size_t n, unsigned *keep);
bool usher_retention_set(const struct usher_backup_retention_conf *r);

#endif
