/* The results of backups, verifies and drills as node_exporter textfiles
 * (*.prom in usherd's textfile_dir), written atomically: a temp file not
 * ending in .prom, fsynced, renamed over the old one. */
#ifndef USHER_BACKUP_PROMFILE_H
#define USHER_BACKUP_PROMFILE_H

#include <stddef.h>

#include "core/err.h"

/* One gauge of a file; every gauge of a file has the label target. */
struct usher_promfile_gauge {
	const char *name;
	const char *help;
	double value;
};

/* Writes dir/<file> (file ends in .prom) with the n gauges, labelled
 * {target="target"}. */
enum usher_err usher_promfile_write(const char *dir, const char *file, const char *target,
				    const struct usher_promfile_gauge *g, size_t n,
				    struct usher_error *err);

/* The value of gauge name in dir/<file> as an earlier run wrote it, or def
 * (a missing file, a missing line). For carrying "last success" over a
 * failed run. */
double usher_promfile_read(const char *dir, const char *file, const char *name, double def);

/* The file name of kind ("backup", "backup_verify", "dr_drill") for target:
 * "usher_<kind>_<target>.prom", with characters outside [A-Za-z0-9_.-]
 * replaced by '_'. */
void usher_promfile_name(const char *kind, const char *target, char *out, size_t len);

#endif
