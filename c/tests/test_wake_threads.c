/* test_wake.c with threads for peers (and so under ThreadSanitizer): see there. */
#define CT_WAKE_THREADS 1
#include "test_wake.c"
