/* The process collector: process_* metrics from /proc/self (the fields the
 * Prometheus Go client's process collector reads) and usher_build_info. */
#include "metrics/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/buf.h"
#include "usher_version.h"

#define STR_(x) #x
#define STR(x)  STR_(x)
#if defined(__clang__)
#define USHER_COMPILER                                                                             \
	"clang " STR(__clang_major__) "." STR(__clang_minor__) "." STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define USHER_COMPILER "gcc " STR(__GNUC__) "." STR(__GNUC_MINOR__) "." STR(__GNUC_PATCHLEVEL__)
#else
#define USHER_COMPILER "unknown"
#endif

#define PROC_STAT_MAX (4 * 1024 * 1024) /* /proc/stat grows with CPUs and IRQs */

static const struct usher_metric_desc desc_cpu = {
    "process_cpu_seconds", USHER_METRIC_COUNTER,
    "Total user and system CPU time spent in seconds."};
static const struct usher_metric_desc desc_open_fds = {"process_open_fds", USHER_METRIC_GAUGE,
						       "Number of open file descriptors."};
static const struct usher_metric_desc desc_max_fds = {"process_max_fds", USHER_METRIC_GAUGE,
						      "Maximum number of open file descriptors."};
static const struct usher_metric_desc desc_vsize = {
    "process_virtual_memory_bytes", USHER_METRIC_GAUGE, "Virtual memory size in bytes."};
static const struct usher_metric_desc desc_vsize_max = {
    "process_virtual_memory_max_bytes", USHER_METRIC_GAUGE,
    "Maximum amount of virtual memory available in bytes."};
static const struct usher_metric_desc desc_rss = {
    "process_resident_memory_bytes", USHER_METRIC_GAUGE, "Resident memory size in bytes."};
static const struct usher_metric_desc desc_start = {
    "process_start_time_seconds", USHER_METRIC_GAUGE,
    "Start time of the process since unix epoch in seconds."};
static const struct usher_metric_desc desc_build = {
    "usher_build_info", USHER_METRIC_GAUGE,
    "A metric with a constant '1' value labeled by version, revision and compiler from which "
    "usher was built."};

/* Reads all of path into b (bounded by its maximum). */
static enum usher_err slurp(const char *path, struct usher_buf *b)
{
	char chunk[4096];
	enum usher_err rc = USHER_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return USHER_ERR_IO;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = USHER_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		rc = usher_buf_add(b, chunk, (size_t)n);
		if (rc)
			goto out;
	}
out:
	close(fd);
	return rc;
}

/* Parses the unsigned decimal at *pp, moving *pp past it. */
static bool parse_u64(const char **pp, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		x = x * 10 + (uint64_t)(*p - '0');
	*v = x;
	*pp = p;
	return true;
}

/* Fields of /proc/self/stat (proc(5)), counted from 1 like the man page. */
#define STAT_UTIME     14
#define STAT_STIME     15
#define STAT_STARTTIME 22
#define STAT_VSIZE     23
#define STAT_RSS       24

struct proc_stat {
	uint64_t utime, stime, starttime, vsize, rss;
};

static bool read_self_stat(struct proc_stat *st)
{
	struct usher_buf b;
	const char *p;
	int field;
	bool ok = false;

	usher_buf_init(&b, 64 * 1024);
	if (slurp("/proc/self/stat", &b))
		goto out;
	/* comm (field 2) may hold spaces and parentheses: skip to the last ')' */
	p = strrchr(usher_buf_str(&b), ')');
	if (!p)
		goto out;
	p++;
	for (field = 3; field <= STAT_RSS; field++) {
		uint64_t v = 0;

		while (*p == ' ')
			p++;
		if (!*p)
			goto out;
		if (field >= STAT_UTIME && !parse_u64(&p, &v))
			goto out;
		while (*p && *p != ' ')
			p++;
		switch (field) {
		case STAT_UTIME: st->utime = v; break;
		case STAT_STIME: st->stime = v; break;
		case STAT_STARTTIME: st->starttime = v; break;
		case STAT_VSIZE: st->vsize = v; break;
		case STAT_RSS: st->rss = v; break;
		}
	}
	ok = true;
out:
	usher_buf_free(&b);
	return ok;
}

/* The boot time (seconds since the epoch) from /proc/stat's btime line. */
static bool read_boot_time(uint64_t *btime)
{
	struct usher_buf b;
	const char *p;
	bool ok = false;

	usher_buf_init(&b, PROC_STAT_MAX);
	if (slurp("/proc/stat", &b))
		goto out;
	p = strstr(usher_buf_str(&b), "\nbtime ");
	if (!p)
		goto out;
	p += strlen("\nbtime ");
	ok = parse_u64(&p, btime);
out:
	usher_buf_free(&b);
	return ok;
}

static bool count_open_fds(uint64_t *n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	uint64_t count = 0;

	if (!d)
		return false;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			count++;
	closedir(d);
	/* the directory stream's own descriptor is not one of ours */
	*n = count ? count - 1 : 0;
	return true;
}

/* A resource limit as the Go client reports it: unlimited is 2^64-1. */
static double limit_value(rlim_t v)
{
	return v == RLIM_INFINITY ? 18446744073709551615.0 : (double)v;
}

struct usher_sample_set *usher_process_collect(void *arg)
{
	struct usher_sample_set *s = usher_sample_set_new(NULL);
	struct proc_stat st = {0};
	struct rlimit rl;
	uint64_t v;
	long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

	(void)arg;
	if (ticks > 0 && page > 0 && read_self_stat(&st)) {
		usher_sample_add(s, &desc_cpu, (double)(st.utime + st.stime) / (double)ticks, NULL);
		usher_sample_add(s, &desc_vsize, (double)st.vsize, NULL);
		usher_sample_add(s, &desc_rss, (double)st.rss * (double)page, NULL);
		if (read_boot_time(&v))
			usher_sample_add(s, &desc_start,
					 (double)v + (double)st.starttime / (double)ticks, NULL);
	}
	if (count_open_fds(&v))
		usher_sample_add(s, &desc_open_fds, (double)v, NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		usher_sample_add(s, &desc_max_fds, limit_value(rl.rlim_cur), NULL);
	if (getrlimit(RLIMIT_AS, &rl) == 0)
		usher_sample_add(s, &desc_vsize_max, limit_value(rl.rlim_cur), NULL);
	usher_sample_add(s, &desc_build, 1, "version", USHER_VERSION, "revision", USHER_REVISION,
			 "compiler", USHER_COMPILER, NULL);
	return s;
}

void usher_process_collector_register(struct usher_registry *r)
{
	usher_registry_add_collector(r, usher_process_collect, NULL);
}
