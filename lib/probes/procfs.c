/* Parsers of /proc/stat, loadavg, meminfo, net/dev, diskstats and
 * mountinfo, working on the text alone (see procfs.h), and the mount
 * selection node_exporter's filesystem collector applies by default. */
#include "probes/procfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 64

const char *const usher_cpu_mode_names[USHER_CPU_NMODES] = {
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice",
};

const char *const usher_netdev_field_names[USHER_NETDEV_NFIELDS] = {
    "receive_bytes",  "receive_packets",  "receive_errs",       "receive_drop",
    "receive_fifo",   "receive_frame",    "receive_compressed", "receive_multicast",
    "transmit_bytes", "transmit_packets", "transmit_errs",      "transmit_drop",
    "transmit_fifo",  "transmit_colls",   "transmit_carrier",   "transmit_compressed",
};

/* A cursor over one line of the text. */
struct line {
	const char *p, *end;
	int no;
};

/* Moves l to the next line of [*pos, end); false at the end. */
static bool next_line(const char **pos, const char *end, struct line *l)
{
	const char *nl;

	if (*pos >= end)
		return false;
	nl = memchr(*pos, '\n', (size_t)(end - *pos));
	l->p = *pos;
	l->end = nl ? nl : end;
	l->no++;
	*pos = nl ? nl + 1 : end;
	return true;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The next whitespace-separated token of l; false when there is none. */
static bool token(struct line *l, const char **t, size_t *n)
{
	while (l->p < l->end && is_space(*l->p))
		l->p++;
	if (l->p >= l->end)
		return false;
	*t = l->p;
	while (l->p < l->end && !is_space(*l->p))
		l->p++;
	*n = (size_t)(l->p - *t);
	return true;
}

static bool to_double(const char *t, size_t n, double *v)
{
	char buf[TOKEN_MAX + 1], *end;

	if (n == 0 || n > TOKEN_MAX)
		return false;
	memcpy(buf, t, n);
	buf[n] = '\0';
	errno = 0;
	*v = strtod(buf, &end);
	return end == buf + n && errno == 0;
}

static bool to_uint(const char *t, size_t n, unsigned *v)
{
	char buf[TOKEN_MAX + 1], *end;
	unsigned long u;

	if (n == 0 || n > TOKEN_MAX || t[0] < '0' || t[0] > '9')
		return false;
	memcpy(buf, t, n);
	buf[n] = '\0';
	errno = 0;
	u = strtoul(buf, &end, 10);
	if (end != buf + n || errno || u > 0xffffffffUL)
		return false;
	*v = (unsigned)u;
	return true;
}

static bool tok_is(const char *t, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(t, lit, n) == 0;
}

/* A growable array in an arena (the copy on growth stays in it). */
static void *grow(struct usher_arena *a, void *v, size_t n, size_t *cap, size_t size)
{
	void *w;

	if (n < *cap)
		return v;
	*cap = *cap ? *cap * 2 : 16;
	w = usher_arena_alloc(a, *cap * size);
	if (n)
		memcpy(w, v, n * size);
	return w;
}

/* ---- /proc/stat --------------------------------------------------------- */

enum usher_err usher_procfs_stat(const char *text, size_t len, double ticks_per_second,
				 struct usher_arena *a, struct usher_proc_stat *out,
				 struct usher_error *err)
{
	const char *pos = text, *end = text + len, *t;
	struct line l = {0};
	size_t n, cap = 0;

	memset(out, 0, sizeof(*out));
	out->boot_time = out->context_switches = out->forks = out->intr = -1;
	out->procs_running = out->procs_blocked = -1;
	while (next_line(&pos, end, &l)) {
		double v;

		if (!token(&l, &t, &n))
			continue;
		if (n > 3 && memcmp(t, "cpu", 3) == 0) {
			struct usher_cpu *c;
			int m;

			out->cpus = grow(a, out->cpus, out->ncpus, &cap, sizeof(*out->cpus));
			c = &out->cpus[out->ncpus];
			memset(c, 0, sizeof(*c));
			c->cpu = usher_arena_strndup(a, t + 3, n - 3);
			for (m = 0; m < USHER_CPU_NMODES; m++) {
				const char *f;
				size_t fl;

				if (!token(&l, &f, &fl))
					break;
				if (!to_double(f, fl, &v))
					return usher_fail(err, USHER_ERR_INVALID,
							  "stat line %d: %.*s: bad number", l.no,
							  (int)n, t);
				c->seconds[m] = v / ticks_per_second;
			}
			if (m < 4)
				return usher_fail(err, USHER_ERR_INVALID,
						  "stat line %d: %.*s: fewer than 4 columns", l.no,
						  (int)n, t);
			c->nmodes = m;
			out->ncpus++;
			continue;
		}
		{
			double *dst = tok_is(t, n, "btime")           ? &out->boot_time
				      : tok_is(t, n, "ctxt")          ? &out->context_switches
				      : tok_is(t, n, "processes")     ? &out->forks
				      : tok_is(t, n, "intr")          ? &out->intr
				      : tok_is(t, n, "procs_running") ? &out->procs_running
				      : tok_is(t, n, "procs_blocked") ? &out->procs_blocked
								      : NULL;
			const char *f;
			size_t fl;

			if (!dst)
				continue;
			if (!token(&l, &f, &fl) || !to_double(f, fl, &v))
				return usher_fail(err, USHER_ERR_INVALID,
						  "stat line %d: %.*s: bad number", l.no, (int)n,
						  t);
			*dst = v;
		}
	}
	return USHER_OK;
}

/* ---- /proc/loadavg ------------------------------------------------------ */

enum usher_err usher_procfs_loadavg(const char *text, size_t len, struct usher_loadavg *out,
				    struct usher_error *err)
{
	struct line l = {text, text + len, 1};
	double *dst[3] = {&out->load1, &out->load5, &out->load15};
	const char *t;
	size_t n;
	int i;

	for (i = 0; i < 3; i++)
		if (!token(&l, &t, &n) || !to_double(t, n, dst[i]))
			return usher_fail(err, USHER_ERR_INVALID,
					  "loadavg: expected three load averages");
	return USHER_OK;
}

/* ---- /proc/meminfo ------------------------------------------------------ */

enum usher_err usher_procfs_meminfo(const char *text, size_t len, struct usher_arena *a,
				    struct usher_meminfo **out, size_t *n, struct usher_error *err)
{
	const char *pos = text, *end = text + len, *t, *v, *u;
	struct line l = {0};
	size_t tl, vl, ul, cap = 0;

	*out = NULL;
	*n = 0;
	while (next_line(&pos, end, &l)) {
		struct usher_meminfo *m;
		char name[TOKEN_MAX + 8];
		size_t i, k = 0;
		bool unit;

		if (!token(&l, &t, &tl))
			continue;
		if (tl < 2 || t[tl - 1] != ':' || tl > TOKEN_MAX || !token(&l, &v, &vl))
			return usher_fail(err, USHER_ERR_INVALID,
					  "meminfo line %d: expected "
					  "\"Name: value [kB]\"",
					  l.no);
		unit = token(&l, &u, &ul);
		if (unit && !tok_is(u, ul, "kB"))
			return usher_fail(err, USHER_ERR_INVALID,
					  "meminfo line %d: unit %.*s is not kB", l.no, (int)ul, u);
		/* Active(anon) -> Active_anon, as node_exporter */
		for (i = 0; i < tl - 1; i++) {
			char c = t[i];

			if (c == '(') {
				name[k++] = '_';
				continue;
			}
			if (c == ')')
				continue;
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '_'))
				c = '_';
			name[k++] = c;
		}
		name[k] = '\0';
		*out = grow(a, *out, *n, &cap, sizeof(**out));
		m = &(*out)[*n];
		if (!to_double(v, vl, &m->value))
			return usher_fail(err, USHER_ERR_INVALID, "meminfo line %d: bad number",
					  l.no);
		if (unit)
			m->value *= 1024;
		m->name =
		    unit ? usher_arena_printf(a, "%s_bytes", name) : usher_arena_strdup(a, name);
		(*n)++;
	}
	return USHER_OK;
}

/* ---- /proc/net/dev ------------------------------------------------------ */

enum usher_err usher_procfs_netdev(const char *text, size_t len, struct usher_arena *a,
				   struct usher_netdev **out, size_t *n, struct usher_error *err)
{
	const char *pos = text, *end = text + len, *colon, *t;
	struct line l = {0};
	size_t tl, cap = 0;

	*out = NULL;
	*n = 0;
	while (next_line(&pos, end, &l)) {
		struct usher_netdev *d;
		const char *name;
		int i;

		if (l.no <= 2) /* the two header lines */
			continue;
		colon = memchr(l.p, ':', (size_t)(l.end - l.p));
		if (!colon)
			return usher_fail(err, USHER_ERR_INVALID,
					  "net/dev line %d: expected \"device: counters\"", l.no);
		name = l.p;
		while (name < colon && is_space(*name))
			name++;
		*out = grow(a, *out, *n, &cap, sizeof(**out));
		d = &(*out)[*n];
		d->device = usher_arena_strndup(a, name, (size_t)(colon - name));
		l.p = colon + 1;
		for (i = 0; i < USHER_NETDEV_NFIELDS; i++)
			if (!token(&l, &t, &tl) || !to_double(t, tl, &d->v[i]))
				return usher_fail(err, USHER_ERR_INVALID,
						  "net/dev line %d: expected %d counters", l.no,
						  USHER_NETDEV_NFIELDS);
		(*n)++;
	}
	return USHER_OK;
}

/* ---- /proc/diskstats ---------------------------------------------------- */

enum usher_err usher_procfs_diskstats(const char *text, size_t len, struct usher_arena *a,
				      struct usher_diskstat **out, size_t *n,
				      struct usher_error *err)
{
	const char *pos = text, *end = text + len, *t;
	struct line l = {0};
	size_t tl, cap = 0;

	*out = NULL;
	*n = 0;
	while (next_line(&pos, end, &l)) {
		struct usher_diskstat *d;
		const char *mj, *mn, *name;
		size_t mjl, mnl, nl;

		if (!token(&l, &mj, &mjl))
			continue;
		*out = grow(a, *out, *n, &cap, sizeof(**out));
		d = &(*out)[*n];
		memset(d, 0, sizeof(*d));
		if (!token(&l, &mn, &mnl) || !token(&l, &name, &nl) ||
		    !to_uint(mj, mjl, &d->major) || !to_uint(mn, mnl, &d->minor))
			return usher_fail(err, USHER_ERR_INVALID,
					  "diskstats line %d: expected \"major minor device ...\"",
					  l.no);
		d->device = usher_arena_strndup(a, name, nl);
		while (d->nfields < USHER_DISK_NFIELDS && token(&l, &t, &tl)) {
			if (!to_double(t, tl, &d->v[d->nfields]))
				return usher_fail(err, USHER_ERR_INVALID,
						  "diskstats line %d: bad number", l.no);
			d->nfields++;
		}
		if (d->nfields < 11)
			return usher_fail(err, USHER_ERR_INVALID,
					  "diskstats line %d: fewer than 11 counters", l.no);
		(*n)++;
	}
	return USHER_OK;
}

static const char *skip_digits(const char *p, bool *any)
{
	*any = false;
	while (*p >= '0' && *p <= '9') {
		p++;
		*any = true;
	}
	return p;
}

/* ^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$ */
bool usher_disk_device_ignored(const char *name)
{
	static const char *const plain[] = {"ram", "zram", "loop", "fd"};
	const char *p = NULL;
	bool any;
	size_t i;

	for (i = 0; i < sizeof(plain) / sizeof(plain[0]) && !p; i++)
		if (strncmp(name, plain[i], strlen(plain[i])) == 0)
			p = name + strlen(plain[i]);
	if (!p) {
		const char *q = name;

		if (strncmp(q, "xv", 2) == 0)
			q += 2;
		else if (*q == 'h' || *q == 's' || *q == 'v')
			q++;
		else
			q = NULL;
		if (q && q[0] == 'd' && q[1] >= 'a' && q[1] <= 'z')
			p = q + 2;
	}
	if (!p && strncmp(name, "nvme", 4) == 0) {
		const char *q = skip_digits(name + 4, &any);

		if (any && *q == 'n') {
			q = skip_digits(q + 1, &any);
			if (any && *q == 'p')
				p = q + 1;
		}
	}
	if (!p)
		return false;
	p = skip_digits(p, &any);
	return any && *p == '\0';
}

/* ---- mountinfo ---------------------------------------------------------- */

/* A mountinfo field with its octal escapes (\040 space, \011 tab, \012
 * newline, \134 backslash) decoded, in a. */
static const char *unescape_octal(struct usher_arena *a, const char *t, size_t n)
{
	char *out = usher_arena_alloc(a, n + 1), *o = out;
	size_t i;

	for (i = 0; i < n; i++) {
		if (t[i] == '\\' && i + 3 < n && t[i + 1] >= '0' && t[i + 1] <= '3' &&
		    t[i + 2] >= '0' && t[i + 2] <= '7' && t[i + 3] >= '0' && t[i + 3] <= '7') {
			*o++ =
			    (char)((t[i + 1] - '0') * 64 + (t[i + 2] - '0') * 8 + (t[i + 3] - '0'));
			i += 3;
			continue;
		}
		*o++ = t[i];
	}
	*o = '\0';
	return out;
}

enum usher_err usher_procfs_mountinfo(const char *text, size_t len, struct usher_arena *a,
				      struct usher_mount **out, size_t *n, struct usher_error *err)
{
	const char *pos = text, *end = text + len;
	struct line l = {0};
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	while (next_line(&pos, end, &l)) {
		const char *f[6], *t, *colon;
		size_t fl[6], tl, i;
		struct usher_mount *m;
		bool sep = false;

		for (i = 0; i < 6; i++)
			if (!token(&l, &f[i], &fl[i]))
				break;
		if (i == 0)
			continue;
		if (i < 6)
			goto bad;
		/* optional fields up to the "-" separator */
		while (token(&l, &t, &tl))
			if (tok_is(t, tl, "-")) {
				sep = true;
				break;
			}
		if (!sep)
			goto bad;
		*out = grow(a, *out, *n, &cap, sizeof(**out));
		m = &(*out)[*n];
		memset(m, 0, sizeof(*m));
		colon = memchr(f[2], ':', fl[2]);
		if (!colon || !to_uint(f[2], (size_t)(colon - f[2]), &m->major) ||
		    !to_uint(colon + 1, fl[2] - (size_t)(colon - f[2]) - 1, &m->minor))
			goto bad;
		m->root = unescape_octal(a, f[3], fl[3]);
		m->mountpoint = unescape_octal(a, f[4], fl[4]);
		if (!token(&l, &t, &tl))
			goto bad;
		m->fstype = usher_arena_strndup(a, t, tl);
		m->device = token(&l, &t, &tl) ? unescape_octal(a, t, tl) : "none";
		(*n)++;
		continue;
	bad:
		return usher_fail(
		    err, USHER_ERR_INVALID,
		    "mountinfo line %d: expected \"id parent major:minor root mountpoint "
		    "options ... - fstype source options\"",
		    l.no);
	}
	return USHER_OK;
}

static bool in_list(const struct usher_strlist *l, const char *s)
{
	size_t i;

	for (i = 0; l && i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

static bool mountpoint_excluded(const struct usher_strlist *l, const char *mp)
{
	size_t i;

	for (i = 0; l && i < l->n; i++) {
		const char *e = l->v[i];
		size_t el = strlen(e);

		if (el && e[el - 1] == '/') {
			/* only what is under it */
			if (strncmp(mp, e, el) == 0 && mp[el])
				return true;
		} else if (strncmp(mp, e, el) == 0 &&
			   (mp[el] == '\0' || mp[el] == '/' || (el == 1 && e[0] == '/'))) {
			return true;
		}
	}
	return false;
}

size_t usher_mounts_select(struct usher_mount *v, size_t n, const struct usher_strlist *fs_exclude,
			   const struct usher_strlist *mp_exclude)
{
	size_t i, j, k = 0;

	for (i = 0; i < n; i++) {
		bool keep = !in_list(fs_exclude, v[i].fstype) &&
			    !mountpoint_excluded(mp_exclude, v[i].mountpoint);

		/* mounted over later: what the path shows is the last mount */
		for (j = i + 1; keep && j < n; j++)
			if (strcmp(v[j].mountpoint, v[i].mountpoint) == 0)
				keep = false;
		if (keep)
			v[k++] = v[i];
	}
	n = k;
	k = 0;
	for (i = 0; i < n; i++) {
		bool keep = true;

		for (j = 0; j < n && keep; j++) {
			if (j == i || v[j].major != v[i].major || v[j].minor != v[i].minor)
				continue;
			/* another mount of the same filesystem: keep one, a mount
			 * of the whole tree first, else the earliest */
			if (strcmp(v[j].root, "/") == 0 && strcmp(v[i].root, "/") != 0)
				keep = false;
			else if (j < i &&
				 (strcmp(v[j].root, "/") == 0) == (strcmp(v[i].root, "/") == 0))
				keep = false;
		}
		if (keep)
			v[k++] = v[i];
	}
	return k;
}
