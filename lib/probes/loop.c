/* The probe event loop on libcurl's multi interface, driven by socket
 * events: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION)
 * and when its next timeout is due (CURLMOPT_TIMERFUNCTION); we keep the
 * sockets in an epoll set and hand curl only the sockets that are ready
 * (curl_multi_socket_action), so a wake-up costs what happened, not the
 * number of transfers in flight (a thousand hung targets cost nothing
 * between their connect and their timeout). Worker threads interrupt the
 * wait through an eventfd in the same epoll set. Wake-ups for timers are
 * batched: a wait ending at a timer is rounded up to a SLACK_MS boundary,
 * so probe starts and timeouts a few milliseconds apart share one wake-up
 * (docs/internals/loop.md). */
#include "probes/loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/timeutil.h"
#include "metrics/registry.h"

/* Timer wake-ups are rounded up to this (monotonic ms), so everything due
 * within the same slot is handled in one wake-up. */
#define SLACK_MS      8
#define MAX_EVENTS    256
#define MAX_CALLER_FD 15 /* extra fds a caller may pass to usher_loop_poll */
#define PUBLISH_MS    1000 /* how often the loop's own metrics are refreshed */

static const struct usher_metric_desc desc_wakeups = {
	"usher_loop_wakeups", USHER_METRIC_COUNTER,
	"Times the probe loop thread woke up (socket events, timers, wake-up requests)"};
static const struct usher_metric_desc desc_socket_events = {
	"usher_loop_socket_events", USHER_METRIC_COUNTER,
	"Socket readiness events the probe loop handed to libcurl"};
static const struct usher_metric_desc desc_transfers = {
	"usher_loop_transfers", USHER_METRIC_GAUGE, "Transfers in flight on the probe loop"};
static const struct usher_metric_desc desc_sockets = {
	"usher_loop_sockets", USHER_METRIC_GAUGE, "Sockets the probe loop is watching for libcurl"};

/* Invariant: every socket curl asked us to watch is in epfd with the events
 * it asked for, and marked by curl_multi_assign (non-NULL socketp);
 * timer_due_ms is curl's next timeout (-1: none). Only the loop thread
 * touches anything but wakefd. */
struct usher_loop {
	CURLM *multi;
	int epfd;
	int wakefd;
	int64_t timer_due_ms;
	unsigned active;
	unsigned sockets;
	uint64_t wakeups;
	uint64_t socket_events;
	struct usher_registry *reg; /* where the loop's own metrics go, or NULL */
	int64_t next_publish_ms;
};

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct usher_loop *l = userp;
	struct epoll_event ev;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		/* curl may already have closed it, which removed it from the set */
		if (socketp) {
			epoll_ctl(l->epfd, EPOLL_CTL_DEL, s, NULL);
			if (l->sockets)
				l->sockets--;
		}
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev.events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev.events |= EPOLLOUT;
	if (socketp) {
		if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) == 0)
			return 0;
		/* closed and reopened under the same number: add it again */
		if (errno != ENOENT)
			return -1;
		l->sockets--;
	}
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, s, &ev) != 0 &&
	    (errno != EEXIST || epoll_ctl(l->epfd, EPOLL_CTL_MOD, s, &ev) != 0))
		return -1; /* curl fails the transfer */
	curl_multi_assign(l->multi, s, l);
	l->sockets++;
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct usher_loop *l = userp;

	(void)multi;
	l->timer_due_ms = timeout_ms < 0 ? -1 : usher_mono_ms() + timeout_ms;
	return 0;
}

struct usher_loop *usher_loop_new(void)
{
	struct usher_loop *l = usher_calloc(1, sizeof(*l));
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct epoll_event ev;

	pthread_once(&once, global_init);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->timer_due_ms = -1;
	l->multi = curl_multi_init();
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = l->wakefd;
	if (l->epfd < 0 || l->wakefd < 0 || !l->multi ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0) {
		if (l->multi)
			curl_multi_cleanup(l->multi);
		if (l->epfd >= 0)
			close(l->epfd);
		if (l->wakefd >= 0)
			close(l->wakefd);
		free(l);
		return NULL;
	}
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
	/* many targets on one host (a load balancer) must not queue behind a
	 * per-host limit, and idle keep-alive sockets must stay bounded */
	curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 64L);
	return l;
}

void usher_loop_free(struct usher_loop *l)
{
	if (!l)
		return;
	if (l->reg)
		usher_registry_remove(l->reg, l);
	curl_multi_cleanup(l->multi);
	close(l->epfd);
	close(l->wakefd);
	free(l);
}

enum usher_err usher_loop_add(struct usher_loop *l, struct usher_loop_xfer *x)
{
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	/* curl sets a 0 ms timer for the new handle: the next poll starts it */
	if (curl_multi_add_handle(l->multi, x->easy) != CURLM_OK)
		return USHER_ERR_INTERNAL;
	l->active++;
	return USHER_OK;
}

void usher_loop_remove(struct usher_loop *l, struct usher_loop_xfer *x)
{
	if (curl_multi_remove_handle(l->multi, x->easy) == CURLM_OK && l->active)
		l->active--;
}

/* How long to wait: until the caller's timeout or curl's timer, whichever
 * comes first; a wait that ends at a timer ends on a SLACK_MS boundary. */
static int wait_ms(const struct usher_loop *l, int timeout_ms, int64_t now)
{
	int64_t due = timeout_ms < 0 ? now : now + timeout_ms;

	if (l->timer_due_ms >= 0 && l->timer_due_ms < due)
		due = l->timer_due_ms;
	if (due <= now)
		return 0;
	due += SLACK_MS - 1;
	due -= due % SLACK_MS;
	return (int)(due - now);
}

static void publish(struct usher_loop *l, int64_t now)
{
	struct usher_sample_set *set;

	if (!l->reg || now < l->next_publish_ms)
		return;
	l->next_publish_ms = now + PUBLISH_MS;
	set = usher_sample_set_new(NULL);
	usher_sample_add(set, &desc_wakeups, (double)l->wakeups, NULL);
	usher_sample_add(set, &desc_socket_events, (double)l->socket_events, NULL);
	usher_sample_add(set, &desc_transfers, (double)l->active, NULL);
	usher_sample_add(set, &desc_sockets, (double)l->sockets, NULL);
	usher_registry_publish(l->reg, l, set);
}

static void handle_events(struct usher_loop *l)
{
	struct epoll_event ev[MAX_EVENTS];
	int n, i, running;

	n = epoll_wait(l->epfd, ev, MAX_EVENTS, 0);
	for (i = 0; i < n; i++) {
		int mask = 0;

		if (ev[i].data.fd == l->wakefd) {
			uint64_t v;

			/* EAGAIN when another wake-up already drained it */
			(void)!read(l->wakefd, &v, sizeof(v));
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLHUP))
			mask |= CURL_CSELECT_IN;
		if (ev[i].events & EPOLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (ev[i].events & EPOLLERR)
			mask |= CURL_CSELECT_ERR;
		l->socket_events++;
		curl_multi_socket_action(l->multi, ev[i].data.fd, mask, &running);
	}
}

void usher_loop_poll(struct usher_loop *l, int timeout_ms, struct curl_waitfd *fds, unsigned nfds)
{
	struct pollfd pfd[1 + MAX_CALLER_FD];
	CURLMsg *msg;
	int running, left, n;
	unsigned i;
	int64_t now = usher_mono_ms();

	if (nfds > MAX_CALLER_FD)
		nfds = MAX_CALLER_FD;
	pfd[0] = (struct pollfd){.fd = l->epfd, .events = POLLIN};
	for (i = 0; i < nfds; i++) {
		short ev = 0;

		if (fds[i].events & CURL_WAIT_POLLIN)
			ev |= POLLIN;
		if (fds[i].events & CURL_WAIT_POLLPRI)
			ev |= POLLPRI;
		if (fds[i].events & CURL_WAIT_POLLOUT)
			ev |= POLLOUT;
		pfd[1 + i] = (struct pollfd){.fd = fds[i].fd, .events = ev};
		fds[i].revents = 0;
	}
	n = poll(pfd, 1 + nfds, wait_ms(l, timeout_ms, now));
	l->wakeups++;
	if (n > 0) {
		for (i = 0; i < nfds; i++) {
			short rev = pfd[1 + i].revents;

			if (rev & (POLLIN | POLLHUP | POLLERR))
				fds[i].revents |= CURL_WAIT_POLLIN & fds[i].events;
			if (rev & POLLPRI)
				fds[i].revents |= CURL_WAIT_POLLPRI;
			if (rev & POLLOUT)
				fds[i].revents |= CURL_WAIT_POLLOUT;
		}
		if (pfd[0].revents)
			handle_events(l);
	}
	now = usher_mono_ms();
	if (l->timer_due_ms >= 0 && l->timer_due_ms <= now) {
		/* curl sets the next timer from inside the call */
		l->timer_due_ms = -1;
		curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	while ((msg = curl_multi_info_read(l->multi, &left))) {
		struct usher_loop_xfer *x = NULL;
		CURLcode result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(l->multi, msg->easy_handle);
		if (l->active)
			l->active--;
		if (x && x->done)
			x->done(x, result);
	}
	publish(l, now);
}

void usher_loop_wakeup(struct usher_loop *l)
{
	uint64_t one = 1;

	/* EAGAIN only when the counter is about to overflow: it is awake */
	(void)!write(l->wakefd, &one, sizeof(one));
}

unsigned usher_loop_active(const struct usher_loop *l)
{
	return l->active;
}

void usher_loop_register_metrics(struct usher_loop *l, struct usher_registry *reg)
{
	l->reg = reg;
	l->next_publish_ms = 0;
}
