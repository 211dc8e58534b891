/* Private mirror of the segment layout, version 1.1 (spec/README.md, "Segment layout").
 * Every offset is asserted against the spec table. All fields are little-endian; this
 * implementation supports little-endian hosts only. */
#ifndef SHM_CHANNEL_LAYOUT_H
#define SHM_CHANNEL_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shm_channel layout v1 is little-endian; this host is not"
#endif

#define SHM__MAGIC "SHM_CHAN"
/* The minor version a stream creator writes: 1 since the handshake words (§5.10). Readers
 * accept every minor of major 1 (a 1.0 segment's handshake words are zero: "fence"). */
#define SHM__STREAM_LAYOUT_MINOR 1 /* 53 48 4D 5F 43 48 41 4E */
#define SHM__RECORD_HEADER 8u
#define SHM__RECORD_ALIGN 8u
#define SHM__REC_MESSAGE 1u
#define SHM__REC_PADDING 2u

/* Byte offsets of the OFD lock ranges (one byte each) in the segment file. */
#define SHM__LOCK_PRODUCER 0
#define SHM__LOCK_CONSUMER 1
#define SHM__LOCK_ATTACH 2

struct shm__header {
    /* identity: written once by the creator, before the segment is visible */
    uint8_t magic[8];           /* 0 */
    uint16_t layout_major;      /* 8 */
    uint16_t layout_minor;      /* 10 */
    uint16_t kind;              /* 12 */
    uint16_t flags;             /* 14: reserved, zero */
    uint32_t header_size;       /* 16 */
    uint32_t reserved0;         /* 20 */
    uint64_t capacity;          /* 24 */
    uint64_t max_payload;       /* 32 */
    uint64_t segment_size;      /* 40 */
    uint64_t created_ns;        /* 48 */
    uint32_t creator_pid;       /* 56 */
    uint32_t reserved1;         /* 60 */
    uint8_t reserved2[64];      /* 64 */
    /* producer line: written only by the producer */
    uint64_t write_pos;         /* 128 */
    uint32_t write_seq;         /* 136: futex word the consumer sleeps on */
    uint32_t producer_state;    /* 140 */
    uint32_t producer_epoch;    /* 144 */
    uint32_t reserved3;         /* 148 */
    uint64_t msgs_written;      /* 152 */
    uint64_t bytes_written;     /* 160 */
    uint64_t full_events;       /* 168 */
    uint64_t producer_wakes;    /* 176 */
    uint64_t producer_sleeps;   /* 184 */
    uint8_t reserved4[64];      /* 192 */
    /* consumer line: written only by the consumer */
    uint64_t read_pos;          /* 256 */
    uint32_t read_seq;          /* 264: futex word the producer sleeps on */
    uint32_t consumer_state;    /* 268 */
    uint32_t consumer_epoch;    /* 272 */
    uint32_t reserved5;         /* 276 */
    uint64_t msgs_read;         /* 280 */
    uint64_t bytes_read;        /* 288 */
    uint64_t empty_events;      /* 296 */
    uint64_t consumer_wakes;    /* 304 */
    uint64_t consumer_sleeps;   /* 312 */
    uint8_t reserved6[64];      /* 320 */
    /* own line, written by the consumer when it goes to sleep */
    uint32_t consumer_waiting;  /* 384 */
    uint32_t consumer_handshake; /* 388: layout 1.1, the consumer's wake handshake (§5.10) */
    uint8_t reserved7[120];     /* 392 */
    /* own line, written by the producer when it goes to sleep */
    uint32_t producer_waiting;  /* 512 */
    uint32_t producer_handshake; /* 516: layout 1.1, the producer's wake handshake (§5.10) */
    uint8_t reserved8[120];     /* 520 */
    uint8_t reserved9[4096 - 640]; /* 640 */
};

#define SHM__ASSERT_OFF(f, n) _Static_assert(offsetof(struct shm__header, f) == (n), #f)
SHM__ASSERT_OFF(magic, 0);
SHM__ASSERT_OFF(layout_major, 8);
SHM__ASSERT_OFF(layout_minor, 10);
SHM__ASSERT_OFF(kind, 12);
SHM__ASSERT_OFF(flags, 14);
SHM__ASSERT_OFF(header_size, 16);
SHM__ASSERT_OFF(capacity, 24);
SHM__ASSERT_OFF(max_payload, 32);
SHM__ASSERT_OFF(segment_size, 40);
SHM__ASSERT_OFF(created_ns, 48);
SHM__ASSERT_OFF(creator_pid, 56);
SHM__ASSERT_OFF(write_pos, 128);
SHM__ASSERT_OFF(write_seq, 136);
SHM__ASSERT_OFF(producer_state, 140);
SHM__ASSERT_OFF(producer_epoch, 144);
SHM__ASSERT_OFF(msgs_written, 152);
SHM__ASSERT_OFF(bytes_written, 160);
SHM__ASSERT_OFF(full_events, 168);
SHM__ASSERT_OFF(producer_wakes, 176);
SHM__ASSERT_OFF(producer_sleeps, 184);
SHM__ASSERT_OFF(read_pos, 256);
SHM__ASSERT_OFF(read_seq, 264);
SHM__ASSERT_OFF(consumer_state, 268);
SHM__ASSERT_OFF(consumer_epoch, 272);
SHM__ASSERT_OFF(msgs_read, 280);
SHM__ASSERT_OFF(bytes_read, 288);
SHM__ASSERT_OFF(empty_events, 296);
SHM__ASSERT_OFF(consumer_wakes, 304);
SHM__ASSERT_OFF(consumer_sleeps, 312);
SHM__ASSERT_OFF(consumer_waiting, 384);
SHM__ASSERT_OFF(producer_waiting, 512);
SHM__ASSERT_OFF(consumer_handshake, 388);
SHM__ASSERT_OFF(producer_handshake, 516);
_Static_assert(sizeof(struct shm__header) == 4096, "header is 4096 bytes");

/* Largest payload for a capacity: half the ring less one record header, so a record
 * plus the padding before it always fits in an empty ring. */
static inline uint64_t shm__max_payload_for(uint64_t capacity)
{
    return capacity / 2 - SHM__RECORD_HEADER;
}

static inline uint64_t shm__align8(uint64_t n)
{
    return (n + (SHM__RECORD_ALIGN - 1)) & ~(uint64_t)(SHM__RECORD_ALIGN - 1);
}

#endif
