/* Micro-benchmark of usher_registry_render: 300 producers publishing 100
 * samples each (gauges, counters, one histogram) = 30,000 samples, rendered
 * in both formats. `registry_render dump text|openmetrics` writes one
 * render to stdout instead (for `promtool check metrics`).
 *
 *   cc -O2 -Ilib -I<build>/generated bench/registry_render.c <build>/lib/libusher.a -lm -lpthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "metrics/process.h"
#include "metrics/registry.h"

#define PRODUCERS 300
#define RENDERS   50

static const struct usher_metric_desc desc_up = {
    "probe_success", USHER_METRIC_GAUGE, "Displays whether or not the probe was a success."};
static const struct usher_metric_desc desc_phase = {
    "probe_http_duration_seconds", USHER_METRIC_GAUGE,
    "Duration of http request by phase, summed over all redirects."};
static const struct usher_metric_desc desc_bytes = {"bench_received_bytes", USHER_METRIC_COUNTER,
						    "Bytes received from the target."};
static const struct usher_metric_desc desc_lat = {"bench_latency_seconds", USHER_METRIC_HISTOGRAM,
						  "Request latency."};

static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static struct usher_registry *fill(void)
{
	static const char owners[PRODUCERS];
	static const char *const phases[] = {"resolve", "connect", "tls", "processing", "transfer"};
	struct usher_registry *r = usher_registry_new();
	size_t i, j;

	for (i = 0; i < PRODUCERS; i++) {
		uint64_t counts[sizeof(bounds) / sizeof(bounds[0])] = {0};
		struct usher_histogram h = {sizeof(bounds) / sizeof(bounds[0]), bounds, counts, 0,
					    0};
		char inst[64], n[16];
		struct usher_sample_set *s;

		snprintf(inst, sizeof(inst), "booking-api-%zu.example.com:443", i);
		s = usher_sample_set_newv("job", "booking-api", "instance", inst, NULL);
		usher_sample_add(s, &desc_up, 1, NULL);
		for (j = 0; j < 5; j++)
			usher_sample_add(s, &desc_phase, 0.001 * (double)(j + 1) / 3.0, "phase",
					 phases[j], NULL);
		for (j = 0; j < 80; j++) {
			snprintf(n, sizeof(n), "%zu", j);
			usher_sample_add(s, &desc_bytes, 1234567.0 * (double)j, "shard", n, NULL);
		}
		for (j = 0; j < 1000; j++)
			usher_histogram_observe(&h, (double)j / 700.0);
		usher_sample_add_histogram(s, &desc_lat, &h, NULL); /* 14 samples */
		usher_registry_publish(r, &owners[i], s);
	}
	usher_process_collector_register(r);
	return r;
}

int main(int argc, char **argv)
{
	struct usher_registry *r = fill();
	struct usher_buf b;
	int64_t t0;
	int i, f;

	usher_buf_init(&b, 256u << 20);
	if (argc == 3 && strcmp(argv[1], "dump") == 0) {
		f = strcmp(argv[2], "openmetrics") == 0 ? USHER_EXPO_OPENMETRICS : USHER_EXPO_TEXT;
		if (usher_registry_render(r, (enum usher_expo_format)f, &b))
			return 1;
		fwrite(b.data, 1, b.len, stdout);
		goto out;
	}
	for (f = USHER_EXPO_TEXT; f <= USHER_EXPO_OPENMETRICS; f++) {
		t0 = usher_mono_ns();
		for (i = 0; i < RENDERS; i++) {
			usher_buf_reset(&b);
			if (usher_registry_render(r, (enum usher_expo_format)f, &b))
				return 1;
		}
		printf("%s: %zu bytes, %.3f ms per render\n", f ? "openmetrics" : "text", b.len,
		       (double)(usher_mono_ns() - t0) / 1e6 / RENDERS);
	}
out:
	usher_buf_free(&b);
	usher_registry_free(r);
	return 0;
}
