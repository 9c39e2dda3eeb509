/* The backup stream: data compressed with zstd (multithreaded) and then
 * sealed with AES-256-GCM in chunks. Each chunk's additional authenticated
 * data holds the file header, the chunk's index and its length word (whose
 * top bit flags the final chunk), so a flipped byte, a truncated file, a
 * chunk moved, dropped or copied from another backup all fail with a
 * message that says which. docs/backup.md describes the format. */
#ifndef USHER_BACKUP_STREAM_H
#define USHER_BACKUP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define USHER_BACKUP_KEY_LEN 32
#define USHER_BACKUP_KEY_ID_LEN 16 /* hex characters */
#define USHER_BACKUP_HEADER_LEN 64
#define USHER_BACKUP_CHUNK_MAX (1u << 20) /* plaintext bytes of a chunk */

/* A 256-bit key and its id (hex of the first 8 bytes of a SHA-256 of the
 * key), which manifests and stream headers carry so a wrong key is named
 * as such, and keys can be rotated. */
struct usher_backup_key {
	unsigned char k[USHER_BACKUP_KEY_LEN];
	char id[USHER_BACKUP_KEY_ID_LEN + 1];
};

/* Parses 64 hex characters (as `openssl rand -hex 32` writes them; one
 * trailing newline and surrounding blanks are ignored). */
enum usher_err usher_backup_key_parse(const char *text, size_t len, struct usher_backup_key *out,
				      struct usher_error *err);
/* Reads and parses a key file. Refuses a file others may read (mode & 077)
 * as ssh does with private keys. */
enum usher_err usher_backup_key_load(const char *path, struct usher_backup_key *out,
				     struct usher_error *err);

/* What a stream held, filled by finish (writer) or run (reader). */
struct usher_bstream_stats {
	uint64_t raw_bytes;    /* before compression */
	uint64_t stored_bytes; /* the file, header included */
	uint64_t chunks;
	char sha256[65];     /* of the stored file, hex */
	char raw_sha256[65]; /* of the raw data, hex */
};

/* Called now and then with the bytes seen so far (progress bars). */
typedef void usher_bstream_progress_fn(void *ctx, uint64_t raw, uint64_t stored);

struct usher_bwriter;

/* A writer of a stream into fd (borrowed; written from where it stands)
 * at zstd level (1..19) with threads worker threads (0: in the caller's
 * thread). Writes the header at once. */
enum usher_err usher_bwriter_new(int fd, const struct usher_backup_key *key, int level,
				 int threads, struct usher_bwriter **out, struct usher_error *err);
void usher_bwriter_set_progress(struct usher_bwriter *w, usher_bstream_progress_fn *fn,
				void *ctx);
/* Adds n raw bytes. A failed write (ENOSPC, EFBIG) is USHER_ERR_IO naming
 * the cause; the writer is then only good for free. */
enum usher_err usher_bwriter_write(struct usher_bwriter *w, const void *p, size_t n,
				   struct usher_error *err);
/* Flushes the compressor and writes the final chunk; does not fsync. */
enum usher_err usher_bwriter_finish(struct usher_bwriter *w, struct usher_bstream_stats *st,
				    struct usher_error *err);
void usher_bwriter_free(struct usher_bwriter *w);

/* Where a reader sends the raw bytes. */
typedef enum usher_err usher_bsink_fn(void *ctx, const void *p, size_t n,
				      struct usher_error *err);

/* Reads a whole stream from fd, checking every tag, and hands the raw
 * data to sink (NULL: discarded, for verify). Fails with
 * USHER_ERR_AUTH for a wrong key, USHER_ERR_PROTOCOL for anything
 * corrupt, tampered with or truncated (the message says which chunk), and
 * USHER_ERR_IO for a read error. Data already given to sink before a
 * failure must be discarded by the caller. */
enum usher_err usher_breader_run(int fd, const struct usher_backup_key *key, usher_bsink_fn *sink,
				 void *sink_ctx, usher_bstream_progress_fn *progress,
				 void *progress_ctx, struct usher_bstream_stats *st,
				 struct usher_error *err);

/* Writes n bytes to fd, retrying short writes and EINTR. */
enum usher_err usher_write_all(int fd, const void *p, size_t n, const char *what,
			       struct usher_error *err);

#endif
