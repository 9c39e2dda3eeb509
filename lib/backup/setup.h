/* What every backup command starts with: the config (--config, else
 * $USHER_CONFIG, else /etc/usher/usher.yml when it exists), the repository
 * and key chosen by flag or config, and the environment the jobs take. */
#ifndef USHER_BACKUP_SETUP_H
#define USHER_BACKUP_SETUP_H

#include <signal.h>
#include <stdbool.h>

#include "backup/conf.h"
#include "backup/job.h"
#include "backup/stream.h"
#include "config/config.h"

#define USHER_DEFAULT_CONFIG "/etc/usher/usher.yml"

struct usher_backup_setup {
	struct usher_config *cfg; /* NULL without a config */
	struct usher_backup_conf bc; /* cfg's backup: section, or the defaults */
	struct usher_backup_key key;
	struct usher_backup_env env;
	struct usher_arena *arena;
};

/* Loads what the flags (any may be NULL) and the config say. need_key:
 * fail without a key. Config problems are printed to stderr as
 * file:line:col. Returns USHER_ERR_INVALID for config and usage problems. */
enum usher_err usher_backup_setup_init(struct usher_backup_setup *s, const char *config,
				       const char *repo, const char *key_file, bool need_key,
				       struct usher_error *err);
void usher_backup_setup_free(struct usher_backup_setup *s);

/* SIGINT / SIGTERM set *flag (the jobs then stop cleanly and remove their
 * partial files); SIGXFSZ and SIGPIPE are ignored, so a full disk or a
 * file size limit is an error from write(), not a dead process. */
void usher_backup_signals(volatile sig_atomic_t *flag);

#endif
