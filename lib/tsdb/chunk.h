/* Gorilla-compressed sample chunks (Facebook's Gorilla paper, as Prometheus
 * uses it): delta-of-delta timestamps and XOR'd float64 values, bit-packed.
 * A chunk is written once, front to back, then read by iterators. */
#ifndef USHER_TSDB_CHUNK_H
#define USHER_TSDB_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Samples per chunk before a new one is cut (Prometheus' figure). */
#define USHER_CHUNK_SAMPLES 120

/* A chunk's bytes and the appender state needed to add the next sample.
 * Sealed chunks keep only data, nbytes, n, mint, maxt (see usher_chunk_seal). */
struct usher_chunk {
	uint8_t *data;
	int64_t mint, maxt;
	/* A full chunk is at most 128 + 119 * 145 bits (a raw first sample,
	 * then the widest timestamp and value encodings): 16 bits count it,
	 * and the header stays 32 bytes, a tenth of a series' memory. */
	uint16_t nbits; /* bits written */
	uint16_t cap;   /* bytes allocated */
	uint16_t n;     /* samples */
};

/* What an appender remembers between samples (kept only for the head). */
struct usher_chunk_state {
	int64_t t;                 /* last timestamp */
	int64_t delta;             /* last timestamp delta */
	uint64_t v;                /* last value's bits */
	uint8_t leading, trailing; /* the last XOR window; leading 0xff: none */
};

/* Appends (t, v); t must be greater than the last timestamp (the caller
 * checks). Grows data as needed (aborts on out-of-memory). */
void usher_chunk_append(struct usher_chunk *c, struct usher_chunk_state *st, int64_t t, double v);
/* Shrinks the allocation to the bytes used: the chunk takes no more samples. */
void usher_chunk_seal(struct usher_chunk *c);
/* Frees the data. */
void usher_chunk_free(struct usher_chunk *c);
/* Bytes the chunk holds on the heap. */
size_t usher_chunk_bytes(const struct usher_chunk *c);

struct usher_chunk_iter {
	const struct usher_chunk *c;
	uint32_t pos; /* bit position */
	uint16_t i;   /* samples read */
	struct usher_chunk_state st;
};

void usher_chunk_iter_init(struct usher_chunk_iter *it, const struct usher_chunk *c);
/* Decodes the samples of c with mint <= t <= maxt into ts and vs (room
 * for c->n each); returns how many. Faster than an iterator: the state
 * stays in registers. */
size_t usher_chunk_decode(const struct usher_chunk *c, int64_t mint, int64_t maxt, int64_t *ts,
			  double *vs);
/* Reads the next sample into *t, *v; false at the end. The chunk must not
 * be appended to while an iterator reads it. */
bool usher_chunk_iter_next(struct usher_chunk_iter *it, int64_t *t, double *v);

#endif
