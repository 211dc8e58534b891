/* Criterion, or (with CT_PLAIN) a minimal stand-in for the few Criterion macros the threaded
 * tests use. CT_PLAIN exists for ThreadSanitizer builds: Criterion's runner aborts under TSan
 * ("Could not initialize inheritable arena", Snaipe/Criterion#274). The stand-in runs every
 * test in this process, in order; a failed assertion prints and exits non-zero. */
#ifndef SHM_CHANNEL_CT_CRITERION_H
#define SHM_CHANNEL_CT_CRITERION_H

#ifndef CT_PLAIN
#include <criterion/criterion.h>
#else

struct ct_plain_suite {
    void (*init)(void);
    void (*fini)(void);
    double timeout;
};

struct ct_plain_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    const struct ct_plain_suite *cfg;
    struct ct_plain_test *next;
};

void ct_plain_register(struct ct_plain_test *t);
_Noreturn void ct_plain_fail(const char *file, int line, const char *expr, const char *fmt, ...);

#define TestSuite(suite, ...) static const struct ct_plain_suite ct_plain_suite_##suite = {__VA_ARGS__}

#define Test(suite, name)                                                                    \
    static void suite##_##name##_impl(void);                                                 \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                      \
    {                                                                                        \
        static struct ct_plain_test t = {#suite, #name, suite##_##name##_impl,               \
                                         &ct_plain_suite_##suite, 0};                        \
        ct_plain_register(&t);                                                               \
    }                                                                                        \
    static void suite##_##name##_impl(void)

#define CT_PLAIN_ASSERT_(cond, ...)                                                          \
    do {                                                                                     \
        if (!(cond))                                                                         \
            ct_plain_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                           \
    } while (0)
#define CT_PLAIN_EQ_(a, b, ...) CT_PLAIN_ASSERT_((a) == (b), __VA_ARGS__)
#define cr_assert(...) CT_PLAIN_ASSERT_(__VA_ARGS__, "")
#define cr_assert_eq(...) CT_PLAIN_EQ_(__VA_ARGS__, "")
#define cr_assert_fail(...) ct_plain_fail(__FILE__, __LINE__, "failure", __VA_ARGS__)

#endif
#endif
