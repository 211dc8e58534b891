/* Helpers shared by the Criterion tests: a private segment directory per test, unique
 * channel names, test scaling, and self-checking messages (sequence number + checksum). */
#ifndef SHM_CHANNEL_CT_H
#define SHM_CHANNEL_CT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm_channel.h"

#define CT_SEC 1000000000LL
#define CT_MS 1000000LL

/* Criterion .init/.fini: make a fresh directory under /dev/shm (tmpfs, so fallocate and
 * futexes behave as in production), point SHM_CHANNEL_DIR at it; remove it afterwards. */
void ct_setup(void);
void ct_teardown(void);

/* The private segment directory of this test. */
const char *ct_dir(void);

/* A fresh channel name "ct-<pid>-<n>-<tag>" in buf (64 bytes). Returns buf. */
char *ct_name(char *buf, const char *tag);

/* 1 if the segment file `name` exists in ct_dir(). */
int ct_exists(const char *name);

/* Number of entries (segments, temporaries) in ct_dir(). */
int ct_count_files(void);

/* Number of entries in `dir` ("." and ".." not counted), or -1 if it cannot be read. */
int ct_count_entries(const char *dir);

/* Path of `name` in ct_dir() (static buffer). */
const char *ct_path(const char *name);

/* Multiplier for message counts: $SHM_CHANNEL_TEST_SCALE (default 1). Counts derived from it
 * never go below `min`. */
uint64_t ct_scaled(uint64_t base, uint64_t min);

/* Pin the calling thread to the n-th CPU (mod count) of its affinity mask, when it has at
 * least two; so producer and consumer hand off across cores. */
void ct_pin(int n);

uint64_t ct_now_ns(void);
void ct_sleep_ms(unsigned ms);

/* CPU time of a process, nanoseconds (/proc/<pid>/schedstat: time on the CPU). */
uint64_t ct_cpu_ns(pid_t pid);
/* The same, and in *runs the number of times it was put on a CPU (the third field): a
 * process that sleeps and wakes adds one per wake-up. */
uint64_t ct_schedstat(pid_t pid, uint64_t *runs);

/* fork() a child that dies with its parent; the child runs fn(arg) and _exit()s with its
 * return value. Returns the pid. */
pid_t ct_fork(int (*fn)(void *), void *arg);
/* waitpid; returns the exit status (0..255), 128+signal if killed, -1 on error. */
int ct_wait(pid_t pid);

/* Self-checking messages. Message `seq` of stream `seed` has length ct_msg_len(), at most
 * max. Bytes 0..7 hold seq (if len >= 8), bytes 8..15 a checksum of (seed, seq, len,
 * bytes 16..) (if len >= 16), the rest a pattern derived from seq. */
uint64_t ct_msg_len(uint64_t seed, uint64_t seq, uint64_t max);
void ct_msg_fill(void *buf, uint64_t seed, uint64_t seq, uint64_t len);
/* 0 if buf/len is exactly message seq of stream seed; else a nonzero code. */
int ct_msg_check(const void *buf, uint64_t len, uint64_t seed, uint64_t seq, uint64_t max);
/* The same for a message whose length was chosen by the caller. */
int ct_msg_verify(const void *buf, uint64_t len, uint64_t seed, uint64_t seq, uint64_t want_len);
/* The sequence number in a message of at least 8 bytes. */
uint64_t ct_msg_seq(const void *buf);

uint64_t ct_mix(uint64_t x);

/* In a child process (ct_fork): enter a private mount namespace with a fresh tmpfs of
 * `size` bytes mounted on the existing directory `mnt`, and make it the segment directory
 * (SHM_CHANNEL_DIR). 0, or CT_SKIPPED with the reason in why (unshare or mount refused: no
 * privileges here). Used by the ENOSPC tests of every kind. */
#define CT_SKIPPED 77
int ct_small_tmpfs(const char *mnt, uint64_t size, char *why, size_t why_len);

/* ---- control pages and segments shared with forked peers --------------------------- */

/* A word of a test's control page (shared with its children): acquire load, release store. */
static inline uint64_t ct_ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void ct_st(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Wait (polling every 100 us) until *p >= v, at most timeout_ns: 0, or -ETIMEDOUT. */
int ct_await_geq(const uint64_t *p, uint64_t v, uint64_t timeout_ns);

/* A zeroed page of `size` bytes shared with the children forked after it (MAP_SHARED |
 * MAP_ANONYMOUS); fails the test if it cannot be had. munmap() it when done. */
void *ct_shared(size_t size);

/* 1 if $SHM_CHANNEL_STRESS asks for the long soaks (set, not empty, not "0"). */
int ct_stress(void);

/* The segment file `name` of ct_dir(), once a child has created it and sized it to at least
 * `min_size` bytes: its first `map_len` bytes mapped read-write and shared. Fails the test
 * if the file has not appeared within 60 s. */
void *ct_map_segment(const char *name, uint64_t min_size, size_t map_len);

/* A watcher's look for a lost wake-up, once every few ms: 1 (once, then it starts over) when
 * `stuck` (a side flagged waiting for what is there) has held, with the two words of state
 * `a`, `b` (positions) unchanged, for longer than `ns`. No correct run holds that long. */
struct ct_stall {
    uint64_t a, b, since;
};
#define CT_STALL_INIT {~0ull, ~0ull, 0}
int ct_stalled(struct ct_stall *s, int stuck, uint64_t a, uint64_t b, uint64_t ns);

/* The header (first SHM_CHANNEL_HEADER_SIZE bytes) of the existing segment file `name` of
 * ct_dir(), mapped shared: read-write if `writable`, else read-only. NULL if it cannot be
 * opened or mapped (no assertion: usable in a child). Unmap with ct_unmap_header(). */
void *ct_map_header(const char *name, int writable);
void ct_unmap_header(const void *h);

/* ---- golden vectors (spec/vectors): what the checkers of every kind share ---------- */

/* The -errno of a verdict word of a .expect file: "ok" (0), "none" (-EAGAIN), or an errno
 * name (EPROTO, EPROTONOSUPPORT, EPROTOTYPE, EBADMSG, EMEDIUMTYPE, EAGAIN, EPIPE,
 * EOWNERDEAD, ECONNRESET, ETIMEDOUT). Fails the test on any other word. */
int ct_errno_named(const char *s);

/* "<hex>" (lowercase digit pairs) or "-" (empty), up to a space or the end of the string,
 * into buf (at most cap bytes); returns the length. Fails the test on bad hex. */
uint64_t ct_unhex(const char *h, uint8_t *buf, size_t cap);

/* Copy the file `from` into a new file `to` of mode 0600. */
void ct_copy_file(const char *from, const char *to);

/* The names (without ".expect") of the vectors in `dir`, sorted: at most `max`. Returns
 * how many. */
#define CT_VECTOR_NAME 128
int ct_vector_names(const char *dir, char (*names)[CT_VECTOR_NAME], int max);

#endif
