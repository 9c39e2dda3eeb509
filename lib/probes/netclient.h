/* Client connections for the blocking probe types (redis, memcached): TCP or
 * a unix socket, optionally TLS through OpenSSL, where every wait is a poll()
 * bounded by the run's deadline that a cancel from the loop thread cuts
 * short. Name lookups use getaddrinfo_a, so they have a deadline too. */
#ifndef USHER_PROBES_NETCLIENT_H
#define USHER_PROBES_NETCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/err.h"

#define USHER_NETADDR_HOST_MAX 256
#define USHER_NETADDR_PATH_MAX 108 /* sizeof(sun_path) */

/* A target address: "host:port", "[v6addr]:port" or "unix:/path". */
struct usher_netaddr {
	bool is_unix;
	char host[USHER_NETADDR_HOST_MAX]; /* TCP: a name or an address literal, no brackets */
	char port[6];                      /* TCP: 1 to 65535 */
	char path[USHER_NETADDR_PATH_MAX]; /* unix: an absolute path */
};

/* Parses s into out. A TCP address without a port gets default_port (0:
 * the port is required). On failure writes a one-line reason into why and
 * returns USHER_ERR_INVALID; out is then unspecified. */
enum usher_err usher_netaddr_parse(const char *s, unsigned default_port, struct usher_netaddr *out,
				   char *why, size_t whylen);

/* Loads tls's files into a throwaway OpenSSL context, to report at config
 * time what would fail at connect time: an unreadable or malformed PEM file,
 * a key that does not match its certificate. Returns USHER_ERR_TLS with err
 * naming the file. */
enum usher_err usher_netclient_tls_check(const struct usher_tls_client_conf *tls,
					 struct usher_error *err);

/* Reconnect backoff of one target. After a failed attempt to set a
 * connection up, the next attempt may come at the next run, then 1s, 2s,
 * 4s, 8s and at most 10s after the start of the run that failed, so a
 * flapping server is not stormed by probes with short intervals. */
struct usher_backoff {
	unsigned failures;
	int64_t retry_at_ms; /* monotonic */
	enum usher_err rc;   /* of the last failure */
	char msg[USHER_ERRMSG_MAX / 2];
};

/* USHER_OK when an attempt may be made at now_ms (monotonic); otherwise
 * the last failure's code, with err repeating its message and saying when
 * the next attempt comes. */
enum usher_err usher_backoff_check(const struct usher_backoff *b, int64_t now_ms,
				   struct usher_error *err);
/* Records a failed attempt of the run that started at run_start_ms. */
void usher_backoff_failed(struct usher_backoff *b, int64_t run_start_ms, enum usher_err rc,
			  const char *msg);
/* Records a success: the next failure starts the sequence again. */
void usher_backoff_reset(struct usher_backoff *b);

struct usher_netclient;

/* A client of addr (copied), over TLS when tls is not NULL (borrowed: it
 * must outlive the client). Not connected yet. Fails with USHER_ERR_TLS when
 * the TLS files cannot be loaded, USHER_ERR_IO when no eventfd can be had;
 * *out is then NULL. */
enum usher_err usher_netclient_new(const struct usher_netaddr *addr,
				   const struct usher_tls_client_conf *tls,
				   struct usher_netclient **out, struct usher_error *err);
/* Closes and frees. NULL ok. Must not race with a call in progress. */
void usher_netclient_free(struct usher_netclient *c);

/* Starts run id (nonzero, unique per run, e.g. its start time): from now
 * on usher_netclient_cancel(c, id) cuts every wait short. A cancel meant
 * for another run is ignored; one for id that came before this call takes
 * effect at once. */
void usher_netclient_begin(struct usher_netclient *c, uint64_t id);
/* From any thread, at any time: makes the waits of run id end with
 * USHER_ERR_TIMEOUT ("cancelled") as soon as they notice, which is at once
 * for a wait in progress. */
void usher_netclient_cancel(struct usher_netclient *c, uint64_t id);

bool usher_netclient_connected(const struct usher_netclient *c);
/* Connects (name lookup, TCP or unix connect, TLS handshake) by deadline,
 * first closing any connection. Errors: USHER_ERR_NOTFOUND (the name does
 * not resolve, or its lookup timed out), USHER_ERR_NETWORK (connect
 * refused or failed), USHER_ERR_TLS (handshake or certificate),
 * USHER_ERR_TIMEOUT (deadline or cancel). Nothing stays open on failure. */
enum usher_err usher_netclient_connect(struct usher_netclient *c, int64_t deadline_mono_ms,
				       struct usher_error *err);
/* Closes the connection, if any (without waiting for the server). */
void usher_netclient_close(struct usher_netclient *c);
/* Sends all len bytes of buf by deadline. */
enum usher_err usher_netclient_send(struct usher_netclient *c, const void *buf, size_t len,
				    int64_t deadline_mono_ms, struct usher_error *err);
/* Receives between 1 and cap bytes into buf by deadline; *got says how
 * many. A connection the server closed is USHER_ERR_NETWORK. */
enum usher_err usher_netclient_recv(struct usher_netclient *c, void *buf, size_t cap, size_t *got,
				    int64_t deadline_mono_ms, struct usher_error *err);
/* send and recv close the connection when they fail: what was in flight is
 * lost, and the next use must connect again. */

/* The probe_failure_info reason (USHER_FAIL_*) of an error from this module
 * or from the protocol spoken over it: NOTFOUND "dns", NETWORK "connect",
 * TLS "tls", TIMEOUT "timeout", AUTH "auth", PROTOCOL and TOOBIG
 * "protocol", INVALID (the server refused a command) "query", anything
 * else "internal". */
const char *usher_netclient_reason(enum usher_err rc);

#endif
