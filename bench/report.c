#define _GNU_SOURCE
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "shm_channel.h"

void bench_meta_collect(struct bench_meta *m)
{
    m->t0 = bench_now_ns();
    snprintf(m->cpu, sizeof m->cpu, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                colon += 2;
                colon[strcspn(colon, "\n")] = 0;
                snprintf(m->cpu, sizeof m->cpu, "%s", colon);
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%.20s %.100s %.20s", u.sysname, u.release,
                 u.machine);
    m->ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->started, sizeof m->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (getloadavg(m->load_start, 3) != 3)
        m->load_start[0] = m->load_start[1] = m->load_start[2] = -1;
}

void bench_meta_finish(struct bench_meta *m)
{
    if (getloadavg(m->load_end, 3) != 3)
        m->load_end[0] = m->load_end[1] = m->load_end[2] = -1;
    m->wall_s = (double)(bench_now_ns() - m->t0) / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct bench_stat3 stat3(const double *v, int n)
{
    struct bench_stat3 s = {NAN, NAN, NAN};
    if (n <= 0)
        return s;
    double tmp[BENCH_MAX_REPS];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_d);
    s.min = tmp[0];
    s.max = tmp[n - 1];
    s.med = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
    return s;
}

static const struct result *find(const struct result *res, int n, int kind, uint64_t size,
                                 const char *id)
{
    for (int i = 0; i < n; i++) {
        int k = res[i].t->kind == BENCH_LOCAL ? BENCH_THROUGHPUT : res[i].t->kind;
        if (k == kind && res[i].size == size && !strcmp(res[i].t->id, id) && res[i].n)
            return &res[i];
    }
    return NULL;
}

void bench_summarize(struct result *res, int n)
{
    for (int i = 0; i < n; i++) {
        struct result *r = &res[i];
        r->sv = stat3(r->v, r->n);
        r->s99 = stat3(r->p99, r->n);
        r->s999 = stat3(r->p999, r->n);
        r->smax = stat3(r->pmax, r->n);
    }
    for (int i = 0; i < n; i++) {
        struct result *r = &res[i];
        int kind = r->t->kind == BENCH_LOCAL ? BENCH_THROUGHPUT : r->t->kind;
        r->ratio = r->vs_memcpy = NAN;
        const struct result *b = r->baseline ? find(res, n, kind, r->size, r->baseline) : NULL;
        r->ratio_of_medians = NAN;
        if (b && r->n) {
            /* Runs are interleaved (run i of every case, then run i + 1): the median of the
             * per-run ratios cancels drifts that a ratio of medians would keep. */
            r->ratio_of_medians = r->sv.med / b->sv.med;
            r->ratio = r->ratio_of_medians;
            if (b->n == r->n) {
                double q[BENCH_MAX_REPS];
                for (int k = 0; k < r->n; k++)
                    q[k] = r->v[k] / b->v[k];
                r->ratio = stat3(q, r->n).med;
            }
        }
        const struct result *mc = find(res, n, BENCH_THROUGHPUT, r->size, "memcpy");
        if (kind == BENCH_THROUGHPUT && mc && r->n)
            r->vs_memcpy = r->sv.med / mc->sv.med;
    }
}

void bench_targets(const struct result *res, int n, struct bench_target t[2])
{
    memset(t, 0, 2 * sizeof *t);
    t[0].what = "64 B write/read throughput >= spsc_ring";
    t[0].limit = 1.0;
    t[1].what = "64 B spinning round trip <= 1.6x cache line";
    t[1].limit = 1.6; /* issue 14 (issue 2 had 2.5x) */
    const struct result *a = find(res, n, BENCH_THROUGHPUT, 64, "shm_copy");
    const struct result *b = find(res, n, BENCH_ROUNDTRIP, 64, "shm_spin");
    if (a && !isnan(a->ratio)) {
        t[0].known = 1;
        t[0].value = a->ratio;
        t[0].met = a->ratio >= t[0].limit;
    }
    if (b && !isnan(b->ratio)) {
        t[1].known = 1;
        t[1].value = b->ratio;
        t[1].met = b->ratio <= t[1].limit;
    }
}

/* ---- text -------------------------------------------------------------------------- */

static const char *si(char *buf, size_t len, double v)
{
    static const char *const suf[] = {"", "k", "M", "G"};
    int k = 0;
    while (fabs(v) >= 1000 && k < 3) {
        v /= 1000;
        k++;
    }
    if (isnan(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, fabs(v) >= 100 ? "%.0f%s" : fabs(v) >= 10 ? "%.1f%s" : "%.2f%s", v,
                 suf[k]);
    return buf;
}

static const char *size_str(char *buf, size_t len, uint64_t n)
{
    if (n >= 1048576 && n % 1048576 == 0)
        snprintf(buf, len, "%llu MiB", (unsigned long long)(n / 1048576));
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, len, "%llu KiB", (unsigned long long)(n / 1024));
    else
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    return buf;
}

static const char *ratio_str(char *buf, size_t len, double r)
{
    if (isnan(r))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.2fx", r);
    return buf;
}

void bench_print_header(FILE *f, const struct bench_meta *m)
{
    fprintf(f, "shm_channel_bench, library %s\n", shm_channel_version_string());
    fprintf(f, "%s, %d CPUs online, %s\n", m->cpu, m->ncpu, m->kernel);
    fprintf(f, "%s; %d runs per figure of ~%.2f s; clock_gettime costs %.0f ns (inside every "
               "round-trip sample)\n",
            m->pinning, m->reps, m->rep_s, m->timer_ns);
    fprintf(f, "shm_channel spin before sleeping: %lld ns%s; load average at start %.2f\n\n",
            (long long)(bench_spin_ns >= 0 ? bench_spin_ns : SHM_CHANNEL_DEFAULT_SPIN_NS),
            bench_spin_ns >= 0 ? " (--spin)" : " (library default)", m->load_start[0]);
    fflush(f);
}

static void range(char *buf, size_t len, struct bench_stat3 s, int si_units)
{
    char a[16], b[16], c[16];
    if (si_units)
        snprintf(buf, len, "%s [%s-%s]", si(a, sizeof a, s.med), si(b, sizeof b, s.min),
                 si(c, sizeof c, s.max));
    else
        snprintf(buf, len, "%.0f [%.0f-%.0f]", s.med, s.min, s.max);
}

void bench_print_tables(FILE *f, const struct bench_meta *m, const struct result *res, int n)
{
    char a[80], b[80], c[80], d[80], e[80];
    int tp = 0, rtt = 0;
    for (int i = 0; i < n; i++) {
        if (res[i].t->kind == BENCH_ROUNDTRIP)
            rtt = 1;
        else
            tp = 1;
    }
    if (tp) {
        fprintf(f, "Throughput: producer -> consumer in two processes; median of %d runs "
                   "[min-max]; GB = 1e9 bytes of payload\n", m->reps);
        fprintf(f, "%-10s %-8s %-28s %-26s %7s %9s %9s\n", "size", "ring", "path",
                "msgs/s", "GB/s", "vs spsc", "vs memcpy");
        uint64_t last = UINT64_MAX;
        for (int i = 0; i < n; i++) {
            const struct result *r = &res[i];
            if (r->t->kind == BENCH_ROUNDTRIP)
                continue;
            if (last != UINT64_MAX && r->size != last)
                fprintf(f, "\n");
            last = r->size;
            if (r->failed && !r->n) {
                fprintf(f, "%-10s %-8s %-28s FAILED: %s\n", size_str(a, sizeof a, r->size),
                        size_str(b, sizeof b, r->capacity), r->t->label, r->err);
                continue;
            }
            range(c, sizeof c, r->sv, 1);
            fprintf(f, "%-10s %-8s %-28s %-26s %7.2f %9s %9s%s\n",
                    size_str(a, sizeof a, r->size), size_str(b, sizeof b, r->capacity),
                    r->t->label, c, r->sv.med * (double)r->size / 1e9,
                    ratio_str(d, sizeof d, r->ratio), ratio_str(e, sizeof e, r->vs_memcpy),
                    r->failed ? "  (a run failed)" : "");
        }
        fprintf(f, "\n");
    }
    if (rtt) {
        fprintf(f, "Round trip, 64 B: ping -> pong -> ping, in ns; for each percentile, the "
                   "median of %d runs [min-max]\n", m->reps);
        fprintf(f, "%-34s %-20s %-20s %-22s %12s\n", "path", "median", "p99", "p99.9",
                "vs cacheline");
        for (int i = 0; i < n; i++) {
            const struct result *r = &res[i];
            if (r->t->kind != BENCH_ROUNDTRIP)
                continue;
            if (r->failed && !r->n) {
                fprintf(f, "%-34s FAILED: %s\n", r->t->label, r->err);
                continue;
            }
            range(a, sizeof a, r->sv, 0);
            range(b, sizeof b, r->s99, 0);
            range(c, sizeof c, r->s999, 0);
            fprintf(f, "%-34s %-20s %-20s %-22s %12s%s\n", r->t->label, a, b, c,
                    ratio_str(d, sizeof d, r->ratio), r->failed ? "  (a run failed)" : "");
        }
        fprintf(f, "\n");
    }
    struct bench_target t[2];
    bench_targets(res, n, t);
    for (int i = 0; i < 2; i++)
        if (t[i].known)
            fprintf(f, "target: %-46s %.2fx  %s\n", t[i].what, t[i].value,
                    t[i].met ? "met" : "NOT MET");
    fprintf(f, "load average at end %.2f; %.0f s in all\n", m->load_end[0], m->wall_s);
}

/* ---- JSON / CSV -------------------------------------------------------------------- */

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void jnum(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fprintf(f, "null");
    else
        fprintf(f, "%.6g", v);
}

static void jarr(FILE *f, const double *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i)
            fputc(',', f);
        jnum(f, v[i]);
    }
    fputc(']', f);
}

static void jstat(FILE *f, const char *key, const double *v, int n, struct bench_stat3 s)
{
    fprintf(f, "\"%s\": {\"runs\": ", key);
    jarr(f, v, n);
    fprintf(f, ", \"median\": ");
    jnum(f, s.med);
    fprintf(f, ", \"min\": ");
    jnum(f, s.min);
    fprintf(f, ", \"max\": ");
    jnum(f, s.max);
    fputc('}', f);
}

static const char *kind_name(int kind)
{
    return kind == BENCH_ROUNDTRIP ? "roundtrip" : kind == BENCH_LOCAL ? "local" : "throughput";
}

int bench_write_json(const char *path, const struct bench_meta *m, const struct result *res,
                     int n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "{\n  \"format\": \"shm_channel_bench/1\",\n  \"library_version\": ");
    jstr(f, shm_channel_version_string());
    fprintf(f, ",\n  \"started\": ");
    jstr(f, m->started);
    fprintf(f, ",\n  \"host\": {\"cpu\": ");
    jstr(f, m->cpu);
    fprintf(f, ", \"cpus_online\": %d, \"kernel\": ", m->ncpu);
    jstr(f, m->kernel);
    fprintf(f, ", \"pinning\": ");
    jstr(f, m->pinning);
    fprintf(f, "},\n  \"params\": {\"runs\": %d, \"seconds_per_run\": %g, \"batch\": %u, "
               "\"timer_ns\": %.1f, \"spin_ns\": %lld},\n",
            m->reps, m->rep_s, m->batch, m->timer_ns,
            (long long)(bench_spin_ns >= 0 ? bench_spin_ns : SHM_CHANNEL_DEFAULT_SPIN_NS));
    fprintf(f, "  \"load_average\": {\"start\": %.2f, \"end\": %.2f},\n  \"wall_seconds\": %.1f,\n",
            m->load_start[0], m->load_end[0], m->wall_s);
    fprintf(f, "  \"results\": [");
    for (int i = 0; i < n; i++) {
        const struct result *r = &res[i];
        fprintf(f, "%s\n    {\"kind\": \"%s\", \"id\": ", i ? "," : "", kind_name(r->t->kind));
        jstr(f, r->t->id);
        fprintf(f, ", \"group\": ");
        jstr(f, r->t->group);
        fprintf(f, ", \"label\": ");
        jstr(f, r->t->label);
        fprintf(f, ", \"size\": %llu, \"capacity\": %llu, \"count_per_run\": %llu, ",
                (unsigned long long)r->size, (unsigned long long)r->capacity,
                (unsigned long long)r->count);
        if (r->t->kind == BENCH_ROUNDTRIP) {
            fprintf(f, "\"unit\": \"ns\", ");
            jstat(f, "median", r->v, r->n, r->sv);
            fprintf(f, ", ");
            jstat(f, "p99", r->p99, r->n, r->s99);
            fprintf(f, ", ");
            jstat(f, "p999", r->p999, r->n, r->s999);
            fprintf(f, ", ");
            jstat(f, "max", r->pmax, r->n, r->smax);
        } else {
            fprintf(f, "\"unit\": \"msgs/s\", ");
            jstat(f, "msgs_per_s", r->v, r->n, r->sv);
            fprintf(f, ", \"gbytes_per_s\": ");
            jnum(f, r->sv.med * (double)r->size / 1e9);
            fprintf(f, ", \"vs_memcpy\": ");
            jnum(f, r->vs_memcpy);
        }
        /* The stream cases' wait counters over the measured runs (shm_channel_stat_t). */
        if (!strncmp(r->t->id, "shm_", 4))
            fprintf(f, ", \"counters\": {\"messages\": %llu, \"full_events\": %llu, "
                       "\"empty_events\": %llu, \"producer_sleeps\": %llu, "
                       "\"consumer_sleeps\": %llu, \"producer_wakes\": %llu, "
                       "\"consumer_wakes\": %llu}",
                    (unsigned long long)r->messages, (unsigned long long)r->info_sum[0],
                    (unsigned long long)r->info_sum[1], (unsigned long long)r->info_sum[2],
                    (unsigned long long)r->info_sum[3], (unsigned long long)r->info_sum[4],
                    (unsigned long long)r->info_sum[5]);
        fprintf(f, ", \"baseline\": ");
        if (r->baseline)
            jstr(f, r->baseline);
        else
            fprintf(f, "null");
        fprintf(f, ", \"ratio\": ");
        jnum(f, r->ratio);
        fprintf(f, ", \"ratio_of_medians\": ");
        jnum(f, r->ratio_of_medians);
        fprintf(f, ", \"error\": ");
        if (r->failed)
            jstr(f, r->err);
        else
            fprintf(f, "null");
        fputc('}', f);
    }
    struct bench_target t[2];
    bench_targets(res, n, t);
    fprintf(f, "\n  ],\n  \"targets\": [");
    for (int i = 0; i < 2; i++) {
        fprintf(f, "%s\n    {\"what\": ", i ? "," : "");
        jstr(f, t[i].what);
        fprintf(f, ", \"limit\": %g, \"value\": ", t[i].limit);
        jnum(f, t[i].known ? t[i].value : NAN);
        fprintf(f, ", \"met\": %s}", !t[i].known ? "null" : t[i].met ? "true" : "false");
    }
    fprintf(f, "\n  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

int bench_write_csv(const char *path, const struct bench_meta *m, const struct result *res,
                    int n)
{
    (void)m;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "kind,id,group,size,capacity,metric,unit,median,min,max,ratio,baseline,runs\n");
    for (int i = 0; i < n; i++) {
        const struct result *r = &res[i];
        const char *metrics[3] = {"msgs_per_s", NULL, NULL};
        const double *vals[3] = {r->v, NULL, NULL};
        struct bench_stat3 st[3] = {r->sv, r->s99, r->s999};
        if (r->t->kind == BENCH_ROUNDTRIP) {
            metrics[0] = "median";
            metrics[1] = "p99";
            metrics[2] = "p999";
            vals[1] = r->p99;
            vals[2] = r->p999;
        }
        for (int k = 0; k < 3 && metrics[k]; k++) {
            fprintf(f, "%s,%s,%s,%llu,%llu,%s,%s,%.6g,%.6g,%.6g,", kind_name(r->t->kind),
                    r->t->id, r->t->group, (unsigned long long)r->size,
                    (unsigned long long)r->capacity, metrics[k],
                    r->t->kind == BENCH_ROUNDTRIP ? "ns" : "msgs/s", st[k].med, st[k].min,
                    st[k].max);
            if (k == 0 && !isnan(r->ratio))
                fprintf(f, "%.4g", r->ratio);
            fprintf(f, ",%s,", r->baseline && k == 0 ? r->baseline : "");
            for (int j = 0; j < r->n; j++)
                fprintf(f, "%s%.6g", j ? ";" : "", vals[k][j]);
            fprintf(f, "\n");
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}
