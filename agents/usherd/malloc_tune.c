/* usherd's malloc policy, set before main() runs (a constructor, so the
 * daemon's startup code needs no call): glibc's defaults suit a short
 * program, not a daemon whose memory is mostly long-lived small blocks.
 *
 * - One malloc arena (M_ARENA_MAX 1). glibc gives each thread that
 *   allocates its own arena, up to 8 per core; the HTTP server's render
 *   threads then keep a second heap that holds its own high-water mark and
 *   fragments on its own (measured: 39.7 -> 32.5 MiB with 1000 probes).
 *   usherd's threads allocate little at once (the probe loop is one
 *   thread), so sharing one arena's lock costs nothing measurable.
 * - A fixed mmap threshold (M_MMAP_THRESHOLD 256 KiB; fixing it also
 *   fixes the trim threshold). By default glibc raises the threshold to the
 *   size of the largest block freed so far, so after the first big buffer
 *   (a config file being read, a scrape target's body, a /metrics body that
 *   fits one piece) every later one comes from the heap and stays resident
 *   after it is freed. Fixed, such buffers are mmapped and go back to the
 *   kernel when freed.
 *
 * An operator's own MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_,
 * MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES wins: then nothing is changed. */
#include <malloc.h>
#include <stdlib.h>

#define ARENAS         1
#define MMAP_THRESHOLD (256 * 1024)

__attribute__((constructor)) static void usherd_malloc_tune(void)
{
	if (getenv("MALLOC_ARENA_MAX") || getenv("MALLOC_MMAP_THRESHOLD_") ||
	    getenv("MALLOC_TRIM_THRESHOLD_") || getenv("GLIBC_TUNABLES"))
		return;
	/* mallopt returns 0 on failure; the defaults then stay, which is safe */
	(void)mallopt(M_ARENA_MAX, ARENAS);
	(void)mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
}
