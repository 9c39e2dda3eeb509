/* The probe event loop on libcurl's multi interface: curl_multi_poll waits
 * on every transfer's socket plus the caller's fds (signals), and
 * curl_multi_wakeup lets worker threads interrupt the wait. */
#include "probes/loop.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/mem.h"

struct usher_loop {
	CURLM *multi;
	unsigned active;
};

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct usher_loop *usher_loop_new(void)
{
	struct usher_loop *l = usher_calloc(1, sizeof(*l));
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, global_init);
	l->multi = curl_multi_init();
	if (!l->multi) {
		free(l);
		return NULL;
	}
	/* many targets on one host (a load balancer) must not queue behind a
	 * per-host limit, and idle keep-alive sockets must stay bounded */
	curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 64L);
	return l;
}

void usher_loop_free(struct usher_loop *l)
{
	if (!l)
		return;
	curl_multi_cleanup(l->multi);
	free(l);
}

enum usher_err usher_loop_add(struct usher_loop *l, struct usher_loop_xfer *x)
{
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
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

void usher_loop_poll(struct usher_loop *l, int timeout_ms, struct curl_waitfd *fds, unsigned nfds)
{
	CURLMsg *msg;
	int running, left;

	curl_multi_poll(l->multi, fds, nfds, timeout_ms < 0 ? 0 : timeout_ms, NULL);
	curl_multi_perform(l->multi, &running);
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
}

void usher_loop_wakeup(struct usher_loop *l)
{
	curl_multi_wakeup(l->multi);
}

unsigned usher_loop_active(const struct usher_loop *l)
{
	return l->active;
}
