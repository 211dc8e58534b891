/* The CT_PLAIN runner (see ct_criterion.h): used only by ThreadSanitizer builds. */
#define _GNU_SOURCE
#include "ct_criterion.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct ct_plain_test *tests;
static struct ct_plain_test *current;

void ct_plain_register(struct ct_plain_test *t)
{
    /* keep registration order */
    struct ct_plain_test **p = &tests;
    while (*p)
        p = &(*p)->next;
    *p = t;
}

#pragma GCC diagnostic ignored "-Wformat-nonliteral"
void ct_plain_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n  ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n[FAIL] %s::%s\n", current ? current->suite : "?",
            current ? current->name : "?");
    if (current && current->cfg->fini)
        current->cfg->fini();
    exit(1);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv; /* Criterion's options (--jobs=1) are accepted and ignored */
    int n = 0;
    for (current = tests; current; current = current->next, n++) {
        fprintf(stderr, "[RUN ] %s::%s\n", current->suite, current->name);
        if (current->cfg->init)
            current->cfg->init();
        current->fn();
        if (current->cfg->fini)
            current->cfg->fini();
        fprintf(stderr, "[PASS] %s::%s\n", current->suite, current->name);
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: 0 | Crashing: 0\n", n, n);
    return 0;
}
