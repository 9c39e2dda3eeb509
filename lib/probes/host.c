/* The host probe: node_exporter's cpu, stat, loadavg, meminfo, netdev,
 * diskstats, filesystem and time collectors on /proc and statvfs. A
 * blocking type: it runs on a worker thread, because statfs on a hung
 * network mount never returns; such a call is left to a helper thread
 * and the mount is reported as an error (and skipped) until it answers,
 * as node_exporter's mount_timeout does. */
#include "probes/host.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "probes/procfs.h"

/* /proc files are read whole, within this bound (mountinfo of a busy
 * Kubernetes node is the largest). */
#define PROC_FILE_MAX (16 * 1024 * 1024)
#define PATH_LEN      4096

/* ---- options ------------------------------------------------------------ */

#define HO_OFF(f) offsetof(struct usher_host_opts, f)
static const struct usher_option host_options[] = {
    {.key = "procfs",
     .type = USHER_OPT_STR,
     .offset = HO_OFF(procfs),
     .def = "/proc",
     .help = "where proc is mounted (a container sees the host's at e.g. /host/proc)"},
    {.key = "rootfs",
     .type = USHER_OPT_STR,
     .offset = HO_OFF(rootfs),
     .def = "/",
     .help = "where the host's / is, for filesystem sizes (e.g. /host/root in a container)"},
    {.key = "mount_timeout",
     .type = USHER_OPT_DURATION,
     .offset = HO_OFF(mount_timeout_ms),
     .def = "5s",
     .flags = USHER_OPT_POSITIVE,
     .help = "a mount whose statfs takes longer is reported as an error and skipped until it "
	     "answers"},
    {.key = "fs_types_exclude",
     .type = USHER_OPT_STRLIST,
     .offset = HO_OFF(fs_types_exclude),
     .help = "filesystem types left out (default: node_exporter's pseudo filesystems)"},
    {.key = "mount_points_exclude",
     .type = USHER_OPT_STRLIST,
     .offset = HO_OFF(mount_points_exclude),
     .help = "mount points left out with what is under them; \"/x/\" leaves out only what is "
	     "under /x (default: /dev, /proc, /sys, under /run/credentials, /var/lib/docker, "
	     "/var/lib/containers/storage)"},
    USHER_OPT_END,
};

/* node_exporter's defaults (its fs-types-exclude and mount-points-exclude). */
static const char *const default_fs_types[] = {
    "autofs",   "binfmt_misc", "bpf",     "cgroup",    "cgroup2",    "configfs",   "debugfs",
    "devpts",   "devtmpfs",    "fusectl", "hugetlbfs", "iso9660",    "mqueue",     "nsfs",
    "overlay",  "proc",        "procfs",  "pstore",    "rpc_pipefs", "securityfs", "selinuxfs",
    "squashfs", "erofs",       "sysfs",   "tracefs",
};
static const char *const default_mount_points[] = {
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials/",
    "/var/lib/docker/",
    "/var/lib/containers/storage/",
};

static enum usher_err host_check(struct usher_cfgctx *ctx, struct usher_probe_conf *pc,
				 const struct usher_ynode *node)
{
	struct usher_host_opts *o = pc->opts;
	enum usher_err rc = USHER_OK;

	if (o->procfs[0] != '/')
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "procfs"),
				     "procfs must be an absolute path");
	if (o->rootfs[0] != '/')
		rc = usher_cfg_error(ctx, usher_ynode_get(node, "rootfs"),
				     "rootfs must be an absolute path");
	/* absent lists take the defaults; an empty list excludes nothing */
	if (!usher_ynode_get(node, "fs_types_exclude")) {
		o->fs_types_exclude.n = sizeof(default_fs_types) / sizeof(default_fs_types[0]);
		o->fs_types_exclude.v = (const char **)default_fs_types;
	}
	if (!usher_ynode_get(node, "mount_points_exclude")) {
		o->mount_points_exclude.n =
		    sizeof(default_mount_points) / sizeof(default_mount_points[0]);
		o->mount_points_exclude.v = (const char **)default_mount_points;
	}
	return rc;
}

const char *usher_host_name(struct usher_arena *a)
{
	char name[256];

	if (gethostname(name, sizeof(name)) != 0 || !name[0])
		return "localhost";
	name[sizeof(name) - 1] = '\0';
	return usher_arena_strdup(a, name);
}

static const char *host_default_instance(struct usher_arena *a, const struct usher_probe_conf *pc)
{
	(void)pc;
	return usher_host_name(a);
}

/* ---- statfs with a timeout ---------------------------------------------- */

/* Shared by a probe instance and its helper threads, which may outlive it
 * (stuck in statfs): refs counts them, under mu. */
struct stat_shared {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC */
	int refs;
	char **stuck; /* mount points a helper is stuck on */
	size_t nstuck, capstuck;
};

/* One helper thread and its request; refs under the shared mutex. */
struct statter {
	struct stat_shared *sh;
	int (*fn)(const char *path, struct statvfs *out);
	int refs;
	bool has_job, done, quit, abandoned;
	char path[PATH_LEN];
	struct statvfs st;
	int err;
};

static void shared_unref_locked(struct stat_shared *sh, bool *free_it)
{
	*free_it = --sh->refs == 0;
}

static void shared_free(struct stat_shared *sh)
{
	size_t i;

	for (i = 0; i < sh->nstuck; i++)
		free(sh->stuck[i]);
	free(sh->stuck);
	pthread_cond_destroy(&sh->cv);
	pthread_mutex_destroy(&sh->mu);
	free(sh);
}

static void stuck_remove(struct stat_shared *sh, const char *path)
{
	size_t i;

	for (i = 0; i < sh->nstuck; i++) {
		if (strcmp(sh->stuck[i], path) == 0) {
			free(sh->stuck[i]);
			sh->stuck[i] = sh->stuck[--sh->nstuck];
			return;
		}
	}
}

static bool stuck_has(const struct stat_shared *sh, const char *path)
{
	size_t i;

	for (i = 0; i < sh->nstuck; i++)
		if (strcmp(sh->stuck[i], path) == 0)
			return true;
	return false;
}

static void *statter_main(void *arg)
{
	struct statter *s = arg;
	struct stat_shared *sh = s->sh;
	bool free_s, free_sh = false;
	char path[PATH_LEN];

	pthread_mutex_lock(&sh->mu);
	for (;;) {
		struct statvfs st;
		int rc, e;

		while (!s->has_job && !s->quit)
			pthread_cond_wait(&sh->cv, &sh->mu);
		if (s->quit)
			break;
		memcpy(path, s->path, sizeof(path));
		pthread_mutex_unlock(&sh->mu);
		rc = s->fn(path, &st);
		e = rc ? errno : 0;
		pthread_mutex_lock(&sh->mu);
		s->st = st;
		s->err = e;
		s->has_job = false;
		s->done = true;
		if (s->abandoned) {
			/* it answered after all: the mount is tried again */
			stuck_remove(sh, path);
			break;
		}
		pthread_cond_broadcast(&sh->cv);
	}
	free_s = --s->refs == 0;
	if (free_s)
		shared_unref_locked(sh, &free_sh);
	pthread_mutex_unlock(&sh->mu);
	if (free_s)
		free(s);
	if (free_sh)
		shared_free(sh);
	return NULL;
}

/* Starts a helper; called with sh->mu held. NULL when no thread can be
 * made (the caller then stats inline). */
static struct statter *statter_new(struct stat_shared *sh,
				   int (*fn)(const char *path, struct statvfs *out))
{
	struct statter *s = usher_calloc(1, sizeof(*s));
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	s->sh = sh;
	s->fn = fn;
	s->refs = 2; /* the instance and the thread */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	rc = pthread_create(&th, &attr, statter_main, s);
	pthread_attr_destroy(&attr);
	if (rc) {
		free(s);
		return NULL;
	}
	sh->refs++;
	return s;
}

/* ---- the probe ---------------------------------------------------------- */

struct host {
	const struct usher_host_opts *o;
	int (*statvfs_fn)(const char *path, struct statvfs *out);
	struct usher_log *log;
	double ticks;
	struct stat_shared *sh;
	struct statter *cur; /* the helper in use, under sh->mu */
	atomic_bool cancel;
};

static void host_free(void *ctx)
{
	struct host *h = ctx;
	bool free_sh = false, free_cur = false;

	if (!h)
		return;
	pthread_mutex_lock(&h->sh->mu);
	if (h->cur) {
		h->cur->quit = true;
		free_cur = --h->cur->refs == 0;
		pthread_cond_broadcast(&h->sh->cv);
	}
	shared_unref_locked(h->sh, &free_sh);
	pthread_mutex_unlock(&h->sh->mu);
	if (free_cur)
		free(h->cur);
	if (free_sh)
		shared_free(h->sh);
	free(h);
}

static enum usher_err host_init(const struct usher_probe_conf *pc,
				const struct usher_probe_env *env, void **ctx,
				struct usher_error *err)
{
	struct host *h = usher_calloc(1, sizeof(*h));
	pthread_condattr_t ca;
	long hz = sysconf(_SC_CLK_TCK);

	(void)err;
	h->o = pc->opts;
	h->statvfs_fn = h->o->statvfs_fn ? h->o->statvfs_fn : statvfs;
	h->log = env->log;
	h->ticks = hz > 0 ? (double)hz : 100.0;
	h->sh = usher_calloc(1, sizeof(*h->sh));
	h->sh->refs = 1;
	pthread_mutex_init(&h->sh->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->sh->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&h->cancel, false);
	*ctx = h;
	return USHER_OK;
}

static void host_cancel(void *ctx, struct usher_probe_run *run)
{
	struct host *h = ctx;

	(void)run;
	atomic_store(&h->cancel, true);
	pthread_mutex_lock(&h->sh->mu);
	pthread_cond_broadcast(&h->sh->cv);
	pthread_mutex_unlock(&h->sh->mu);
}

enum stat_result {
	STAT_OK,
	STAT_ERROR,
	STAT_STUCK,    /* known stuck: skipped */
	STAT_TIMEDOUT, /* stuck since this call */
};

/* statvfs(path) through the helper, waiting until wait_until (monotonic
 * ms). A helper that does not answer in time is left to finish alone and
 * path is stuck until it does. */
static enum stat_result stat_mount(struct host *h, const char *path, int64_t wait_until,
				   struct statvfs *out, int *err)
{
	struct stat_shared *sh = h->sh;
	struct statter *s;
	struct timespec ts;
	enum stat_result res;

	if (strlen(path) >= PATH_LEN) {
		*err = ENAMETOOLONG;
		return STAT_ERROR;
	}
	pthread_mutex_lock(&sh->mu);
	if (stuck_has(sh, path)) {
		pthread_mutex_unlock(&sh->mu);
		return STAT_STUCK;
	}
	if (!h->cur)
		h->cur = statter_new(sh, h->statvfs_fn);
	s = h->cur;
	if (!s) {
		pthread_mutex_unlock(&sh->mu);
		*err = h->statvfs_fn(path, out) ? errno : 0;
		return *err ? STAT_ERROR : STAT_OK;
	}
	memcpy(s->path, path, strlen(path) + 1);
	s->done = false;
	s->has_job = true;
	pthread_cond_broadcast(&sh->cv);
	ts.tv_sec = (time_t)(wait_until / 1000);
	ts.tv_nsec = (long)(wait_until % 1000) * 1000000L;
	while (!s->done && !atomic_load(&h->cancel))
		if (pthread_cond_timedwait(&sh->cv, &sh->mu, &ts) == ETIMEDOUT)
			break;
	if (s->done) {
		*out = s->st;
		*err = s->err;
		res = s->err ? STAT_ERROR : STAT_OK;
	} else {
		/* leave the helper to its statfs; a new one serves the rest */
		s->abandoned = true;
		if (sh->nstuck == sh->capstuck) {
			sh->capstuck = sh->capstuck ? sh->capstuck * 2 : 4;
			sh->stuck = usher_realloc(sh->stuck, sh->capstuck * sizeof(*sh->stuck));
		}
		sh->stuck[sh->nstuck++] = usher_strdup(path);
		s->refs--; /* the thread still holds one */
		h->cur = NULL;
		res = STAT_TIMEDOUT;
	}
	pthread_mutex_unlock(&sh->mu);
	return res;
}

/* Reads procfs/<name> whole into b; false with a message in run (when
 * the file cannot be opened, only if report is set). */
static bool read_proc(struct host *h, struct usher_probe_run *run, const char *name,
		      struct usher_buf *b, bool report)
{
	char chunk[16384];
	char *path = usher_arena_printf(run->arena, "%s/%s", h->o->procfs, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok = true;

	usher_buf_reset(b);
	if (fd < 0) {
		if (report)
			usher_probe_fail(run, USHER_FAIL_INTERNAL, "cannot open %s: %s", path,
					 strerror(errno));
		return false;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			usher_probe_fail(run, USHER_FAIL_INTERNAL, "cannot read %s: %s", path,
					 strerror(errno));
			ok = false;
			break;
		}
		if (n == 0)
			break;
		if (usher_buf_add(b, chunk, (size_t)n)) {
			usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s is larger than %d MiB", path,
					 PROC_FILE_MAX >> 20);
			ok = false;
			break;
		}
	}
	close(fd);
	return ok;
}

/* ---- metrics ------------------------------------------------------------ */

static const struct usher_metric_desc desc_cpu = {"node_cpu_seconds", USHER_METRIC_COUNTER,
						  "Seconds the CPUs spent in each mode."};
static const struct usher_metric_desc desc_cpu_guest = {
    "node_cpu_guest_seconds", USHER_METRIC_COUNTER,
    "Seconds the CPUs spent in guests (VMs) for each mode."};
static const struct usher_metric_desc desc_boot = {"node_boot_time_seconds", USHER_METRIC_GAUGE,
						   "Node boot time, in unixtime."};
static const struct usher_metric_desc desc_ctxt = {"node_context_switches", USHER_METRIC_COUNTER,
						   "Total number of context switches."};
static const struct usher_metric_desc desc_forks = {"node_forks", USHER_METRIC_COUNTER,
						    "Total number of forks."};
static const struct usher_metric_desc desc_intr = {"node_intr", USHER_METRIC_COUNTER,
						   "Total number of interrupts serviced."};
static const struct usher_metric_desc desc_running = {"node_procs_running", USHER_METRIC_GAUGE,
						      "Number of processes in runnable state."};
static const struct usher_metric_desc desc_blocked = {
    "node_procs_blocked", USHER_METRIC_GAUGE,
    "Number of processes blocked waiting for I/O to complete."};
static const struct usher_metric_desc desc_load1 = {"node_load1", USHER_METRIC_GAUGE,
						    "1m load average."};
static const struct usher_metric_desc desc_load5 = {"node_load5", USHER_METRIC_GAUGE,
						    "5m load average."};
static const struct usher_metric_desc desc_load15 = {"node_load15", USHER_METRIC_GAUGE,
						     "15m load average."};
static const struct usher_metric_desc desc_time = {"node_time_seconds", USHER_METRIC_GAUGE,
						   "System time in seconds since epoch (1970)."};
static const struct usher_metric_desc desc_fs_size = {
    "node_filesystem_size_bytes", USHER_METRIC_GAUGE, "Filesystem size in bytes."};
static const struct usher_metric_desc desc_fs_free = {
    "node_filesystem_free_bytes", USHER_METRIC_GAUGE, "Filesystem free space in bytes."};
static const struct usher_metric_desc desc_fs_avail = {
    "node_filesystem_avail_bytes", USHER_METRIC_GAUGE,
    "Filesystem space available to non-root users in bytes."};
static const struct usher_metric_desc desc_fs_files = {"node_filesystem_files", USHER_METRIC_GAUGE,
						       "Filesystem total file nodes."};
static const struct usher_metric_desc desc_fs_files_free = {
    "node_filesystem_files_free", USHER_METRIC_GAUGE, "Filesystem total free file nodes."};
static const struct usher_metric_desc desc_fs_ro = {"node_filesystem_readonly", USHER_METRIC_GAUGE,
						    "Filesystem read-only status."};
static const struct usher_metric_desc desc_fs_error = {
    "node_filesystem_device_error", USHER_METRIC_GAUGE,
    "Whether an error occurred while getting statistics for the given device."};
static const struct usher_metric_desc desc_collector_ok = {
    "node_scrape_collector_success", USHER_METRIC_GAUGE,
    "node_exporter: Whether a collector succeeded."};
static const struct usher_metric_desc desc_collector_time = {
    "node_scrape_collector_duration_seconds", USHER_METRIC_GAUGE,
    "node_exporter: Duration of a collector scrape."};

/* node_exporter's diskstats series, in /proc/diskstats' column order, and
 * what turns each raw value into the metric's unit. */
static const struct {
	struct usher_metric_desc desc;
	double scale;
} disk_fields[USHER_DISK_NFIELDS] = {
    {{"node_disk_reads_completed", USHER_METRIC_COUNTER,
      "The total number of reads completed successfully."},
     1},
    {{"node_disk_reads_merged", USHER_METRIC_COUNTER, "The total number of reads merged."}, 1},
    {{"node_disk_read_bytes", USHER_METRIC_COUNTER, "The total number of bytes read successfully."},
     512},
    {{"node_disk_read_time_seconds", USHER_METRIC_COUNTER,
      "The total number of seconds spent by all reads."},
     0.001},
    {{"node_disk_writes_completed", USHER_METRIC_COUNTER,
      "The total number of writes completed successfully."},
     1},
    {{"node_disk_writes_merged", USHER_METRIC_COUNTER, "The number of writes merged."}, 1},
    {{"node_disk_written_bytes", USHER_METRIC_COUNTER,
      "The total number of bytes written successfully."},
     512},
    {{"node_disk_write_time_seconds", USHER_METRIC_COUNTER,
      "This is the total number of seconds spent by all writes."},
     0.001},
    {{"node_disk_io_now", USHER_METRIC_GAUGE, "The number of I/Os currently in progress."}, 1},
    {{"node_disk_io_time_seconds", USHER_METRIC_COUNTER, "Total seconds spent doing I/Os."}, 0.001},
    {{"node_disk_io_time_weighted_seconds", USHER_METRIC_COUNTER,
      "The weighted # of seconds spent doing I/Os."},
     0.001},
    {{"node_disk_discards_completed", USHER_METRIC_COUNTER,
      "The total number of discards completed successfully."},
     1},
    {{"node_disk_discards_merged", USHER_METRIC_COUNTER, "The total number of discards merged."},
     1},
    {{"node_disk_discarded_sectors", USHER_METRIC_COUNTER,
      "The total number of sectors discarded successfully."},
     1},
    {{"node_disk_discard_time_seconds", USHER_METRIC_COUNTER,
      "This is the total number of seconds spent by all discards."},
     0.001},
    {{"node_disk_flush_requests", USHER_METRIC_COUNTER,
      "The total number of flush requests completed successfully"},
     1},
    {{"node_disk_flush_requests_time_seconds", USHER_METRIC_COUNTER,
      "This is the total number of seconds spent by all flush requests."},
     0.001},
};

/* ---- collectors --------------------------------------------------------- */

static bool collect_stat(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	struct usher_sample_set *s = run->samples;
	struct usher_proc_stat st;
	struct usher_error err;
	size_t i;
	int m;

	usher_error_clear(&err);
	if (!read_proc(h, run, "stat", b, true))
		return false;
	if (usher_procfs_stat(usher_buf_str(b), b->len, h->ticks, run->arena, &st, &err)) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s", err.msg);
		return false;
	}
	/* node_exporter's modes: guest time is also in user, so it has a
	 * family of its own */
	for (m = 0; m <= USHER_CPU_STEAL; m++)
		for (i = 0; i < st.ncpus; i++)
			if (m < st.cpus[i].nmodes)
				usher_sample_add(s, &desc_cpu, st.cpus[i].seconds[m], "cpu",
						 st.cpus[i].cpu, "mode", usher_cpu_mode_names[m],
						 NULL);
	for (i = 0; i < st.ncpus; i++) {
		if (st.cpus[i].nmodes > USHER_CPU_GUEST)
			usher_sample_add(s, &desc_cpu_guest, st.cpus[i].seconds[USHER_CPU_GUEST],
					 "cpu", st.cpus[i].cpu, "mode", "user", NULL);
		if (st.cpus[i].nmodes > USHER_CPU_GUEST_NICE)
			usher_sample_add(s, &desc_cpu_guest,
					 st.cpus[i].seconds[USHER_CPU_GUEST_NICE], "cpu",
					 st.cpus[i].cpu, "mode", "nice", NULL);
	}
	if (st.boot_time >= 0)
		usher_sample_add(s, &desc_boot, st.boot_time, NULL);
	if (st.context_switches >= 0)
		usher_sample_add(s, &desc_ctxt, st.context_switches, NULL);
	if (st.forks >= 0)
		usher_sample_add(s, &desc_forks, st.forks, NULL);
	if (st.intr >= 0)
		usher_sample_add(s, &desc_intr, st.intr, NULL);
	if (st.procs_running >= 0)
		usher_sample_add(s, &desc_running, st.procs_running, NULL);
	if (st.procs_blocked >= 0)
		usher_sample_add(s, &desc_blocked, st.procs_blocked, NULL);
	return true;
}

static bool collect_loadavg(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	struct usher_loadavg l;
	struct usher_error err;

	usher_error_clear(&err);
	if (!read_proc(h, run, "loadavg", b, true))
		return false;
	if (usher_procfs_loadavg(usher_buf_str(b), b->len, &l, &err)) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s", err.msg);
		return false;
	}
	usher_sample_add(run->samples, &desc_load1, l.load1, NULL);
	usher_sample_add(run->samples, &desc_load5, l.load5, NULL);
	usher_sample_add(run->samples, &desc_load15, l.load15, NULL);
	return true;
}

static bool collect_meminfo(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	struct usher_meminfo *m;
	struct usher_error err;
	size_t n, i;

	usher_error_clear(&err);
	if (!read_proc(h, run, "meminfo", b, true))
		return false;
	if (usher_procfs_meminfo(usher_buf_str(b), b->len, run->arena, &m, &n, &err)) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s", err.msg);
		return false;
	}
	for (i = 0; i < n; i++) {
		char *name = usher_arena_printf(run->arena, "node_memory_%s", m[i].name);
		char *help =
		    usher_arena_printf(run->arena, "Memory information field %s.", m[i].name);

		if (!usher_metric_name_valid(name))
			continue;
		usher_sample_add(
		    run->samples,
		    usher_sample_set_desc(run->samples, name, USHER_METRIC_GAUGE, help), m[i].value,
		    NULL);
	}
	return true;
}

static bool collect_netdev(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	struct usher_netdev *d;
	struct usher_error err;
	size_t n, i, f;

	usher_error_clear(&err);
	if (!read_proc(h, run, "net/dev", b, true))
		return false;
	if (usher_procfs_netdev(usher_buf_str(b), b->len, run->arena, &d, &n, &err)) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s", err.msg);
		return false;
	}
	for (f = 0; f < USHER_NETDEV_NFIELDS && n; f++) {
		const struct usher_metric_desc *desc = usher_sample_set_desc(
		    run->samples,
		    usher_arena_printf(run->arena, "node_network_%s", usher_netdev_field_names[f]),
		    USHER_METRIC_COUNTER,
		    usher_arena_printf(run->arena, "Network device statistic %s.",
				       usher_netdev_field_names[f]));

		for (i = 0; i < n; i++)
			usher_sample_add(run->samples, desc, d[i].v[f], "device", d[i].device,
					 NULL);
	}
	return true;
}

static bool collect_diskstats(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	struct usher_diskstat *d;
	struct usher_error err;
	size_t n, i, f;

	usher_error_clear(&err);
	if (!read_proc(h, run, "diskstats", b, true))
		return false;
	if (usher_procfs_diskstats(usher_buf_str(b), b->len, run->arena, &d, &n, &err)) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s", err.msg);
		return false;
	}
	for (f = 0; f < USHER_DISK_NFIELDS; f++)
		for (i = 0; i < n; i++)
			if ((int)f < d[i].nfields && !usher_disk_device_ignored(d[i].device))
				usher_sample_add(run->samples, &disk_fields[f].desc,
						 d[i].v[f] * disk_fields[f].scale, "device",
						 d[i].device, NULL);
	return true;
}

struct fs_result {
	const struct usher_mount *m;
	enum stat_result res;
	struct statvfs st;
};

static bool collect_filesystem(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	static const struct usher_metric_desc *const descs[] = {
	    &desc_fs_avail, &desc_fs_files, &desc_fs_files_free,
	    &desc_fs_free,  &desc_fs_ro,    &desc_fs_size,
	};
	struct usher_mount *m;
	struct fs_result *r;
	struct usher_error err;
	const char *root = h->o->rootfs;
	size_t n, i, d;

	usher_error_clear(&err);
	/* node_exporter reads init's view of the mounts, else its own */
	if (!read_proc(h, run, "1/mountinfo", b, false) &&
	    !read_proc(h, run, "self/mountinfo", b, true))
		return false;
	if (usher_procfs_mountinfo(usher_buf_str(b), b->len, run->arena, &m, &n, &err)) {
		usher_probe_fail(run, USHER_FAIL_INTERNAL, "%s", err.msg);
		return false;
	}
	n = usher_mounts_select(m, n, &h->o->fs_types_exclude, &h->o->mount_points_exclude);
	r = usher_arena_zalloc(run->arena, (n ? n : 1) * sizeof(*r));
	for (i = 0; i < n; i++) {
		const char *path =
		    strcmp(root, "/") == 0
			? m[i].mountpoint
			: usher_arena_printf(run->arena, "%s%s", root, m[i].mountpoint);
		int64_t now = usher_mono_ms(), until = now + h->o->mount_timeout_ms;
		int e = 0;

		r[i].m = &m[i];
		if (until > run->deadline_mono_ms - 20)
			until = run->deadline_mono_ms - 20;
		if (until <= now || atomic_load(&h->cancel)) {
			r[i].res = STAT_ERROR; /* out of time for it this run */
			continue;
		}
		r[i].res = stat_mount(h, path, until, &r[i].st, &e);
		if (r[i].res == STAT_TIMEDOUT && !atomic_load(&h->cancel)) {
			/* once per stuck episode: later runs skip it quietly */
			struct usher_log_field f[] = {
			    USHER_LFS("event.action", "mount-stuck"),
			    USHER_LFS("file.path", m[i].mountpoint),
			};
			usher_log_event(h->log, USHER_LOG_WARN, f, 2,
					"statfs of %s did not answer within %lldms; it is reported "
					"as a device error until it does",
					m[i].mountpoint, (long long)(until - now));
		}
	}
	for (i = 0; i < n; i++)
		usher_sample_add(run->samples, &desc_fs_error, r[i].res == STAT_OK ? 0 : 1,
				 "device", m[i].device, "fstype", m[i].fstype, "mountpoint",
				 m[i].mountpoint, NULL);
	for (d = 0; d < sizeof(descs) / sizeof(descs[0]); d++) {
		for (i = 0; i < n; i++) {
			const struct statvfs *st = &r[i].st;
			double frsize = (double)(st->f_frsize ? st->f_frsize : st->f_bsize), v;

			if (r[i].res != STAT_OK)
				continue;
			v = descs[d] == &desc_fs_avail        ? (double)st->f_bavail * frsize
			    : descs[d] == &desc_fs_files      ? (double)st->f_files
			    : descs[d] == &desc_fs_files_free ? (double)st->f_ffree
			    : descs[d] == &desc_fs_free       ? (double)st->f_bfree * frsize
			    : descs[d] == &desc_fs_ro         ? ((st->f_flag & ST_RDONLY) ? 1 : 0)
							      : (double)st->f_blocks * frsize;
			usher_sample_add(run->samples, descs[d], v, "device", m[i].device, "fstype",
					 m[i].fstype, "mountpoint", m[i].mountpoint, NULL);
		}
	}
	return true;
}

static bool collect_time(struct host *h, struct usher_probe_run *run, struct usher_buf *b)
{
	(void)h;
	(void)b;
	usher_sample_add(run->samples, &desc_time, (double)usher_now_ns() / 1e9, NULL);
	return true;
}

static const struct {
	const char *name;
	bool (*fn)(struct host *h, struct usher_probe_run *run, struct usher_buf *b);
} collectors[] = {
    {"cpu", collect_stat},
    {"loadavg", collect_loadavg},
    {"meminfo", collect_meminfo},
    {"netdev", collect_netdev},
    {"diskstats", collect_diskstats},
    {"filesystem", collect_filesystem},
    {"time", collect_time},
};

static void host_run(void *ctx, struct usher_probe_run *run)
{
	struct host *h = ctx;
	size_t nc = sizeof(collectors) / sizeof(collectors[0]), i;
	bool *ok = usher_arena_zalloc(run->arena, nc * sizeof(*ok));
	double *secs = usher_arena_zalloc(run->arena, nc * sizeof(*secs));
	struct usher_buf b;

	atomic_store(&h->cancel, false);
	usher_buf_init(&b, PROC_FILE_MAX);
	for (i = 0; i < nc; i++) {
		int64_t t0 = usher_mono_ns();

		/* a collector's failure is its own: the others still report */
		ok[i] = collectors[i].fn(h, run, &b);
		secs[i] = (double)(usher_mono_ns() - t0) / 1e9;
	}
	usher_buf_free(&b);
	for (i = 0; i < nc; i++)
		usher_sample_add(run->samples, &desc_collector_time, secs[i], "collector",
				 collectors[i].name, NULL);
	for (i = 0; i < nc; i++)
		usher_sample_add(run->samples, &desc_collector_ok, ok[i] ? 1 : 0, "collector",
				 collectors[i].name, NULL);
}

const struct usher_probe_type usher_probe_host = {
    .name = "host",
    .help = "this machine's CPU, memory, filesystems, network and disks from /proc "
	    "(node_exporter's metric names)",
    .series = USHER_SERIES_PROBE,
    .options = host_options,
    .opts_size = sizeof(struct usher_host_opts),
    .check = host_check,
    .default_instance = host_default_instance,
    .init = host_init,
    .run = host_run,
    .cancel = host_cancel,
    .free = host_free,
};
