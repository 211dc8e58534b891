/* The service algorithm (spec/service.md) over a plain malloc'd buffer, one thread, no system
 * calls: geometry and format/validate, every request/response step, request numbers (a
 * timed-out client never gets the stale answer to a later request), withdrawing, the server
 * holding many requests and answering in any order or not at all, the doorbell and per-client
 * wake decisions, server takeover and the client's verdicts, client slots reclaimed, and
 * invalid input. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "service.h"

struct t {
    uint8_t *mem;
    struct shm__svc_geom g;
    struct shm__svc s;
    struct shm__svc_server *v;
    uint32_t epoch;
};

/* What the wake callback was asked to wake. */
static uint32_t *woken[2048];
static int nwoken;

static void wake_rec(uint32_t *word, void *arg)
{
    (void)arg;
    if (nwoken < 2048)
        woken[nwoken++] = word;
}

static int was_woken(uint32_t *word)
{
    for (int i = 0; i < nwoken; i++)
        if (woken[i] == word)
            return 1;
    return 0;
}

static int lock_held_yes(void *arg)
{
    (void)arg;
    return 1;
}

static int lock_held_no(void *arg)
{
    (void)arg;
    return 0;
}

static void setup_geom(struct t *t, uint64_t mreq, uint64_t mresp, uint32_t clients)
{
    memset(t, 0, sizeof(*t));
    nwoken = 0;
    cr_assert_eq(shm__svc_geometry(&t->g, mreq, mresp, clients), 0);
    void *m = NULL;
    cr_assert_eq(posix_memalign(&m, 4096, t->g.segment_size), 0);
    t->mem = m;
    memset(t->mem, 0, t->g.segment_size);
    shm__svc_format(t->mem, &t->g, 1234, 5678);
    struct shm__svc_geom g2;
    cr_assert_eq(shm__svc_validate(t->mem, t->g.segment_size, &g2), 0);
    cr_assert_eq(memcmp(&g2, &t->g, sizeof g2), 0, "validate reads back the geometry");
    shm__svc_bind(&t->s, t->mem, &g2);
    t->v = calloc(1, sizeof(*t->v));
    cr_assert(t->v);
}

/* A service with a live server attached. */
static void setup(struct t *t, uint64_t mreq, uint64_t mresp, uint32_t clients)
{
    setup_geom(t, mreq, mresp, clients);
    t->epoch = shm__svc_server_attach(&t->s, t->v, wake_rec, NULL);
    cr_assert_eq(t->epoch, 1);
}

static void done(struct t *t)
{
    free(t->v);
    free(t->mem);
}

static void join(struct t *t, struct shm__svc_client *c, uint32_t i)
{
    cr_assert_eq(shm__svc_client_join(&t->s, c, i, 100 + i), 0);
}

/* Client c sends the string `msg` to the current server. */
static void send(struct t *t, struct shm__svc_client *c, const char *msg)
{
    int rc = shm__svc_request(&t->s, c, msg, strlen(msg), t->epoch);
    cr_assert(rc == 0 || rc == 1, "request: %d", rc);
}

/* The server receives the next request; it must be `want` from slot `slot`. */
static struct shm__svc_request recv_expect(struct t *t, uint32_t slot, const char *want)
{
    struct shm__svc_request r;
    int rc = shm__svc_receive(&t->s, t->v, &r);
    cr_assert_eq(rc, 0, "receive: %d", rc);
    cr_assert_eq(r.slot, slot, "request from slot %u, expected %u", r.slot, slot);
    cr_assert_eq(r.len, strlen(want));
    cr_assert_eq(memcmp(r.ptr, want, r.len), 0, "request bytes");
    return r;
}

static void respond(struct t *t, struct shm__svc_request *r, const char *msg)
{
    int rc = shm__svc_respond(&t->s, t->v, r->slot, r->seq, msg, strlen(msg));
    cr_assert(rc == 0 || rc == 1, "respond: %d", rc);
}

static void expect_response(struct t *t, struct shm__svc_client *c, const char *want)
{
    char buf[256];
    uint64_t len = 0;
    int rc = shm__svc_response(&t->s, c, buf, sizeof buf, NULL, &len);
    cr_assert_eq(rc, 0, "response: %d", rc);
    cr_assert_eq(len, strlen(want), "response length %lu", (unsigned long)len);
    cr_assert_eq(memcmp(buf, want, len), 0, "response bytes: got '%.*s', want '%s'", (int)len,
                 buf, want);
}

static void expect_no_response(struct t *t, struct shm__svc_client *c)
{
    char buf[256];
    uint64_t len;
    cr_assert_eq(shm__svc_response(&t->s, c, buf, sizeof buf, NULL, &len), -EAGAIN);
}

/* ---- geometry, format, validate ----------------------------------------------------- */

Test(svc_format, geometry_defaults_and_limits)
{
    struct shm__svc_geom g;
    cr_assert_eq(shm__svc_geometry(&g, 0, 0, 0), 0);
    cr_assert_eq(g.max_request, 4096);
    cr_assert_eq(g.max_response, 4096);
    cr_assert_eq(g.max_clients, 64);
    cr_assert_eq(g.response_offset, 128 + 4224); /* line + align128(16 + 4096) */
    cr_assert_eq(g.slot_stride, 128 + 2 * 4224);
    cr_assert_eq(g.capacity, 64 * g.slot_stride);
    cr_assert_eq(g.segment_size, 4096 + g.capacity);
    cr_assert_eq(shm__svc_geometry(&g, 64, 8, 1), 0);
    cr_assert_eq(g.response_offset, 256);
    cr_assert_eq(g.slot_stride, 384);
    cr_assert_eq(shm__svc_geometry(&g, 1ull << 30, 1ull << 30, 1024), 0);
    cr_assert_eq(shm__svc_geometry(&g, (1ull << 30) + 1, 8, 1), -EINVAL);
    cr_assert_eq(shm__svc_geometry(&g, 8, (1ull << 30) + 1, 1), -EINVAL);
    cr_assert_eq(shm__svc_geometry(&g, 8, 8, 1025), -EINVAL);
    cr_assert_eq(shm__svc_geometry(&g, 64, 8, 4), 0);
    cr_assert_eq(shm__svc_check_params(&g, 0, 0, 0), 0);
    cr_assert_eq(shm__svc_check_params(&g, 64, 8, 4), 0);
    cr_assert_eq(shm__svc_check_params(&g, 65, 0, 0), -EINVAL);
    cr_assert_eq(shm__svc_check_params(&g, 0, 9, 0), -EINVAL);
    cr_assert_eq(shm__svc_check_params(&g, 0, 0, 5), -EINVAL);
}

Test(svc_format, writes_every_identity_field)
{
    struct t t;
    setup_geom(&t, 100, 300, 70);
    struct shm__svc_header *h = t.s.hdr;
    cr_assert_eq(memcmp(h->magic, "SHM_CHAN", 8), 0);
    cr_assert_eq(h->layout_major, 1);
    cr_assert_eq(h->kind, 4);
    cr_assert_eq(h->header_size, 4096);
    cr_assert_eq(h->max_request, 100);
    cr_assert_eq(h->max_response, 300);
    cr_assert_eq(h->max_payload, 300);
    cr_assert_eq(h->max_clients, 70);
    cr_assert_eq(h->slots_offset, 4096);
    cr_assert_eq(h->response_offset, 128 + 128);
    cr_assert_eq(h->slot_stride, 256 + 384);
    cr_assert_eq(h->segment_size, 4096 + 70 * 640);
    cr_assert_eq(h->creator_pid, 1234);
    cr_assert_eq(h->created_ns, 5678);
    cr_assert_eq(h->server_state, 0);
    done(&t);
}

Test(svc_format, validate_refuses_every_bad_field)
{
    struct t t;
    setup_geom(&t, 64, 64, 4);
    struct shm__svc_header *h = t.s.hdr;
    struct shm__svc_geom g;
    uint64_t size = t.g.segment_size;
    cr_assert_eq(shm__svc_validate(t.mem, 4095, &g), -EAGAIN, "shorter than the header");
    cr_assert_eq(shm__svc_validate(t.mem, size - 1, &g), -EBADMSG, "shorter than the segment");
#define BAD(field, value, err)                                                                 \
    do {                                                                                       \
        __typeof__(h->field) saved = h->field;                                                 \
        h->field = (value);                                                                    \
        cr_assert_eq(shm__svc_validate(t.mem, size, &g), (err), #field " = " #value);          \
        h->field = saved;                                                                      \
    } while (0)
    BAD(layout_major, 2, -EPROTONOSUPPORT);
    BAD(kind, 1, -EPROTOTYPE);
    BAD(kind, 2, -EPROTOTYPE);
    BAD(header_size, 4095, -EBADMSG);
    BAD(max_clients, 0, -EBADMSG);
    BAD(max_clients, 1025, -EBADMSG);
    BAD(max_clients, 5, -EBADMSG);
    BAD(max_request, 65, -EBADMSG);
    BAD(max_request, (1ull << 30) + 1, -EBADMSG);
    BAD(max_response, 1ull << 62, -EBADMSG);
    BAD(max_payload, 63, -EBADMSG);
    BAD(slot_stride, 384 + 128, -EBADMSG);
    BAD(response_offset, 128, -EBADMSG);
    BAD(slots_offset, 8192, -EBADMSG);
    BAD(capacity, 0, -EBADMSG);
    BAD(segment_size, size + 4096, -EBADMSG);
    cr_assert_eq(shm__svc_validate(t.mem, size, &g), 0, "restored");
    h->layout_minor = 9; /* a later minor is accepted */
    h->reserved3[0] = 0xff;
    cr_assert_eq(shm__svc_validate(t.mem, size, &g), 0, "reserved bytes and minor ignored");
    h->magic[0] = 'X';
    cr_assert_eq(shm__svc_validate(t.mem, size, &g), -EPROTO);
    memset(h->magic, 0, 8);
    cr_assert_eq(shm__svc_validate(t.mem, size, &g), -EAGAIN, "magic zero: creator at work");
    done(&t);
}

Test(svc_format, stream_and_service_refuse_each_other)
{
    struct t t;
    setup_geom(&t, 64, 64, 4);
    uint64_t seg;
    cr_assert_eq(shm__ring_validate((const struct shm__header *)(void *)t.mem, t.g.segment_size,
                                    &seg),
                 -EPROTOTYPE);
    uint8_t *stream = calloc(1, 4096 + 1024);
    shm__ring_format((struct shm__header *)(void *)stream, 1024, 1, 1);
    struct shm__svc_geom g;
    cr_assert_eq(shm__svc_validate(stream, 4096 + 1024, &g), -EPROTOTYPE);
    free(stream);
    done(&t);
}

/* ---- one round trip ------------------------------------------------------------------- */

Test(svc_round_trip, copy_both_ways)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 2);
    cr_assert_eq(t.s.hdr->clients, 1);
    cr_assert_eq(shm__svc_line(&t.s, 2)->state, 1);
    cr_assert_eq(shm__svc_line(&t.s, 2)->pid, 102);
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), -EAGAIN, "nothing queued");
    send(&t, &c, "ping");
    cr_assert_eq(shm__svc_req(&t.s, 2)->req, (1u << 2) | SHM__SVC_QUEUED);
    cr_assert_eq(t.s.hdr->ready[0], 1u << 2, "the client's ready bit");
    expect_no_response(&t, &c);
    r = recv_expect(&t, 2, "ping");
    cr_assert_eq(r.seq, 1);
    cr_assert_eq(shm__svc_req(&t.s, 2)->req, (1u << 2) | SHM__SVC_TAKEN);
    cr_assert_eq((uintptr_t)r.ptr % 8, 0, "requests are 8-byte aligned in place");
    expect_no_response(&t, &c);
    respond(&t, &r, "pong");
    cr_assert_eq(shm__svc_req(&t.s, 2)->req, (1u << 2) | SHM__SVC_FREE, "slot free again");
    expect_response(&t, &c, "pong");
    cr_assert_eq(shm__svc_response(&t.s, &c, NULL, 0, NULL, &(uint64_t){0}), -EINVAL,
                 "no second answer to one request");
    cr_assert_eq(shm__svc_respond(&t.s, t.v, r.slot, r.seq, "x", 1), -EINVAL,
                 "a request is answered once");
    cr_assert_eq(t.s.hdr->requests_taken, 1);
    cr_assert_eq(t.s.hdr->responses, 1);
    cr_assert_eq(shm__svc_line(&t.s, 2)->requests, 1);
    cr_assert_eq(shm__svc_line(&t.s, 2)->responses, 1);
    /* the next round uses the next number */
    send(&t, &c, "ping2");
    r = recv_expect(&t, 2, "ping2");
    cr_assert_eq(r.seq, 2);
    respond(&t, &r, "pong2");
    expect_response(&t, &c, "pong2");
    done(&t);
}

Test(svc_round_trip, zero_copy_both_ways_and_sizes)
{
    struct t t;
    setup(&t, 64, 32, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    void *p;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 65, &p), -EMSGSIZE);
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 64, &p), 0);
    cr_assert_eq((uintptr_t)p % 8, 0);
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 1, &p), -EBUSY, "one reservation");
    memset(p, 0xab, 64);
    cr_assert_eq(shm__svc_request_commit(&t.s, &c, 65, t.epoch), -EINVAL, "longer than reserved");
    cr_assert_eq(shm__svc_request_commit(&t.s, &c, 64, t.epoch), 0);
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 1, &p), -EBUSY, "one request in flight");
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    cr_assert_eq(r.len, 64);
    cr_assert_eq(((const uint8_t *)r.ptr)[63], 0xab);
    cr_assert_eq(shm__svc_respond_reserve(&t.s, t.v, r.slot, r.seq, 33, &p), -EMSGSIZE);
    cr_assert_eq(shm__svc_respond_reserve(&t.s, t.v, r.slot, r.seq, 32, &p), 0);
    cr_assert_eq(shm__svc_respond_reserve(&t.s, t.v, r.slot, r.seq, 32, &p), -EBUSY);
    memcpy(p, r.ptr, 32); /* answer computed from the request, both in place */
    cr_assert_eq(shm__svc_respond_commit(&t.s, t.v, 33), -EINVAL);
    cr_assert_eq(shm__svc_respond_commit(&t.s, t.v, 32), 0);
    /* a response larger than the caller's buffer stays readable */
    uint8_t small[8];
    uint64_t len = 0;
    cr_assert_eq(shm__svc_response(&t.s, &c, small, sizeof small, NULL, &len), -EMSGSIZE);
    cr_assert_eq(len, 32);
    const void *view;
    cr_assert_eq(shm__svc_response(&t.s, &c, NULL, 0, &view, &len), 0);
    cr_assert_eq(len, 32);
    cr_assert_eq(((const uint8_t *)view)[31], 0xab);
    /* zero bytes both ways */
    cr_assert_eq(shm__svc_request(&t.s, &c, NULL, 0, t.epoch), 0);
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    cr_assert_eq(r.len, 0);
    cr_assert_eq(shm__svc_respond(&t.s, t.v, r.slot, r.seq, NULL, 0), 0);
    cr_assert_eq(shm__svc_response(&t.s, &c, small, 0, NULL, &len), 0);
    cr_assert_eq(len, 0);
    done(&t);
}

/* ---- request numbers and stale answers ------------------------------------------------- */

Test(svc_stale, timed_out_before_taken_is_withdrawn_and_never_runs)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 1);
    send(&t, &c, "one");
    cr_assert_eq(shm__svc_cancel(&t.s, &c, 1), 1, "withdrawn before the server took it");
    cr_assert_eq(shm__svc_cancel(&t.s, &c, 1), -EINVAL, "nothing pending any more");
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), -EAGAIN, "the server never sees it");
    cr_assert_eq(shm__svc_line(&t.s, 1)->timeouts, 1);
    cr_assert_eq(shm__svc_line(&t.s, 1)->withdrawn, 1);
    send(&t, &c, "two");
    r = recv_expect(&t, 1, "two");
    cr_assert_eq(r.seq, 2);
    respond(&t, &r, "answer two");
    expect_response(&t, &c, "answer two");
    done(&t);
}

Test(svc_stale, timed_out_while_held_in_place_never_answers_a_later_request)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 1);
    send(&t, &c, "one");
    struct shm__svc_request r1 = recv_expect(&t, 1, "one");
    cr_assert_eq(shm__svc_cancel(&t.s, &c, 1), 0, "taken: abandoned, not withdrawn");
    void *p;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 3, &p), -EBUSY,
                 "the server still reads request 1 in place");
    respond(&t, &r1, "answer one"); /* late */
    cr_assert_eq(shm__svc_response(&t.s, &c, NULL, 0, NULL, &(uint64_t){0}), -EINVAL,
                 "no request pending: the late answer is not delivered");
    send(&t, &c, "two");
    expect_no_response(&t, &c); /* resp names 1, we wait for 2 */
    struct shm__svc_request r2 = recv_expect(&t, 1, "two");
    expect_no_response(&t, &c);
    respond(&t, &r2, "answer two");
    expect_response(&t, &c, "answer two");
    done(&t);
}

Test(svc_stale, timed_out_after_copy_the_late_answer_is_dropped)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 3);
    send(&t, &c, "one");
    struct shm__svc_request r1 = recv_expect(&t, 3, "one");
    cr_assert_eq(shm__svc_release_request(&t.s, t.v, 3, r1.seq), 0, "copied out: slot free");
    cr_assert_eq(shm__svc_release_request(&t.s, t.v, 3, r1.seq), -EINVAL, "released once");
    cr_assert_eq(shm__svc_cancel(&t.s, &c, 1), 0);
    send(&t, &c, "two"); /* possible at once: the server copied request 1 */
    /* the server answers 1 late: the client has moved on, nothing is written */
    char *resp_payload = (char *)shm__svc_resp(&t.s, 3) + 16;
    memcpy(resp_payload, "untouched", 9);
    cr_assert_eq(shm__svc_respond(&t.s, t.v, 3, r1.seq, "answer one", 10), -ESTALE);
    cr_assert_eq(memcmp(resp_payload, "untouched", 9), 0, "the response buffer is not touched");
    cr_assert_eq(t.s.hdr->stale_responses, 1);
    cr_assert_eq(shm__svc_respond(&t.s, t.v, 3, r1.seq, "answer one", 10), -EINVAL,
                 "dropped once, then no longer owed");
    struct shm__svc_request r2 = recv_expect(&t, 3, "two");
    respond(&t, &r2, "answer two");
    expect_response(&t, &c, "answer two");
    done(&t);
}

Test(svc_stale, server_holding_two_of_one_client_answers_only_the_newer)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    send(&t, &c, "one");
    struct shm__svc_request r1 = recv_expect(&t, 0, "one");
    shm__svc_release_request(&t.s, t.v, 0, r1.seq);
    shm__svc_cancel(&t.s, &c, 1);
    send(&t, &c, "two");
    struct shm__svc_request r2 = recv_expect(&t, 0, "two");
    cr_assert_eq(shm__svc_respond(&t.s, t.v, 0, r1.seq, "answer one", 10), -ESTALE,
                 "a newer request of that client was received");
    respond(&t, &r2, "answer two");
    expect_response(&t, &c, "answer two");
    done(&t);
}

Test(svc_stale, a_late_answer_written_before_the_next_request_is_never_taken_for_it)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    send(&t, &c, "one");
    struct shm__svc_request r1 = recv_expect(&t, 0, "one");
    shm__svc_release_request(&t.s, t.v, 0, r1.seq);
    shm__svc_cancel(&t.s, &c, 1);
    /* the server checks the slot before the client sends its next request: it writes */
    respond(&t, &r1, "answer one");
    send(&t, &c, "two");
    expect_no_response(&t, &c);
    struct shm__svc_request r2 = recv_expect(&t, 0, "two");
    expect_no_response(&t, &c);
    respond(&t, &r2, "answer two");
    expect_response(&t, &c, "answer two");
    done(&t);
}

/* ---- many clients, any order, not at all ---------------------------------------------- */

Test(svc_many, every_client_gets_only_its_own_answer_in_any_order)
{
    struct t t;
    enum { N = 130 };
    setup(&t, 64, 64, N);
    static struct shm__svc_client c[N];
    char msg[32];
    for (uint32_t i = 0; i < N; i++) {
        join(&t, &c[i], i);
        snprintf(msg, sizeof msg, "req %u", i);
        send(&t, &c[i], msg);
    }
    cr_assert_eq(t.s.hdr->clients, N);
    static struct shm__svc_request r[N];
    int seen[N] = {0};
    for (uint32_t k = 0; k < N; k++) {
        cr_assert_eq(shm__svc_receive(&t.s, t.v, &r[k]), 0, "request %u", k);
        uint32_t i = r[k].slot;
        cr_assert_lt(i, N);
        cr_assert_eq(seen[i]++, 0, "slot %u received twice", i);
        snprintf(msg, sizeof msg, "req %u", i);
        cr_assert_eq(r[k].len, strlen(msg));
        cr_assert_eq(memcmp(r[k].ptr, msg, r[k].len), 0);
    }
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r[0]), -EAGAIN, "all %d received once", N);
    /* answer in reverse order; every tenth not at all */
    for (int k = N - 1; k >= 0; k--) {
        uint32_t i = r[k].slot;
        if (i % 10 == 7) {
            cr_assert_eq(shm__svc_drop(&t.s, t.v, i, r[k].seq), 0);
            continue;
        }
        snprintf(msg, sizeof msg, "resp %u", i);
        respond(&t, &r[k], msg);
    }
    for (uint32_t i = 0; i < N; i++) {
        if (i % 10 == 7) {
            expect_no_response(&t, &c[i]);
            cr_assert_eq(shm__svc_cancel(&t.s, &c[i], 1), 0);
            send(&t, &c[i], "again"); /* a dropped request frees the slot */
            continue;
        }
        snprintf(msg, sizeof msg, "resp %u", i);
        expect_response(&t, &c[i], msg);
    }
    done(&t);
}

Test(svc_many, a_busy_client_does_not_starve_the_others)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client a, b;
    join(&t, &a, 0);
    join(&t, &b, 3);
    send(&t, &a, "a");
    send(&t, &b, "b");
    struct shm__svc_request r = recv_expect(&t, 0, "a");
    respond(&t, &r, "A");
    expect_response(&t, &a, "A");
    send(&t, &a, "a2"); /* a queues again at once */
    r = recv_expect(&t, 3, "b");
    respond(&t, &r, "B");
    recv_expect(&t, 0, "a2");
    done(&t);
}

/* ---- waiting and waking ---------------------------------------------------------------- */

Test(svc_wait, doorbell_rung_only_while_the_server_may_sleep)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    cr_assert_eq(shm__svc_request(&t.s, &c, "x", 1, t.epoch), 0, "server awake: no wake");
    cr_assert_eq(t.s.hdr->doorbell, 0);
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    shm__svc_respond(&t.s, t.v, r.slot, r.seq, "y", 1);
    expect_response(&t, &c, "y");
    uint32_t seen = shm__svc_server_wait_prepare(&t.s);
    cr_assert_eq(t.s.hdr->server_waiting, 1);
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), -EAGAIN, "the re-try before sleeping");
    cr_assert_eq(shm__svc_request(&t.s, &c, "x", 1, t.epoch), 1, "server may sleep: wake");
    cr_assert_neq(t.s.hdr->doorbell, seen, "FUTEX_WAIT(doorbell, seen) cannot sleep now");
    shm__svc_server_wait_done(&t.s);
    cr_assert_eq(t.s.hdr->server_waiting, 0);
    cr_assert_eq(t.s.hdr->server_sleeps, 1);
    done(&t);
}

Test(svc_wait, client_woken_by_answer_and_by_freed_slot)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 2);
    uint32_t *word = &shm__svc_resp(&t.s, 2)->resp_wake;
    send(&t, &c, "x");
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    cr_assert_eq(shm__svc_respond(&t.s, t.v, r.slot, r.seq, "y", 1), 0, "client awake");
    expect_response(&t, &c, "y");
    send(&t, &c, "x");
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    uint32_t seen = shm__svc_client_wait_prepare(&t.s, &c);
    cr_assert_eq(shm__svc_line(&t.s, 2)->waiting, 1);
    cr_assert_eq(shm__svc_respond(&t.s, t.v, r.slot, r.seq, "y", 1), 1, "client may sleep");
    cr_assert_neq(*word, seen);
    shm__svc_client_wait_done(&c);
    expect_response(&t, &c, "y");
    /* waiting for the slot after giving up on a request the server holds in place */
    send(&t, &c, "x");
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    shm__svc_cancel(&t.s, &c, 1);
    seen = shm__svc_client_wait_prepare(&t.s, &c);
    cr_assert_eq(shm__svc_drop(&t.s, t.v, r.slot, r.seq), 1, "the freed slot wakes it");
    cr_assert_neq(*word, seen);
    shm__svc_client_wait_done(&c);
    done(&t);
}

/* ---- the server: close, death, takeover ------------------------------------------------ */

Test(svc_server, verdicts)
{
    struct t t;
    setup_geom(&t, 64, 64, 4);
    struct shm__svc_header *h = t.s.hdr;
    uint32_t e = 99;
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_held_no, NULL), -EAGAIN,
                 "no server yet: wait for one");
    uint32_t seq0 = h->server_seq;
    t.epoch = shm__svc_server_attach(&t.s, t.v, wake_rec, NULL);
    cr_assert_neq(h->server_seq, seq0, "attach changes server_seq");
    cr_assert(was_woken(&h->server_seq), "and wakes its waiters");
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_held_yes, NULL), 0);
    cr_assert_eq(e, 1);
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_held_yes, NULL), 0);
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_held_no, NULL), -EOWNERDEAD,
                 "attached, lock free: died");
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_held_no, NULL), -EOWNERDEAD);
    h->server_state = 2;
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_held_no, NULL), -EPIPE);
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_held_no, NULL), -EPIPE);
    h->server_state = 7; /* unknown: no verdict */
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_held_no, NULL), -EAGAIN);
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_held_no, NULL), 0);
    h->server_state = 1;
    struct shm__svc_server *v2 = calloc(1, sizeof(*v2));
    cr_assert_eq(shm__svc_server_attach(&t.s, v2, NULL, NULL), 2);
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_held_yes, NULL), -ECONNRESET,
                 "the addressed server is gone, another attached");
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_held_yes, NULL), 0);
    cr_assert_eq(e, 2);
    free(v2);
    done(&t);
}

/* The lock check runs while the server closes (or is replaced): never a death. */
static struct t *race_t;
static int lock_free_after_close(void *arg)
{
    (void)arg;
    shm__svc_server_close(&race_t->s, race_t->v, NULL, NULL);
    return 0;
}
static int lock_free_after_replace(void *arg)
{
    (void)arg;
    struct shm__svc_server *v2 = calloc(1, sizeof(*v2));
    shm__svc_server_attach(&race_t->s, v2, NULL, NULL);
    free(v2);
    return 0;
}

Test(svc_server, a_clean_close_is_never_reported_as_death)
{
    struct t t;
    setup(&t, 64, 64, 4);
    race_t = &t;
    uint32_t e;
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_free_after_close, NULL), -EPIPE);
    t.s.hdr->server_state = 1;
    cr_assert_eq(shm__svc_server_verdict(&t.s, 0, &e, lock_free_after_replace, NULL), -EAGAIN,
                 "replaced during the check: look again");
    cr_assert_eq(shm__svc_server_verdict(&t.s, 2, &e, lock_free_after_replace, NULL),
                 -ECONNRESET);
    done(&t);
}

Test(svc_server, close_frees_held_requests_and_wakes_waiting_clients)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client a, b;
    join(&t, &a, 0);
    join(&t, &b, 1);
    send(&t, &a, "a");
    send(&t, &b, "b");
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0);
    cr_assert_eq(r.slot, 0);
    shm__svc_client_wait_prepare(&t.s, &a);
    shm__svc_client_wait_prepare(&t.s, &b);
    uint32_t wa = shm__svc_resp(&t.s, 0)->resp_wake, wb = shm__svc_resp(&t.s, 1)->resp_wake;
    nwoken = 0;
    shm__svc_server_close(&t.s, t.v, wake_rec, NULL);
    cr_assert_eq(t.s.hdr->server_state, 2);
    cr_assert_eq(shm__svc_req(&t.s, 0)->req & 3, SHM__SVC_FREE, "held request freed");
    cr_assert_eq(shm__svc_req(&t.s, 1)->req & 3, SHM__SVC_QUEUED, "queued one stays");
    cr_assert(was_woken(&shm__svc_resp(&t.s, 0)->resp_wake));
    cr_assert(was_woken(&shm__svc_resp(&t.s, 1)->resp_wake));
    cr_assert(was_woken(&t.s.hdr->server_seq));
    cr_assert_neq(shm__svc_resp(&t.s, 0)->resp_wake, wa);
    cr_assert_neq(shm__svc_resp(&t.s, 1)->resp_wake, wb);
    uint32_t e;
    expect_no_response(&t, &a);
    cr_assert_eq(shm__svc_server_verdict(&t.s, t.epoch, &e, lock_held_no, NULL), -EPIPE);
    cr_assert_eq(shm__svc_cancel(&t.s, &b, 0), 1, "b's queued request is withdrawn");
    done(&t);
}

Test(svc_server, takeover_frees_dead_servers_requests_and_drops_those_addressed_to_it)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client a, b, c;
    join(&t, &a, 0);
    join(&t, &b, 1);
    join(&t, &c, 2);
    send(&t, &a, "a");
    send(&t, &b, "b");
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), 0); /* a's, held in place */
    cr_assert_eq(r.slot, 0);
    shm__svc_client_wait_prepare(&t.s, &a);
    /* the server dies: its private state is simply gone */
    struct shm__svc_server *v2 = calloc(1, sizeof(*v2));
    nwoken = 0;
    uint32_t e2 = shm__svc_server_attach(&t.s, v2, wake_rec, NULL);
    cr_assert_eq(e2, 2);
    cr_assert_eq(shm__svc_req(&t.s, 0)->req & 3, SHM__SVC_FREE, "dead server's hold freed");
    cr_assert(was_woken(&shm__svc_resp(&t.s, 0)->resp_wake), "its waiting client woken");
    uint32_t e;
    cr_assert_eq(shm__svc_server_verdict(&t.s, 1, &e, lock_held_yes, NULL), -ECONNRESET);
    cr_assert_eq(shm__svc_cancel(&t.s, &a, 0), 0);
    /* b's request, addressed to server 1, never runs on server 2 */
    int rc = shm__svc_request(&t.s, &c, "c", 1, e2);
    cr_assert(rc == 0 || rc == 1);
    struct shm__svc_request r2;
    cr_assert_eq(shm__svc_receive(&t.s, v2, &r2), 0);
    cr_assert_eq(r2.slot, 2, "b's expired request skipped");
    cr_assert_eq(shm__svc_receive(&t.s, v2, &r2), -EAGAIN);
    cr_assert_eq(t.s.hdr->expired, 1);
    cr_assert_eq(shm__svc_req(&t.s, 1)->req & 3, SHM__SVC_FREE, "b's slot is free again");
    /* the clients of the dead server carry on with the new one */
    shm__svc_client_wait_done(&a);
    rc = shm__svc_request(&t.s, &a, "a2", 2, e2);
    cr_assert(rc == 0 || rc == 1);
    free(t.v);
    t.v = v2; /* done() frees it */
    t.epoch = e2;
    struct shm__svc_request r3 = recv_expect(&t, 0, "a2");
    respond(&t, &r3, "A2");
    expect_response(&t, &a, "A2");
    done(&t);
}

/* ---- clients: leave, death, reclaim ---------------------------------------------------- */

Test(svc_client, dead_client_reclaimed_and_successor_never_gets_its_answers)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client dead, next;
    join(&t, &dead, 3);
    send(&t, &dead, "one");
    struct shm__svc_request r1 = recv_expect(&t, 3, "one"); /* held in place */
    /* it dies; the server (holding its lock byte) reclaims the slot */
    cr_assert(shm__svc_slot_attached(&t.s, 3));
    cr_assert_eq(shm__svc_reclaim(&t.s, t.v, 3), 1);
    cr_assert_eq(shm__svc_reclaim(&t.s, t.v, 3), 0, "once");
    cr_assert_not(shm__svc_slot_attached(&t.s, 3));
    cr_assert_eq(t.s.hdr->clients, 0);
    cr_assert_eq(t.s.hdr->reaped, 1);
    /* a new client takes the slot while the server still holds the old request */
    cr_assert_eq(shm__svc_client_join(&t.s, &next, 3, 7), 0, "already reclaimed");
    cr_assert_eq(shm__svc_line(&t.s, 3)->epoch, 2);
    void *p;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &next, 1, &p), -EBUSY);
    respond(&t, &r1, "old answer");
    send(&t, &next, "two");
    expect_no_response(&t, &next);
    struct shm__svc_request r2 = recv_expect(&t, 3, "two");
    cr_assert_eq(r2.seq, 2, "numbers continue in the slot");
    respond(&t, &r2, "new answer");
    expect_response(&t, &next, "new answer");
    done(&t);
}

Test(svc_client, joiner_reclaims_and_withdraws_a_queued_leftover)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client dead, next;
    join(&t, &dead, 0);
    send(&t, &dead, "left over");
    cr_assert_eq(shm__svc_client_join(&t.s, &next, 0, 8), 1, "reclaimed at join");
    cr_assert_eq(t.s.hdr->clients, 1);
    cr_assert_eq(t.s.hdr->reclaims, 1);
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), -EAGAIN, "the dead client's request never runs");
    send(&t, &next, "mine");
    r = recv_expect(&t, 0, "mine");
    respond(&t, &r, "yours");
    expect_response(&t, &next, "yours");
    shm__svc_client_leave(&t.s, &next);
    cr_assert_eq(shm__svc_line(&t.s, 0)->state, 2);
    cr_assert_eq(t.s.hdr->clients, 0);
    done(&t);
}

Test(svc_client, leave_withdraws_a_pending_request)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    send(&t, &c, "bye");
    shm__svc_client_leave(&t.s, &c);
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), -EAGAIN);
    done(&t);
}

/* ---- invalid input --------------------------------------------------------------------- */

Test(svc_invalid, request_of_invalid_length_is_dropped_not_served)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c, d;
    join(&t, &c, 0);
    join(&t, &d, 1);
    send(&t, &c, "x");
    shm__svc_req(&t.s, 0)->len = 65; /* a hostile client */
    send(&t, &d, "fine");
    struct shm__svc_request r = recv_expect(&t, 1, "fine");
    cr_assert_eq(t.s.hdr->invalid, 1);
    cr_assert_eq(shm__svc_req(&t.s, 0)->req & 3, SHM__SVC_FREE);
    respond(&t, &r, "ok");
    done(&t);
}

Test(svc_invalid, stray_ready_bits_and_unknown_phases_are_ignored)
{
    struct t t;
    setup(&t, 64, 64, 4);
    t.s.hdr->ready[0] = ~0ull; /* bits of slots with nothing queued, and past max_clients */
    t.s.hdr->ready[5] = ~0ull;
    shm__svc_req(&t.s, 2)->req = (5u << 2) | 3; /* phase 3 */
    struct shm__svc_request r;
    cr_assert_eq(shm__svc_receive(&t.s, t.v, &r), -EAGAIN);
    struct shm__svc_client c;
    cr_assert_eq(shm__svc_client_join(&t.s, &c, 2, 1), -EBADMSG, "phase 3 in a slot");
    cr_assert_eq(shm__svc_client_join(&t.s, &c, 4, 1), -EINVAL, "index out of range");
    done(&t);
}

Test(svc_invalid, client_refuses_answers_and_slots_it_cannot_trust)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    send(&t, &c, "x");
    struct shm__svc_resp_area *rs = shm__svc_resp(&t.s, 0);
    uint64_t len;
    char buf[128];
    rs->resp = 2; /* a number never sent */
    cr_assert_eq(shm__svc_response(&t.s, &c, buf, sizeof buf, NULL, &len), -EBADMSG);
    rs->resp = 1;
    rs->len = 65; /* longer than max_response */
    cr_assert_eq(shm__svc_response(&t.s, &c, buf, sizeof buf, NULL, &len), -EBADMSG);
    rs->len = 1;
    cr_assert_eq(shm__svc_response(&t.s, &c, buf, sizeof buf, NULL, &len), 0);
    /* someone else's number in our request word */
    shm__svc_req(&t.s, 0)->req = (9u << 2) | SHM__SVC_FREE;
    void *p;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 1, &p), -EBADMSG);
    shm__svc_req(&t.s, 0)->req = (1u << 2) | SHM__SVC_QUEUED;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 1, &p), -EBADMSG);
    shm__svc_req(&t.s, 0)->req = (1u << 2) | 3;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 1, &p), -EBADMSG);
    shm__svc_req(&t.s, 0)->req = (1u << 2) | SHM__SVC_FREE;
    cr_assert_eq(shm__svc_request_reserve(&t.s, &c, 1, &p), 0, "restored");
    done(&t);
}

Test(svc_invalid, hostile_counts_never_go_below_zero)
{
    struct t t;
    setup(&t, 64, 64, 4);
    struct shm__svc_client c;
    join(&t, &c, 0);
    t.s.hdr->clients = 0;
    shm__svc_client_leave(&t.s, &c);
    cr_assert_eq(t.s.hdr->clients, 0);
    done(&t);
}
