/* The host probe (`type: host`): this machine's CPU, load, memory,
 * filesystems, network and disks from /proc and statvfs, under
 * node_exporter's metric names, so its dashboards and alerts work as they
 * are. Parsing lives in probes/procfs.c. */
#ifndef USHER_PROBES_HOST_H
#define USHER_PROBES_HOST_H

#include <stdint.h>
#include <sys/statvfs.h>

#include "config/options.h"
#include "core/arena.h"
#include "probes/probe.h"

struct usher_host_opts {
	const char *procfs;       /* node_exporter's --path.procfs */
	const char *rootfs;       /* mount points are stat'ed under it (--path.rootfs) */
	int64_t mount_timeout_ms; /* a statfs that takes longer marks the mount stuck */
	struct usher_strlist fs_types_exclude;
	struct usher_strlist mount_points_exclude;
	/* Not from YAML: statvfs(3) unless a test substitutes one that hangs. */
	int (*statvfs_fn)(const char *path, struct statvfs *out);
};

/* The probe type, listed in probes/types.c. */
extern const struct usher_probe_type usher_probe_host;

/* This machine's host name (the host probe's and the textfile's default
 * instance), in a; "localhost" when it has none. */
const char *usher_host_name(struct usher_arena *a);

#endif
