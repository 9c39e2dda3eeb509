/* Gorilla chunk encoding: the first sample raw, then timestamps as
 * delta-of-delta in 1/14/17/20/64-bit buckets and values XOR'd with their
 * predecessor, reusing the previous leading/trailing-zero window when it fits. */
#include "tsdb/chunk.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* Bytes kept zeroed past the data, so a reader can always load 8 bytes at
 * the last byte used plus one (get_bits' fast path). */
#define PAD 9

static void ensure(struct usher_chunk *c, uint32_t bits)
{
	uint32_t need = (c->nbits + bits + 7) / 8 + PAD;

	if (need <= c->cap)
		return;
	/* grow by an eighth (at least 32 bytes), not by doubling: the head
	 * chunk of every series is partly empty, and doubling left a third of
	 * the store's memory unused; a chunk reallocates ~10 times in its life */
	uint32_t cap = c->cap + (c->cap / 8 > 32 ? c->cap / 8 : 32);

	if (cap < need)
		cap = need;
	if (cap > UINT16_MAX)
		cap = UINT16_MAX; /* never reached: see struct usher_chunk */
	c->data = usher_realloc(c->data, cap);
	memset(c->data + c->cap, 0, cap - c->cap);
	c->cap = (uint16_t)cap;
}

/* Writes the low n bits of v, most significant first. */
_Static_assert(sizeof(struct usher_chunk) == 32, "chunk header size");
_Static_assert(128 + (USHER_CHUNK_SAMPLES - 1) * 145 + 8 * 9 < 65536, "nbits fits 16 bits");

static void put_bits(struct usher_chunk *c, uint64_t v, unsigned n)
{
	ensure(c, n);
	while (n > 0) {
		uint32_t byte = c->nbits / 8, off = c->nbits % 8;
		unsigned room = 8 - off, take = n < room ? n : room;
		uint8_t bits = (uint8_t)((v >> (n - take)) & ((1u << take) - 1));

		c->data[byte] |= (uint8_t)(bits << (room - take));
		c->nbits += take;
		n -= take;
	}
}

static inline uint64_t load_be64(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return __builtin_bswap64(w);
}

/* Reads n (1..64) bits at *pos, most significant first, with one unaligned
 * 64-bit load (queries spend their time here). The PAD bytes after the
 * data make the load safe at any position inside it. */
static inline uint64_t get_bits(const struct usher_chunk *c, uint32_t *pos, unsigned n)
{
	uint32_t byte = *pos >> 3, off = *pos & 7;
	uint64_t w, v;

	w = load_be64(c->data + byte) << off;
	v = w >> (64 - n);
	if (off + n > 64) /* the tail is in the ninth byte */
		v |= (uint64_t)c->data[byte + 8] >> (72 - off - n);
	*pos += n;
	return v;
}

static uint64_t f2u(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static double u2f(uint64_t u)
{
	double v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

static void put_dod(struct usher_chunk *c, int64_t dod)
{
	if (dod == 0) {
		put_bits(c, 0, 1);
	} else if (dod >= -(1 << 13) && dod < (1 << 13)) {
		put_bits(c, 2, 2);
		put_bits(c, (uint64_t)dod, 14);
	} else if (dod >= -(1 << 16) && dod < (1 << 16)) {
		put_bits(c, 6, 3);
		put_bits(c, (uint64_t)dod, 17);
	} else if (dod >= -(1 << 19) && dod < (1 << 19)) {
		put_bits(c, 14, 4);
		put_bits(c, (uint64_t)dod, 20);
	} else {
		put_bits(c, 15, 4);
		put_bits(c, (uint64_t)dod, 64);
	}
}

static int64_t sign_extend(uint64_t v, unsigned bits)
{
	uint64_t m = 1ULL << (bits - 1);

	v &= (bits == 64) ? ~0ULL : ((1ULL << bits) - 1);
	return (int64_t)((v ^ m) - m);
}

static inline int64_t get_dod(const struct usher_chunk *c, uint32_t *pos)
{
	/* the 1-4 bit prefix at once: 0, 10, 110, 1110, 1111 */
	unsigned four = (unsigned)(load_be64(c->data + *pos / 8) << (*pos & 7) >> 60);
	unsigned prefix = (unsigned)__builtin_clz(~(four << 28) | 0x0fffffffu);

	*pos += prefix < 4 ? prefix + 1 : 4;
	switch (prefix) {
	case 0: return 0;
	case 1: return sign_extend(get_bits(c, pos, 14), 14);
	case 2: return sign_extend(get_bits(c, pos, 17), 17);
	case 3: return sign_extend(get_bits(c, pos, 20), 20);
	default: return (int64_t)get_bits(c, pos, 64);
	}
}

static void put_value(struct usher_chunk *c, struct usher_chunk_state *st, uint64_t v)
{
	uint64_t x = v ^ st->v;
	unsigned lead, trail, sig;

	if (x == 0) {
		put_bits(c, 0, 1);
		return;
	}
	lead = (unsigned)__builtin_clzll(x);
	trail = (unsigned)__builtin_ctzll(x);
	if (lead > 31)
		lead = 31; /* five bits hold the count */
	if (st->leading != 0xff && lead >= st->leading && trail >= st->trailing) {
		put_bits(c, 2, 2);
		sig = 64 - st->leading - st->trailing;
		put_bits(c, x >> st->trailing, sig);
		return;
	}
	sig = 64 - lead - trail;
	put_bits(c, 3, 2);
	put_bits(c, lead, 5);
	put_bits(c, sig == 64 ? 0 : sig, 6); /* 64 does not fit in six bits */
	put_bits(c, x >> trail, sig);
	st->leading = (uint8_t)lead;
	st->trailing = (uint8_t)trail;
}

static inline uint64_t get_value(const struct usher_chunk *c, uint32_t *pos, struct usher_chunk_state *st)
{
	unsigned sig, ctl;

	/* the one or two control bits at once: 0 same value, 10 the previous
	 * window, 11 a new window */
	ctl = (unsigned)(load_be64(c->data + *pos / 8) << (*pos & 7) >> 62);
	if (!(ctl & 2)) {
		*pos += 1;
		return st->v;
	}
	*pos += 2;
	if (ctl & 1) {
		st->leading = (uint8_t)get_bits(c, pos, 5);
		sig = (unsigned)get_bits(c, pos, 6);
		if (sig == 0)
			sig = 64;
		st->trailing = (uint8_t)(64 - st->leading - sig);
	}
	sig = 64u - st->leading - st->trailing;
	return st->v ^ (get_bits(c, pos, sig) << st->trailing);
}

void usher_chunk_append(struct usher_chunk *c, struct usher_chunk_state *st, int64_t t, double v)
{
	uint64_t u = f2u(v);

	if (c->n == 0) {
		put_bits(c, (uint64_t)t, 64);
		put_bits(c, u, 64);
		st->delta = 0;
		st->leading = 0xff;
		c->mint = t;
	} else {
		int64_t delta = t - st->t;

		put_dod(c, delta - st->delta);
		put_value(c, st, u);
		st->delta = delta;
	}
	st->t = t;
	st->v = u;
	c->maxt = t;
	c->n++;
}

void usher_chunk_seal(struct usher_chunk *c)
{
	uint32_t used = (c->nbits + 7) / 8 + PAD;

	if (used && used < c->cap) {
		c->data = usher_realloc(c->data, used);
		c->cap = (uint16_t)used;
	}
}

void usher_chunk_free(struct usher_chunk *c)
{
	free(c->data);
	c->data = NULL;
	c->cap = c->nbits = 0;
	c->n = 0;
}

size_t usher_chunk_bytes(const struct usher_chunk *c)
{
	return c->cap;
}

void usher_chunk_iter_init(struct usher_chunk_iter *it, const struct usher_chunk *c)
{
	memset(it, 0, sizeof(*it));
	it->c = c;
	it->st.leading = 0xff;
}

size_t usher_chunk_decode(const struct usher_chunk *c, int64_t mint, int64_t maxt, int64_t *ts,
			  double *vs)
{
	struct usher_chunk_state st = {.leading = 0xff};
	uint32_t pos = 0;
	size_t k = 0;
	uint16_t i;

	if (c->n == 0)
		return 0;
	st.t = (int64_t)get_bits(c, &pos, 64);
	st.v = get_bits(c, &pos, 64);
	for (i = 0;;) {
		if (st.t > maxt)
			break;
		if (st.t >= mint) {
			ts[k] = st.t;
			vs[k] = u2f(st.v);
			k++;
		}
		if (++i >= c->n)
			break;
		st.delta += get_dod(c, &pos);
		st.t += st.delta;
		st.v = get_value(c, &pos, &st);
	}
	return k;
}

bool usher_chunk_iter_next(struct usher_chunk_iter *it, int64_t *t, double *v)
{
	const struct usher_chunk *c = it->c;

	if (it->i >= c->n)
		return false;
	if (it->i == 0) {
		it->st.t = (int64_t)get_bits(c, &it->pos, 64);
		it->st.v = get_bits(c, &it->pos, 64);
		it->st.delta = 0;
	} else {
		it->st.delta += get_dod(c, &it->pos);
		it->st.t += it->st.delta;
		it->st.v = get_value(c, &it->pos, &it->st);
	}
	it->i++;
	*t = it->st.t;
	*v = u2f(it->st.v);
	return true;
}
