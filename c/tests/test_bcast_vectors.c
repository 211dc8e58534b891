/* Every golden vector of spec/vectors/broadcast/ through its checker procedure
 * (spec/vectors/broadcast/README.md): copy NAME.bin into the segment directory, open it as a
 * broadcast subscriber starting at the oldest held message (or as a stream consumer), expect
 * the open verdict, then run the msg / latest / latest_end / end lines, non-blocking. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct.h"

#ifndef CT_VECTORS_DIR
#error "CT_VECTORS_DIR must name spec/vectors"
#endif

TestSuite(bcast_vectors, .init = ct_setup, .fini = ct_teardown, .timeout = 60);

static int check_vector(const char *vname)
{
    char path[4096], line[1024], tag[1024] = "", seg[64];
    snprintf(path, sizeof path, "%s/broadcast/%.127s.expect", CT_VECTORS_DIR, vname);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "open %s", path);
    ct_name(seg, "bvec");
    snprintf(path, sizeof path, "%s/broadcast/%.127s.bin", CT_VECTORS_DIR, vname);
    ct_copy_file(path, ct_path(seg));
    int consumer = 0, opened = 0, ended = 0, lines = 0;
    shm_channel_t *ch = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        cr_assert(!ended, "%s: a line after end", vname);
        static uint8_t want[256], got[256];
        uint64_t wlen, len, missed, wmissed;
        int32_t is_new;
        int wnew, rc;
        lines++;
        if (strcmp(line, "role consumer") == 0) {
            consumer = 1;
        } else if (strcmp(line, "role subscriber") == 0) {
            consumer = 0;
        } else if (strncmp(line, "require ", 8) == 0) {
            snprintf(tag, sizeof tag, "%s", line + 8);
        } else if (strncmp(line, "open ", 5) == 0) {
            int want_rc = ct_errno_named(line + 5);
            shm_channel_broadcast_config_t cfg = {0, 0, 0, tag, {0}};
            rc = consumer ? shm_channel_open(&ch, seg, SHM_CHANNEL_CONSUMER, 0, 0, 0)
                          : shm_channel_open_broadcast(&ch, seg, SHM_CHANNEL_SUBSCRIBER,
                                                       SHM_CHANNEL_FROM_OLDEST, &cfg, 0);
            cr_expect_eq(rc, want_rc, "%s: open %d (%s), expected %d", vname, rc,
                         shm_channel_strerror(rc), want_rc);
            if (rc)
                break;
            opened = 1;
        } else if (strncmp(line, "msg ", 4) == 0) {
            cr_assert(opened, "%s: msg before open", vname);
            wlen = ct_unhex(line + 4, want, sizeof want);
            const char *m = strstr(line, " missed ");
            cr_assert_not_null(m);
            wmissed = strtoull(m + 8, NULL, 10);
            rc = shm_channel_recv(ch, got, sizeof got, &len, &missed, 0);
            cr_expect_eq(rc, 0, "%s: \"%s\": %d (%s)", vname, line, rc, shm_channel_strerror(rc));
            if (rc)
                break;
            cr_expect(len == wlen && memcmp(got, want, len) == 0, "%s: \"%s\": other payload",
                      vname, line);
            cr_expect_eq(missed, wmissed, "%s: \"%s\": missed %lu", vname, line,
                         (unsigned long)missed);
        } else if (strncmp(line, "latest ", 7) == 0) {
            wlen = ct_unhex(line + 7, want, sizeof want);
            const char *nw = strstr(line, " new ");
            const char *m = strstr(line, " missed ");
            cr_assert(nw && m);
            wnew = atoi(nw + 5);
            wmissed = strtoull(m + 8, NULL, 10);
            rc = shm_channel_read_latest(ch, got, sizeof got, &len, &is_new, &missed);
            cr_expect_eq(rc, 0, "%s: \"%s\": %d (%s)", vname, line, rc, shm_channel_strerror(rc));
            if (rc)
                break;
            cr_expect(len == wlen && memcmp(got, want, len) == 0, "%s: \"%s\": other payload",
                      vname, line);
            cr_expect_eq(is_new, wnew, "%s: \"%s\": is_new %d", vname, line, is_new);
            cr_expect_eq(missed, wmissed, "%s: \"%s\": missed %lu", vname, line,
                         (unsigned long)missed);
        } else if (strncmp(line, "latest_end ", 11) == 0) {
            int want_rc = ct_errno_named(line + 11);
            rc = shm_channel_read_latest(ch, got, sizeof got, &len, &is_new, &missed);
            cr_expect_eq(rc, want_rc, "%s: \"%s\": %d (%s)", vname, line, rc,
                         shm_channel_strerror(rc));
        } else if (strncmp(line, "end ", 4) == 0) {
            int want_rc = ct_errno_named(line + 4);
            rc = consumer ? shm_channel_read(ch, got, sizeof got, &len, 0)
                          : shm_channel_recv(ch, got, sizeof got, &len, &missed, 0);
            cr_expect_eq(rc, want_rc, "%s: end %d (%s), expected %d", vname, rc,
                         shm_channel_strerror(rc), want_rc);
            ended = 1;
        } else {
            cr_assert_fail("%s: unknown line \"%s\"", vname, line);
        }
    }
    fclose(f);
    cr_expect(lines > 0);
    if (opened)
        cr_expect(ended, "%s: open ok needs an end line", vname);
    shm_channel_close(ch);
    int rc = shm_channel_unlink(seg, SHM_CHANNEL_FORCE);
    cr_expect(rc == 0 || rc == -ENOENT);
    return opened;
}

Test(bcast_vectors, every_vector_reaches_its_verdict)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/broadcast", CT_VECTORS_DIR);
    static char names[128][CT_VECTOR_NAME];
    int n = ct_vector_names(dir, names, 128), opened = 0;
    for (int i = 0; i < n; i++)
        opened += check_vector(names[i]);
    cr_expect_geq(n, 20, "only %d broadcast vectors", n);
    cr_expect_geq(opened, 10, "only %d broadcast vectors opened", opened);
}
