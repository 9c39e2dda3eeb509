/* The probe event loop: one thread drives every asynchronous probe through
 * libcurl's multi interface (many transfers, no thread per target), plus
 * timers and extra file descriptors (signals). Blocking probes run on worker
 * threads and report back through usher_loop_wakeup. */
#ifndef USHER_PROBES_LOOP_H
#define USHER_PROBES_LOOP_H

#include <curl/curl.h>
#include <stdbool.h>

#include "core/err.h"

struct usher_loop;

/* A transfer in flight. The owner embeds it; done() is called on the loop
 * thread once curl finishes (result is the CURLcode), after the easy handle
 * has been removed from the multi handle. */
struct usher_loop_xfer {
	CURL *easy;
	void (*done)(struct usher_loop_xfer *x, CURLcode result);
};

struct usher_loop *usher_loop_new(void);
/* Removes any transfers still registered (without calling done). */
void usher_loop_free(struct usher_loop *l);

/* Starts x->easy. The loop owns CURLOPT_PRIVATE of the handle. */
enum usher_err usher_loop_add(struct usher_loop *l, struct usher_loop_xfer *x);
/* Abandons a transfer in flight; done() will not be called. */
void usher_loop_remove(struct usher_loop *l, struct usher_loop_xfer *x);

/* Waits up to timeout_ms for network activity, a wakeup or one of fds
 * becoming readable (revents filled in), then drives curl and calls done()
 * for every finished transfer. */
struct curl_waitfd;
void usher_loop_poll(struct usher_loop *l, int timeout_ms, struct curl_waitfd *fds, unsigned nfds);
/* Makes a usher_loop_poll in progress return soon. Any thread. */
void usher_loop_wakeup(struct usher_loop *l);
/* Number of transfers in flight. */
unsigned usher_loop_active(const struct usher_loop *l);

/* Publishes the loop's own counters (usher_loop_wakeups_total,
 * usher_loop_socket_events_total, usher_loop_transfers, usher_loop_sockets)
 * into reg, refreshed at most once a second from usher_loop_poll; reg must
 * outlive the loop (usher_loop_free removes them). */
struct usher_registry;
void usher_loop_register_metrics(struct usher_loop *l, struct usher_registry *reg);

#endif
