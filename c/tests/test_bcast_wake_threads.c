/* test_bcast_wake.c with threads for subscribers (and so under ThreadSanitizer): see there. */
#define CT_BWAKE_THREADS 1
#include "test_bcast_wake.c"
