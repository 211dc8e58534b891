/* The operating-system side: segment files, OFD locks, mappings, futexes, clocks.
 * Linux only. Internal (non-static) names carry the shm__ prefix. */
#ifndef SHM_CHANNEL_OS_H
#define SHM_CHANNEL_OS_H

#include <stdint.h>
#include <sys/types.h>

/* Validate a channel name; on success copy it without a leading '/' into out
 * (SHM_CHANNEL_NAME_MAX + 1 bytes). 0 or -EINVAL. */
int shm__name_check(const char *name, char *out);

/* Open the segment directory (shm_channel_dir()) as an O_PATH descriptor. fd or -errno. */
int shm__dir_open(void);

/* Create a segment of `size` bytes under `name`, initialised by `init(base, arg)` and with
 * the lock bytes in `locks` (bit i: take lock i; bit SHM__LOCK_ATTACH shared, others
 * exclusive) held before it becomes visible. 0 and *fd, -EEXIST (anything at all has the
 * name), -ENOSPC, or -errno. */
int shm__segment_create(int dirfd, const char *name, uint64_t size, uint32_t mode,
                        void (*init)(void *base, void *arg), void *arg, unsigned locks,
                        int *fd);

/* Allocate every page of the first `size` bytes (contents unchanged), so a full /dev/shm
 * fails here and never as SIGBUS later. 0, -ENOSPC, or -errno. */
int shm__segment_reserve(int fd, uint64_t size);

/* Open an existing segment, without blocking (O_NONBLOCK, O_NOFOLLOW). 0 and *fd, or
 * -ENOENT, -EACCES (permission denied, or not a regular file: symlink, directory, socket,
 * FIFO, device), or -errno. */
int shm__segment_open(int dirfd, const char *name, int writable, int *fd);

/* Copy the first `len` bytes of the file into buf (pread: no mapping, so no SIGBUS
 * whatever the file is). 0, -EAGAIN if the file is shorter, or -errno. */
int shm__segment_read_header(int fd, void *buf, uint64_t len);

/* Refuse a segment owned by another user or with mode bits beyond `mode`. 0 or -EACCES. */
int shm__segment_check_owner(int fd, uint32_t mode);

/* Size and link count of the open segment. 0 or -errno. */
int shm__segment_size(int fd, uint64_t *size, uint64_t *nlink);

/* Bytes of the file really allocated (st_blocks * 512) and its length. 0 or -errno. */
int shm__segment_allocated(int fd, uint64_t *allocated, uint64_t *size);

/* Map `len` bytes of the segment, shared. 0 and *base, or -errno. */
int shm__map(int fd, uint64_t len, int writable, void **base);
void shm__unmap(void *base, uint64_t len);

/* OFD locks on one byte of the segment file. Exclusive/shared try-lock: 0, -EBUSY, -errno. */
int shm__lock_try(int fd, int byte, int exclusive);
void shm__lock_drop(int fd, int byte);
/* 1 if another open file description holds a lock on `byte`, 0 if none, -errno. */
int shm__lock_held(int fd, int byte);
/* The same for any byte of [byte, byte + len). */
int shm__lock_held_range(int fd, int byte, int len);

/* Unlink `name` if it still names the file open as `fd`. */
void shm__unlink_if_same(int dirfd, const char *name, int fd);

/* Monotonic and real-time clocks, nanoseconds. */
uint64_t shm__now_ns(void);
uint64_t shm__realtime_ns(void);

/* Sleep on a futex word in shared memory while it equals `expected`, at most timeout_ns.
 * 0 (woken or the word changed), -ETIMEDOUT, -EINTR. */
int shm__futex_wait(uint32_t *word, uint32_t expected, uint64_t timeout_ns);
/* Wake every sleeper on the word. */
void shm__futex_wake(uint32_t *word);

/* ---- futexes with a bitset (the broadcast wake chain, spec/broadcast.md §5.7) -------- */
/* Sleep as shm__futex_wait, as a waiter of the bits `bits` (FUTEX_WAIT_BITSET; a wake with
 * a bitset that shares no bit with them passes it by). 1 woken by a wake call, 0 the word
 * did not hold `expected` (never slept), -ETIMEDOUT, -EINTR. */
int shm__futex_wait_bits(uint32_t *word, uint32_t expected, uint64_t timeout_ns, uint32_t bits);
/* Wake at most n sleepers of the word whose bits meet `bits` (FUTEX_WAKE_BITSET; a plain
 * FUTEX_WAIT sleeper matches every bit). The number woken, or 0 on an error. */
int shm__futex_wake_bits(uint32_t *word, int n, uint32_t bits);

#endif
