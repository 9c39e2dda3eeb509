/* Unit tests of the host probe: the /proc parsers on captured files in
 * tests/data/host/proc, node_exporter's device filter and mount selection,
 * and whole runs of the probe type on those files. */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "metrics/registry.h"
#include "probes/host.h"
#include "probes/probe.h"
#include "probes/procfs.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define PROC USHER_TEST_DATA "/host/proc"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct usher_buf b;
	char chunk[4096];
	size_t n;

	assert_non_null(f);
	usher_buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(usher_buf_add(&b, chunk, n), USHER_OK);
	fclose(f);
	*len = b.len;
	return usher_buf_take(&b);
}

static void test_stat(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_proc_stat st;
	struct usher_error err;
	size_t len;
	char *text = slurp(PROC "/stat", &len);

	(void)state;
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_stat(text, len, 100, a, &st, &err), USHER_OK);
	/* per CPU; the "cpu" total line is left out */
	assert_int_equal(st.ncpus, 2);
	assert_string_equal(st.cpus[0].cpu, "0");
	assert_string_equal(st.cpus[1].cpu, "1");
	assert_true(fabs(st.cpus[0].seconds[USHER_CPU_USER] - 517.11) < 1e-9);
	assert_true(fabs(st.cpus[1].seconds[USHER_CPU_NICE] - 0.12) < 1e-9);
	assert_true(fabs(st.cpus[1].seconds[USHER_CPU_GUEST_NICE] - 0.07) < 1e-9);
	assert_int_equal(st.cpus[1].nmodes, 10);
	assert_true(st.boot_time == 1795838273);
	assert_true(st.context_switches == 9046413);
	assert_true(st.forks == 23077);
	assert_true(st.intr == 4539802);
	assert_true(st.procs_running == 2);
	assert_true(st.procs_blocked == 1);
	assert_int_equal(usher_procfs_stat("cpu0 1 2\n", 9, 100, a, &st, &err), USHER_ERR_INVALID);
	assert_non_null(strstr(err.msg, "fewer than 4 columns"));
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_stat("btime x\n", 8, 100, a, &st, &err), USHER_ERR_INVALID);
	free(text);
	usher_arena_free(a);
}

static void test_loadavg_meminfo(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_loadavg l;
	struct usher_meminfo *m;
	struct usher_error err;
	size_t len, n, i;
	char *text = slurp(PROC "/loadavg", &len);
	double total = -1, anon = -1, hp = -1, swapfree = -1;

	(void)state;
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_loadavg(text, len, &l, &err), USHER_OK);
	assert_true(l.load1 == 1.48 && l.load5 == 2.05 && l.load15 == 1.41);
	assert_int_equal(usher_procfs_loadavg("1.0 2.0\n", 8, &l, &err), USHER_ERR_INVALID);
	free(text);

	text = slurp(PROC "/meminfo", &len);
	assert_int_equal(usher_procfs_meminfo(text, len, a, &m, &n, &err), USHER_OK);
	assert_int_equal(n, 17);
	for (i = 0; i < n; i++) {
		if (strcmp(m[i].name, "MemTotal_bytes") == 0)
			total = m[i].value;
		if (strcmp(m[i].name, "Active_anon_bytes") == 0)
			anon = m[i].value;
		if (strcmp(m[i].name, "HugePages_Total") == 0)
			hp = m[i].value;
		if (strcmp(m[i].name, "SwapFree_bytes") == 0)
			swapfree = m[i].value;
	}
	assert_true(total == 24684096.0 * 1024);
	assert_true(anon == 1608.0 * 1024);
	assert_true(hp == 0);
	assert_true(swapfree == 2000000.0 * 1024);
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_meminfo("MemTotal: 1 MB\n", 15, a, &m, &n, &err),
			 USHER_ERR_INVALID);
	free(text);
	usher_arena_free(a);
}

static void test_netdev_diskstats(void **state)
{
	struct usher_arena *a = usher_arena_new();
	struct usher_netdev *d;
	struct usher_diskstat *ds;
	struct usher_error err;
	size_t len, n;
	char *text = slurp(PROC "/net/dev", &len);

	(void)state;
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_netdev(text, len, a, &d, &n, &err), USHER_OK);
	assert_int_equal(n, 2);
	assert_string_equal(d[1].device, "eth0");
	assert_true(d[1].v[0] == 47536975); /* receive_bytes */
	assert_true(d[1].v[2] == 3);        /* receive_errs */
	assert_true(d[1].v[3] == 5);        /* receive_drop */
	assert_true(d[1].v[7] == 2);        /* receive_multicast */
	assert_true(d[1].v[8] == 101219);   /* transmit_bytes */
	assert_true(d[1].v[11] == 4);       /* transmit_drop */
	assert_string_equal(usher_netdev_field_names[8], "transmit_bytes");
	free(text);

	text = slurp(PROC "/diskstats", &len);
	assert_int_equal(usher_procfs_diskstats(text, len, a, &ds, &n, &err), USHER_OK);
	assert_int_equal(n, 8);
	assert_string_equal(ds[1].device, "vda");
	assert_int_equal(ds[1].major, 254);
	assert_int_equal(ds[1].nfields, 17);
	assert_true(ds[1].v[2] == 5820642);  /* sectors read */
	assert_int_equal(ds[3].nfields, 11); /* an old kernel's line */
	assert_int_equal(ds[4].nfields, 15);
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_diskstats("8 0 sda 1 2\n", 12, a, &ds, &n, &err),
			 USHER_ERR_INVALID);
	free(text);
	usher_arena_free(a);
}

static void test_disk_filter(void **state)
{
	static const struct {
		const char *dev;
		bool ignored;
	} cases[] = {
	    {"sda", false},      {"sda1", true},        {"vda", false},   {"vda12", true},
	    {"xvda", false},     {"xvda1", true},       {"hdb3", true},   {"nvme0n1", false},
	    {"nvme0n1p1", true}, {"nvme10n2p13", true}, {"loop0", true},  {"loop", false},
	    {"ram15", true},     {"zram0", true},       {"fd0", true},    {"dm-0", false},
	    {"md0", false},      {"sr0", false},        {"sdaa1", false}, {"mmcblk0p1", false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < N(cases); i++)
		if (usher_disk_device_ignored(cases[i].dev) != cases[i].ignored) {
			print_error("%s: want ignored=%d\n", cases[i].dev, cases[i].ignored);
			fail();
		}
}

static void test_mounts(void **state)
{
	static const char *const fs[] = {"proc", "sysfs", "devtmpfs", "overlay"};
	static const char *const mp[] = {"/dev", "/proc", "/sys", "/run/credentials/",
					 "/var/lib/docker/"};
	static const char *const want[][3] = {
	    {"/", "ext4", "/dev/vda"},
	    {"/data set", "xfs", "/dev/mapper/data"},
	    {"/mnt/backup", "tmpfs", "tmpfs"},
	    {"/var/lib/docker", "ext4", "/dev/vdb"},
	    {"/run/credentials", "tmpfs", "tmpfs"},
	    {"/tmp", "tmpfs", "tmpfs"},
	};
	struct usher_strlist fsl = {N(fs), (const char **)fs}, mpl = {N(mp), (const char **)mp};
	struct usher_arena *a = usher_arena_new();
	struct usher_mount *m;
	struct usher_error err;
	size_t len, n, i;
	char *text = slurp(PROC "/1/mountinfo", &len);

	(void)state;
	usher_error_clear(&err);
	assert_int_equal(usher_procfs_mountinfo(text, len, a, &m, &n, &err), USHER_OK);
	assert_int_equal(n, 14);
	assert_string_equal(m[4].root, "/srv/pg");
	assert_string_equal(m[5].mountpoint, "/data set");
	assert_int_equal(m[3].major, 254);
	n = usher_mounts_select(m, n, &fsl, &mpl);
	for (i = 0; i < n && i < N(want); i++)
		if (strcmp(m[i].mountpoint, want[i][0]) || strcmp(m[i].fstype, want[i][1]) ||
		    strcmp(m[i].device, want[i][2])) {
			print_error("mount %zu: %s %s %s, want %s %s %s\n", i, m[i].mountpoint,
				    m[i].fstype, m[i].device, want[i][0], want[i][1], want[i][2]);
			fail();
		}
	assert_int_equal(n, N(want));
	assert_int_equal(usher_procfs_mountinfo("22 27 0:21 / /proc rw\n", 22, a, &m, &n, &err),
			 USHER_ERR_INVALID);
	free(text);
	usher_arena_free(a);
}

/* A whole run of the probe on the fixtures, the way the scheduler does it. */
static char *host_run(const char *yaml, struct usher_probe_run *run_out)
{
	struct usher_diags diags;
	struct usher_config *cfg = NULL;
	struct usher_probe_env env = {0};
	struct usher_probe_run run;
	struct usher_registry *reg = usher_registry_new();
	struct usher_error err;
	struct usher_buf out;
	const struct usher_probe_conf *pc;
	void *ctx = NULL;

	usher_diags_init(&diags);
	if (usher_config_load_text("t.yml", yaml, strlen(yaml), &cfg, &diags)) {
		usher_diags_print(&diags, stderr);
		fail();
	}
	pc = &cfg->probes[0];
	usher_error_clear(&err);
	assert_int_equal(pc->type->init(pc, &env, &ctx, &err), USHER_OK);
	memset(&run, 0, sizeof(run));
	run.conf = pc;
	run.samples = usher_sample_set_newv("job", pc->job, "instance", pc->instance, NULL);
	run.arena = usher_arena_new();
	run.deadline_mono_ms = usher_mono_ms() + 5000;
	run.success = true;
	pc->type->run(ctx, &run);
	*run_out = run;
	usher_registry_publish(reg, reg, run.samples);
	usher_buf_init(&out, 16 << 20);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &out), USHER_OK);
	pc->type->free(ctx);
	usher_arena_free(run.arena);
	usher_registry_free(reg);
	usher_config_free(cfg);
	usher_diags_free(&diags);
	return usher_buf_take(&out);
}

static void test_probe_run(void **state)
{
	static const char *const want[] = {
	    "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n"
	    "# TYPE node_cpu_seconds_total counter\n",
	    "node_cpu_seconds_total{job=\"h\",instance=\"box-1\",cpu=\"0\",mode=\"user\"} 517.11\n",
	    "node_cpu_seconds_total{job=\"h\",instance=\"box-1\",cpu=\"1\",mode=\"steal\"} 0.23\n",
	    "node_cpu_guest_seconds_total{job=\"h\",instance=\"box-1\",cpu=\"1\",mode=\"nice\"} "
	    "0.07\n",
	    "node_boot_time_seconds{job=\"h\",instance=\"box-1\"} 1795838273\n",
	    "node_load15{job=\"h\",instance=\"box-1\"} 1.41\n",
	    "# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.\n"
	    "# TYPE node_memory_MemAvailable_bytes gauge\n"
	    "node_memory_MemAvailable_bytes{job=\"h\",instance=\"box-1\"} 24814051328\n",
	    "node_memory_HugePages_Total{job=\"h\",instance=\"box-1\"} 0\n",
	    "# HELP node_network_receive_drop_total Network device statistic receive_drop.\n"
	    "# TYPE node_network_receive_drop_total counter\n",
	    "node_network_receive_drop_total{job=\"h\",instance=\"box-1\",device=\"eth0\"} 5\n",
	    "node_network_transmit_bytes_total{job=\"h\",instance=\"box-1\",device=\"lo\"} "
	    "2025319574\n",
	    "node_disk_read_bytes_total{job=\"h\",instance=\"box-1\",device=\"vda\"} 2980168704\n",
	    "node_disk_io_time_seconds_total{job=\"h\",instance=\"box-1\",device=\"vda\"} 12.8\n",
	    "node_disk_written_bytes_total{job=\"h\",instance=\"box-1\",device=\"dm-0\"} 0\n",
	    "node_disk_flush_requests_total{job=\"h\",instance=\"box-1\",device=\"vda\"} 1622\n",
	    "node_filesystem_device_error{job=\"h\",instance=\"box-1\",device=\"/dev/vda\","
	    "fstype=\"ext4\",mountpoint=\"/\"} 0\n",
	    "node_filesystem_device_error{job=\"h\",instance=\"box-1\",device=\"/dev/mapper/data\","
	    "fstype=\"xfs\",mountpoint=\"/data set\"} 1\n",
	    "node_filesystem_size_bytes{job=\"h\",instance=\"box-1\",device=\"/dev/vda\","
	    "fstype=\"ext4\",mountpoint=\"/\"} ",
	    "node_scrape_collector_success{job=\"h\",instance=\"box-1\",collector=\"filesystem\"} "
	    "1\n",
	    "node_time_seconds{job=\"h\",instance=\"box-1\"} ",
	};
	static const char *const unwanted[] = {
	    "device=\"vda1\"",      "device=\"loop0\"",
	    "device=\"nvme0n1p1\"", "device=\"zram0\"",
	    "mountpoint=\"/proc\"", "mountpoint=\"/var/lib/postgresql\"",
	    "fstype=\"nfs4\"",      "cpu=\"\"",
	    "mode=\"guest\"",
	};
	struct usher_probe_run run;
	char *out = host_run("probes:\n"
			     "  - name: h\n"
			     "    type: host\n"
			     "    procfs: " PROC "\n"
			     "    labels: {instance: box-1}\n",
			     &run);
	size_t i;

	(void)state;
	assert_true(run.success);
	for (i = 0; i < N(want); i++)
		if (!strstr(out, want[i])) {
			print_error("missing:\n%s\nin:\n%s", want[i], out);
			fail();
		}
	for (i = 0; i < N(unwanted); i++)
		if (strstr(out, unwanted[i])) {
			print_error("unexpected %s in:\n%s", unwanted[i], out);
			fail();
		}
	free(out);
}

static void test_probe_run_missing_files(void **state)
{
	struct usher_probe_run run;
	char *out = host_run("probes:\n"
			     "  - name: h\n"
			     "    type: host\n"
			     "    procfs: " USHER_TEST_DATA "/host\n"
			     "    fs_types_exclude: []\n"
			     "    mount_points_exclude: [/]\n",
			     &run);

	(void)state;
	/* every collector fails on its own; time still reports */
	assert_false(run.success);
	assert_non_null(strstr(run.err.msg, "cannot open " USHER_TEST_DATA "/host/stat"));
	assert_non_null(strstr(out, "node_scrape_collector_success{job=\"h\",instance=\""));
	assert_non_null(strstr(out, "collector=\"loadavg\"} 0\n"));
	assert_non_null(strstr(out, "collector=\"time\"} 1\n"));
	assert_non_null(strstr(out, "node_time_seconds{"));
	free(out);
}

/* A statfs that hangs on /hang for 1.5 s the first time, like an NFS
 * server that died and came back. */
static atomic_int hang_calls, hang_returned;

static int fake_statvfs(const char *path, struct statvfs *out)
{
	if (strcmp(path, "/hang") == 0 && atomic_fetch_add(&hang_calls, 1) == 0) {
		struct timespec ts = {1, 500000000};

		nanosleep(&ts, NULL);
		atomic_fetch_add(&hang_returned, 1);
	}
	return statvfs(strcmp(path, "/hang") == 0 ? "/" : path, out);
}

/* One run on ctx; returns its text exposition and how long it took. */
static char *run_on(const struct usher_probe_conf *pc, void *ctx, int64_t *ms)
{
	struct usher_registry *reg = usher_registry_new();
	struct usher_probe_run run;
	struct usher_buf out;
	int64_t t0 = usher_mono_ms();

	memset(&run, 0, sizeof(run));
	run.conf = pc;
	run.samples = usher_sample_set_newv("job", pc->job, NULL);
	run.arena = usher_arena_new();
	run.deadline_mono_ms = t0 + 5000;
	run.success = true;
	pc->type->run(ctx, &run);
	*ms = usher_mono_ms() - t0;
	usher_registry_publish(reg, reg, run.samples);
	usher_buf_init(&out, 16 << 20);
	assert_int_equal(usher_registry_render(reg, USHER_EXPO_TEXT, &out), USHER_OK);
	usher_arena_free(run.arena);
	usher_registry_free(reg);
	return usher_buf_take(&out);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

static void test_stuck_mount(void **state)
{
	const char *yaml = "probes:\n"
			   "  - name: h\n"
			   "    type: host\n"
			   "    procfs: " USHER_TEST_DATA "/host/stuck\n"
			   "    mount_timeout: 200ms\n"
			   "    labels: {instance: box-1}\n";
	const char *hang = "node_filesystem_device_error{job=\"h\",device=\"nas:/export\","
			   "fstype=\"nfs4\",mountpoint=\"/hang\"} ";
	char logpath[] = "/tmp/usher-host-log-XXXXXX", logbuf[8192];
	struct usher_probe_env env = {0};
	struct usher_diags diags;
	struct usher_config *cfg = NULL;
	struct usher_error err;
	struct usher_host_opts *o;
	int64_t ms;
	void *ctx = NULL;
	char *out, want[256];
	ssize_t n;
	int fd, i;

	(void)state;
	fd = mkstemp(logpath);
	assert_true(fd >= 0);
	env.log = usher_log_new(fd, USHER_LOG_FORMAT_TEXT, USHER_LOG_DEBUG, "test");
	usher_diags_init(&diags);
	assert_int_equal(usher_config_load_text("t.yml", yaml, strlen(yaml), &cfg, &diags),
			 USHER_OK);
	o = cfg->probes[0].opts;
	o->statvfs_fn = fake_statvfs;
	usher_error_clear(&err);
	assert_int_equal(cfg->probes[0].type->init(&cfg->probes[0], &env, &ctx, &err), USHER_OK);

	/* the hung mount costs one mount_timeout, then is an error */
	out = run_on(&cfg->probes[0], ctx, &ms);
	snprintf(want, sizeof(want), "%s1\n", hang);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "mountpoint=\"/tmp\"} 0\n"));
	assert_non_null(strstr(out, "node_filesystem_size_bytes{job=\"h\",device=\"tmpfs\""));
	assert_null(strstr(out, "node_filesystem_size_bytes{job=\"h\",device=\"nas:/export\""));
	assert_true(ms >= 150 && ms < 1000);
	free(out);

	/* while it hangs it is skipped at once, without asking again */
	out = run_on(&cfg->probes[0], ctx, &ms);
	assert_non_null(strstr(out, want));
	assert_true(ms < 150);
	assert_int_equal(atomic_load(&hang_calls), 1);
	free(out);

	/* once it answers, it is tried again */
	for (i = 0; i < 300 && !atomic_load(&hang_returned); i++)
		usleep(10000);
	assert_int_equal(atomic_load(&hang_returned), 1);
	usleep(50000);
	out = run_on(&cfg->probes[0], ctx, &ms);
	assert_int_equal(atomic_load(&hang_calls), 2);
	snprintf(want, sizeof(want), "%s0\n", hang);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "node_filesystem_size_bytes{job=\"h\",device=\"nas:/export\""));
	assert_true(ms < 150);
	free(out);

	n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
	assert_true(n > 0);
	logbuf[n] = '\0';
	assert_int_equal(count(logbuf, "statfs of /hang did not answer within 200ms"), 1);
	cfg->probes[0].type->free(ctx);
	usher_config_free(cfg);
	usher_diags_free(&diags);
	usher_log_free(env.log);
	close(fd);
	unlink(logpath);
}

static void test_config_errors(void **state)
{
	struct usher_diags diags;
	struct usher_config *cfg = NULL;
	const char *yaml = "probes:\n"
			   "  - {name: h, type: host, procfs: proc, mount_timeout: 0s}\n";
	char first[512];

	(void)state;
	usher_diags_init(&diags);
	assert_int_equal(usher_config_load_text("t.yml", yaml, strlen(yaml), &cfg, &diags),
			 USHER_ERR_INVALID);
	usher_diags_first(&diags, first, sizeof(first));
	assert_string_equal(first, "t.yml:2:56: mount_timeout: must be longer than 0s");
	usher_diags_free(&diags);
	yaml = "probes:\n  - {name: h, type: host, procfs: proc}\n";
	usher_diags_init(&diags);
	assert_int_equal(usher_config_load_text("t.yml", yaml, strlen(yaml), &cfg, &diags),
			 USHER_ERR_INVALID);
	usher_diags_first(&diags, first, sizeof(first));
	assert_string_equal(first, "t.yml:2:35: procfs must be an absolute path");
	usher_diags_free(&diags);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stat),
	    cmocka_unit_test(test_loadavg_meminfo),
	    cmocka_unit_test(test_netdev_diskstats),
	    cmocka_unit_test(test_disk_filter),
	    cmocka_unit_test(test_mounts),
	    cmocka_unit_test(test_probe_run),
	    cmocka_unit_test(test_probe_run_missing_files),
	    cmocka_unit_test(test_stuck_mount),
	    cmocka_unit_test(test_config_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
