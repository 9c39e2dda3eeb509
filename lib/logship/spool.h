/* The disk spool of a network log sink: a directory of append-only segment
 * files holding length- and CRC-framed records, plus a cursor naming the
 * first record not yet acknowledged. Bounded: when full, the oldest
 * segment is dropped (and its records counted). Survives restarts: a torn
 * record at the end of the last segment is cut off when it is opened.
 * Thread-safe (one appender and one reader at a time is the intended use).
 * docs/internals/logship.md has the format and the fsync policy. */
#ifndef USHER_LOGSHIP_SPOOL_H
#define USHER_LOGSHIP_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/buf.h"
#include "core/err.h"

/* The largest record the spool takes. */
#define USHER_SPOOL_RECORD_MAX (1024 * 1024)

struct usher_spool_opts {
	uint64_t max_bytes;     /* the most the segments may hold together */
	uint64_t segment_bytes; /* a segment is closed once this big */
	/* the appender fdatasyncs at most this often; -1: never, another
	 * thread calls usher_spool_sync instead */
	int64_t fsync_interval_ms;
};

/* A place in the spool: a segment and a byte offset in it. */
struct usher_spool_pos {
	uint64_t seg;
	uint64_t off;
};

/* Records read from the spool: record i is data[off[i] .. off[i]+len[i]). */
struct usher_spool_batch {
	struct usher_buf data;
	size_t n, cap;
	size_t *off, *len;
	struct usher_spool_pos start; /* where the first record was */
	struct usher_spool_pos end;   /* just after the last record */
	uint64_t corrupt;             /* damaged records skipped while reading */
};

struct usher_spool;

/* Opens (creating) the spool in dir, which must exist. Cuts a torn record
 * off the last segment and drops segments before the cursor. *recovered
 * (may be NULL) gets the number of bytes cut off. */
enum usher_err usher_spool_open(const char *dir, const struct usher_spool_opts *o,
				struct usher_spool **out, uint64_t *cut, struct usher_error *err);
/* Syncs and closes. NULL ok. */
void usher_spool_close(struct usher_spool *s);

/* Appends n records (each at most USHER_SPOOL_RECORD_MAX bytes; larger
 * ones are counted in *dropped and left out). When they do not fit, the
 * oldest segments go first; the records lost are added to *dropped. On an
 * I/O error the records not written are counted in *failed and the error
 * returned; the spool stays consistent. */
enum usher_err usher_spool_append(struct usher_spool *s, const struct iovec *recs, size_t n,
				  uint64_t *dropped, uint64_t *failed, struct usher_error *err);

/* Reads records from the acknowledged position on, up to max_bytes of
 * payload (always at least one record if there is any) into b, which it
 * resets first. b->n is 0 when the spool is empty. */
enum usher_err usher_spool_read(struct usher_spool *s, size_t max_bytes,
				struct usher_spool_batch *b, struct usher_error *err);
void usher_spool_batch_init(struct usher_spool_batch *b);
void usher_spool_batch_free(struct usher_spool_batch *b);

/* Acknowledges everything before end (a batch's end): deletes the
 * segments consumed and persists the cursor. An end that a drop already
 * passed is ignored. */
enum usher_err usher_spool_ack(struct usher_spool *s, const struct usher_spool_pos *end,
			       struct usher_error *err);

/* The first unacknowledged record's place. It moves only by ack, and by a
 * drop of the oldest segment: a reader whose batch started elsewhere lost
 * (part of) it to a drop. */
struct usher_spool_pos usher_spool_head(struct usher_spool *s);

/* Bytes of records not yet acknowledged, framing included. */
uint64_t usher_spool_bytes(struct usher_spool *s);
/* fdatasync what was appended since the last sync (closed segments and
 * the open one), without holding up appends meanwhile. */
void usher_spool_sync(struct usher_spool *s);

#endif
