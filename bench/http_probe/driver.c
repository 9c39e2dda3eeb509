/* Load driver for the HTTP probe benchmark (bench/http_probe/run.py builds
 * it with `cc -O2 driver.c -lcurl`). It plays the part Prometheus plays in a
 * real deployment, and nothing else:
 *
 *   rate mode  GETs every URL of a file once per interval, the URLs' start
 *              times spread evenly across the interval (URL i at
 *              t0 + i*interval/N + k*interval), never overlapping itself on
 *              one URL (a due request whose previous one is still running is
 *              skipped and counted, as Prometheus skips a scrape). One
 *              thread, libcurl multi driven by epoll through
 *              curl_multi_socket_action (so its cost follows socket events,
 *              not the number of requests in flight: a stalled exporter with
 *              a thousand requests outstanding must not make the driver eat
 *              the CPU the exporter needs), keep-alive connections. Every
 *              completed request is written to --out as one line:
 *                due_mono_ns start_mono_ns total_us ttfb_us http_code ok bytes
 *              (CLOCK_MONOTONIC, the clock Python's time.monotonic() reads).
 *   seq mode   GETs one URL --seq times one after the other on one
 *              keep-alive connection, --gap-ms apart, and writes
 *                total_us ttfb_us http_code bytes
 *              per request (the first includes connecting).
 *
 * ok is 1 when the status is 200 and, with --check STR, the body (its first
 * 1 MiB) contains STR. */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <sys/epoll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_CAP (1u << 20)

struct target {
	CURL *easy;
	char *url;
	int busy;
	int64_t due_ns, start_ns;
	char *body;
	size_t len;    /* bytes kept in body (<= BODY_CAP) */
	size_t total;  /* bytes received */
};

struct rec {
	int64_t due_ns, start_ns;
	int64_t total_us, ttfb_us;
	int code, ok;
	size_t bytes;
};

static volatile sig_atomic_t stop_flag;
static const char *check_str;
static int keep_body;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "driver: %s\n", what);
	exit(2);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct target *t = arg;
	size_t len = size * n;
	t->total += len;
	if (keep_body && t->len < BODY_CAP) {
		size_t take = len < BODY_CAP - t->len ? len : BODY_CAP - t->len;
		memcpy(t->body + t->len, p, take);
		t->len += take;
	}
	return len;
}

static int body_has(const struct target *t, const char *needle)
{
	size_t nl = strlen(needle);
	if (nl == 0)
		return 1;
	for (size_t i = 0; i + nl <= t->len; i++)
		if (t->body[i] == needle[0] && memcmp(t->body + i, needle, nl) == 0)
			return 1;
	return 0;
}

static void setup_easy(struct target *t, struct curl_slist *hdrs, long timeout_ms, int gzip)
{
	t->easy = curl_easy_init();
	if (!t->easy)
		die("curl_easy_init failed");
	curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "Prometheus/2.42.0");
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_TCP_NODELAY, 1L);
	if (gzip)
		curl_easy_setopt(t->easy, CURLOPT_ACCEPT_ENCODING, "gzip");
	if (keep_body) {
		t->body = malloc(BODY_CAP);
		if (!t->body)
			die("out of memory");
	}
}

/* libcurl tells us which sockets to watch and when to call it back. */
static int epfd = -1;
static int64_t curl_timer_ns = -1; /* absolute CLOCK_MONOTONIC, -1: none */

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy, (void)userp, (void)socketp;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	struct epoll_event ev = {.data.fd = s};
	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
		epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
	(void)m, (void)userp;
	curl_timer_ns = timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * 1000000;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: driver --out FILE --duration S [--interval-ms MS] [--timeout-ms MS]\n"
		"              [--header H]... [--check STR] [--gzip] URLFILE\n"
		"       driver --seq COUNT [--gap-ms MS] --out FILE [--header H]... [--gzip] URL\n");
	exit(2);
}

static int run_seq(const char *url, long count, long gap_ms, struct curl_slist *hdrs, int gzip,
		   FILE *out)
{
	struct target t = {.url = (char *)url};
	keep_body = 0;
	setup_easy(&t, hdrs, 10000, gzip);
	for (long i = 0; i < count && !stop_flag; i++) {
		t.total = 0;
		CURLcode rc = curl_easy_perform(t.easy);
		long code = 0;
		curl_off_t tot = 0, ttfb = 0;
		curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(t.easy, CURLINFO_TOTAL_TIME_T, &tot);
		curl_easy_getinfo(t.easy, CURLINFO_STARTTRANSFER_TIME_T, &ttfb);
		if (rc != CURLE_OK)
			code = -(long)rc;
		fprintf(out, "%lld %lld %ld %zu\n", (long long)tot, (long long)ttfb, code, t.total);
		if (gap_ms > 0) {
			struct timespec ts = {gap_ms / 1000, (gap_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	curl_easy_cleanup(t.easy);
	return 0;
}

int main(int argc, char **argv)
{
	const char *out_path = NULL, *input = NULL;
	double duration = 0;
	long interval_ms = 1000, timeout_ms = 1000, seq = 0, gap_ms = 100;
	int gzip = 0;
	struct curl_slist *hdrs = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--gzip") == 0) {
			gzip = 1;
			continue;
		}
		if (a[0] != '-') {
			input = a;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--out") == 0)
			out_path = v;
		else if (strcmp(a, "--duration") == 0)
			duration = strtod(v, NULL);
		else if (strcmp(a, "--interval-ms") == 0)
			interval_ms = strtol(v, NULL, 10);
		else if (strcmp(a, "--timeout-ms") == 0)
			timeout_ms = strtol(v, NULL, 10);
		else if (strcmp(a, "--header") == 0)
			hdrs = curl_slist_append(hdrs, v);
		else if (strcmp(a, "--check") == 0)
			check_str = v;
		else if (strcmp(a, "--seq") == 0)
			seq = strtol(v, NULL, 10);
		else if (strcmp(a, "--gap-ms") == 0)
			gap_ms = strtol(v, NULL, 10);
		else
			usage();
	}
	if (!out_path || !input || interval_ms <= 0 || timeout_ms <= 0)
		usage();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		die("curl_global_init failed");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);

	FILE *out = fopen(out_path, "w");
	if (!out)
		die("cannot open --out file");
	if (seq > 0) {
		run_seq(input, seq, gap_ms, hdrs, gzip, out);
		fclose(out);
		return 0;
	}
	if (duration <= 0)
		usage();

	/* Read the URLs. */
	FILE *in = fopen(input, "r");
	if (!in)
		die("cannot open URL file");
	size_t n = 0, cap = 0;
	struct target *ts = NULL;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t got;
	while ((got = getline(&line, &lcap, in)) > 0) {
		while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = 0;
		if (got == 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			ts = realloc(ts, cap * sizeof *ts);
			if (!ts)
				die("out of memory");
		}
		memset(&ts[n], 0, sizeof ts[n]);
		ts[n].url = strdup(line);
		n++;
	}
	free(line);
	fclose(in);
	if (n == 0)
		die("no URLs");
	keep_body = check_str != NULL;
	for (size_t i = 0; i < n; i++)
		setup_easy(&ts[i], hdrs, timeout_ms, gzip);

	CURLM *m = curl_multi_init();
	if (!m)
		die("curl_multi_init failed");
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, 256L);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1 failed");
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);

	const int64_t interval_ns = (int64_t)interval_ms * 1000000;
	size_t rcap = (size_t)((duration * 1000.0 / (double)interval_ms) + 2) * n + 16;
	struct rec *recs = calloc(rcap, sizeof *recs);
	if (!recs)
		die("out of memory");
	size_t nrec = 0;
	uint64_t started = 0, skipped = 0, failed = 0;

	const int64_t t0 = now_ns() + 20000000; /* first slot 20 ms from now */
	const int64_t end = t0 + (int64_t)(duration * 1e9);
	const int64_t grace_end = end + (int64_t)timeout_ms * 1000000 + 500000000;
	uint64_t slot = 0; /* slot s: URL s % n, due t0 + s*interval/n */
	int running = 0;     /* as curl counts them; unused */
	uint64_t inflight = 0;

	for (;;) {
		int64_t now = now_ns();
		if (stop_flag || now >= grace_end)
			break;
		if (now >= end && inflight == 0)
			break;
		/* Start everything that is due. */
		int64_t next_due = INT64_MAX;
		while (now < end) {
			int64_t due = t0 + (int64_t)(slot / n) * interval_ns +
				      (int64_t)((slot % n) * (uint64_t)interval_ns / n);
			if (due > now) {
				next_due = due;
				break;
			}
			struct target *t = &ts[slot % n];
			slot++;
			if (t->busy) {
				skipped++;
				continue;
			}
			t->busy = 1;
			t->due_ns = due;
			t->start_ns = now;
			t->len = t->total = 0;
			CURLMcode mc = curl_multi_add_handle(m, t->easy);
			if (mc != CURLM_OK)
				die(curl_multi_strerror(mc));
			started++;
			inflight++;
		}
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct target *t;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
			long code = 0;
			curl_off_t tot = 0, ttfb = 0;
			curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
			curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &tot);
			curl_easy_getinfo(t->easy, CURLINFO_STARTTRANSFER_TIME_T, &ttfb);
			if (msg->data.result != CURLE_OK)
				code = -(long)msg->data.result;
			int ok = code == 200 && (!check_str || body_has(t, check_str));
			if (!ok)
				failed++;
			if (nrec < rcap)
				recs[nrec++] = (struct rec){t->due_ns, t->start_ns, (int64_t)tot,
							    (int64_t)ttfb, (int)code, ok, t->total};
			curl_multi_remove_handle(m, t->easy);
			t->busy = 0;
			inflight--;
		}
		/* Wait for the next due slot, curl's timer or socket activity. */
		now = now_ns();
		int64_t wake = next_due == INT64_MAX ? now + 50000000 : next_due;
		if (curl_timer_ns >= 0 && curl_timer_ns < wake)
			wake = curl_timer_ns;
		if (wake > now + 50000000)
			wake = now + 50000000;
		int wait_ms = wake > now ? (int)((wake - now + 999999) / 1000000) : 0;
		struct epoll_event evs[64];
		int nev = epoll_wait(epfd, evs, 64, wait_ms);
		if (nev < 0 && errno != EINTR)
			die("epoll_wait failed");
		for (int e = 0; e < nev; e++) {
			int flags = 0;
			if (evs[e].events & (EPOLLIN | EPOLLHUP))
				flags |= CURL_CSELECT_IN;
			if (evs[e].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[e].events & EPOLLERR)
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(m, evs[e].data.fd, flags, &running);
		}
		if (curl_timer_ns >= 0 && now_ns() >= curl_timer_ns) {
			curl_timer_ns = -1;
			curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
		}
	}

	for (size_t i = 0; i < nrec; i++) {
		const struct rec *r = &recs[i];
		fprintf(out, "%lld %lld %lld %lld %d %d %zu\n", (long long)r->due_ns,
			(long long)r->start_ns, (long long)r->total_us, (long long)r->ttfb_us, r->code,
			r->ok, r->bytes);
	}
	fclose(out);
	fprintf(stderr, "driver: urls=%zu started=%llu completed=%zu failed=%llu skipped=%llu\n", n,
		(unsigned long long)started, nrec, (unsigned long long)failed,
		(unsigned long long)skipped);
	for (size_t i = 0; i < n; i++) {
		curl_multi_remove_handle(m, ts[i].easy);
		curl_easy_cleanup(ts[i].easy);
		free(ts[i].body);
		free(ts[i].url);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(ts);
	free(recs);
	curl_global_cleanup();
	return 0;
}
