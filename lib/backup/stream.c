/* The backup stream: zstd (libzstd, multithreaded) then AES-256-GCM
 * (OpenSSL EVP) in authenticated chunks.
 *
 *   header (64 bytes): "USHRBKP1" | u32 version | u32 chunk max |
 *                      8 bytes of the key id | 32 bytes salt | 8 zero bytes
 *   chunk:             u32 length word (bit 31: final) | ciphertext | 16-byte tag
 *
 * Each file gets its own key, HKDF-SHA256(key, salt), so nonces (the chunk
 * index) never repeat under one key. The AAD of chunk i is the header, i
 * (u64) and its length word: changing, moving, dropping or cutting a chunk
 * breaks a tag or leaves the stream without its final chunk. */
#include "backup/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "core/mem.h"

#define MAGIC "USHRBKP1"
#define VERSION 1u
#define TAG_LEN 16
#define FINAL_BIT 0x80000000u
#define HKDF_INFO "usher backup v1 aes-256-gcm"
#define KEYFILE_MAX 4096
#define READ_BUF (1u << 20)

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum usher_err usher_backup_key_parse(const char *text, size_t len, struct usher_backup_key *out,
				      struct usher_error *err)
{
	unsigned char digest[32];
	unsigned int dlen = 0;
	EVP_MD_CTX *md;
	size_t i;

	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
		       text[len - 1] == '\t'))
		len--;
	while (len && (*text == ' ' || *text == '\t')) {
		text++;
		len--;
	}
	if (len != 2 * USHER_BACKUP_KEY_LEN)
		return usher_fail(err, USHER_ERR_INVALID,
				  "a backup key is 64 hex characters (openssl rand -hex 32), "
				  "this one has %zu characters",
				  len);
	for (i = 0; i < USHER_BACKUP_KEY_LEN; i++) {
		int hi = unhex(text[2 * i]), lo = unhex(text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return usher_fail(err, USHER_ERR_INVALID,
					  "a backup key is 64 hex characters: character %zu is "
					  "not a hex digit",
					  hi < 0 ? 2 * i + 1 : 2 * i + 2);
		out->k[i] = (unsigned char)(hi << 4 | lo);
	}
	md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, "usher-backup-key-id:", 20) ||
	    !EVP_DigestUpdate(md, out->k, sizeof(out->k)) || !EVP_DigestFinal_ex(md, digest, &dlen)) {
		EVP_MD_CTX_free(md);
		return usher_fail(err, USHER_ERR_INTERNAL, "sha256 failed");
	}
	EVP_MD_CTX_free(md);
	hex(digest, USHER_BACKUP_KEY_ID_LEN / 2, out->id);
	OPENSSL_cleanse(digest, sizeof(digest));
	return USHER_OK;
}

enum usher_err usher_backup_key_load(const char *path, struct usher_backup_key *out,
				     struct usher_error *err)
{
	char buf[KEYFILE_MAX];
	size_t len = 0;
	struct stat st;
	enum usher_err rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return usher_fail(err, USHER_ERR_IO, "key file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = usher_fail(err, USHER_ERR_IO, "key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_mode & 077) {
		rc = usher_fail(err, USHER_ERR_INVALID,
				"key file %s can be read by others (mode %04o): chmod 600 it", path,
				(unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = usher_fail(err, USHER_ERR_IO, "key file %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf)) {
			rc = usher_fail(err, USHER_ERR_INVALID, "key file %s: too large", path);
			goto out;
		}
	}
	rc = usher_backup_key_parse(buf, len, out, NULL);
	if (rc) {
		struct usher_error e = {{0}};

		usher_backup_key_parse(buf, len, out, &e);
		usher_fail(err, rc, "key file %s: %s", path, e.msg);
	}
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}

enum usher_err usher_write_all(int fd, const void *p, size_t n, const char *what,
			       struct usher_error *err)
{
	const char *c = p;

	while (n) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return usher_fail(err, USHER_ERR_IO, "writing %s: %s", what, strerror(errno));
		c += w;
		n -= (size_t)w;
	}
	return USHER_OK;
}

/* The per-file key: HKDF-SHA256 of the master key with the header's salt. */
static enum usher_err derive(const struct usher_backup_key *key, const unsigned char *salt,
			     unsigned char *out, struct usher_error *err)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5];
	int ok;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key->k,
						       sizeof(key->k));
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, 32);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)HKDF_INFO,
						       strlen(HKDF_INFO));
	params[4] = OSSL_PARAM_construct_end();
	ok = kctx && EVP_KDF_derive(kctx, out, USHER_BACKUP_KEY_LEN, params) > 0;
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ok ? USHER_OK : usher_fail(err, USHER_ERR_INTERNAL, "hkdf-sha256 failed");
}

static void nonce_of(uint64_t index, unsigned char *nonce)
{
	memset(nonce, 0, 4);
	put64(nonce + 4, index);
}

/* ---------------------------------------------------------------- writer */

struct usher_bwriter {
	int fd;
	ZSTD_CCtx *cctx;
	EVP_CIPHER_CTX *cipher;
	EVP_MD_CTX *sha, *raw_sha;
	unsigned char header[USHER_BACKUP_HEADER_LEN];
	unsigned char fkey[USHER_BACKUP_KEY_LEN];
	unsigned char *plain;  /* compressed bytes waiting to be sealed */
	size_t plain_len;
	unsigned char *sealed; /* length word + ciphertext + tag */
	uint64_t index, raw, stored;
	usher_bstream_progress_fn *progress;
	void *progress_ctx;
	bool failed;
};

static enum usher_err emit(struct usher_bwriter *w, bool final, struct usher_error *err)
{
	unsigned char aad[USHER_BACKUP_HEADER_LEN + 12], nonce[12];
	uint32_t word = (uint32_t)w->plain_len | (final ? FINAL_BIT : 0);
	int outl = 0, fin = 0;
	size_t total = 4 + w->plain_len + TAG_LEN;
	enum usher_err rc;

	memcpy(aad, w->header, USHER_BACKUP_HEADER_LEN);
	put64(aad + USHER_BACKUP_HEADER_LEN, w->index);
	put32(aad + USHER_BACKUP_HEADER_LEN + 8, word);
	put32(w->sealed, word);
	nonce_of(w->index, nonce);
	if (!EVP_EncryptInit_ex(w->cipher, NULL, NULL, w->fkey, nonce) ||
	    !EVP_EncryptUpdate(w->cipher, NULL, &outl, aad, (int)sizeof(aad)) ||
	    (w->plain_len &&
	     !EVP_EncryptUpdate(w->cipher, w->sealed + 4, &outl, w->plain, (int)w->plain_len)) ||
	    !EVP_EncryptFinal_ex(w->cipher, w->sealed + 4 + w->plain_len, &fin) ||
	    !EVP_CIPHER_CTX_ctrl(w->cipher, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
				 w->sealed + 4 + w->plain_len))
		return usher_fail(err, USHER_ERR_INTERNAL, "aes-256-gcm encryption failed");
	EVP_DigestUpdate(w->sha, w->sealed, total);
	rc = usher_write_all(w->fd, w->sealed, total, "the backup file", err);
	if (rc)
		return rc;
	w->stored += total;
	w->index++;
	w->plain_len = 0;
	if (w->progress)
		w->progress(w->progress_ctx, w->raw, w->stored);
	return USHER_OK;
}

enum usher_err usher_bwriter_new(int fd, const struct usher_backup_key *key, int level,
				 int threads, struct usher_bwriter **out, struct usher_error *err)
{
	struct usher_bwriter *w = usher_calloc(1, sizeof(*w));
	unsigned char salt[32], kid[8];
	enum usher_err rc;
	size_t i;

	*out = NULL;
	w->fd = fd;
	w->plain = usher_malloc(USHER_BACKUP_CHUNK_MAX);
	w->sealed = usher_malloc(4 + USHER_BACKUP_CHUNK_MAX + TAG_LEN);
	w->cctx = ZSTD_createCCtx();
	w->cipher = EVP_CIPHER_CTX_new();
	w->sha = EVP_MD_CTX_new();
	w->raw_sha = EVP_MD_CTX_new();
	if (!w->cctx || !w->cipher || !w->sha || !w->raw_sha ||
	    !EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(w->raw_sha, EVP_sha256(), NULL) ||
	    !EVP_EncryptInit_ex(w->cipher, EVP_aes_256_gcm(), NULL, NULL, NULL)) {
		rc = usher_fail(err, USHER_ERR_NOMEM, "cannot set up zstd, aes-256-gcm or sha256");
		goto fail;
	}
	if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1))) {
		rc = usher_fail(err, USHER_ERR_INVALID, "zstd refuses level %d", level);
		goto fail;
	}
	if (threads > 0 &&
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, threads))) {
		rc = usher_fail(err, USHER_ERR_UNSUPPORTED,
				"this libzstd has no multithreading: set compression.threads to 0");
		goto fail;
	}
	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		rc = usher_fail(err, USHER_ERR_INTERNAL, "no random bytes for the salt");
		goto fail;
	}
	for (i = 0; i < sizeof(kid); i++)
		kid[i] = (unsigned char)(unhex(key->id[2 * i]) << 4 | unhex(key->id[2 * i + 1]));
	memcpy(w->header, MAGIC, 8);
	put32(w->header + 8, VERSION);
	put32(w->header + 12, USHER_BACKUP_CHUNK_MAX);
	memcpy(w->header + 16, kid, 8);
	memcpy(w->header + 24, salt, 32);
	rc = derive(key, salt, w->fkey, err);
	if (rc)
		goto fail;
	EVP_DigestUpdate(w->sha, w->header, sizeof(w->header));
	rc = usher_write_all(fd, w->header, sizeof(w->header), "the backup file", err);
	if (rc)
		goto fail;
	w->stored = sizeof(w->header);
	*out = w;
	return USHER_OK;
fail:
	usher_bwriter_free(w);
	return rc;
}

void usher_bwriter_set_progress(struct usher_bwriter *w, usher_bstream_progress_fn *fn, void *ctx)
{
	w->progress = fn;
	w->progress_ctx = ctx;
}

/* Runs the compressor over in with mode, sealing every full chunk. */
static enum usher_err compress(struct usher_bwriter *w, ZSTD_inBuffer *in, ZSTD_EndDirective mode,
			       struct usher_error *err)
{
	for (;;) {
		ZSTD_outBuffer out = {w->plain, USHER_BACKUP_CHUNK_MAX, w->plain_len};
		size_t left = ZSTD_compressStream2(w->cctx, &out, in, mode);
		enum usher_err rc;

		if (ZSTD_isError(left))
			return usher_fail(err, USHER_ERR_INTERNAL, "zstd: %s",
					  ZSTD_getErrorName(left));
		w->plain_len = out.pos;
		if (w->plain_len == USHER_BACKUP_CHUNK_MAX) {
			rc = emit(w, false, err);
			if (rc)
				return rc;
			continue;
		}
		if (mode == ZSTD_e_end ? left == 0 : in->pos == in->size)
			return USHER_OK;
	}
}

enum usher_err usher_bwriter_write(struct usher_bwriter *w, const void *p, size_t n,
				   struct usher_error *err)
{
	ZSTD_inBuffer in = {p, n, 0};
	enum usher_err rc;

	if (w->failed)
		return usher_fail(err, USHER_ERR_INTERNAL, "backup writer used after a failure");
	EVP_DigestUpdate(w->raw_sha, p, n);
	w->raw += n;
	rc = compress(w, &in, ZSTD_e_continue, err);
	if (rc)
		w->failed = true;
	return rc;
}

enum usher_err usher_bwriter_finish(struct usher_bwriter *w, struct usher_bstream_stats *st,
				    struct usher_error *err)
{
	ZSTD_inBuffer in = {NULL, 0, 0};
	unsigned char d[32];
	unsigned int dl = 0;
	enum usher_err rc;

	if (w->failed)
		return usher_fail(err, USHER_ERR_INTERNAL, "backup writer used after a failure");
	rc = compress(w, &in, ZSTD_e_end, err);
	if (!rc)
		rc = emit(w, true, err);
	if (rc) {
		w->failed = true;
		return rc;
	}
	memset(st, 0, sizeof(*st));
	st->raw_bytes = w->raw;
	st->stored_bytes = w->stored;
	st->chunks = w->index;
	EVP_DigestFinal_ex(w->sha, d, &dl);
	hex(d, 32, st->sha256);
	EVP_DigestFinal_ex(w->raw_sha, d, &dl);
	hex(d, 32, st->raw_sha256);
	w->failed = true; /* finished: no more writes */
	return USHER_OK;
}

void usher_bwriter_free(struct usher_bwriter *w)
{
	if (!w)
		return;
	ZSTD_freeCCtx(w->cctx);
	EVP_CIPHER_CTX_free(w->cipher);
	EVP_MD_CTX_free(w->sha);
	EVP_MD_CTX_free(w->raw_sha);
	OPENSSL_cleanse(w->fkey, sizeof(w->fkey));
	free(w->plain);
	free(w->sealed);
	free(w);
}

/* ---------------------------------------------------------------- reader */

struct rbuf {
	int fd;
	unsigned char *data;
	size_t len, pos;
	bool eof;
};

/* Reads up to n bytes into out; returns how many (less only at EOF). */
static enum usher_err rb_read(struct rbuf *r, unsigned char *out, size_t n, size_t *got,
			      struct usher_error *err)
{
	*got = 0;
	while (*got < n) {
		size_t take;

		if (r->pos == r->len) {
			ssize_t k;

			if (r->eof)
				break;
			k = read(r->fd, r->data, READ_BUF);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return usher_fail(err, USHER_ERR_IO, "reading the backup file: %s",
						  strerror(errno));
			r->pos = 0;
			r->len = (size_t)k;
			if (k == 0) {
				r->eof = true;
				break;
			}
		}
		take = r->len - r->pos < n - *got ? r->len - r->pos : n - *got;
		memcpy(out + *got, r->data + r->pos, take);
		r->pos += take;
		*got += take;
	}
	return USHER_OK;
}

enum usher_err usher_breader_run(int fd, const struct usher_backup_key *key, usher_bsink_fn *sink,
				 void *sink_ctx, usher_bstream_progress_fn *progress,
				 void *progress_ctx, struct usher_bstream_stats *st,
				 struct usher_error *err)
{
	struct rbuf r = {.fd = fd};
	unsigned char header[USHER_BACKUP_HEADER_LEN], fkey[USHER_BACKUP_KEY_LEN], word_b[4];
	unsigned char aad[USHER_BACKUP_HEADER_LEN + 12], nonce[12], d[32], *cipher = NULL,
								      *plain = NULL, *zout = NULL;
	char file_kid[17];
	size_t got, zout_cap = ZSTD_DStreamOutSize(), zleft = 1;
	uint64_t index = 0;
	unsigned int dl = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	EVP_MD_CTX *sha = EVP_MD_CTX_new(), *raw_sha = EVP_MD_CTX_new();
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	enum usher_err rc;
	bool final = false;

	memset(st, 0, sizeof(*st));
	r.data = usher_malloc(READ_BUF);
	cipher = usher_malloc(USHER_BACKUP_CHUNK_MAX + TAG_LEN);
	plain = usher_malloc(USHER_BACKUP_CHUNK_MAX);
	zout = usher_malloc(zout_cap);
	if (!ctx || !sha || !raw_sha || !dctx || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ||
	    !EVP_DigestInit_ex(raw_sha, EVP_sha256(), NULL) ||
	    !EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL)) {
		rc = usher_fail(err, USHER_ERR_NOMEM, "cannot set up zstd, aes-256-gcm or sha256");
		goto out;
	}
	rc = rb_read(&r, header, sizeof(header), &got, err);
	if (rc)
		goto out;
	if (got < sizeof(header) || memcmp(header, MAGIC, 8) != 0) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL,
				got < sizeof(header) ? "not a usher backup file: shorter than its header"
						     : "not a usher backup file: bad magic");
		goto out;
	}
	if (get32(header + 8) != VERSION || get32(header + 12) != USHER_BACKUP_CHUNK_MAX) {
		rc = usher_fail(err, USHER_ERR_UNSUPPORTED,
				"backup stream version %u (chunk size %u) is not one this usher reads",
				get32(header + 8), get32(header + 12));
		goto out;
	}
	hex(header + 16, 8, file_kid);
	if (strcmp(file_kid, key->id) != 0) {
		rc = usher_fail(err, USHER_ERR_AUTH,
				"wrong key: the backup was encrypted with key id %s, the key given "
				"has id %s",
				file_kid, key->id);
		goto out;
	}
	EVP_DigestUpdate(sha, header, sizeof(header));
	st->stored_bytes = sizeof(header);
	rc = derive(key, header + 24, fkey, err);
	if (rc)
		goto out;
	memcpy(aad, header, sizeof(header));
	while (!final) {
		uint32_t word, len;
		int outl = 0;
		ZSTD_inBuffer in;

		rc = rb_read(&r, word_b, 4, &got, err);
		if (rc)
			goto out;
		if (got < 4) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"truncated: the file ends after %llu chunks without the "
					"final one",
					(unsigned long long)index);
			goto out;
		}
		word = get32(word_b);
		final = (word & FINAL_BIT) != 0;
		len = word & ~FINAL_BIT;
		if (len > USHER_BACKUP_CHUNK_MAX) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"corrupt: chunk %llu claims %u bytes, more than the %u a "
					"chunk holds",
					(unsigned long long)index, len, USHER_BACKUP_CHUNK_MAX);
			goto out;
		}
		rc = rb_read(&r, cipher, len + TAG_LEN, &got, err);
		if (rc)
			goto out;
		if (got < len + TAG_LEN) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"truncated: the file ends inside chunk %llu",
					(unsigned long long)index);
			goto out;
		}
		EVP_DigestUpdate(sha, word_b, 4);
		EVP_DigestUpdate(sha, cipher, len + TAG_LEN);
		st->stored_bytes += 4 + len + TAG_LEN;
		put64(aad + USHER_BACKUP_HEADER_LEN, index);
		memcpy(aad + USHER_BACKUP_HEADER_LEN + 8, word_b, 4);
		nonce_of(index, nonce);
		if (!EVP_DecryptInit_ex(ctx, NULL, NULL, fkey, nonce) ||
		    !EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)sizeof(aad)) ||
		    (len && !EVP_DecryptUpdate(ctx, plain, &outl, cipher, (int)len)) ||
		    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, cipher + len) ||
		    EVP_DecryptFinal_ex(ctx, plain + len, &outl) <= 0) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"chunk %llu (at byte %llu) failed authentication: the file "
					"was modified, reordered or damaged",
					(unsigned long long)index,
					(unsigned long long)(st->stored_bytes - 4 - len - TAG_LEN));
			goto out;
		}
		in = (ZSTD_inBuffer){plain, len, 0};
		while (in.pos < in.size) {
			ZSTD_outBuffer o = {zout, zout_cap, 0};

			zleft = ZSTD_decompressStream(dctx, &o, &in);
			if (ZSTD_isError(zleft)) {
				rc = usher_fail(err, USHER_ERR_PROTOCOL,
						"corrupt: zstd cannot decompress chunk %llu: %s",
						(unsigned long long)index, ZSTD_getErrorName(zleft));
				goto out;
			}
			if (o.pos) {
				EVP_DigestUpdate(raw_sha, zout, o.pos);
				st->raw_bytes += o.pos;
				if (sink) {
					rc = sink(sink_ctx, zout, o.pos, err);
					if (rc)
						goto out;
				}
			}
		}
		index++;
		if (progress)
			progress(progress_ctx, st->raw_bytes, st->stored_bytes);
	}
	/* flush what zstd still holds (its output buffer may have been full) */
	for (;;) {
		ZSTD_inBuffer in = {NULL, 0, 0};
		ZSTD_outBuffer o = {zout, zout_cap, 0};

		if (zleft == 0)
			break;
		zleft = ZSTD_decompressStream(dctx, &o, &in);
		if (ZSTD_isError(zleft) || o.pos == 0) {
			rc = usher_fail(err, USHER_ERR_PROTOCOL,
					"corrupt: the compressed data ends before its frame does");
			goto out;
		}
		EVP_DigestUpdate(raw_sha, zout, o.pos);
		st->raw_bytes += o.pos;
		if (sink) {
			rc = sink(sink_ctx, zout, o.pos, err);
			if (rc)
				goto out;
		}
	}
	rc = rb_read(&r, word_b, 1, &got, err);
	if (rc)
		goto out;
	if (got) {
		rc = usher_fail(err, USHER_ERR_PROTOCOL,
				"corrupt: data follows the final chunk (%llu chunks)",
				(unsigned long long)index);
		goto out;
	}
	st->chunks = index;
	EVP_DigestFinal_ex(sha, d, &dl);
	hex(d, 32, st->sha256);
	EVP_DigestFinal_ex(raw_sha, d, &dl);
	hex(d, 32, st->raw_sha256);
out:
	OPENSSL_cleanse(fkey, sizeof(fkey));
	EVP_CIPHER_CTX_free(ctx);
	EVP_MD_CTX_free(sha);
	EVP_MD_CTX_free(raw_sha);
	ZSTD_freeDCtx(dctx);
	free(r.data);
	free(cipher);
	free(plain);
	free(zout);
	return rc;
}
