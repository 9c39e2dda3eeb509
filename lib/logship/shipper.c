/* Network sink delivery: queue -> spooler thread -> disk spool -> sender
 * thread -> transport, with retries, backoff, dead letters and acks. */
#include "logship/shipper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ecs.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "logship/spool.h"

#define CHUNK_MIN       (64 * 1024)
#define DEAD_LETTER_MAX (64ULL * 1024 * 1024)
#define BACKOFF_BASE_MS 250

/* Queued records, back to back: [u32 length][payload]. */
struct qchunk {
	struct qchunk *next;
	size_t len, cap;
	char data[];
};

struct usher_shipper {
	struct usher_shipper_conf c;
	struct usher_ship_transport t;
	struct usher_log *log;
	struct usher_log_sink_stats *stats;
	struct usher_spool *spool;

	pthread_mutex_t lock;
	pthread_cond_t spooler_cond; /* queue not empty, or stopping */
	pthread_cond_t sender_cond;  /* spooled data, flush, or stopping */
	pthread_cond_t syncer_cond;  /* stopping */
	struct qchunk *head, *tail;
	uint64_t queued_bytes;
	int64_t data_since_ms; /* oldest spooled event not yet read; 0 none */
	bool flush_req;
	atomic_bool stop;
	bool started;
	pthread_t spooler, sender, syncer;

	struct usher_complain complain; /* sender thread only */
	uint64_t rnd;
};

int64_t usher_ship_backoff_ms(unsigned attempt, int64_t max_ms, uint64_t *rnd)
{
	int64_t d = BACKOFF_BASE_MS;
	unsigned i;

	for (i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* xorshift64 */
	*rnd ^= *rnd << 13;
	*rnd ^= *rnd >> 7;
	*rnd ^= *rnd << 17;
	return d / 2 + (int64_t)(*rnd % (uint64_t)(d / 2 + 1));
}

struct usher_shipper *usher_shipper_new(const struct usher_shipper_conf *c,
					const struct usher_ship_transport *t, struct usher_log *log,
					struct usher_log_sink_stats *stats)
{
	struct usher_shipper *sh = usher_calloc(1, sizeof(*sh));

	sh->c = *c;
	sh->c.name = usher_strdup(c->name);
	sh->c.dir = usher_strdup(c->dir);
	sh->t = *t;
	sh->log = log;
	sh->stats = stats;
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->spooler_cond, NULL);
	pthread_cond_init(&sh->sender_cond, NULL);
	pthread_cond_init(&sh->syncer_cond, NULL);
	atomic_init(&sh->stop, false);
	sh->rnd = (uint64_t)usher_now_ns() ^ ((uint64_t)(uintptr_t)sh << 16) ^ (uint64_t)getpid();
	if (!sh->rnd)
		sh->rnd = 1;
	return sh;
}

void usher_shipper_push(struct usher_shipper *sh, const struct usher_log_entry *e)
{
	size_t idlen = strlen(e->id), doclen = e->ecs_len, need;
	struct qchunk *q;
	unsigned char len4[4];
	uint32_t plen;
	bool was_empty;

	if (doclen && e->ecs[doclen - 1] == '\n')
		doclen--;
	plen = (uint32_t)(1 + idlen + doclen);
	need = 4 + plen;
	pthread_mutex_lock(&sh->lock);
	if (sh->queued_bytes + need > sh->c.queue_max_bytes) {
		pthread_mutex_unlock(&sh->lock);
		atomic_fetch_add_explicit(&sh->stats->dropped[USHER_DROP_QUEUE_FULL], 1,
					  memory_order_relaxed);
		return;
	}
	q = sh->tail;
	if (!q || q->cap - q->len < need) {
		size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;

		q = usher_malloc(sizeof(*q) + cap);
		q->next = NULL;
		q->len = 0;
		q->cap = cap;
		if (sh->tail)
			sh->tail->next = q;
		else
			sh->head = q;
		sh->tail = q;
	}
	len4[0] = (unsigned char)plen;
	len4[1] = (unsigned char)(plen >> 8);
	len4[2] = (unsigned char)(plen >> 16);
	len4[3] = (unsigned char)(plen >> 24);
	memcpy(q->data + q->len, len4, 4);
	q->data[q->len + 4] = (char)idlen;
	memcpy(q->data + q->len + 5, e->id, idlen);
	memcpy(q->data + q->len + 5 + idlen, e->ecs, doclen);
	q->len += need;
	was_empty = sh->queued_bytes == 0;
	sh->queued_bytes += need;
	if (was_empty)
		pthread_cond_signal(&sh->spooler_cond);
	pthread_mutex_unlock(&sh->lock);
}

/* Moves a list of chunks into the spool. */
static void spool_chunks(struct usher_shipper *sh, struct qchunk *list)
{
	struct iovec *iov = NULL;
	size_t n = 0, cap = 0;
	uint64_t dropped = 0, failed = 0;
	struct usher_error err;
	struct qchunk *q;

	for (q = list; q; q = q->next) {
		size_t p = 0;

		while (p + 4 <= q->len) {
			const unsigned char *l = (const unsigned char *)q->data + p;
			uint32_t len = (uint32_t)l[0] | (uint32_t)l[1] << 8 | (uint32_t)l[2] << 16 |
				       (uint32_t)l[3] << 24;

			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				iov = usher_realloc(iov, cap * sizeof(*iov));
			}
			iov[n].iov_base = q->data + p + 4;
			iov[n].iov_len = len;
			n++;
			p += 4 + len;
		}
	}
	usher_error_clear(&err);
	if (n && usher_spool_append(sh->spool, iov, n, &dropped, &failed, &err)) {
		/* logging it would feed the same spool: the first failure goes
		 * to stderr, the rest only to usher_log_dropped_total */
		if (atomic_fetch_add_explicit(&sh->stats->dropped[USHER_DROP_SPOOL_ERROR], failed,
					      memory_order_relaxed) == 0)
			fprintf(stderr, "usher: log sink %s: %s\n", sh->c.name, err.msg);
	}
	if (dropped)
		atomic_fetch_add_explicit(&sh->stats->dropped[USHER_DROP_SPOOL_FULL], dropped,
					  memory_order_relaxed);
	atomic_store_explicit(&sh->stats->spool_bytes, usher_spool_bytes(sh->spool),
			      memory_order_relaxed);
	free(iov);
	while (list) {
		q = list->next;
		free(list);
		list = q;
	}
}

static void *spooler_main(void *arg)
{
	struct usher_shipper *sh = arg;

	pthread_mutex_lock(&sh->lock);
	for (;;) {
		struct qchunk *list;
		bool stopping;

		while (!sh->head && !atomic_load(&sh->stop))
			pthread_cond_wait(&sh->spooler_cond, &sh->lock);
		stopping = atomic_load(&sh->stop);
		list = sh->head;
		sh->head = sh->tail = NULL;
		sh->queued_bytes = 0;
		pthread_mutex_unlock(&sh->lock);
		if (list)
			spool_chunks(sh, list);
		pthread_mutex_lock(&sh->lock);
		if (list) {
			if (!sh->data_since_ms)
				sh->data_since_ms = usher_mono_ms();
			pthread_cond_signal(&sh->sender_cond);
		}
		if (stopping && !sh->head)
			break;
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/* The fsync policy: once a second, what was spooled since is synced, on a
 * thread of its own so a slow disk flush never stops the spooler. */
static void *syncer_main(void *arg)
{
	struct usher_shipper *sh = arg;

	pthread_mutex_lock(&sh->lock);
	while (!atomic_load(&sh->stop)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&sh->syncer_cond, &sh->lock, &ts);
		pthread_mutex_unlock(&sh->lock);
		usher_spool_sync(sh->spool);
		pthread_mutex_lock(&sh->lock);
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/* --- the sender ---------------------------------------------------------- */

static void dead_letter(struct usher_shipper *sh, const struct usher_ship_item *it)
{
	char path[4096], ts[40];
	struct usher_buf b;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/dead-letter.ndjson", sh->c.dir);
	if (stat(path, &st) == 0 && (uint64_t)st.st_size > DEAD_LETTER_MAX) {
		char old[4200];

		snprintf(old, sizeof(old), "%s.1", path);
		rename(path, old);
	}
	usher_buf_init(&b, USHER_SPOOL_RECORD_MAX + 8192);
	usher_time_format_rfc3339(usher_now_ms(), ts, sizeof(ts));
	usher_buf_addf(&b, "{\"@timestamp\":\"%s\",\"event.id\":\"", ts);
	usher_ecs_escape(&b, it->id, it->id_len);
	usher_buf_addf(&b, "\",\"http.response.status_code\":%d,\"error.type\":\"", it->status);
	usher_ecs_escape(&b, it->err_type ? it->err_type : "",
			 it->err_type ? strlen(it->err_type) : 0);
	usher_buf_addstr(&b, "\",\"error.message\":\"");
	usher_ecs_escape(&b, it->err_reason ? it->err_reason : "",
			 it->err_reason ? strlen(it->err_reason) : 0);
	usher_buf_addstr(&b, "\",\"document\":");
	usher_buf_add(&b, it->doc, it->doc_len);
	usher_buf_addstr(&b, "}\n");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd >= 0) {
		if (write(fd, b.data, b.len) != (ssize_t)b.len)
			fprintf(stderr, "usher: log sink %s: cannot write %s: %s\n", sh->c.name,
				path, strerror(errno));
		close(fd);
	}
	usher_buf_free(&b);
}

static void log_failure(struct usher_shipper *sh, const char *msg, uint64_t retried)
{
	uint64_t held = 0;

	if (!usher_complain(&sh->complain, usher_mono_ms(), &held))
		return;
	{
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "log-sink-failed"),
		    USHER_LFS("event.outcome", "failure"),
		    USHER_LFS("usher.log.sink", sh->c.name),
		    USHER_LFS("error.message", msg),
		    USHER_LFI("usher.log.events_retried", (int64_t)retried),
		    USHER_LFI("usher.log.spool_bytes", (int64_t)usher_spool_bytes(sh->spool)),
		    USHER_LFI("usher.log.failures_held_back", (int64_t)held),
		};
		usher_log_event(sh->log, USHER_LOG_WARN, f, sizeof(f) / sizeof(f[0]),
				"log sink %s cannot deliver: %s; events wait in its spool",
				sh->c.name, msg);
	}
}

static void log_recovered(struct usher_shipper *sh)
{
	if (!usher_complain_release(&sh->complain))
		return;
	{
		struct usher_log_field f[] = {
		    USHER_LFS("event.action", "log-sink-recovered"),
		    USHER_LFS("event.outcome", "success"),
		    USHER_LFS("usher.log.sink", sh->c.name),
		};
		usher_log_event(sh->log, USHER_LOG_INFO, f, sizeof(f) / sizeof(f[0]),
				"log sink %s delivers again", sh->c.name);
	}
}

/* Fills items from a spool batch; returns how many. */
static size_t batch_items(struct usher_shipper *sh, struct usher_spool_batch *b,
			  struct usher_ship_item **items, size_t *cap)
{
	size_t i, n = 0;

	if (*cap < b->n) {
		*cap = b->n;
		*items = usher_realloc(*items, *cap * sizeof(**items));
	}
	for (i = 0; i < b->n; i++) {
		const char *p = b->data.data + b->off[i];
		size_t len = b->len[i], idlen = (unsigned char)p[0];
		struct usher_ship_item *it = &(*items)[n];

		if (len < 1 + idlen + 2) {
			atomic_fetch_add_explicit(&sh->stats->dropped[USHER_DROP_CORRUPT], 1,
						  memory_order_relaxed);
			continue;
		}
		memset(it, 0, sizeof(*it));
		it->id = p + 1;
		it->id_len = idlen;
		it->doc = p + 1 + idlen;
		it->doc_len = len - 1 - idlen;
		it->state = USHER_SHIP_PENDING;
		n++;
	}
	return n;
}

static void *sender_main(void *arg)
{
	struct usher_shipper *sh = arg;
	struct usher_spool_batch batch;
	struct usher_ship_item *items = NULL;
	size_t cap = 0, n = 0;
	bool inflight = false;
	unsigned attempt = 0;
	int64_t retry_at = 0;

	usher_spool_batch_init(&batch);
	for (;;) {
		struct usher_error err;
		enum usher_err rc;
		size_t i, nretry = 0, ndone = 0;
		bool go = false;

		pthread_mutex_lock(&sh->lock);
		while (!atomic_load(&sh->stop)) {
			int64_t now = usher_mono_ms(), until;
			struct timespec ts;

			if (inflight) {
				if (now >= retry_at)
					go = true;
				until = retry_at;
			} else if (sh->data_since_ms) {
				if (sh->flush_req ||
				    now - sh->data_since_ms >= sh->c.flush_interval_ms ||
				    usher_spool_bytes(sh->spool) >= sh->c.batch_max_bytes)
					go = true;
				until = sh->data_since_ms + sh->c.flush_interval_ms;
			} else {
				until = now + 1000;
			}
			if (go)
				break;
			if (until - now > 1000)
				until = now + 1000;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (until - now) / 1000;
			ts.tv_nsec += ((until - now) % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&sh->sender_cond, &sh->lock, &ts);
		}
		if (atomic_load(&sh->stop)) {
			pthread_mutex_unlock(&sh->lock);
			break;
		}
		sh->flush_req = false;
		if (!inflight)
			sh->data_since_ms = 0; /* what comes in from now on waits anew */
		pthread_mutex_unlock(&sh->lock);

		usher_error_clear(&err);
		if (inflight) {
			struct usher_spool_pos head = usher_spool_head(sh->spool);

			if (head.seg != batch.start.seg || head.off != batch.start.off) {
				/* the spool was full and dropped the oldest events, ours
				 * among them (counted there): read again from its head */
				inflight = false;
			}
		}
		if (!inflight) {
			if (usher_spool_read(sh->spool, sh->c.batch_max_bytes, &batch, &err)) {
				log_failure(sh, err.msg, 0);
				attempt++;
				pthread_mutex_lock(&sh->lock);
				sh->data_since_ms = usher_mono_ms();
				pthread_mutex_unlock(&sh->lock);
				continue;
			}
			if (batch.corrupt)
				atomic_fetch_add_explicit(&sh->stats->dropped[USHER_DROP_CORRUPT],
							  batch.corrupt, memory_order_relaxed);
			n = batch_items(sh, &batch, &items, &cap);
			if (!n) {
				if (batch.n || batch.corrupt)
					usher_spool_ack(sh->spool, &batch.end, &err);
				continue;
			}
			inflight = true;
			if (batch.data.len >= sh->c.batch_max_bytes / 2) {
				/* more may be waiting: do not wait a flush interval */
				pthread_mutex_lock(&sh->lock);
				sh->data_since_ms = usher_mono_ms() - sh->c.flush_interval_ms;
				pthread_mutex_unlock(&sh->lock);
			}
		}
		rc = sh->t.send(sh->t.arg, items, n, &sh->stop, &err);
		if (atomic_load(&sh->stop))
			break;
		if (rc) {
			size_t pending = 0;

			for (i = 0; i < n; i++)
				pending += items[i].state == USHER_SHIP_PENDING;
			atomic_fetch_add_explicit(&sh->stats->retried, pending,
						  memory_order_relaxed);
			attempt++;
			retry_at = usher_mono_ms() +
				   usher_ship_backoff_ms(attempt, sh->c.max_backoff_ms, &sh->rnd);
			log_failure(sh, usher_error_msg(&err, rc), pending);
			continue;
		}
		for (i = 0; i < n; i++) {
			struct usher_ship_item *it = &items[i];

			switch (it->state) {
			case USHER_SHIP_DELIVERED: ndone++; break;
			case USHER_SHIP_DEAD:
				dead_letter(sh, it);
				atomic_fetch_add_explicit(&sh->stats->dead_letter, 1,
							  memory_order_relaxed);
				it->state = USHER_SHIP_SETTLED;
				break;
			case USHER_SHIP_RETRY:
				nretry++;
				it->state = USHER_SHIP_PENDING;
				break;
			default: break;
			}
		}
		atomic_fetch_add_explicit(&sh->stats->delivered, ndone, memory_order_relaxed);
		for (i = 0; i < n; i++)
			if (items[i].state == USHER_SHIP_DELIVERED)
				items[i].state = USHER_SHIP_SETTLED;
		if (nretry) {
			char msg[128];

			atomic_fetch_add_explicit(&sh->stats->retried, nretry,
						  memory_order_relaxed);
			attempt++;
			retry_at = usher_mono_ms() +
				   usher_ship_backoff_ms(attempt, sh->c.max_backoff_ms, &sh->rnd);
			snprintf(msg, sizeof(msg), "%zu of %zu events refused for now (429 or 5xx)",
				 nretry, n);
			log_failure(sh, msg, nretry);
			continue;
		}
		usher_spool_ack(sh->spool, &batch.end, &err);
		atomic_store_explicit(&sh->stats->spool_bytes, usher_spool_bytes(sh->spool),
				      memory_order_relaxed);
		inflight = false;
		attempt = 0;
		log_recovered(sh);
	}
	usher_spool_batch_free(&batch);
	free(items);
	return NULL;
}

enum usher_err usher_shipper_start(struct usher_shipper *sh, struct usher_error *err)
{
	struct usher_spool_opts o = {
	    .max_bytes = sh->c.spool_max_bytes,
	    .segment_bytes = sh->c.spool_max_bytes / 8,
	    .fsync_interval_ms = -1, /* syncer_main */
	};
	sigset_t all, old;
	uint64_t cut = 0;
	enum usher_err rc;
	int nstarted;

	if (o.segment_bytes > 16ULL * 1024 * 1024)
		o.segment_bytes = 16ULL * 1024 * 1024;
	if (o.segment_bytes < 64 * 1024)
		o.segment_bytes = 64 * 1024;
	rc = usher_spool_open(sh->c.dir, &o, &sh->spool, &cut, err);
	if (rc)
		return rc;
	if (cut)
		atomic_fetch_add_explicit(&sh->stats->dropped[USHER_DROP_CORRUPT], 1,
					  memory_order_relaxed);
	atomic_store_explicit(&sh->stats->spool_bytes, usher_spool_bytes(sh->spool),
			      memory_order_relaxed);
	if (usher_spool_bytes(sh->spool))
		sh->data_since_ms = usher_mono_ms() - sh->c.flush_interval_ms; /* replay now */
	/* signals belong to usherd's signalfd, never to these threads */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	nstarted = 0;
	if (pthread_create(&sh->spooler, NULL, spooler_main, sh) == 0) {
		nstarted++;
		if (pthread_create(&sh->syncer, NULL, syncer_main, sh) == 0) {
			nstarted++;
			if (pthread_create(&sh->sender, NULL, sender_main, sh) == 0)
				nstarted++;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (nstarted < 3) {
		atomic_store(&sh->stop, true);
		pthread_mutex_lock(&sh->lock);
		pthread_cond_broadcast(&sh->spooler_cond);
		pthread_cond_broadcast(&sh->syncer_cond);
		pthread_mutex_unlock(&sh->lock);
		if (nstarted > 1)
			pthread_join(sh->syncer, NULL);
		if (nstarted > 0)
			pthread_join(sh->spooler, NULL);
		usher_spool_close(sh->spool);
		sh->spool = NULL;
		return usher_fail(err, USHER_ERR_INTERNAL, "cannot start a thread: %s",
				  strerror(errno));
	}
	sh->started = true;
	return USHER_OK;
}

void usher_shipper_flush(struct usher_shipper *sh)
{
	pthread_mutex_lock(&sh->lock);
	sh->flush_req = true;
	pthread_cond_signal(&sh->sender_cond);
	pthread_mutex_unlock(&sh->lock);
}

uint64_t usher_shipper_pending(struct usher_shipper *sh)
{
	uint64_t q;

	pthread_mutex_lock(&sh->lock);
	q = sh->queued_bytes;
	pthread_mutex_unlock(&sh->lock);
	return q + (sh->spool ? usher_spool_bytes(sh->spool) : 0);
}

void usher_shipper_free(struct usher_shipper *sh)
{
	struct qchunk *q;

	if (!sh)
		return;
	atomic_store(&sh->stop, true);
	pthread_mutex_lock(&sh->lock);
	pthread_cond_broadcast(&sh->spooler_cond);
	pthread_cond_broadcast(&sh->sender_cond);
	pthread_cond_broadcast(&sh->syncer_cond);
	pthread_mutex_unlock(&sh->lock);
	if (sh->started) {
		pthread_join(sh->sender, NULL);
		pthread_join(sh->syncer, NULL);
		pthread_join(sh->spooler, NULL);
	}
	usher_spool_close(sh->spool);
	while (sh->head) {
		q = sh->head->next;
		free(sh->head);
		sh->head = q;
	}
	pthread_cond_destroy(&sh->spooler_cond);
	pthread_cond_destroy(&sh->sender_cond);
	pthread_cond_destroy(&sh->syncer_cond);
	pthread_mutex_destroy(&sh->lock);
	free((char *)sh->c.name);
	free((char *)sh->c.dir);
	free(sh);
}
