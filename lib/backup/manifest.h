/* A backup's manifest: what was backed up, from where, when, how big, with
 * which compression, cipher and key, and the per-table row counts a
 * restore is checked against. Stored as JSON (jansson) next to the data. */
#ifndef USHER_BACKUP_MANIFEST_H
#define USHER_BACKUP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/err.h"

#define USHER_MANIFEST_FORMAT 1
#define USHER_MANIFEST_MAX (64 * 1024 * 1024) /* bytes of JSON */

struct usher_manifest_table {
	const char *schema;
	const char *name;
	int64_t rows;
};

struct usher_manifest {
	struct usher_arena *arena; /* owns every string and array below */
	const char *id;
	const char *kind;   /* "postgres" or "redis" */
	const char *target; /* the probe name, or the name derived from a DSN */
	const char *database;       /* NULL for redis */
	const char *server_version; /* "15.8", "7.0.15" */
	const char *tool_version;   /* "pg_dump (PostgreSQL) 15.8", "redis SYNC" */
	const char *data_file;      /* in the backup's directory */
	int64_t start_ms, stop_ms;  /* wall clock, ms since the epoch */
	uint64_t raw_bytes, stored_bytes, chunks;
	const char *sha256;     /* of the stored file, 64 hex */
	const char *raw_sha256; /* of the raw dump, 64 hex */
	const char *compression; /* "zstd" */
	int64_t level, threads;
	const char *cipher; /* "aes-256-gcm" */
	const char *key_id; /* 16 hex */
	int64_t chunk_bytes;
	struct usher_manifest_table *tables;
	size_t ntables;
	const char *hmac; /* HMAC-SHA256 of the rest, keyed from the backup key; 64 hex */
};

struct usher_backup_key;

/* A zeroed manifest with its own arena. */
struct usher_manifest *usher_manifest_new(void);
void usher_manifest_free(struct usher_manifest *m);

/* Parses and validates JSON text (len bytes). On failure *out is NULL and
 * err says which field is wrong. */
enum usher_err usher_manifest_parse(const char *text, size_t len, struct usher_manifest **out,
				    struct usher_error *err);
/* Reads path (at most USHER_MANIFEST_MAX bytes) and parses it. */
enum usher_err usher_manifest_load(const char *path, struct usher_manifest **out,
				   struct usher_error *err);
/* The manifest as pretty-printed JSON; the caller frees it. */
char *usher_manifest_dump(const struct usher_manifest *m);
/* Writes the manifest to path.tmp, fsyncs it and renames it to path. */
enum usher_err usher_manifest_save(const struct usher_manifest *m, const char *path,
				   struct usher_error *err);

/* Sets m->hmac: HMAC-SHA256, under a key derived from key (HKDF, its own
 * label), of the manifest's JSON without the hmac field. */
void usher_manifest_sign(struct usher_manifest *m, const struct usher_backup_key *key);
/* Checks m->hmac with key: USHER_ERR_PROTOCOL when it is missing or does
 * not match (the manifest was edited). */
enum usher_err usher_manifest_check(const struct usher_manifest *m,
				    const struct usher_backup_key *key, struct usher_error *err);

/* Parses "2026-11-28T03:49:16.123Z" (milliseconds optional) into ms since
 * the epoch. */
enum usher_err usher_rfc3339_parse(const char *s, int64_t *ms);

#endif
