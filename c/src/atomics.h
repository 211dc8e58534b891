/* The one place for memory ordering on shared words. Every shared field of the segment
 * is read and written only through these, as single loads and stores. */
#ifndef SHM_CHANNEL_ATOMICS_H
#define SHM_CHANNEL_ATOMICS_H

#include <stdint.h>

#define shm__load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define shm__load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define shm__store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define shm__store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define shm__fetch_add_release(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELEASE)
/* Full fence: orders an earlier store before a later load (the sleep/wake handshake). */
#define shm__fence_seq_cst() __atomic_thread_fence(__ATOMIC_SEQ_CST)
/* Acquire fence: orders an earlier load (of a flag) before later loads. */
#define shm__fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)

/* Counter bump by the side that owns the counter: a relaxed load and store, not an
 * atomic RMW, since only one process writes it; readers may see a slightly old value. */
#define shm__counter_add(p, v) shm__store_relaxed((p), shm__load_relaxed(p) + (v))

static inline void shm__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
