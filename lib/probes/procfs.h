/* Parsers of the Linux /proc files the host probe reads (stat, loadavg,
 * meminfo, net/dev, diskstats, mountinfo): text in, values out, no I/O, so
 * unit tests feed them captured files. Names and units follow
 * node_exporter's collectors. */
#ifndef USHER_PROBES_PROCFS_H
#define USHER_PROBES_PROCFS_H

#include <stdbool.h>
#include <stddef.h>

#include "config/options.h"
#include "core/arena.h"
#include "core/err.h"

/* ---- /proc/stat --------------------------------------------------------- */

/* The modes of node_cpu_seconds_total, in /proc/stat's column order. */
enum usher_cpu_mode {
	USHER_CPU_USER,
	USHER_CPU_NICE,
	USHER_CPU_SYSTEM,
	USHER_CPU_IDLE,
	USHER_CPU_IOWAIT,
	USHER_CPU_IRQ,
	USHER_CPU_SOFTIRQ,
	USHER_CPU_STEAL,
	USHER_CPU_GUEST,
	USHER_CPU_GUEST_NICE,
	USHER_CPU_NMODES,
};

extern const char *const usher_cpu_mode_names[USHER_CPU_NMODES];

struct usher_cpu {
	const char *cpu; /* "0", "1", ... as node_exporter labels it */
	double seconds[USHER_CPU_NMODES];
	int nmodes; /* columns present (older kernels have fewer) */
};

struct usher_proc_stat {
	struct usher_cpu *cpus; /* per CPU, not the "cpu" total line */
	size_t ncpus;
	double boot_time;        /* btime, unix seconds; -1 when absent */
	double context_switches; /* ctxt; -1 when absent */
	double forks;            /* processes; -1 when absent */
	double intr;             /* intr's total; -1 when absent */
	double procs_running;    /* -1 when absent */
	double procs_blocked;    /* -1 when absent */
};

/* Parses /proc/stat; ticks_per_second is USER_HZ (sysconf(_SC_CLK_TCK)).
 * Arrays live in a. USHER_ERR_INVALID with err when a line it needs is
 * malformed. */
enum usher_err usher_procfs_stat(const char *text, size_t len, double ticks_per_second,
				 struct usher_arena *a, struct usher_proc_stat *out,
				 struct usher_error *err);

/* ---- /proc/loadavg ------------------------------------------------------ */

struct usher_loadavg {
	double load1, load5, load15;
};

enum usher_err usher_procfs_loadavg(const char *text, size_t len, struct usher_loadavg *out,
				    struct usher_error *err);

/* ---- /proc/meminfo ------------------------------------------------------ */

/* One line, named as node_exporter names it: "MemTotal_bytes" (kB lines
 * in bytes), "Active_anon_bytes" for Active(anon), "HugePages_Total" for
 * lines without a unit. */
struct usher_meminfo {
	const char *name;
	double value;
};

enum usher_err usher_procfs_meminfo(const char *text, size_t len, struct usher_arena *a,
				    struct usher_meminfo **out, size_t *n, struct usher_error *err);

/* ---- /proc/net/dev ------------------------------------------------------ */

#define USHER_NETDEV_NFIELDS 16
/* "receive_bytes", ..., "transmit_compressed": the columns of /proc/net/dev. */
extern const char *const usher_netdev_field_names[USHER_NETDEV_NFIELDS];

struct usher_netdev {
	const char *device;
	double v[USHER_NETDEV_NFIELDS];
};

enum usher_err usher_procfs_netdev(const char *text, size_t len, struct usher_arena *a,
				   struct usher_netdev **out, size_t *n, struct usher_error *err);

/* ---- /proc/diskstats ---------------------------------------------------- */

#define USHER_DISK_NFIELDS 17

struct usher_diskstat {
	const char *device;
	unsigned major, minor;
	double v[USHER_DISK_NFIELDS]; /* raw: ticks are ms, sectors 512 bytes */
	int nfields;                  /* 11 (old kernels), 15 (4.18+) or 17 (5.5+) */
};

enum usher_err usher_procfs_diskstats(const char *text, size_t len, struct usher_arena *a,
				      struct usher_diskstat **out, size_t *n,
				      struct usher_error *err);

/* node_exporter's default device filter: partitions (sda1, nvme0n1p1),
 * ram, zram, loop and floppy devices are left out. */
bool usher_disk_device_ignored(const char *name);

/* ---- /proc/<pid>/mountinfo ---------------------------------------------- */

struct usher_mount {
	const char *device; /* the mount source ("/dev/vda1", "tmpfs") */
	const char *mountpoint;
	const char *fstype;
	const char *root; /* the mounted subtree: "/" unless a bind mount of a part */
	unsigned major, minor;
};

/* Parses mountinfo (octal escapes such as \040 decoded). */
enum usher_err usher_procfs_mountinfo(const char *text, size_t len, struct usher_arena *a,
				      struct usher_mount **out, size_t *n, struct usher_error *err);

/* Keeps, in place, the mounts the filesystem metrics report, and returns
 * how many: not of an excluded type, not at an excluded mount point (an
 * entry "/dev" excludes /dev and what is under it, "/var/lib/docker/" only
 * what is under it), and each filesystem once: a mount point mounted over
 * counts as its last mount, and later mounts of a device already listed
 * (bind mounts) are dropped, preferring a mount of its whole tree. */
size_t usher_mounts_select(struct usher_mount *v, size_t n, const struct usher_strlist *fs_exclude,
			   const struct usher_strlist *mp_exclude);

#endif
