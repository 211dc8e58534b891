/* Argument parsing shared by the demo programs: options first (-h/--help; "--" ends them),
 * then positional arguments. Bad arguments print the usage and exit 2 before anything is
 * created; --help prints it and exits 0. */
#ifndef DEMO_ARGS_H
#define DEMO_ARGS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void demo_usage(FILE *f, const char *usage, int status)
{
    fputs(usage, f);
    exit(status);
}

/* Collect the positional arguments into pos[0..max-1]; returns how many. */
static int demo_positional(int argc, char **argv, const char *usage, const char **pos, int max)
{
    int n = 0, options = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help")))
            demo_usage(stdout, usage, 0);
        if (options && !strcmp(a, "--")) {
            options = 0;
            continue;
        }
        if (options && a[0] == '-' && a[1]) {
            fprintf(stderr, "%s: unknown option %s\n", argv[0], a);
            demo_usage(stderr, usage, 2);
        }
        if (n == max) {
            fprintf(stderr, "%s: too many arguments\n", argv[0]);
            demo_usage(stderr, usage, 2);
        }
        pos[n++] = a;
    }
    return n;
}

/* A whole, non-negative number (decimal, 0x hex or 0 octal), else usage and exit 2. */
static uint64_t demo_number(const char *prog, const char *what, const char *s, const char *usage)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*s < '0' || *s > '9' || *end || errno) {
        fprintf(stderr, "%s: %s must be a non-negative number, not \"%s\"\n", prog, what, s);
        demo_usage(stderr, usage, 2);
    }
    return (uint64_t)v;
}

#endif
