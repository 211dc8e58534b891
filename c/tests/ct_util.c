#define _GNU_SOURCE
#include "ct.h"

#include "ct_criterion.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir_buf[PATH_MAX];
static unsigned name_counter;

void ct_setup(void)
{
    snprintf(dir_buf, sizeof dir_buf, "/dev/shm/ct-dir-%ld-XXXXXX", (long)getpid());
    if (!mkdtemp(dir_buf))
        cr_assert_fail("mkdtemp %s: %s", dir_buf, strerror(errno));
    setenv("SHM_CHANNEL_DIR", dir_buf, 1);
}

void ct_teardown(void)
{
    if (!dir_buf[0])
        return;
    DIR *d = opendir(dir_buf);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
                unlinkat(dirfd(d), e->d_name, 0) != 0 && errno == EISDIR)
                unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR); /* a squatter's directory */
        }
        closedir(d);
    }
    rmdir(dir_buf);
    dir_buf[0] = 0;
}

const char *ct_dir(void)
{
    return dir_buf;
}

char *ct_name(char *buf, const char *tag)
{
    snprintf(buf, 64, "ct-%ld-%u-%s", (long)getpid(), name_counter++, tag ? tag : "x");
    return buf;
}

const char *ct_path(const char *name)
{
    static char path[PATH_MAX + 256];
    if (name[0] == '/')
        name++;
    snprintf(path, sizeof path, "%s/%s", dir_buf, name);
    return path;
}

int ct_exists(const char *name)
{
    struct stat st;
    return lstat(ct_path(name), &st) == 0;
}

int ct_count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

int ct_count_files(void)
{
    return ct_count_entries(dir_buf);
}

uint64_t ct_scaled(uint64_t base, uint64_t min)
{
    const char *s = getenv("SHM_CHANNEL_TEST_SCALE");
    double f = s && *s ? strtod(s, NULL) : 1.0;
    if (!(f > 0))
        f = 1.0;
    double n = (double)base * f;
    return n < (double)min ? min : (uint64_t)n;
}

void ct_pin(int n)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
        return;
    int want = n % CPU_COUNT(&set);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set) && want-- == 0) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

uint64_t ct_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ct_cpu_ns(pid_t pid)
{
    uint64_t runs;
    return ct_schedstat(pid, &runs);
}

uint64_t ct_schedstat(pid_t pid, uint64_t *runs)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/schedstat", (long)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "cannot open %s", path);
    unsigned long long ns = 0, waited = 0, slices = 0;
    cr_assert_eq(fscanf(f, "%llu %llu %llu", &ns, &waited, &slices), 3);
    fclose(f);
    *runs = slices;
    return ns;
}

void ct_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

pid_t ct_fork(int (*fn)(void *), void *arg)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        /* A child never outlives a failed (aborted) test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(120);
        _exit(fn(arg));
    }
    return pid;
}

int ct_wait(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* ---- self-checking messages -------------------------------------------------------- */

uint64_t ct_mix(uint64_t x)
{
    /* splitmix64 finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t ct_msg_len(uint64_t seed, uint64_t seq, uint64_t max)
{
    uint64_t r = ct_mix(seed * 0x100000001b3ull ^ seq);
    unsigned pick = (unsigned)(r & 63);
    r >>= 8;
    if (pick == 0)
        return 0;
    if (pick == 1)
        return max;
    if (pick < 33) /* half the messages are small: many records per lap */
        return r % (max < 64 ? max + 1 : 65);
    return r % (max + 1);
}

static uint64_t checksum(const uint8_t *p, uint64_t n, uint64_t seed, uint64_t seq, uint64_t len)
{
    uint64_t h = ct_mix(seed ^ (seq * 0x9e3779b97f4a7c15ull) ^ (len << 1));
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return ct_mix(h);
}

static void pattern(uint8_t *p, uint64_t seed, uint64_t seq, uint64_t len)
{
    uint64_t w = ct_mix(seed + seq);
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(p + i, &w, 8);
        w += 0x9e3779b97f4a7c15ull;
    }
    for (; i < len; i++)
        p[i] = (uint8_t)(w >> (8 * (i & 7)));
}

void ct_msg_fill(void *buf, uint64_t seed, uint64_t seq, uint64_t len)
{
    uint8_t *p = buf;
    pattern(p, seed, seq, len);
    if (len >= 8)
        memcpy(p, &seq, 8);
    if (len >= 16) {
        uint64_t c = checksum(p + 16, len - 16, seed, seq, len);
        memcpy(p + 8, &c, 8);
    }
}

uint64_t ct_msg_seq(const void *buf)
{
    uint64_t s;
    memcpy(&s, buf, 8);
    return s;
}

int ct_msg_check(const void *buf, uint64_t len, uint64_t seed, uint64_t seq, uint64_t max)
{
    return ct_msg_verify(buf, len, seed, seq, ct_msg_len(seed, seq, max));
}

int ct_msg_verify(const void *buf, uint64_t len, uint64_t seed, uint64_t seq, uint64_t want_len)
{
    const uint8_t *p = buf;
    if (len != want_len)
        return 1;
    if (len >= 8 && ct_msg_seq(p) != seq)
        return 2;
    if (len >= 16) {
        uint64_t c;
        memcpy(&c, p + 8, 8);
        return c == checksum(p + 16, len - 16, seed, seq, len) ? 0 : 3;
    }
    uint8_t want[16];
    ct_msg_fill(want, seed, seq, len);
    return memcmp(want, p, len) ? 4 : 0;
}

int ct_small_tmpfs(const char *mnt, uint64_t size, char *why, size_t why_len)
{
    char opts[64];
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(why, why_len, "unshare(CLONE_NEWNS): %s", strerror(errno));
        return CT_SKIPPED;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(why, why_len, "making mounts private: %s", strerror(errno));
        return CT_SKIPPED;
    }
    snprintf(opts, sizeof opts, "size=%llu,mode=0700", (unsigned long long)size);
    if (mount("shm_channel_test", mnt, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) != 0) {
        snprintf(why, why_len, "mount tmpfs: %s", strerror(errno));
        return CT_SKIPPED;
    }
    setenv("SHM_CHANNEL_DIR", mnt, 1);
    return 0;
}

/* ---- control pages and segments shared with forked peers --------------------------- */

void *ct_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        cr_assert_fail("mmap of a shared page (%zu bytes): %s", size, strerror(errno));
    return p; /* anonymous memory comes zeroed */
}

int ct_await_geq(const uint64_t *p, uint64_t v, uint64_t timeout_ns)
{
    uint64_t t0 = ct_now_ns();
    while (ct_ld(p) < v) {
        if (ct_now_ns() - t0 > timeout_ns)
            return -ETIMEDOUT;
        usleep(100);
    }
    return 0;
}

int ct_stress(void)
{
    const char *s = getenv("SHM_CHANNEL_STRESS");
    return s && *s && strcmp(s, "0") != 0;
}

void *ct_map_segment(const char *name, uint64_t min_size, size_t map_len)
{
    int fd = -1;
    for (uint64_t t0 = ct_now_ns(); fd < 0; ct_sleep_ms(1)) {
        fd = open(ct_path(name), O_RDWR | O_CLOEXEC);
        cr_assert(fd >= 0 || ct_now_ns() - t0 < 60 * CT_SEC, "segment %s never appeared", name);
    }
    struct stat sb;
    for (;; ct_sleep_ms(1)) {
        cr_assert_eq(fstat(fd, &sb), 0);
        if ((uint64_t)sb.st_size >= min_size)
            break;
    }
    void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert(p != MAP_FAILED, "mmap %s: %s", name, strerror(errno));
    close(fd);
    return p;
}

int ct_stalled(struct ct_stall *s, int stuck, uint64_t a, uint64_t b, uint64_t ns)
{
    int same = a == s->a && b == s->b;
    s->a = a;
    s->b = b;
    if (!stuck || !same) {
        s->since = 0;
        return 0;
    }
    uint64_t now = ct_now_ns();
    if (!s->since) {
        s->since = now;
        return 0;
    }
    if (now - s->since <= ns)
        return 0;
    s->since = 0;
    return 1;
}

void *ct_map_header(const char *name, int writable)
{
    int fd = open(ct_path(name), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    void *p = mmap(NULL, SHM_CHANNEL_HEADER_SIZE, PROT_READ | (writable ? PROT_WRITE : 0),
                   MAP_SHARED, fd, 0);
    close(fd); /* OFD locks belong to other descriptions: closing ours drops none */
    return p == MAP_FAILED ? NULL : p;
}

void ct_unmap_header(const void *h)
{
    if (h)
        munmap((void *)(uintptr_t)h, SHM_CHANNEL_HEADER_SIZE);
}

/* ---- golden vectors ------------------------------------------------------------------ */

int ct_errno_named(const char *s)
{
    static const struct {
        const char *name;
        int code;
    } names[] = {{"ok", 0},
                 {"none", EAGAIN},
                 {"EPROTO", EPROTO},
                 {"EPROTONOSUPPORT", EPROTONOSUPPORT},
                 {"EPROTOTYPE", EPROTOTYPE},
                 {"EBADMSG", EBADMSG},
                 {"EMEDIUMTYPE", EMEDIUMTYPE},
                 {"EAGAIN", EAGAIN},
                 {"EPIPE", EPIPE},
                 {"EOWNERDEAD", EOWNERDEAD},
                 {"ECONNRESET", ECONNRESET},
                 {"ETIMEDOUT", ETIMEDOUT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0)
            return -names[i].code;
    cr_assert_fail("unknown verdict \"%s\"", s);
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

uint64_t ct_unhex(const char *h, uint8_t *buf, size_t cap)
{
    if (h[0] == '-' && (h[1] == 0 || h[1] == ' '))
        return 0;
    uint64_t n = 0;
    for (; h[0] && h[0] != ' '; h += 2) {
        int hi = hexval(h[0]), lo = hi < 0 ? -1 : hexval(h[1]);
        if (hi < 0 || lo < 0)
            cr_assert_fail("bad hex (lowercase pairs expected) in \"%s\"", h);
        if (n >= cap)
            cr_assert_fail("hex longer than %zu bytes", cap);
        buf[n++] = (uint8_t)(hi << 4 | lo);
    }
    return n;
}

void ct_copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    cr_assert(in >= 0, "open %s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert(out >= 0, "create %s: %s", to, strerror(errno));
    cr_assert_eq(fchmod(out, 0600), 0);
    char buf[8192];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        cr_assert_eq(write(out, buf, (size_t)n), n);
    cr_assert_eq(n, 0);
    close(in);
    close(out);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

int ct_vector_names(const char *dir, char (*names)[CT_VECTOR_NAME], int max)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 7 && strcmp(e->d_name + l - 7, ".expect") == 0) {
            cr_assert(n < max && l - 7 < CT_VECTOR_NAME, "%s: too many vectors or too long a name",
                      dir);
            memcpy(names[n], e->d_name, l - 7);
            names[n++][l - 7] = 0;
        }
    }
    closedir(d);
    qsort(names, (size_t)n, CT_VECTOR_NAME, name_cmp);
    return n;
}
