/* The service algorithm (spec/service.md, kind 4) over a plain buffer: one server, up to
 * max_clients clients, one slot per client holding a request mailbox and a response mailbox,
 * a ready bitmap and one doorbell futex for the server, one futex per slot for its client.
 * Nothing here makes a system call: the caller takes the OFD locks, checks them when asked
 * (a callback), and does the futex waits and wakes this code asks for. Not yet reached from
 * the public API.
 *
 * PROPOSED public API (for the integration session; in the style of shm_channel.h):
 *
 *   enum shm_channel_kind { ..., SHM_CHANNEL_KIND_SERVICE = 4 };
 *   enum shm_channel_role { ..., SHM_CHANNEL_SERVER = 6,   one live server (-EBUSY)
 *                                SHM_CHANNEL_CLIENT = 7 }; up to max_clients (-EUSERS)
 *
 *   typedef struct shm_channel_service_config {
 *       uint64_t max_request;   largest request, 0..2^30 bytes; 0 = 4096 (creation only;
 *       uint64_t max_response;  largest response;       0 = 4096   else must match or be 0)
 *       uint32_t max_clients;   1..1024; 0 = 64
 *       uint32_t reserved0;
 *       uint64_t reserved[4];   zero
 *   } shm_channel_service_config_t;
 *
 *   int shm_channel_open_service(shm_channel_t **out, const char *name, uint32_t role,
 *                                uint32_t flags, const shm_channel_service_config_t *cfg,
 *                                uint32_t mode);
 *       Either side may create. -EPROTOTYPE on another kind (and shm_channel_open() gives
 *       -EPROTOTYPE on a service), -EUSERS when every client slot is held, else the errors
 *       of shm_channel_open(). A client never waits here for a server: request() does.
 *
 *   Client (one request in flight per handle; a handle is not thread-safe):
 *   int shm_channel_request(shm_channel_t *ch, const void *req, uint64_t req_len,
 *                           void *resp, uint64_t resp_cap, uint64_t *resp_len,
 *                           int64_t timeout_ns);
 *       Sends one request and waits for its response (copy both ways). If no server has
 *       attached yet, first waits for one within the same timeout. 0; -ETIMEDOUT (the
 *       request was withdrawn if the server had not taken it yet; its response, if the
 *       server still answers, is never returned by a later call); -EPIPE (the server closed);
 *       -EOWNERDEAD (the server died: no successor executes the request); -ECONNRESET (the
 *       server that had the request is gone and another has attached: retry);
 *       -EMSGSIZE (req_len > max_request; or the response did not fit: *resp_len = its
 *       size, it stays readable by shm_channel_response()); -EBADMSG; -EINTR.
 *   Zero-copy, same meaning as for streams: shm_channel_reserve (space for the request),
 *       shm_channel_commit (sends it), then
 *   int shm_channel_response(shm_channel_t *ch, const void **ptr, uint64_t *len,
 *                            int64_t timeout_ns);
 *       waits for the response to the committed request and hands it out in place; the
 *       view stays valid until this handle's next request. Errors as shm_channel_request.
 *   int shm_channel_wait_server(shm_channel_t *ch, int64_t timeout_ns);
 *       0 once a server is attached; -ETIMEDOUT.
 *
 *   Server (a handle is not thread-safe; it may hold one request per client at once):
 *   typedef struct shm_channel_request_id { uint32_t client; uint32_t reserved;
 *                                           uint64_t seq; } shm_channel_request_id_t;
 *   int shm_channel_receive(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
 *                           shm_channel_request_id_t *id, int64_t timeout_ns);
 *       The next request from any client, copied (the client's slot is free again at once).
 *       0; -ETIMEDOUT / -EAGAIN (timeout 0); -EMSGSIZE (*len = size; it stays next for
 *       this client); -EINTR.
 *   int shm_channel_receive_peek(shm_channel_t *ch, const void **ptr, uint64_t *len,
 *                                shm_channel_request_id_t *id, int64_t timeout_ns);
 *       The same, in place: valid until it is answered (respond/commit) or released.
 *   int shm_channel_respond(shm_channel_t *ch, const shm_channel_request_id_t *id,
 *                           const void *data, uint64_t len);
 *       Never waits. 0; -ESTALE (the client gave up on it: nothing is written);
 *       -EINVAL (not held: never received, or answered already); -EMSGSIZE.
 *   int shm_channel_respond_reserve(shm_channel_t *ch, const shm_channel_request_id_t *id,
 *                                   uint64_t len, void **ptr);
 *   int shm_channel_respond_commit(shm_channel_t *ch, const shm_channel_request_id_t *id,
 *                                  uint64_t len);
 *   int shm_channel_drop(shm_channel_t *ch, const shm_channel_request_id_t *id);
 *       Answer not at all (the client's request times out, or sees the server's close).
 *   int shm_channel_reap(shm_channel_t *ch, uint32_t *dead, uint32_t cap);
 *       Reclaims the slots of dead clients now; fills `dead` with their indices; returns
 *       how many. A waiting receive also does this once per liveness slice.
 *   Closing a server: pending clients get -EPIPE; the name stays for the next server.
 *   shm_channel_stat_t gains (from its reserved words): max_clients, clients (live),
 *   requests, responses; shm_channel ls/stat print them for kind 4.
 */
#ifndef SHM_CHANNEL_SERVICE_H
#define SHM_CHANNEL_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"

#define SHM__KIND_SERVICE 4u
#define SHM__SVC_MAX_CLIENTS 1024u
#define SHM__SVC_DEFAULT_CLIENTS 64u
#define SHM__SVC_MAX_MSG (1ull << 30)
#define SHM__SVC_DEFAULT_MSG 4096u
#define SHM__SVC_SLOTS_OFFSET 4096u
#define SHM__SVC_LINE 128u
#define SHM__SVC_AREA_HEADER 16u
#define SHM__SVC_READY_WORDS (SHM__SVC_MAX_CLIENTS / 64)
/* Lock bytes (spec/service.md §3.7): 0 server, 2 attach (as streams), one per client slot. */
#define SHM__SVC_LOCK_SERVER 0
#define SHM__SVC_LOCK_ATTACH 2
#define SHM__SVC_LOCK_CLIENT_BASE 4096
/* The request word: seq << 2 | phase. */
#define SHM__SVC_FREE 0u   /* request seq is finished: the buffer is the client's */
#define SHM__SVC_QUEUED 1u /* request seq is in the buffer, waiting for the server */
#define SHM__SVC_TAKEN 2u  /* the server is reading request seq in place */
#define SHM__SVC_MAX_SEQ ((1ull << 62) - 1)

/* The 4096-byte header of a kind-4 segment (spec/service.md §3). */
struct shm__svc_header {
    /* identity line, written once by the creator (shared with streams up to offset 60) */
    uint8_t magic[8];           /* 0 */
    uint16_t layout_major;      /* 8 */
    uint16_t layout_minor;      /* 10 */
    uint16_t kind;              /* 12: 4 */
    uint16_t flags;             /* 14 */
    uint32_t header_size;       /* 16: 4096 */
    uint32_t reserved0;         /* 20 */
    uint64_t capacity;          /* 24: max_clients * slot_stride */
    uint64_t max_payload;       /* 32: max(max_request, max_response) */
    uint64_t segment_size;      /* 40: 4096 + capacity */
    uint64_t created_ns;        /* 48 */
    uint32_t creator_pid;       /* 56 */
    uint32_t reserved1;         /* 60 */
    uint64_t slot_stride;       /* 64 */
    uint64_t max_request;       /* 72 */
    uint64_t max_response;      /* 80 */
    uint32_t max_clients;       /* 88 */
    uint32_t reserved2;         /* 92 */
    uint64_t slots_offset;      /* 96: 4096 */
    uint64_t response_offset;   /* 104: offset of the response area in a slot */
    uint8_t reserved3[16];      /* 112 */
    /* server line: written only by the server */
    uint32_t server_state;      /* 128: 0 none yet, 1 attached, 2 closed */
    uint32_t server_epoch;      /* 132 */
    uint32_t server_seq;        /* 136: futex word clients wait on for a server */
    uint32_t reserved4;         /* 140 */
    uint64_t requests_taken;    /* 144 */
    uint64_t responses;         /* 152 */
    uint64_t stale_responses;   /* 160: answers dropped because the client gave up */
    uint64_t expired;           /* 168: requests addressed to an earlier server, dropped */
    uint64_t invalid;           /* 176: requests with an invalid length, dropped */
    uint64_t server_wakes;      /* 184 */
    uint64_t server_sleeps;     /* 192 */
    uint64_t reaped;            /* 200: dead clients' slots reclaimed by the server */
    uint8_t reserved5[48];      /* 208 */
    /* clients' line: atomic read-modify-writes by clients (join, leave, reclaim) */
    uint32_t clients;           /* 256 */
    uint32_t reserved6;         /* 260 */
    uint64_t joins;             /* 264 */
    uint64_t reclaims;          /* 272 */
    uint8_t reserved7[104];     /* 280 */
    /* waiting line: the server's flag and doorbell */
    uint32_t server_waiting;    /* 384: written by the server */
    uint32_t doorbell;          /* 388: futex word the server sleeps on; clients add 1 */
    uint8_t reserved8[120];     /* 392 */
    /* ready bitmap: bit i set by client i after queueing; the server exchanges words to 0 */
    uint64_t ready[SHM__SVC_READY_WORDS]; /* 512 */
    uint8_t reserved9[4096 - 640]; /* 640 */
};

/* A client slot's first line (spec §3.6), written by its client (and a reclaimer). */
struct shm__svc_client_line {
    uint32_t state;             /* 0: 0 never used, 1 attached, 2 left or reclaimed */
    uint32_t epoch;             /* 4 */
    uint32_t pid;               /* 8: informational */
    uint32_t waiting;           /* 12: 1 while the client may sleep on resp_wake */
    uint64_t requests;          /* 16 */
    uint64_t responses;         /* 24 */
    uint64_t timeouts;          /* 32 */
    uint64_t withdrawn;         /* 40: timed-out requests the server never saw */
    uint64_t sleeps;            /* 48 */
    uint8_t reserved[72];       /* 56 */
};

/* The head of a request area (slot + 128) and of a response area (slot + response_offset);
 * the payload follows at +16. */
struct shm__svc_req_area {
    uint64_t req;               /* 0: seq << 2 | phase */
    uint32_t len;               /* 8 */
    uint32_t server_epoch;      /* 12: the server the request is addressed to */
};
struct shm__svc_resp_area {
    uint64_t resp;              /* 0: seq of the request answered here, 0 = none */
    uint32_t len;               /* 8 */
    uint32_t resp_wake;         /* 12: futex word the client sleeps on */
};

#define SHM__SVC_OFF(f, n) _Static_assert(offsetof(struct shm__svc_header, f) == (n), #f)
SHM__SVC_OFF(kind, 12);
SHM__SVC_OFF(capacity, 24);
SHM__SVC_OFF(max_payload, 32);
SHM__SVC_OFF(segment_size, 40);
SHM__SVC_OFF(creator_pid, 56);
SHM__SVC_OFF(slot_stride, 64);
SHM__SVC_OFF(max_request, 72);
SHM__SVC_OFF(max_response, 80);
SHM__SVC_OFF(max_clients, 88);
SHM__SVC_OFF(slots_offset, 96);
SHM__SVC_OFF(response_offset, 104);
SHM__SVC_OFF(server_state, 128);
SHM__SVC_OFF(server_epoch, 132);
SHM__SVC_OFF(server_seq, 136);
SHM__SVC_OFF(requests_taken, 144);
SHM__SVC_OFF(responses, 152);
SHM__SVC_OFF(stale_responses, 160);
SHM__SVC_OFF(expired, 168);
SHM__SVC_OFF(invalid, 176);
SHM__SVC_OFF(server_wakes, 184);
SHM__SVC_OFF(server_sleeps, 192);
SHM__SVC_OFF(reaped, 200);
SHM__SVC_OFF(clients, 256);
SHM__SVC_OFF(joins, 264);
SHM__SVC_OFF(reclaims, 272);
SHM__SVC_OFF(server_waiting, 384);
SHM__SVC_OFF(doorbell, 388);
SHM__SVC_OFF(ready, 512);
_Static_assert(sizeof(struct shm__svc_header) == 4096, "service header is 4096 bytes");
_Static_assert(sizeof(struct shm__svc_client_line) == SHM__SVC_LINE, "client line");
_Static_assert(offsetof(struct shm__svc_client_line, sleeps) == 48, "sleeps");
_Static_assert(sizeof(struct shm__svc_req_area) == SHM__SVC_AREA_HEADER, "request head");
_Static_assert(sizeof(struct shm__svc_resp_area) == SHM__SVC_AREA_HEADER, "response head");

/* Geometry: from the creation parameters, or read (once) from a validated header. */
struct shm__svc_geom {
    uint64_t max_request;
    uint64_t max_response;
    uint32_t max_clients;
    uint64_t slot_stride;
    uint64_t response_offset;
    uint64_t capacity;
    uint64_t segment_size;
};

struct shm__svc {
    struct shm__svc_header *hdr;
    uint8_t *slots;
    struct shm__svc_geom g;
};

/* What the server privately knows of each slot. */
struct shm__svc_held {
    uint64_t seq;     /* the last request it took from this slot */
    uint8_t owed;     /* taken, neither answered nor dropped */
    uint8_t in_place; /* still TAKEN in the segment (the server reads it in place) */
};

struct shm__svc_server {
    uint32_t epoch;
    uint32_t cursor;                             /* next ready word to collect from */
    uint64_t pending[SHM__SVC_READY_WORDS];      /* collected ready bits, not yet served */
    int reserving;                               /* a response is being written in place */
    uint32_t reserve_slot;
    uint64_t reserve_len;
    struct shm__svc_held held[SHM__SVC_MAX_CLIENTS];
};

struct shm__svc_client {
    uint32_t index;
    uint64_t seq;          /* number of its last request (0: none yet in this slot) */
    uint32_t epoch;        /* server epoch the pending request is addressed to */
    int awaiting;          /* request seq is pending */
    int reserving;
    uint64_t reserve_len;
    struct shm__svc_client_line *line;
    struct shm__svc_req_area *rq;
    struct shm__svc_resp_area *rs;
};

/* A received request, as handed to the server. */
struct shm__svc_request {
    uint32_t slot;
    uint64_t seq;
    const void *ptr;  /* in place, 8-byte aligned */
    uint64_t len;
};

/* Wakes every waiter of a futex word (the caller's FUTEX_WAKE). */
typedef void (*shm__svc_wake_fn)(uint32_t *word, void *arg);
/* 1 if the server's lock (byte 0) is held by someone, 0 if not (the caller's F_OFD_GETLK). */
typedef int (*shm__svc_lock_fn)(void *arg);

/* Creation parameters to geometry; 0 picks the default. 0 or -EINVAL. */
int shm__svc_geometry(struct shm__svc_geom *g, uint64_t max_request, uint64_t max_response,
                      uint32_t max_clients);
/* Fill a fresh, zeroed, not yet visible segment; magic last. */
void shm__svc_format(void *base, const struct shm__svc_geom *g, uint32_t creator_pid,
                     uint64_t created_ns);
/* Check an untrusted header, each field read once, against a file of file_size bytes.
 * 0 and *g; -EAGAIN (creator at work), -EPROTO, -EPROTONOSUPPORT, -EPROTOTYPE, -EBADMSG. */
int shm__svc_validate(const void *base, uint64_t file_size, struct shm__svc_geom *g);
/* A creator's parameters (0 = any) against a segment's geometry: 0 or -EINVAL. */
int shm__svc_check_params(const struct shm__svc_geom *g, uint64_t max_request,
                          uint64_t max_response, uint32_t max_clients);
void shm__svc_bind(struct shm__svc *s, void *base, const struct shm__svc_geom *g);

struct shm__svc_client_line *shm__svc_line(const struct shm__svc *s, uint32_t i);
struct shm__svc_req_area *shm__svc_req(const struct shm__svc *s, uint32_t i);
struct shm__svc_resp_area *shm__svc_resp(const struct shm__svc *s, uint32_t i);

/* ---- server ------------------------------------------------------------------------- */

/* Take over the server role (the caller holds lock byte 0): epoch + 1, state attached;
 * free every request a dead predecessor held in place. Calls wake() for server_seq and for
 * every waiting client it freed. Returns the new epoch. */
uint32_t shm__svc_server_attach(struct shm__svc *s, struct shm__svc_server *v,
                                shm__svc_wake_fn wake, void *arg);
/* The next queued request from any client, in place (its slot stays TAKEN until respond,
 * drop or release). 0 and *r; -EAGAIN (none). Requests addressed to an earlier server and
 * requests of invalid length are dropped on the way (counted), never handed out. */
int shm__svc_receive(struct shm__svc *s, struct shm__svc_server *v, struct shm__svc_request *r);
/* Done reading request (slot, seq) in place (the copying receive calls it at once); the
 * client may send its next request. Returns 1 if the caller must FUTEX_WAKE resp_wake. */
int shm__svc_release_request(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot,
                             uint64_t seq);
/* Space for the response to (slot, seq): 0 and *ptr; -EINVAL (not owed), -ESTALE (the client
 * gave up on it: it is dropped), -EMSGSIZE, -EBUSY (another response is being written). */
int shm__svc_respond_reserve(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot,
                             uint64_t seq, uint64_t len, void **ptr);
/* Publish it with its final length (<= reserved). 1 if the caller must FUTEX_WAKE the
 * slot's resp_wake, 0 if not, -EINVAL. */
int shm__svc_respond_commit(struct shm__svc *s, struct shm__svc_server *v, uint64_t len);
/* reserve + copy + commit: 0/1 as commit, or reserve's errors. */
int shm__svc_respond(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot,
                     uint64_t seq, const void *data, uint64_t len);
/* Answer not at all: 0/1 as release_request, -EINVAL if not owed. */
int shm__svc_drop(struct shm__svc *s, struct shm__svc_server *v, uint32_t slot, uint64_t seq);
/* Server sleep (spec §5.6): returns the doorbell value to wait on, with server_waiting set
 * and a full fence made. The caller re-tries receive, then FUTEX_WAIT(&doorbell, seen), then
 * calls wait_done. */
uint32_t shm__svc_server_wait_prepare(struct shm__svc *s);
void shm__svc_server_wait_done(struct shm__svc *s);
/* 1 if client slot i is marked attached (its lock tells whether it lives). */
int shm__svc_slot_attached(const struct shm__svc *s, uint32_t i);
/* Reclaim slot i of a dead client (the caller holds its lock byte and found it attached):
 * withdraw its queued request, state left, uncount. v may be NULL (a joining client or a
 * monitor); a server forgets what it owed that slot. 1 if reclaimed, else 0. */
int shm__svc_reclaim(struct shm__svc *s, struct shm__svc_server *v, uint32_t i);
/* Clean close: state closed, release every request held in place; wake() server_seq and
 * every waiting client. */
void shm__svc_server_close(struct shm__svc *s, struct shm__svc_server *v,
                           shm__svc_wake_fn wake, void *arg);

/* ---- client ------------------------------------------------------------------------- */

/* Join through slot `index`, whose lock the caller holds. Reclaims it first if its previous
 * owner died attached (returns 1, else 0); withdraws a request it left queued. -EINVAL
 * (index out of range), -EBADMSG (request number out of range). */
int shm__svc_client_join(struct shm__svc *s, struct shm__svc_client *c, uint32_t index,
                         uint32_t pid);
/* Leave: withdraw a pending request, state left, uncount. The caller releases the lock. */
void shm__svc_client_leave(struct shm__svc *s, struct shm__svc_client *c);

/* The server as seen by a client (spec §5.7). `addressed` = the epoch a pending request was
 * sent to, or 0 for "any live server". 0 = live (wait); -EAGAIN = none attached yet (wait for
 * one); -EPIPE closed; -EOWNERDEAD died; -ECONNRESET the addressed server is gone and
 * another attached. *epoch = the live server's epoch when 0. lock_held is called at most
 * once. */
int shm__svc_server_verdict(const struct shm__svc *s, uint32_t addressed, uint32_t *epoch,
                            shm__svc_lock_fn lock_held, void *arg);

/* Space for the next request: 0 and *ptr; -EBUSY (a request is pending or reserved, or the
 * server still holds the previous one in place: wait on resp_wake), -EMSGSIZE, -EOVERFLOW,
 * -EBADMSG. */
int shm__svc_request_reserve(struct shm__svc *s, struct shm__svc_client *c, uint64_t len,
                             void **ptr);
/* Send it with its final length (<= reserved), addressed to server epoch `epoch`. Returns 1
 * if the caller must FUTEX_WAKE the doorbell, 0 if not, -EINVAL. */
int shm__svc_request_commit(struct shm__svc *s, struct shm__svc_client *c, uint64_t len,
                            uint32_t epoch);
/* reserve + copy + commit. */
int shm__svc_request(struct shm__svc *s, struct shm__svc_client *c, const void *data,
                     uint64_t len, uint32_t epoch);
/* The response to the pending request: copied into buf (cap), or with view != NULL in
 * place (valid until the next request). 0 and *len; -EAGAIN (not yet); -EINVAL (no request
 * pending); -EMSGSIZE (*len = size; it stays readable); -EBADMSG. */
int shm__svc_response(struct shm__svc *s, struct shm__svc_client *c, void *buf, uint64_t cap,
                      const void **view, uint64_t *len);
/* Give up on the pending request (timeout, or a server verdict): 1 if it was withdrawn
 * before the server took it (it will never run), 0 if the server had it (its answer will
 * never be delivered), -EINVAL if none was pending. */
int shm__svc_cancel(struct shm__svc *s, struct shm__svc_client *c, int timed_out);
/* Client sleep: returns resp_wake's value to wait on, with `waiting` set and a full fence
 * made. The caller re-checks (response, request slot free, server verdict), then
 * FUTEX_WAIT(&resp_wake, seen), then calls wait_done. */
uint32_t shm__svc_client_wait_prepare(struct shm__svc *s, struct shm__svc_client *c);
void shm__svc_client_wait_done(struct shm__svc_client *c);

#endif
