/* Backup manifests as JSON: writing (jansson's encoder), strict parsing with
 * a message naming the bad field, and atomic saving (temp, fsync, rename). */
#include "backup/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/stream.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/timeutil.h"

struct usher_manifest *usher_manifest_new(void)
{
	struct usher_manifest *m = usher_calloc(1, sizeof(*m));

	m->arena = usher_arena_new();
	return m;
}

void usher_manifest_free(struct usher_manifest *m)
{
	if (!m)
		return;
	usher_arena_free(m->arena);
	free(m);
}

/* Parses exactly n digits at s. */
static int digits(const char *s, int n, int *out)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

enum usher_err usher_rfc3339_parse(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0;
	struct tm tm = {0};
	time_t t;
	const char *p;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || s[10] != 'T' || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
		return USHER_ERR_INVALID;
	p = s + 19;
	if (*p == '.') {
		int n = 0;

		p++;
		while (p[n] >= '0' && p[n] <= '9')
			n++;
		if (n == 0 || n > 9)
			return USHER_ERR_INVALID;
		if (digits(p, n < 3 ? n : 3, &frac))
			return USHER_ERR_INVALID;
		if (n == 1)
			frac *= 100;
		else if (n == 2)
			frac *= 10;
		p += n;
	}
	if (strcmp(p, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60 || y < 1970)
		return USHER_ERR_INVALID;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return USHER_ERR_INVALID;
	*ms = (int64_t)t * 1000 + frac;
	return USHER_OK;
}

static json_t *time_json(int64_t ms)
{
	char s[40];

	usher_time_format_rfc3339(ms, s, sizeof(s));
	return json_string(s);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

char *usher_manifest_dump(const struct usher_manifest *m)
{
	json_t *root = json_object(), *tables = json_array(), *comp, *cipher;
	char *out;
	size_t i;

	json_object_set_new(root, "format", json_integer(USHER_MANIFEST_FORMAT));
	json_object_set_new(root, "id", json_string(m->id));
	json_object_set_new(root, "kind", json_string(m->kind));
	json_object_set_new(root, "target", json_string(m->target));
	json_object_set_new(root, "database", str_or_null(m->database));
	json_object_set_new(root, "server_version", str_or_null(m->server_version));
	json_object_set_new(root, "tool_version", str_or_null(m->tool_version));
	json_object_set_new(root, "start_time", time_json(m->start_ms));
	json_object_set_new(root, "stop_time", time_json(m->stop_ms));
	json_object_set_new(root, "data_file", json_string(m->data_file));
	json_object_set_new(root, "raw_bytes", json_integer((json_int_t)m->raw_bytes));
	json_object_set_new(root, "stored_bytes", json_integer((json_int_t)m->stored_bytes));
	json_object_set_new(root, "sha256", json_string(m->sha256));
	json_object_set_new(root, "raw_sha256", json_string(m->raw_sha256));
	comp = json_object();
	json_object_set_new(comp, "algorithm", json_string(m->compression));
	json_object_set_new(comp, "level", json_integer(m->level));
	json_object_set_new(comp, "threads", json_integer(m->threads));
	json_object_set_new(root, "compression", comp);
	cipher = json_object();
	json_object_set_new(cipher, "algorithm", json_string(m->cipher));
	json_object_set_new(cipher, "key_id", json_string(m->key_id));
	json_object_set_new(cipher, "chunk_bytes", json_integer(m->chunk_bytes));
	json_object_set_new(cipher, "chunks", json_integer((json_int_t)m->chunks));
	json_object_set_new(root, "encryption", cipher);
	for (i = 0; i < m->ntables; i++) {
		json_t *t = json_object();

		json_object_set_new(t, "schema", json_string(m->tables[i].schema));
		json_object_set_new(t, "table", json_string(m->tables[i].name));
		json_object_set_new(t, "rows", json_integer(m->tables[i].rows));
		json_array_append_new(tables, t);
	}
	json_object_set_new(root, "tables", tables);
	if (m->hmac)
		json_object_set_new(root, "hmac", json_string(m->hmac));
	out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return out;
}

/* ------------------------------------------------------------- parsing */

struct pctx {
	struct usher_manifest *m;
	struct usher_error *err;
};

static enum usher_err get_str(struct pctx *p, json_t *obj, const char *key, const char *where,
			      bool nullable, const char **out)
{
	json_t *v = json_object_get(obj, key);

	if (nullable && (!v || json_is_null(v))) {
		*out = NULL;
		return USHER_OK;
	}
	if (!json_is_string(v))
		return usher_fail(p->err, USHER_ERR_PROTOCOL, "manifest: %s%s: expected a string",
				  where, key);
	*out = usher_arena_strndup(p->m->arena, json_string_value(v), json_string_length(v));
	if (strlen(*out) != json_string_length(v))
		return usher_fail(p->err, USHER_ERR_PROTOCOL, "manifest: %s%s: contains NUL", where,
				  key);
	return USHER_OK;
}

static enum usher_err get_int(struct pctx *p, json_t *obj, const char *key, const char *where,
			      int64_t min, int64_t *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return usher_fail(p->err, USHER_ERR_PROTOCOL, "manifest: %s%s: expected an integer",
				  where, key);
	*out = json_integer_value(v);
	if (*out < min)
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: %s%s: %lld is less than %lld", where, key,
				  (long long)*out, (long long)min);
	return USHER_OK;
}

static enum usher_err get_time(struct pctx *p, json_t *obj, const char *key, int64_t *out)
{
	const char *s;
	enum usher_err rc = get_str(p, obj, key, "", false, &s);

	if (rc)
		return rc;
	if (usher_rfc3339_parse(s, out))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: %s: \"%.40s\" is not an RFC 3339 UTC time", key, s);
	return USHER_OK;
}

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	if (strlen(s) != n)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A name usable as one path component: no '/', not "." or "..". */
static bool safe_component(const char *s)
{
	return *s && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static enum usher_err parse_root(struct pctx *p, json_t *root)
{
	struct usher_manifest *m = p->m;
	json_t *comp, *enc, *tables;
	int64_t v;
	enum usher_err rc;
	size_t i;

	if (!json_is_object(root))
		return usher_fail(p->err, USHER_ERR_PROTOCOL, "manifest: expected a JSON object");
	if ((rc = get_int(p, root, "format", "", 1, &v)))
		return rc;
	if (v != USHER_MANIFEST_FORMAT)
		return usher_fail(p->err, USHER_ERR_UNSUPPORTED,
				  "manifest: format %lld is not one this usher reads (%d)",
				  (long long)v, USHER_MANIFEST_FORMAT);
	if ((rc = get_str(p, root, "id", "", false, &m->id)) ||
	    (rc = get_str(p, root, "kind", "", false, &m->kind)) ||
	    (rc = get_str(p, root, "target", "", false, &m->target)) ||
	    (rc = get_str(p, root, "database", "", true, &m->database)) ||
	    (rc = get_str(p, root, "server_version", "", true, &m->server_version)) ||
	    (rc = get_str(p, root, "tool_version", "", true, &m->tool_version)) ||
	    (rc = get_str(p, root, "data_file", "", false, &m->data_file)) ||
	    (rc = get_str(p, root, "sha256", "", false, &m->sha256)) ||
	    (rc = get_str(p, root, "raw_sha256", "", false, &m->raw_sha256)) ||
	    (rc = get_time(p, root, "start_time", &m->start_ms)) ||
	    (rc = get_time(p, root, "stop_time", &m->stop_ms)) ||
	    (rc = get_int(p, root, "raw_bytes", "", 0, &v)))
		return rc;
	m->raw_bytes = (uint64_t)v;
	if ((rc = get_int(p, root, "stored_bytes", "", USHER_BACKUP_HEADER_LEN, &v)))
		return rc;
	m->stored_bytes = (uint64_t)v;
	if (strcmp(m->kind, "postgres") != 0 && strcmp(m->kind, "redis") != 0)
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: kind: \"%.40s\" is not postgres or redis", m->kind);
	if (!safe_component(m->id) || !safe_component(m->data_file))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: id and data_file must be plain file names");
	if (!is_hex(m->sha256, 64) || !is_hex(m->raw_sha256, 64))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: sha256 and raw_sha256 must be 64 lowercase hex digits");
	if (m->stop_ms < m->start_ms)
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: stop_time is before start_time");
	comp = json_object_get(root, "compression");
	if (!json_is_object(comp))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: compression: expected an object");
	if ((rc = get_str(p, comp, "algorithm", "compression.", false, &m->compression)) ||
	    (rc = get_int(p, comp, "level", "compression.", -131072, &m->level)) ||
	    (rc = get_int(p, comp, "threads", "compression.", 0, &m->threads)))
		return rc;
	if (strcmp(m->compression, "zstd") != 0)
		return usher_fail(p->err, USHER_ERR_UNSUPPORTED,
				  "manifest: compression \"%.40s\" is not supported (zstd)",
				  m->compression);
	enc = json_object_get(root, "encryption");
	if (!json_is_object(enc))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: encryption: expected an object");
	if ((rc = get_str(p, enc, "algorithm", "encryption.", false, &m->cipher)) ||
	    (rc = get_str(p, enc, "key_id", "encryption.", false, &m->key_id)) ||
	    (rc = get_int(p, enc, "chunk_bytes", "encryption.", 1, &m->chunk_bytes)) ||
	    (rc = get_int(p, enc, "chunks", "encryption.", 1, &v)))
		return rc;
	m->chunks = (uint64_t)v;
	if (strcmp(m->cipher, "aes-256-gcm") != 0)
		return usher_fail(p->err, USHER_ERR_UNSUPPORTED,
				  "manifest: cipher \"%.40s\" is not supported (aes-256-gcm)",
				  m->cipher);
	if (!is_hex(m->key_id, USHER_BACKUP_KEY_ID_LEN))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: encryption.key_id must be %d lowercase hex digits",
				  USHER_BACKUP_KEY_ID_LEN);
	if ((rc = get_str(p, root, "hmac", "", true, &m->hmac)))
		return rc;
	if (m->hmac && !is_hex(m->hmac, 64))
		return usher_fail(p->err, USHER_ERR_PROTOCOL,
				  "manifest: hmac must be 64 lowercase hex digits");
	tables = json_object_get(root, "tables");
	if (!json_is_array(tables))
		return usher_fail(p->err, USHER_ERR_PROTOCOL, "manifest: tables: expected a list");
	m->ntables = json_array_size(tables);
	m->tables = usher_arena_zalloc(m->arena, (m->ntables ? m->ntables : 1) * sizeof(*m->tables));
	for (i = 0; i < m->ntables; i++) {
		json_t *t = json_array_get(tables, i);
		struct usher_manifest_table *mt = &m->tables[i];
		char where[48];

		snprintf(where, sizeof(where), "tables[%zu].", i);
		if (!json_is_object(t))
			return usher_fail(p->err, USHER_ERR_PROTOCOL,
					  "manifest: tables[%zu]: expected an object", i);
		if ((rc = get_str(p, t, "schema", where, false, &mt->schema)) ||
		    (rc = get_str(p, t, "table", where, false, &mt->name)) ||
		    (rc = get_int(p, t, "rows", where, 0, &mt->rows)))
			return rc;
	}
	return USHER_OK;
}

enum usher_err usher_manifest_parse(const char *text, size_t len, struct usher_manifest **out,
				    struct usher_error *err)
{
	struct usher_manifest *m;
	struct pctx p;
	json_error_t jerr;
	json_t *root;
	enum usher_err rc;

	*out = NULL;
	if (len > USHER_MANIFEST_MAX)
		return usher_fail(err, USHER_ERR_TOOBIG, "manifest: larger than %d MiB",
				  USHER_MANIFEST_MAX >> 20);
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return usher_fail(err, USHER_ERR_PROTOCOL, "manifest: line %d column %d: %s",
				  jerr.line, jerr.column, jerr.text);
	m = usher_manifest_new();
	p.m = m;
	p.err = err;
	rc = parse_root(&p, root);
	json_decref(root);
	if (rc) {
		usher_manifest_free(m);
		return rc;
	}
	*out = m;
	return USHER_OK;
}

enum usher_err usher_manifest_load(const char *path, struct usher_manifest **out,
				   struct usher_error *err)
{
	struct usher_buf b;
	char chunk[16384];
	enum usher_err rc = USHER_OK;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	if (fd < 0)
		return usher_fail(err, errno == ENOENT ? USHER_ERR_NOTFOUND : USHER_ERR_IO, "%s: %s",
				  path, strerror(errno));
	usher_buf_init(&b, USHER_MANIFEST_MAX);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = usher_fail(err, USHER_ERR_IO, "%s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (usher_buf_add(&b, chunk, (size_t)n)) {
			rc = usher_fail(err, USHER_ERR_TOOBIG, "%s: larger than %d MiB", path,
					USHER_MANIFEST_MAX >> 20);
			break;
		}
	}
	close(fd);
	if (!rc) {
		struct usher_error e = {{0}};

		rc = usher_manifest_parse(usher_buf_str(&b), b.len, out, &e);
		if (rc)
			usher_fail(err, rc, "%s: %s", path, e.msg);
	}
	usher_buf_free(&b);
	return rc;
}

enum usher_err usher_manifest_save(const struct usher_manifest *m, const char *path,
				   struct usher_error *err)
{
	char *text = usher_manifest_dump(m), tmp[4096];
	enum usher_err rc;
	int fd;

	if (!text)
		return usher_fail(err, USHER_ERR_NOMEM, "cannot encode the manifest");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		free(text);
		return usher_fail(err, USHER_ERR_INVALID, "path too long: %s", path);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(text);
		return usher_fail(err, USHER_ERR_IO, "%s: %s", tmp, strerror(errno));
	}
	rc = usher_write_all(fd, text, strlen(text), "the manifest", err);
	if (!rc)
		rc = usher_write_all(fd, "\n", 1, "the manifest", err);
	if (!rc && fsync(fd) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "fsync %s: %s", tmp, strerror(errno));
	if (close(fd) != 0 && !rc)
		rc = usher_fail(err, USHER_ERR_IO, "close %s: %s", tmp, strerror(errno));
	if (!rc && rename(tmp, path) != 0)
		rc = usher_fail(err, USHER_ERR_IO, "rename %s: %s", tmp, strerror(errno));
	if (rc)
		unlink(tmp);
	free(text);
	return rc;
}

/* hex HMAC-SHA256 of m's JSON without its hmac, under HKDF(key, "manifest") */
static bool manifest_mac(const struct usher_manifest *m, const struct usher_backup_key *key,
			 char *out)
{
	static const char info[] = "usher backup v1 manifest hmac";
	struct usher_manifest copy = *m;
	unsigned char mkey[32], mac[32];
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4];
	unsigned int maclen = 0;
	char *text;
	bool ok;
	size_t i;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key->k,
						       sizeof(key->k));
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info,
						       sizeof(info) - 1);
	params[3] = OSSL_PARAM_construct_end();
	ok = kctx && EVP_KDF_derive(kctx, mkey, sizeof(mkey), params) > 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	copy.hmac = NULL;
	text = ok ? usher_manifest_dump(&copy) : NULL;
	ok = text && HMAC(EVP_sha256(), mkey, sizeof(mkey), (const unsigned char *)text,
			  strlen(text), mac, &maclen) != NULL;
	OPENSSL_cleanse(mkey, sizeof(mkey));
	free(text);
	for (i = 0; ok && i < 32; i++) {
		out[2 * i] = "0123456789abcdef"[mac[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[mac[i] & 15];
	}
	out[ok ? 64 : 0] = '\0';
	return ok;
}

void usher_manifest_sign(struct usher_manifest *m, const struct usher_backup_key *key)
{
	char mac[65];

	m->hmac = manifest_mac(m, key, mac) ? usher_arena_strdup(m->arena, mac) : NULL;
}

enum usher_err usher_manifest_check(const struct usher_manifest *m,
				    const struct usher_backup_key *key, struct usher_error *err)
{
	char mac[65];

	if (!m->hmac)
		return usher_fail(err, USHER_ERR_PROTOCOL, "manifest of %s has no hmac", m->id);
	if (!manifest_mac(m, key, mac))
		return usher_fail(err, USHER_ERR_INTERNAL, "hmac-sha256 failed");
	if (CRYPTO_memcmp(mac, m->hmac, 64) != 0)
		return usher_fail(err, USHER_ERR_PROTOCOL,
				  "the manifest of %s was modified: its hmac does not match "
				  "(row counts, sizes and checksums in it cannot be trusted)",
				  m->id);
	return USHER_OK;
}
