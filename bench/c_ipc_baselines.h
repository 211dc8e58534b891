/* Kernel IPC baselines for issue 6 (c_ipc_baselines.c): a pipe and a Unix domain socket
 * between the two processes of the harness, throughput and 64 B round trip. */
#ifndef SHM_CHANNEL_BENCH_C_IPC_BASELINES_H
#define SHM_CHANNEL_BENCH_C_IPC_BASELINES_H

#include "bench.h"

extern const struct bench_transport bench_pipe, bench_unix, bench_pipe_rtt, bench_unix_rtt;

#endif
