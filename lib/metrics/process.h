/* Self metrics every Prometheus client library exports: process_* (CPU,
 * memory, file descriptors, start time, read from /proc/self like the Go
 * client does) and usher_build_info. */
#ifndef USHER_METRICS_PROCESS_H
#define USHER_METRICS_PROCESS_H

#include "metrics/registry.h"

/* A usher_collector_fn (arg unused): a fresh set with process_cpu_seconds_total,
 * process_open_fds, process_max_fds, process_virtual_memory_bytes,
 * process_virtual_memory_max_bytes, process_resident_memory_bytes,
 * process_start_time_seconds and usher_build_info{version,revision,compiler}.
 * A /proc file that cannot be read leaves its metrics out; never NULL.
 * Thread-safe: concurrent renders may call it at once. */
struct usher_sample_set *usher_process_collect(void *arg);

/* Adds usher_process_collect to r's collectors. */
void usher_process_collector_register(struct usher_registry *r);

#endif
