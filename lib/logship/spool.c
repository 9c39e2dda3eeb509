/* The disk spool: segment files seg-<20 digits>.log of records framed as
 * [u32 length LE][u32 CRC-32 of the payload LE][payload], and a cursor file
 * "<segment> <offset>" naming the first unacknowledged record. */
#include "logship/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/mem.h"
#include "core/timeutil.h"

#define HDR        8
#define READ_CHUNK (256 * 1024)
#define IOV_BATCH  64

struct segment {
	uint64_t id;
	uint64_t size;
};

struct usher_spool {
	pthread_mutex_t lock;
	char *dir;
	struct usher_spool_opts o;
	struct segment *segs; /* ascending ids; the last one is written to */
	size_t nsegs, cap;
	int wfd;       /* the last segment, open for appending; -1 */
	int closed[4]; /* full segments not yet synced (usher_spool_sync) */
	size_t nclosed;
	struct usher_spool_pos ack;
	bool dirty; /* appended since the last fdatasync */
	int64_t synced_ms;
	int rfd; /* the segment being read; -1 */
	uint64_t rseg;
};

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void seg_path(const struct usher_spool *s, uint64_t id, char *out, size_t len)
{
	snprintf(out, len, "%s/seg-%020llu.log", s->dir, (unsigned long long)id);
}

static uint64_t total_bytes(const struct usher_spool *s)
{
	uint64_t t = 0;
	size_t i;

	for (i = 0; i < s->nsegs; i++)
		t += s->segs[i].size;
	if (s->nsegs && s->segs[0].id == s->ack.seg)
		t -= s->ack.off < s->segs[0].size ? s->ack.off : s->segs[0].size;
	return t;
}

static enum usher_err write_cursor(struct usher_spool *s, struct usher_error *err)
{
	char path[4096], tmp[4096], line[64];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cursor", s->dir);
	snprintf(tmp, sizeof(tmp), "%s/cursor.tmp", s->dir);
	n = snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)s->ack.seg,
		     (unsigned long long)s->ack.off);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
	if (write(fd, line, (size_t)n) != n) {
		close(fd);
		return usher_fail(err, USHER_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
	}
	close(fd);
	/* not synced: a cursor that is behind after a crash only re-sends
	 * events, which their ids make harmless */
	if (rename(tmp, path) != 0)
		return usher_fail(err, USHER_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
	return USHER_OK;
}

static void read_cursor(struct usher_spool *s)
{
	char path[4096], line[64], *end;
	ssize_t n;
	int fd;

	s->ack.seg = 0;
	s->ack.off = 0;
	snprintf(path, sizeof(path), "%s/cursor", s->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return;
	line[n] = '\0';
	errno = 0;
	s->ack.seg = strtoull(line, &end, 10);
	if (*end == ' ')
		s->ack.off = strtoull(end + 1, &end, 10);
	if (errno || *end != '\n') {
		s->ack.seg = 0;
		s->ack.off = 0;
	}
}

static int cmp_seg(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void push_seg(struct usher_spool *s, uint64_t id, uint64_t size)
{
	if (s->nsegs == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->segs = usher_realloc(s->segs, s->cap * sizeof(*s->segs));
	}
	s->segs[s->nsegs].id = id;
	s->segs[s->nsegs].size = size;
	s->nsegs++;
}

static enum usher_err list_segments(struct usher_spool *s, struct usher_error *err)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;

	if (!d)
		return usher_fail(err, USHER_ERR_IO, "cannot open spool directory %s: %s", s->dir,
				  strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char path[4096], *end;
		struct stat st;
		uint64_t id;

		if (strncmp(e->d_name, "seg-", 4) != 0)
			continue;
		errno = 0;
		id = strtoull(e->d_name + 4, &end, 10);
		if (errno || end != e->d_name + 24 || strcmp(end, ".log") != 0 || id == 0)
			continue;
		seg_path(s, id, path, sizeof(path));
		if (stat(path, &st) != 0)
			continue;
		push_seg(s, id, (uint64_t)st.st_size);
	}
	closedir(d);
	if (s->nsegs)
		qsort(s->segs, s->nsegs, sizeof(*s->segs), cmp_seg);
	return USHER_OK;
}

/* Walks the records of fd from off up to size. Returns the offset just
 * after the last valid record; *count gets the number of valid records.
 * With verify, CRCs are checked too (else only the framing). */
static uint64_t scan(int fd, uint64_t off, uint64_t size, bool verify, uint64_t *count)
{
	unsigned char *buf = usher_malloc(READ_CHUNK);
	uint64_t n = 0;

	while (off + HDR <= size) {
		unsigned char hdr[HDR];
		uint32_t len, crc;

		if (pread(fd, hdr, HDR, (off_t)off) != HDR)
			break;
		len = get32(hdr);
		crc = get32(hdr + 4);
		if (len == 0 || len > USHER_SPOOL_RECORD_MAX || off + HDR + len > size)
			break;
		if (verify) {
			uLong c = crc32(0L, Z_NULL, 0);
			uint64_t done = 0;
			bool ok = true;

			while (done < len) {
				size_t want = len - done > READ_CHUNK ? READ_CHUNK : len - done;

				if (pread(fd, buf, want, (off_t)(off + HDR + done)) !=
				    (ssize_t)want) {
					ok = false;
					break;
				}
				c = crc32(c, buf, (uInt)want);
				done += want;
			}
			if (!ok || (uint32_t)c != crc)
				break;
		}
		off += HDR + len;
		n++;
	}
	free(buf);
	if (count)
		*count = n;
	return off;
}

static void drop_first(struct usher_spool *s)
{
	char path[4096];

	seg_path(s, s->segs[0].id, path, sizeof(path));
	unlink(path);
	if (s->rfd >= 0 && s->rseg == s->segs[0].id) {
		close(s->rfd);
		s->rfd = -1;
	}
	memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof(*s->segs));
	s->nsegs--;
	if (s->nsegs && s->ack.seg < s->segs[0].id) {
		s->ack.seg = s->segs[0].id;
		s->ack.off = 0;
	}
}

enum usher_err usher_spool_open(const char *dir, const struct usher_spool_opts *o,
				struct usher_spool **out, uint64_t *cut, struct usher_error *err)
{
	struct usher_spool *s = usher_calloc(1, sizeof(*s));
	enum usher_err rc;
	char path[4096];

	*out = NULL;
	if (cut)
		*cut = 0;
	pthread_mutex_init(&s->lock, NULL);
	s->dir = usher_strdup(dir);
	s->o = *o;
	if (s->o.segment_bytes < 4096)
		s->o.segment_bytes = 4096;
	s->wfd = -1;
	s->rfd = -1;
	rc = list_segments(s, err);
	if (rc)
		goto out;
	read_cursor(s);
	/* segments wholly before the cursor were acknowledged */
	while (s->nsegs > 1 && s->segs[0].id < s->ack.seg)
		drop_first(s);
	if (!s->nsegs) {
		s->ack.seg = 0;
		s->ack.off = 0;
	} else if (s->segs[0].id != s->ack.seg || s->ack.off > s->segs[0].size) {
		/* a cursor from elsewhere: replay the first segment whole */
		s->ack.seg = s->segs[0].id;
		s->ack.off = 0;
	}
	if (s->nsegs) {
		struct segment *last = &s->segs[s->nsegs - 1];
		uint64_t from = last->id == s->ack.seg ? s->ack.off : 0, good;

		seg_path(s, last->id, path, sizeof(path));
		s->wfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (s->wfd < 0) {
			rc = usher_fail(err, USHER_ERR_IO, "cannot open %s: %s", path,
					strerror(errno));
			goto out;
		}
		{
			int rfd = open(path, O_RDONLY | O_CLOEXEC);

			good = rfd >= 0 ? scan(rfd, from, last->size, true, NULL) : from;
			if (rfd >= 0)
				close(rfd);
		}
		if (good < last->size) {
			/* a record torn by a crash: cut it off */
			if (ftruncate(s->wfd, (off_t)good) != 0) {
				rc = usher_fail(err, USHER_ERR_IO, "cannot truncate %s: %s", path,
						strerror(errno));
				goto out;
			}
			if (cut)
				*cut = last->size - good;
			last->size = good;
		}
	}
	s->synced_ms = usher_mono_ms();
out:
	if (rc) {
		usher_spool_close(s);
		return rc;
	}
	*out = s;
	return USHER_OK;
}

static void sync_locked(struct usher_spool *s)
{
	size_t i;

	for (i = 0; i < s->nclosed; i++) {
		fdatasync(s->closed[i]);
		close(s->closed[i]);
	}
	s->nclosed = 0;
	if (s->wfd >= 0 && s->dirty)
		fdatasync(s->wfd);
	s->dirty = false;
	s->synced_ms = usher_mono_ms();
}

void usher_spool_sync(struct usher_spool *s)
{
	int closed[4], fd = -1;
	size_t i, n;

	/* the syncing happens outside the lock, so appends go on meanwhile */
	pthread_mutex_lock(&s->lock);
	n = s->nclosed;
	memcpy(closed, s->closed, n * sizeof(*closed));
	s->nclosed = 0;
	if (s->wfd >= 0 && s->dirty)
		fd = dup(s->wfd);
	s->dirty = false;
	s->synced_ms = usher_mono_ms();
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < n; i++) {
		fdatasync(closed[i]);
		close(closed[i]);
	}
	if (fd >= 0) {
		fdatasync(fd);
		close(fd);
	}
}

void usher_spool_close(struct usher_spool *s)
{
	if (!s)
		return;
	sync_locked(s);
	if (s->wfd >= 0)
		close(s->wfd);
	if (s->rfd >= 0)
		close(s->rfd);
	pthread_mutex_destroy(&s->lock);
	free(s->segs);
	free(s->dir);
	free(s);
}

/* Closes the open segment (synced) and starts the next one. */
static enum usher_err rotate(struct usher_spool *s, struct usher_error *err)
{
	uint64_t id = s->nsegs ? s->segs[s->nsegs - 1].id + 1 : (s->ack.seg ? s->ack.seg : 1);
	char path[4096];
	int fd;

	seg_path(s, id, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "cannot create %s: %s", path, strerror(errno));
	if (s->wfd >= 0) {
		/* the full segment is synced by the next usher_spool_sync (or
		 * here, when several are waiting) */
		if (s->nclosed == sizeof(s->closed) / sizeof(s->closed[0])) {
			fdatasync(s->closed[0]);
			close(s->closed[0]);
			memmove(s->closed, s->closed + 1, (s->nclosed - 1) * sizeof(s->closed[0]));
			s->nclosed--;
		}
		if (s->dirty)
			s->closed[s->nclosed++] = s->wfd;
		else
			close(s->wfd);
		s->dirty = false;
	}
	s->wfd = fd;
	push_seg(s, id, 0);
	if (s->nsegs == 1) {
		s->ack.seg = id;
		s->ack.off = 0;
	}
	return USHER_OK;
}

/* Records in the first segment not yet acknowledged. */
static uint64_t count_first(struct usher_spool *s)
{
	char path[4096];
	uint64_t n = 0;
	int fd;

	seg_path(s, s->segs[0].id, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	scan(fd, s->segs[0].id == s->ack.seg ? s->ack.off : 0, s->segs[0].size, false, &n);
	close(fd);
	return n;
}

static enum usher_err write_group(struct usher_spool *s, struct iovec *iov, int niov,
				  uint64_t bytes, struct usher_error *err)
{
	struct segment *last = &s->segs[s->nsegs - 1];
	uint64_t done = 0;
	int i = 0;

	while (done < bytes) {
		ssize_t w = writev(s->wfd, iov + i, niov - i);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;

			/* leave no torn record behind */
			if (ftruncate(s->wfd, (off_t)last->size) != 0) {
				/* the next open cuts it off */
			}
			return usher_fail(err, USHER_ERR_IO, "cannot write the spool in %s: %s",
					  s->dir, strerror(e));
		}
		done += (uint64_t)w;
		while (i < niov && (size_t)w >= iov[i].iov_len) {
			w -= (ssize_t)iov[i].iov_len;
			i++;
		}
		if (i < niov && w > 0) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	last->size += bytes;
	s->dirty = true;
	return USHER_OK;
}

enum usher_err usher_spool_append(struct usher_spool *s, const struct iovec *recs, size_t n,
				  uint64_t *dropped, uint64_t *failed, struct usher_error *err)
{
	unsigned char(*hdrs)[HDR] = usher_malloc(IOV_BATCH * HDR);
	struct iovec iov[2 * IOV_BATCH];
	enum usher_err rc = USHER_OK;
	uint64_t need = 0, total;
	size_t i, first = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n; i++)
		if (recs[i].iov_len && recs[i].iov_len <= USHER_SPOOL_RECORD_MAX)
			need += HDR + recs[i].iov_len;
	/* a burst larger than the whole spool keeps only its newest part */
	while (first < n && need > s->o.max_bytes) {
		if (recs[first].iov_len && recs[first].iov_len <= USHER_SPOOL_RECORD_MAX)
			need -= HDR + recs[first].iov_len;
		(*dropped)++;
		first++;
	}
	total = total_bytes(s);
	while (total + need > s->o.max_bytes && s->nsegs) {
		if (s->nsegs == 1) {
			rc = rotate(s, err); /* so the full one can go */
			if (rc)
				goto out;
		}
		*dropped += count_first(s);
		drop_first(s);
		total = total_bytes(s);
		rc = write_cursor(s, err);
		if (rc)
			goto out;
	}
	i = first;
	while (i < n) {
		uint64_t bytes = 0, room;
		int niov = 0, nh = 0;

		if (!s->nsegs || s->segs[s->nsegs - 1].size >= s->o.segment_bytes) {
			rc = rotate(s, err);
			if (rc)
				break;
		}
		room = s->o.segment_bytes - s->segs[s->nsegs - 1].size;
		while (i < n && nh < IOV_BATCH) {
			size_t len = recs[i].iov_len;

			if (!len || len > USHER_SPOOL_RECORD_MAX) {
				(*dropped)++;
				i++;
				continue;
			}
			/* a segment gets at least one record, then stops at its size */
			if (bytes && bytes + HDR + len > room)
				break;
			put32(hdrs[nh], (uint32_t)len);
			put32(hdrs[nh] + 4,
			      (uint32_t)crc32(crc32(0L, Z_NULL, 0), recs[i].iov_base, (uInt)len));
			iov[niov].iov_base = hdrs[nh];
			iov[niov++].iov_len = HDR;
			iov[niov].iov_base = recs[i].iov_base;
			iov[niov++].iov_len = len;
			bytes += HDR + len;
			nh++;
			i++;
		}
		if (!bytes)
			continue;
		rc = write_group(s, iov, niov, bytes, err);
		if (rc) {
			*failed += (uint64_t)nh + (n - i);
			break;
		}
	}
	/* without a thread calling usher_spool_sync, the appender syncs */
	if (!rc && s->o.fsync_interval_ms >= 0 && (s->dirty || s->nclosed) &&
	    usher_mono_ms() - s->synced_ms >= s->o.fsync_interval_ms)
		sync_locked(s);
out:
	pthread_mutex_unlock(&s->lock);
	free(hdrs);
	return rc;
}

void usher_spool_batch_init(struct usher_spool_batch *b)
{
	memset(b, 0, sizeof(*b));
	usher_buf_init(&b->data, (size_t)64 * 1024 * 1024);
}

void usher_spool_batch_free(struct usher_spool_batch *b)
{
	usher_buf_free(&b->data);
	free(b->off);
	free(b->len);
	memset(b, 0, sizeof(*b));
}

static void batch_add(struct usher_spool_batch *b, const unsigned char *p, size_t len)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 256;
		b->off = usher_realloc(b->off, b->cap * sizeof(*b->off));
		b->len = usher_realloc(b->len, b->cap * sizeof(*b->len));
	}
	b->off[b->n] = b->data.len;
	b->len[b->n] = len;
	usher_buf_add(&b->data, p, len);
	b->n++;
}

static int read_fd(struct usher_spool *s, uint64_t id)
{
	char path[4096];

	if (s->rfd >= 0 && s->rseg == id)
		return s->rfd;
	if (s->rfd >= 0)
		close(s->rfd);
	seg_path(s, id, path, sizeof(path));
	s->rfd = open(path, O_RDONLY | O_CLOEXEC);
	s->rseg = id;
	return s->rfd;
}

enum usher_err usher_spool_read(struct usher_spool *s, size_t max_bytes,
				struct usher_spool_batch *b, struct usher_error *err)
{
	unsigned char *chunk = usher_malloc(READ_CHUNK);
	enum usher_err rc = USHER_OK;
	size_t si, payload = 0;
	bool full = false;

	usher_buf_reset(&b->data);
	b->n = 0;
	b->corrupt = 0;
	pthread_mutex_lock(&s->lock);
	b->start = s->ack;
	b->end = s->ack;
	for (si = 0; si < s->nsegs && !full; si++) {
		struct segment *seg = &s->segs[si];
		uint64_t off = seg->id == s->ack.seg ? s->ack.off : 0;
		int fd;

		if (seg->id < s->ack.seg)
			continue;
		fd = read_fd(s, seg->id);
		if (fd < 0) {
			rc = usher_fail(err, USHER_ERR_IO,
					"cannot read spool segment %llu in %s: %s",
					(unsigned long long)seg->id, s->dir, strerror(errno));
			break;
		}
		while (off < seg->size) {
			size_t want = seg->size - off > READ_CHUNK ? READ_CHUNK : seg->size - off;
			ssize_t got = pread(fd, chunk, want, (off_t)off);
			size_t p = 0;
			bool bad = false;

			if (got < HDR) {
				bad = true;
			}
			while (!bad && p + HDR <= (size_t)got) {
				uint32_t len = get32(chunk + p), crc = get32(chunk + p + 4);

				if (len == 0 || len > USHER_SPOOL_RECORD_MAX ||
				    off + p + HDR + len > seg->size) {
					bad = true;
					break;
				}
				if (p + HDR + len > (size_t)got) {
					if (p == 0) {
						/* larger than a chunk: read it alone */
						unsigned char *big = usher_malloc(HDR + len);

						if (pread(fd, big, HDR + len, (off_t)off) !=
							(ssize_t)(HDR + len) ||
						    (uint32_t)crc32(crc32(0L, Z_NULL, 0), big + HDR,
								    len) != crc) {
							free(big);
							bad = true;
							break;
						}
						if (b->n && payload + len > max_bytes) {
							free(big);
							full = true;
							break;
						}
						batch_add(b, big + HDR, len);
						payload += len;
						free(big);
						p = HDR + len;
					}
					break;
				}
				if ((uint32_t)crc32(crc32(0L, Z_NULL, 0), chunk + p + HDR, len) !=
				    crc) {
					bad = true;
					break;
				}
				if (b->n && payload + len > max_bytes) {
					full = true;
					break;
				}
				batch_add(b, chunk + p + HDR, len);
				payload += len;
				p += HDR + len;
			}
			off += p;
			if (bad) {
				/* the rest of this segment cannot be framed: skip it */
				b->corrupt++;
				off = seg->size;
			}
			b->end.seg = seg->id;
			b->end.off = off;
			if (full || (!bad && p == 0))
				break;
		}
		if (!full && si + 1 < s->nsegs) {
			b->end.seg = s->segs[si + 1].id;
			b->end.off = 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(chunk);
	return rc;
}

enum usher_err usher_spool_ack(struct usher_spool *s, const struct usher_spool_pos *end,
			       struct usher_error *err)
{
	enum usher_err rc = USHER_OK;

	pthread_mutex_lock(&s->lock);
	if (end->seg < s->ack.seg || (end->seg == s->ack.seg && end->off <= s->ack.off))
		goto out; /* a drop went past it, or nothing to do */
	s->ack = *end;
	while (s->nsegs > 1 && (s->segs[0].id < s->ack.seg ||
				(s->segs[0].id == s->ack.seg && s->ack.off >= s->segs[0].size)))
		drop_first(s);
	rc = write_cursor(s, err);
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

struct usher_spool_pos usher_spool_head(struct usher_spool *s)
{
	struct usher_spool_pos p;

	pthread_mutex_lock(&s->lock);
	p = s->ack;
	pthread_mutex_unlock(&s->lock);
	return p;
}

uint64_t usher_spool_bytes(struct usher_spool *s)
{
	uint64_t t;

	pthread_mutex_lock(&s->lock);
	t = total_bytes(s);
	pthread_mutex_unlock(&s->lock);
	return t;
}
