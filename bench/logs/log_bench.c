/* Log path benchmark: usher_log_event through logship into a file sink, or
 * an elasticsearch sink pointed at a local _bulk receiver, as usherd does.
 * Built and driven by bench/logs/run.py.
 *
 *   log_bench file DIR N            N events as fast as one thread logs them into
 *                                   DIR/bench.log; prints events/s and CPU s
 *   log_bench bulk DIR N URL [RATE] N events (at RATE events/s; default as fast as one
 *                                   thread can), timed until the spool is empty
 *   log_bench rate DIR S R URL      R events/s for S seconds into a file sink and an
 *                                   elasticsearch sink; prints the CPU the process
 *                                   used (all threads) as % of one core
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "config/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "logship/logship.h"

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* A probe-failed event as the scheduler logs it: the usual size and shape. */
static void one_event(struct usher_log *log, long i)
{
	struct usher_log_field f[] = {
	    USHER_LFS("event.action", "probe-failed"),
	    USHER_LFS("event.kind", "event"),
	    USHER_LFS("event.outcome", "failure"),
	    USHER_LFS("usher.probe.name", "booking-api"),
	    USHER_LFS("usher.probe.type", "http"),
	    USHER_LFS("usher.probe.instance", "api.example.com:443"),
	    USHER_LFS("usher.probe.reason", "status"),
	    USHER_LFS("error.message", "GET https://api.example.com/health: status 503"),
	    USHER_LFI("event.duration", 48213000 + i),
	    USHER_LFI("usher.probe.failures_held_back", 0),
	};

	usher_log_event(log, USHER_LOG_WARN, f, sizeof(f) / sizeof(f[0]),
			"probe %s failed: %s (%s)", "booking-api",
			"GET https://api.example.com/health: status 503", "status");
}

static struct usher_logship *start(struct usher_log *log, const char *yaml,
				   struct usher_config **cfg)
{
	struct usher_diags d;
	struct usher_logship_plan *plan = NULL;
	struct usher_logship *ls;
	struct usher_error err;

	usher_diags_init(&d);
	if (usher_config_load_text("bench.yml", yaml, strlen(yaml), cfg, &d)) {
		char first[1024];

		fprintf(stderr, "config: %s\n", usher_diags_first(&d, first, sizeof(first)));
		exit(2);
	}
	usher_diags_free(&d);
	ls = usher_logship_new(log);
	usher_error_clear(&err);
	if (usher_logship_prepare(ls, *cfg, &plan, &err)) {
		fprintf(stderr, "logship: %s\n", err.msg);
		exit(2);
	}
	usher_logship_commit(ls, plan);
	usher_log_set_output(log, usher_logship_emit, ls);
	return ls;
}

static void stop(struct usher_log *log, struct usher_logship *ls, struct usher_config *cfg)
{
	usher_log_set_output(log, NULL, NULL);
	usher_logship_free(ls);
	usher_config_free(cfg);
}

int main(int argc, char **argv)
{
	struct usher_log *log = usher_log_new(2, USHER_LOG_FORMAT_ECS, USHER_LOG_INFO, "usherd");
	struct usher_config *cfg = NULL;
	struct usher_logship *ls;
	char yaml[2048];
	long i, n;
	double c0, t0, t1;

	if (argc < 4) {
		fprintf(stderr, "usage: log_bench file|bulk|rate DIR ...\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(argv[1], "file")) {
		n = strtol(argv[3], NULL, 10);
		snprintf(yaml, sizeof(yaml),
			 "state_dir: %s/state\nlogging:\n  sinks:\n    - {type: file, path: "
			 "%s/bench.log}\n",
			 argv[2], argv[2]);
		ls = start(log, yaml, &cfg);
		c0 = cpu_seconds();
		t0 = (double)usher_mono_ns() / 1e9;
		for (i = 0; i < n; i++)
			one_event(log, i);
		t1 = (double)usher_mono_ns() / 1e9;
		printf(
		    "file events=%ld seconds=%.3f events_per_s=%.0f cpu_s=%.3f us_per_event=%.2f\n",
		    n, t1 - t0, n / (t1 - t0), cpu_seconds() - c0, (t1 - t0) * 1e6 / n);
		stop(log, ls, cfg);
	} else if (!strcmp(argv[1], "bulk") && argc >= 5) {
		double pace = argc >= 6 ? strtod(argv[5], NULL) : 0;

		n = strtol(argv[3], NULL, 10);
		snprintf(
		    yaml, sizeof(yaml),
		    "state_dir: %s/state\nlogging:\n  sinks:\n    - {type: elasticsearch, url: "
		    "\"%s\", batch_max_bytes: 5MiB, flush_interval: 200ms, spool_max_bytes: "
		    "2GiB}\n",
		    argv[2], argv[4]);
		ls = start(log, yaml, &cfg);
		c0 = cpu_seconds();
		t0 = (double)usher_mono_ns() / 1e9;
		for (i = 0; i < n; i++) {
			one_event(log, i);
			if (pace > 0 && i % 1000 == 999) {
				/* hold the rate: sleep until event i is due */
				double due = t0 + (double)(i + 1) / pace,
				       now = (double)usher_mono_ns() / 1e9;

				if (due > now) {
					struct timespec ts = {
					    (time_t)(due - now),
					    (long)((due - now - (double)(time_t)(due - now)) *
						   1e9)};

					nanosleep(&ts, NULL);
				}
			}
		}
		t1 = (double)usher_mono_ns() / 1e9;
		usher_logship_drain(ls, 600 * 1000); /* until the receiver has them all */
		{
			double t2 = (double)usher_mono_ns() / 1e9;

			printf("bulk events=%ld log_seconds=%.3f log_events_per_s=%.0f "
			       "delivered_seconds=%.3f delivered_events_per_s=%.0f cpu_s=%.3f\n",
			       n, t1 - t0, n / (t1 - t0), t2 - t0, n / (t2 - t0),
			       cpu_seconds() - c0);
		}
		stop(log, ls, cfg);
	} else if (!strcmp(argv[1], "rate") && argc >= 6) {
		double secs = strtod(argv[3], NULL), rate = strtod(argv[4], NULL), cpu;
		struct timespec gap;
		long total;

		snprintf(yaml, sizeof(yaml),
			 "state_dir: %s/state\nlogging:\n  sinks:\n    - {type: file, path: "
			 "%s/bench.log}\n"
			 "    - {type: elasticsearch, url: \"%s\", flush_interval: 1s}\n",
			 argv[2], argv[2], argv[5]);
		ls = start(log, yaml, &cfg);
		total = (long)(secs * rate);
		gap.tv_sec = (time_t)(1.0 / rate);
		gap.tv_nsec = (long)((1.0 / rate - (double)gap.tv_sec) * 1e9);
		c0 = cpu_seconds();
		t0 = (double)usher_mono_ns() / 1e9;
		for (i = 0; i < total; i++) {
			one_event(log, i);
			nanosleep(&gap, NULL);
		}
		usher_logship_drain(ls, 10000);
		t1 = (double)usher_mono_ns() / 1e9;
		cpu = cpu_seconds() - c0;
		printf("rate events_per_s=%.0f seconds=%.1f events=%ld cpu_s=%.4f cpu_percent=%.3f "
		       "us_cpu_per_event=%.1f\n",
		       rate, t1 - t0, total, cpu, 100.0 * cpu / (t1 - t0), cpu * 1e6 / total);
		stop(log, ls, cfg);
	} else {
		fprintf(stderr, "usage: log_bench file|bulk|rate DIR ...\n");
		return 2;
	}
	usher_log_free(log);
	curl_global_cleanup();
	return 0;
}
