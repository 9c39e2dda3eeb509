/* The textfile directory (node_exporter's textfile collector): every
 * *.prom file in textfile_dir is read each global.scrape_interval and its
 * samples re-exposed, with node_textfile_mtime_seconds{file} and
 * node_textfile_scrape_error. Backups and drills leave their results here. */
#ifndef USHER_PROBES_TEXTFILE_H
#define USHER_PROBES_TEXTFILE_H

#include "config/config.h"
#include "config/options.h"
#include "probes/probe.h"

/* The largest textfile read; a larger one is an error of that file. */
#define USHER_TEXTFILE_MAX (16 * 1024 * 1024)

/* The options of the generated textfile instance (its probe conf's opts). */
struct usher_textfile_opts {
	const char *dir;
};

/* The parser of the top-level textfile_dir key (a USHER_OPT_CUSTOM field, a
 * const char *): sets it and appends the one probe entry of type textfile
 * (usher_config_add_probe), named "textfile:<dir>" (a name no probe can
 * have), job "textfile", instance the host name, run every
 * global.scrape_interval. */
usher_opt_parse_fn usher_textfile_parse_dir;

/* The probe type of that instance: blocking (.run on a worker, since file
 * reads may stall), not in usher_probe_types. A bad file is a measurement
 * (node_textfile_scrape_error 1 and a rate-limited log line), so runs
 * succeed unless the run itself cannot work. */
extern const struct usher_probe_type usher_probe_textfile;

#endif
