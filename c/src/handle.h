/* The handle behind shm_channel_t, shared by the entry points of both kinds (channel.c:
 * the shared calls and streams; broadcast_api.c: broadcast). Private. */
#ifndef SHM_CHANNEL_HANDLE_H
#define SHM_CHANNEL_HANDLE_H

#include <errno.h>
#include <stdint.h>

#include "broadcast.h"
#include "compat.h"
#include "ring.h"
#include "segment.h"
#include "service.h"
#include "shm_channel.h"

struct shm_channel {
    struct shm__segment seg;
    uint32_t role;
    uint32_t kind;
    uint64_t spin_ns;
    struct shm__peer_check peer;
    int detached; /* shm_channel_detach() ended the role; the mapping stays */
    /* stream (kind 1) */
    struct shm__ring ring;
    struct shm__ring_producer prod;
    struct shm__ring_consumer cons;
    /* shm_channel_peek_batch: n messages held from rpos `start`; `after` = the consumer's
     * state once all n are released (channel.c, batch peek block). */
    struct { uint64_t start; uint32_t n; struct shm__ring_consumer after; } batch;
    /* broadcast (kind 2) */
    struct shm__bcast bc;
    struct shm__bcast_pub pub;
    struct shm__bcast_sub sub;
    /* service (kind 4) */
    struct shm__svc svc;
    struct shm__svc_server *srv; /* allocated for a server */
    struct shm__svc_client cli;
    struct shm__sv_state *sv;    /* the API's private state (service_api.c) */
    /* compat (kind 3, compat_api.c) */
    struct shm__compat cp;
    struct shm__compat_producer cprod;
    struct shm__compat_consumer ccons;
    struct {
        uint64_t bad_since;     /* start of a streak of out-of-range peer indices */
        uint64_t next_link_ns;  /* next check of the name's link count */
        int gone;               /* the name was found unlinked */
        uint64_t msgs, bytes, waits, sleeps;
    } cpx;
};

/* broadcast_api.c: the kind-2 side of the shared entry points, argument checks included
 * (the handle's role is already known to be the right one). */
/* Creation parameters (NULL: defaults) to a geometry. 0 or -EINVAL. */
int shm__bc_config(const shm_channel_broadcast_config_t *cfg, struct shm__bcast_geom *g);
/* The rest of an open whose kind-2 segment was validated: parameters and type tag against
 * the segment's, mapping, role (publisher lock, or a subscriber entry). */
int shm__bc_attach(shm_channel_t *ch, uint32_t flags, const shm_channel_broadcast_config_t *cfg,
                   const struct shm__seg_info *info);
void shm__bc_end_role(shm_channel_t *ch);
int shm__bc_write(shm_channel_t *ch, const void *data, uint64_t len);
int shm__bc_reserve(shm_channel_t *ch, uint64_t len, void **ptr);
int shm__bc_commit(shm_channel_t *ch, uint64_t len);
int shm__bc_abort(shm_channel_t *ch);
int shm__bc_write_batch(shm_channel_t *ch, const void *data, const uint64_t *lens,
                        uint32_t count);
int shm__bc_recv(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len, uint64_t *missed,
                 int64_t timeout_ns);
int shm__bc_read_batch(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *lens,
                       uint32_t max_count, int64_t timeout_ns);
int shm__bc_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns);
int shm__bc_release(shm_channel_t *ch);
void shm__bc_stat(shm_channel_t *ch, shm_channel_stat_t *st);

/* service_api.c: the kind-4 side of the shared entry points (spec/service.md). */
int shm__sv_config(const shm_channel_service_config_t *cfg, struct shm__svc_geom *g);
int shm__sv_attach(shm_channel_t *ch, const shm_channel_service_config_t *cfg,
                   const struct shm__seg_info *info);
void shm__sv_end_role(shm_channel_t *ch);
void shm__sv_free(shm_channel_t *ch);
int shm__sv_write(shm_channel_t *ch, const void *data, uint64_t len, int64_t timeout_ns);
int shm__sv_reserve(shm_channel_t *ch, uint64_t len, void **ptr, int64_t timeout_ns);
int shm__sv_commit(shm_channel_t *ch, uint64_t len);
int shm__sv_abort(shm_channel_t *ch);
int shm__sv_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns);
int shm__sv_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns);
int shm__sv_release(shm_channel_t *ch);
void shm__sv_stat(shm_channel_t *ch, shm_channel_stat_t *st);
/* compat_api.c: the compat kind (spec/compat.md) behind the shared entry points; each
 * checks the handle's role itself. */
int shm__cp_open(shm_channel_t **out, const char *name, uint32_t role, uint32_t flags,
                 uint64_t capacity, uint32_t mode);
int shm__cp_unlink(const char *name, uint32_t flags);
void shm__cp_end_role(shm_channel_t *ch);
void shm__cp_fini(shm_channel_t *ch);
int shm__cp_write(shm_channel_t *ch, const void *data, uint64_t len, int64_t timeout_ns);
int shm__cp_write_batch(shm_channel_t *ch, const void *data, const uint64_t *lens,
                        uint32_t count, int64_t timeout_ns);
int shm__cp_reserve(shm_channel_t *ch, uint64_t len, void **ptr, int64_t timeout_ns);
int shm__cp_commit(shm_channel_t *ch, uint64_t len);
int shm__cp_abort(shm_channel_t *ch);
int shm__cp_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len, int64_t timeout_ns);
int shm__cp_read_batch(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *lens,
                       uint32_t max_count, int64_t timeout_ns);
int shm__cp_peek(shm_channel_t *ch, const void **ptr, uint64_t *len, int64_t timeout_ns);
int shm__cp_release(shm_channel_t *ch);
void shm__cp_stat(shm_channel_t *ch, shm_channel_stat_t *st);

/* The argument rules that every kind's write_batch and read_batch share (shm_channel.h):
 * 1 when there is nothing to do (a count of 0: the call returns 0), 0 to go on, or -EINVAL.
 * Callers: `if ((rc = shm__batch_write_args(lens, count)) != 0) return rc < 0 ? rc : 0;` */
static inline int shm__batch_write_args(const uint64_t *lens, uint32_t count)
{
    if (count == 0)
        return 1;
    return !lens || count > INT32_MAX ? -EINVAL : 0;
}

static inline int shm__batch_read_args(const void *buf, uint64_t cap, const uint64_t *lens,
                                       uint32_t max_count)
{
    if (max_count == 0)
        return 1;
    return !lens || (!buf && cap) || max_count > INT32_MAX ? -EINVAL : 0;
}

#endif
