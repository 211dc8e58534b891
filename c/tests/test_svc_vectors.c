/* Every golden vector of spec/vectors/service/ through its checker procedure
 * (spec/vectors/service/README.md): copy NAME.bin into the segment directory, open it with
 * the public API in the vector's role and expect the open verdict, run the public lines
 * non-blocking, and replay the `model` lines with the algorithm (service.c) over a private
 * in-memory copy of the image. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct.h"
#include "service.h"

#ifndef CT_VECTORS_DIR
#error "CT_VECTORS_DIR must name spec/vectors"
#endif

TestSuite(svc_vectors, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

static void *read_file(const char *from, uint64_t *size)
{
    int in = open(from, O_RDONLY);
    cr_assert_geq(in, 0, "open %s", from);
    struct stat st;
    cr_assert_eq(fstat(in, &st), 0);
    void *buf = calloc(1, (size_t)st.st_size + 8);
    cr_assert_eq(read(in, buf, (size_t)st.st_size), st.st_size);
    close(in);
    *size = (uint64_t)st.st_size;
    return buf;
}

static void write_file(const char *to, const void *buf, uint64_t size)
{
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(out, 0, "create %s", to);
    cr_assert_eq(write(out, buf, (size_t)size), (ssize_t)size);
    close(out);
}

static int no_lock(void *arg)
{
    (void)arg;
    return 0;
}

/* The model: the algorithm over a private copy of the image. */
struct model {
    void *img; /* 8-byte aligned copy */
    uint64_t size;
    struct shm__svc s;
    struct shm__svc_server v;
    struct shm__svc_client c;
    int bound;
};

static void model_bind(struct model *m, const char *vname)
{
    if (m->bound)
        return;
    struct shm__svc_geom g;
    int rc = shm__svc_validate(m->img, m->size, &g);
    cr_assert_eq(rc, 0, "%s: model: image invalid (%d)", vname, rc);
    shm__svc_bind(&m->s, m->img, &g);
    m->bound = 1;
}

static void model_line(struct model *m, const char *vname, const char *line)
{
    static uint8_t want[256];
    char word[64], arg[512];
    unsigned a, b;
    model_bind(m, vname);
    if (sscanf(line, "verdict any %63s", word) == 1) {
        uint32_t e;
        int rc = shm__svc_server_verdict(&m->s, 0, &e, no_lock, NULL);
        cr_expect_eq(rc, ct_errno_named(word), "%s: \"%s\": %d", vname, line, rc);
    } else if (sscanf(line, "serve_as %u", &a) == 1) {
        memset(&m->v, 0, sizeof m->v);
        m->v.epoch = a;
    } else if (strcmp(line, "attach") == 0) {
        shm__svc_server_attach(&m->s, &m->v, NULL, NULL);
    } else if (strcmp(line, "receive EAGAIN") == 0) {
        struct shm__svc_request r;
        cr_expect_eq(shm__svc_receive(&m->s, &m->v, &r), -EAGAIN, "%s: \"%s\"", vname, line);
    } else if (sscanf(line, "receive %u %u %511s", &a, &b, arg) == 3) {
        struct shm__svc_request r;
        int rc = shm__svc_receive(&m->s, &m->v, &r);
        cr_expect_eq(rc, 0, "%s: \"%s\": %d", vname, line, rc);
        uint64_t wl = ct_unhex(arg, want, sizeof want);
        if (rc == 0)
            cr_expect(r.slot == a && r.seq == b && r.len == wl && memcmp(r.ptr, want, wl) == 0,
                      "%s: \"%s\": got (%u, %lu, %lu bytes)", vname, line, r.slot,
                      (unsigned long)r.seq, (unsigned long)r.len);
    } else if (sscanf(line, "client %u %u", &a, &b) == 2) {
        memset(&m->c, 0, sizeof m->c);
        m->c.index = a;
        m->c.seq = b;
        m->c.awaiting = 1;
        m->c.line = shm__svc_line(&m->s, a);
        m->c.rq = shm__svc_req(&m->s, a);
        m->c.rs = shm__svc_resp(&m->s, a);
    } else if (sscanf(line, "response %511s", arg) == 1) {
        uint8_t got[256];
        uint64_t len = 0;
        int rc = shm__svc_response(&m->s, &m->c, got, sizeof got, NULL, &len);
        if (arg[0] == 'E') {
            cr_expect_eq(rc, ct_errno_named(arg), "%s: \"%s\": %d", vname, line, rc);
        } else {
            uint64_t wl = ct_unhex(arg, want, sizeof want);
            cr_expect_eq(rc, 0, "%s: \"%s\": %d", vname, line, rc);
            cr_expect(len == wl && memcmp(got, want, wl) == 0, "%s: \"%s\": other payload",
                      vname, line);
        }
    } else if (sscanf(line, "join %u %63s", &a, word) == 2) {
        struct shm__svc_client c;
        int rc = shm__svc_client_join(&m->s, &c, a, 1);
        cr_expect_eq(rc < 0 ? rc : 0, ct_errno_named(word), "%s: \"%s\": %d", vname, line, rc);
    } else if (sscanf(line, "req %u %63s %u", &a, word, &b) == 3) {
        static const char *ph[] = {"FREE", "QUEUED", "TAKEN", "INVALID"};
        uint64_t w = __atomic_load_n(&shm__svc_req(&m->s, a)->req, __ATOMIC_ACQUIRE);
        cr_expect(strcmp(ph[w & 3], word) == 0 && (w >> 2) == b, "%s: \"%s\": %s(%lu)", vname,
                  line, ph[w & 3], (unsigned long)(w >> 2));
    } else {
        cr_assert_fail("%s: unknown model line \"%s\"", vname, line);
    }
}

static int check_vector(const char *vname)
{
    char path[4096], line[1024], seg[64], role[32] = "client";
    snprintf(path, sizeof path, "%s/service/%.127s.expect", CT_VECTORS_DIR, vname);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "open %s", path);
    ct_name(seg, "svec");
    snprintf(path, sizeof path, "%s/service/%.127s.bin", CT_VECTORS_DIR, vname);
    struct model m = {0};
    m.img = read_file(path, &m.size);
    write_file(ct_path(seg), m.img, m.size);
    int opened = 0, lines = 0;
    shm_channel_t *ch = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        lines++;
        uint8_t req[256], got[256];
        char a[512], b[64];
        uint64_t len;
        int rc;
        if (sscanf(line, "role %31s", role) == 1) {
            continue;
        } else if (strncmp(line, "open ", 5) == 0) {
            int want = ct_errno_named(line + 5);
            if (strcmp(role, "consumer") == 0)
                rc = shm_channel_open(&ch, seg, SHM_CHANNEL_CONSUMER, 0, 0, 0);
            else if (strcmp(role, "subscriber") == 0)
                rc = shm_channel_open_broadcast(&ch, seg, SHM_CHANNEL_SUBSCRIBER, 0, NULL, 0);
            else
                rc = shm_channel_open_service(&ch, seg, strcmp(role, "server") == 0
                                                            ? SHM_CHANNEL_SERVER
                                                            : SHM_CHANNEL_CLIENT,
                                              0, NULL, 0);
            cr_expect_eq(rc, want, "%s: open %d (%s), expected %d", vname, rc,
                         shm_channel_strerror(rc), want);
            if (rc)
                break;
            opened = 1;
        } else if (strncmp(line, "model ", 6) == 0) {
            model_line(&m, vname, line + 6);
        } else if (sscanf(line, "request %511s %63s", a, b) == 2) {
            uint64_t rl = ct_unhex(a, req, sizeof req);
            rc = shm_channel_request(ch, req, rl, got, sizeof got, &len, 0);
            cr_expect_eq(rc, ct_errno_named(b), "%s: \"%s\": %d (%s)", vname, line, rc,
                         shm_channel_strerror(rc));
        } else if (strcmp(line, "receive EAGAIN") == 0) {
            shm_channel_request_id_t id;
            rc = shm_channel_receive(ch, got, sizeof got, &len, &id, 0);
            cr_expect_eq(rc, -EAGAIN, "%s: \"%s\": %d (%s)", vname, line, rc,
                         shm_channel_strerror(rc));
        } else if (sscanf(line, "counter %63s %511s", b, a) == 2) {
            shm_channel_service_stat_t st;
            cr_assert_eq(shm_channel_service_stat(ch, &st), 0);
            uint64_t v = strcmp(b, "expired") == 0   ? st.expired
                         : strcmp(b, "invalid") == 0 ? st.invalid
                                                     : UINT64_MAX;
            cr_expect_eq(v, strtoull(a, NULL, 10), "%s: \"%s\": %lu", vname, line,
                         (unsigned long)v);
        } else {
            cr_assert_fail("%s: unknown line \"%s\"", vname, line);
        }
    }
    fclose(f);
    free(m.img);
    cr_expect(lines > 0);
    shm_channel_close(ch);
    int rc = shm_channel_unlink(seg, SHM_CHANNEL_FORCE);
    cr_expect(rc == 0 || rc == -ENOENT);
    return opened;
}

Test(svc_vectors, every_vector_reaches_its_verdict)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/service", CT_VECTORS_DIR);
    static char names[128][CT_VECTOR_NAME];
    int n = ct_vector_names(dir, names, 128), opened = 0;
    for (int i = 0; i < n; i++)
        opened += check_vector(names[i]);
    cr_expect_geq(n, 18, "only %d service vectors", n);
    cr_expect_geq(opened, 8, "only %d service vectors opened", opened);
}
