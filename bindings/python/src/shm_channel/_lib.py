"""Loading libshm_channel through cffi in ABI mode (no compiler needed).

The library is looked for in this order; the first that loads and has a compatible
version wins:

1. the file named by the ``SHM_CHANNEL_LIBRARY`` environment variable;
2. the copy bundled in this package (``shm_channel/libshm_channel.so.1``);
3. whatever ``ctypes.util.find_library("shm_channel")`` finds;
4. the soname ``libshm_channel.so.1`` through the dynamic loader's own search
   (``LD_LIBRARY_PATH``, the ld.so cache, the default directories).

When none works, one :class:`OSError` lists every place tried and why it failed.
"""

from __future__ import annotations

import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cffi

__all__ = [
    "CDEF",
    "LIBRARY_ENV",
    "SONAME",
    "ffi",
    "lib",
    "library_path",
    "library_version",
]

#: Environment variable that names the library file to load, tried first.
LIBRARY_ENV = "SHM_CHANNEL_LIBRARY"
#: The library's soname; the major version is the ABI this binding speaks.
SONAME = "libshm_channel.so.1"
NOT_FOUND = "(found nothing)"
#: Oldest library version (major, minor) whose API matches :data:`CDEF`.
REQUIRED_VERSION = (1, 0)
#: Functions added during 1.0 that the binding cannot work without (close() needs detach).
REQUIRED_FUNCTIONS = ("shm_channel_detach",)

# A literal subset of c/include/shm_channel.h (tests/test_cdef.py compares the two).
# Only the SHM_CHANNEL_API prefix and the comments are left out.
CDEF = """
#define SHM_CHANNEL_VERSION_MAJOR 1
#define SHM_CHANNEL_VERSION_MINOR 0
#define SHM_CHANNEL_VERSION_PATCH 0
#define SHM_CHANNEL_LAYOUT_MAJOR 1
#define SHM_CHANNEL_LAYOUT_MINOR 0
#define SHM_CHANNEL_MIN_CAPACITY 1024
#define SHM_CHANNEL_MAX_CAPACITY 1099511627776
#define SHM_CHANNEL_DEFAULT_CAPACITY 1048576
#define SHM_CHANNEL_HEADER_SIZE 4096
#define SHM_CHANNEL_NAME_MAX 200
#define SHM_CHANNEL_DEFAULT_SPIN_NS 20000
#define SHM_CHANNEL_TYPE_TAG_MAX 120

enum shm_channel_role {
    SHM_CHANNEL_PRODUCER = 1,
    SHM_CHANNEL_CONSUMER = 2,
    SHM_CHANNEL_OBSERVER = 3,
    SHM_CHANNEL_PUBLISHER = 4,
    SHM_CHANNEL_SUBSCRIBER = 5
};

enum shm_channel_open_flags {
    SHM_CHANNEL_CREATE = 1,
    SHM_CHANNEL_EXCL = 2,
    SHM_CHANNEL_ALLOW_FOREIGN = 4,
    SHM_CHANNEL_FROM_OLDEST = 8
};

enum shm_channel_unlink_flags {
    SHM_CHANNEL_FORCE = 1
};

enum shm_channel_kind {
    SHM_CHANNEL_KIND_STREAM = 1,
    SHM_CHANNEL_KIND_BROADCAST = 2
};

enum shm_channel_peer_state {
    SHM_CHANNEL_PEER_NONE = 0,
    SHM_CHANNEL_PEER_ATTACHED = 1,
    SHM_CHANNEL_PEER_CLOSED = 2
};

typedef struct shm_channel shm_channel_t;

typedef struct shm_channel_stat {
    uint32_t kind;
    uint16_t layout_major;
    uint16_t layout_minor;
    uint64_t capacity;
    uint64_t max_payload;
    uint64_t write_pos;
    uint64_t read_pos;
    uint64_t used;
    uint64_t msgs_written;
    uint64_t bytes_written;
    uint64_t msgs_read;
    uint64_t bytes_read;
    uint64_t full_events;
    uint64_t empty_events;
    uint64_t producer_wakes;
    uint64_t consumer_wakes;
    uint64_t producer_sleeps;
    uint64_t consumer_sleeps;
    uint32_t producer_state;
    uint32_t consumer_state;
    uint32_t producer_epoch;
    uint32_t consumer_epoch;
    int32_t producer_alive;
    int32_t consumer_alive;
    int32_t in_use;
    uint32_t creator_pid;
    uint64_t created_ns;
    uint64_t reserved[8];
} shm_channel_stat_t;

typedef struct shm_channel_broadcast_config {
    uint64_t max_payload;
    uint32_t depth;
    uint32_t max_subscribers;
    const char *type_tag;
    uint64_t reserved[4];
} shm_channel_broadcast_config_t;

typedef struct shm_channel_broadcast_stat {
    uint64_t pub_seq;
    uint32_t depth;
    uint32_t max_subscribers;
    uint32_t subscribers;
    uint32_t sleepers;
    uint64_t joins;
    uint64_t reclaims;
    uint32_t type_len;
    char type_tag[124];
    uint64_t reserved[4];
} shm_channel_broadcast_stat_t;

typedef struct shm_channel_sub_stat {
    uint32_t index;
    uint32_t state;
    int32_t alive;
    uint32_t pid;
    uint32_t epoch;
    uint32_t reserved0;
    uint64_t next_seq;
    uint64_t delivered;
    uint64_t missed;
    uint64_t delivered_bytes;
    uint64_t lag;
    uint64_t sleeps;
    uint64_t last_missed;
    uint64_t reserved[4];
} shm_channel_sub_stat_t;

int shm_channel_open(shm_channel_t **out, const char *name, uint32_t role,
    uint32_t flags, uint64_t capacity, uint32_t mode);
void shm_channel_close(shm_channel_t *ch);
int shm_channel_detach(shm_channel_t *ch);
int shm_channel_unlink(const char *name, uint32_t flags);
int shm_channel_write(shm_channel_t *ch, const void *data, uint64_t len,
    int64_t timeout_ns);
int shm_channel_write_batch(shm_channel_t *ch, const void *data,
    const uint64_t *lens, uint32_t count,
    int64_t timeout_ns);
int shm_channel_reserve(shm_channel_t *ch, uint64_t len, void **ptr,
    int64_t timeout_ns);
int shm_channel_commit(shm_channel_t *ch, uint64_t len);
int shm_channel_abort(shm_channel_t *ch);
int shm_channel_read(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
    int64_t timeout_ns);
int shm_channel_read_batch(shm_channel_t *ch, void *buf, uint64_t cap,
    uint64_t *lens, uint32_t max_count,
    int64_t timeout_ns);
int shm_channel_peek(shm_channel_t *ch, const void **ptr, uint64_t *len,
    int64_t timeout_ns);
int shm_channel_release(shm_channel_t *ch);
int shm_channel_stat(shm_channel_t *ch, shm_channel_stat_t *st);
uint64_t shm_channel_max_payload(shm_channel_t *ch);
uint64_t shm_channel_capacity(shm_channel_t *ch);
int shm_channel_set_spin(shm_channel_t *ch, uint64_t spin_ns);
const char *shm_channel_dir(void);
const char *shm_channel_strerror(int err);
uint32_t shm_channel_version(void);
const char *shm_channel_version_string(void);
int shm_channel_open_broadcast(shm_channel_t **out, const char *name,
    uint32_t role, uint32_t flags,
    const shm_channel_broadcast_config_t *cfg,
    uint32_t mode);
int shm_channel_recv(shm_channel_t *ch, void *buf, uint64_t cap, uint64_t *len,
    uint64_t *missed, int64_t timeout_ns);
int shm_channel_read_latest(shm_channel_t *ch, void *buf, uint64_t cap,
    uint64_t *len, int32_t *is_new, uint64_t *missed);
int shm_channel_peek_latest(shm_channel_t *ch, const void **ptr, uint64_t *len,
    int32_t *is_new, uint64_t *missed);
int shm_channel_broadcast_stat(shm_channel_t *ch,
    shm_channel_broadcast_stat_t *st);
int shm_channel_sub_stat(shm_channel_t *ch, int64_t index,
    shm_channel_sub_stat_t *st);

// ---- services (kind 4): the service block of shm_channel.h ----
enum shm_channel_service_kind {
    SHM_CHANNEL_KIND_SERVICE = 4
};
enum shm_channel_service_role {
    SHM_CHANNEL_SERVER = 6,
    SHM_CHANNEL_CLIENT = 7
};
#define SHM_CHANNEL_SERVICE_MAX_CLIENTS 1024
#define SHM_CHANNEL_SERVICE_MAX_MESSAGE 1073741824
#define SHM_CHANNEL_SERVICE_DEFAULT_MESSAGE 4096
#define SHM_CHANNEL_SERVICE_DEFAULT_CLIENTS 64
typedef struct shm_channel_service_config {
    uint64_t max_request;
    uint64_t max_response;
    uint32_t max_clients;
    uint32_t reserved0;
    uint64_t reserved[4];
} shm_channel_service_config_t;
typedef struct shm_channel_request_id {
    uint32_t client;
    uint32_t reserved;
    uint64_t seq;
} shm_channel_request_id_t;
typedef struct shm_channel_service_stat {
    uint64_t max_request;
    uint64_t max_response;
    uint32_t max_clients;
    uint32_t clients;
    uint32_t live_clients;
    uint32_t server_state;
    uint32_t server_epoch;
    int32_t server_alive;
    uint64_t joins;
    uint64_t reclaims;
    uint64_t reaped;
    uint64_t requests;
    uint64_t responses;
    uint64_t stale;
    uint64_t expired;
    uint64_t invalid;
    uint64_t server_sleeps;
    uint64_t server_wakes;
    uint64_t client_sleeps;
    uint64_t client_timeouts;
    uint64_t reserved[6];
} shm_channel_service_stat_t;
int shm_channel_open_service(shm_channel_t **out, const char *name,
    uint32_t role, uint32_t flags,
    const shm_channel_service_config_t *cfg,
    uint32_t mode);
int shm_channel_request(shm_channel_t *ch, const void *req, uint64_t req_len,
    void *resp, uint64_t resp_cap, uint64_t *resp_len,
    int64_t timeout_ns);
int shm_channel_response(shm_channel_t *ch, const void **ptr, uint64_t *len,
    int64_t timeout_ns);
int shm_channel_wait_server(shm_channel_t *ch, int64_t timeout_ns);
int shm_channel_receive(shm_channel_t *ch, void *buf, uint64_t cap,
    uint64_t *len, shm_channel_request_id_t *id,
    int64_t timeout_ns);
int shm_channel_receive_peek(shm_channel_t *ch, const void **ptr,
    uint64_t *len, shm_channel_request_id_t *id,
    int64_t timeout_ns);
int shm_channel_receive_release(shm_channel_t *ch,
    const shm_channel_request_id_t *id);
int shm_channel_respond(shm_channel_t *ch, const shm_channel_request_id_t *id,
    const void *data, uint64_t len);
int shm_channel_respond_reserve(shm_channel_t *ch,
    const shm_channel_request_id_t *id,
    uint64_t len, void **ptr);
int shm_channel_respond_commit(shm_channel_t *ch,
    const shm_channel_request_id_t *id,
    uint64_t len);
int shm_channel_drop(shm_channel_t *ch, const shm_channel_request_id_t *id);
int shm_channel_reap(shm_channel_t *ch, uint32_t *dead, uint32_t cap);
int shm_channel_service_stat(shm_channel_t *ch, shm_channel_service_stat_t *st);
// ---- end of services ----

/* ---- compat channels (spec/compat.md) ---- */
enum shm_channel_compat_flags {
    SHM_CHANNEL_COMPAT = 256,
    SHM_CHANNEL_COMPAT_REPLACE = 512
};
#define SHM_CHANNEL_KIND_COMPAT 3
#define SHM_CHANNEL_COMPAT_NAME_MAX 63
#define SHM_CHANNEL_COMPAT_MIN_CAPACITY 8
#define SHM_CHANNEL_COMPAT_MAX_CAPACITY 2147483648
#define SHM_CHANNEL_COMPAT_POLL_MAX_NS 2000000
typedef struct shm_channel_compat_stat {
    uint32_t capacity;
    uint32_t head;
    uint32_t tail;
    uint32_t used;
    uint64_t torn_loads;
    uint64_t msgs;
    uint64_t bytes;
    uint64_t waits;
    uint64_t sleeps;
    int32_t segment_gone;
    uint32_t reserved0;
    uint64_t reserved[4];
} shm_channel_compat_stat_t;
int shm_channel_compat_stat(shm_channel_t *ch, shm_channel_compat_stat_t *st);
/* ---- reclaiming dead peers' entries (issue 10) ---- */
int shm_channel_reclaim(const char *name, uint32_t flags);

/* ---- batch peek and the mapping window (issue 14) ---- */
int shm_channel_peek_batch(shm_channel_t *ch, const void **ptrs, uint64_t *lens,
                           uint32_t max_count, int64_t timeout_ns);
int shm_channel_release_n(shm_channel_t *ch, uint32_t n);
int shm_channel_mapping(shm_channel_t *ch, void **base, uint64_t *len);

/* ---- one-try write and read with few arguments (issue 14, bindings) ---- */
int shm_channel_try_write(shm_channel_t *ch, const void *data, uint64_t len);
int64_t shm_channel_try_read(shm_channel_t *ch, void *buf, uint64_t cap);

/* ---- one-try zero copy with few arguments (issue 14, bindings) ---- */
int64_t shm_channel_try_reserve(shm_channel_t *ch, uint64_t len);
int64_t shm_channel_try_peek(shm_channel_t *ch, uint64_t *len);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)


def _candidates() -> Iterator[tuple[str, str]]:
    """The (where, what to dlopen) pairs, in the documented order, found lazily: the
    find_library search (which may run ldconfig) happens only if the bundled copy fails.
    """
    env = os.environ.get(LIBRARY_ENV)
    if env:
        yield f"${LIBRARY_ENV}", env
    yield "bundled copy", str(Path(__file__).with_name(SONAME))
    yield "ctypes.util.find_library", ctypes.util.find_library("shm_channel") or NOT_FOUND
    yield "soname via the dynamic loader", SONAME


def _version_tuple(v: int) -> tuple[int, int, int]:
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


def _load() -> tuple[Any, str]:
    tried: list[str] = []
    for where, path in _candidates():
        if path == NOT_FOUND:
            tried.append(f"  {where}: found nothing")
            continue
        if "/" in path and not os.path.exists(path):
            tried.append(f"  {where}: {path}: no such file")
            continue
        try:
            candidate = ffi.dlopen(path)
        except OSError as e:
            tried.append(f"  {where}: {path}: {e}")
            continue
        try:
            version = _version_tuple(candidate.shm_channel_version())
        except AttributeError as e:  # a library of the same name, but not ours
            tried.append(f"  {where}: {path}: not libshm_channel ({e})")
            continue
        missing = [f for f in REQUIRED_FUNCTIONS if not hasattr(candidate, f)]
        if missing:
            tried.append(f"  {where}: {path}: too old, lacks {', '.join(missing)}")
            continue
        if version[0] != REQUIRED_VERSION[0] or version[:2] < REQUIRED_VERSION:
            need = ".".join(map(str, REQUIRED_VERSION))
            have = ".".join(map(str, version))
            tried.append(
                f"  {where}: {path}: version {have}, this binding needs {need} or a later 1.x"
            )
            continue
        return candidate, path
    raise OSError(
        "cannot load libshm_channel; tried, in order:\n"
        + "\n".join(tried)
        + f"\nReinstall the shm_channel package (it bundles the library), or set {LIBRARY_ENV} "
        "to the path of libshm_channel.so.1."
    )


lib, library_path = _load()
#: Version of the loaded C library as (major, minor, patch).
library_version: tuple[int, int, int] = _version_tuple(lib.shm_channel_version())
