/* The common start of the backup, restore and drill commands. */
#include "backup/setup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"

static volatile sig_atomic_t *stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	if (stop_flag)
		*stop_flag = 1;
}

void usher_backup_signals(volatile sig_atomic_t *flag)
{
	struct sigaction sa;

	stop_flag = flag;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: blocking calls return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
}

enum usher_err usher_backup_setup_init(struct usher_backup_setup *s, const char *config,
				       const char *repo, const char *key_file, bool need_key,
				       struct usher_error *err)
{
	enum usher_err rc;

	memset(s, 0, sizeof(*s));
	s->arena = usher_arena_new();
	usher_backup_conf_defaults(&s->bc);
	if (!config)
		config = getenv("USHER_CONFIG");
	if (!config && access(USHER_DEFAULT_CONFIG, F_OK) == 0)
		config = USHER_DEFAULT_CONFIG;
	if (config && *config) {
		struct usher_diags diags;

		usher_diags_init(&diags);
		rc = usher_config_load(config, &s->cfg, &diags);
		if (rc) {
			usher_diags_print(&diags, stderr);
			usher_diags_free(&diags);
			return usher_fail(err, USHER_ERR_INVALID, "%s is not a valid configuration",
					  config);
		}
		usher_diags_free(&diags);
		if (s->cfg->backup.present)
			s->bc = s->cfg->backup;
	}
	s->env.repo = repo ? repo : s->bc.repository;
	s->env.level = (int)s->bc.compression.level;
	s->env.threads = (int)s->bc.compression.threads;
	s->env.lock_wait_ms = s->bc.lock_wait_ms;
	s->env.tmp_dir = s->bc.tmp_dir;
	s->env.textfile_dir = s->cfg ? s->cfg->textfile_dir : NULL;
	s->env.key = &s->key;
	if (key_file) {
		rc = usher_backup_key_load(key_file, &s->key, err);
		if (rc)
			return USHER_ERR_INVALID;
	} else if (s->bc.encryption_key) {
		rc = usher_backup_key_parse(s->bc.encryption_key, strlen(s->bc.encryption_key),
					    &s->key, err);
		if (rc)
			return USHER_ERR_INVALID;
	} else if (need_key) {
		return usher_fail(err, USHER_ERR_INVALID,
				  "no encryption key: pass --key-file FILE (64 hex characters, "
				  "openssl rand -hex 32) or set backup.encryption_key");
	}
	return USHER_OK;
}

void usher_backup_setup_free(struct usher_backup_setup *s)
{
	usher_config_free(s->cfg);
	usher_arena_free(s->arena);
	memset(s, 0, sizeof(*s));
}
