/* shm_channel command-line tool: shared declarations. One command table (main.c) drives
 * dispatch; each command group lives in its own file; json.c is the small JSON writer. */
#ifndef SHM_CHANNEL_CLI_H
#define SHM_CHANNEL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "shm_channel.h"

/* Exit statuses (shm_channel --help, docs/cli.md). */
enum {
    CLI_OK = 0,       /* done */
    CLI_FAIL = 1,     /* runtime failure: no such channel, permission, peer died, I/O error */
    CLI_USAGE = 2,    /* bad command line: nothing was done */
    CLI_PROBLEMS = 3, /* doctor: problems were found */
    CLI_TIMEOUT = 4   /* recv/hz/call --timeout: nothing arrived in time */
};

/* --- options -------------------------------------------------------------------------- */
enum opt_type { OPT_FLAG, OPT_U64, OPT_DOUBLE, OPT_STR };

struct opt_spec {
    const char *name;  /* long name without "--" */
    char shortname;    /* 0: none */
    enum opt_type type;
    const char *help;
};

#define CLI_MAX_OPTS 16
#define CLI_MAX_ARGS 64

/* The parsed command line of one command. */
struct cli_args {
    const struct opt_spec *spec;
    int given[CLI_MAX_OPTS];
    uint64_t u64[CLI_MAX_OPTS];
    double dbl[CLI_MAX_OPTS];
    const char *str[CLI_MAX_OPTS];
    int npos;
    const char *pos[CLI_MAX_ARGS];
};

/* Does the command declare option `name`. */
int opt_declared(const struct cli_args *a, const char *name);
/* Is option `name` given; its value (or dflt). */
int opt_given(const struct cli_args *a, const char *name);
uint64_t opt_u64(const struct cli_args *a, const char *name, uint64_t dflt);
double opt_double(const struct cli_args *a, const char *name, double dflt);
const char *opt_str(const struct cli_args *a, const char *name, const char *dflt);

/* "shm_channel <cmd>: <message>", then the command's usage on stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "shm_channel <cmd> <name>: <what>: <strerror(rc)>" on stderr; returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *name, const char *what, int rc);
/* "shm_channel <cmd>: <path>: <strerror(-rc)>" for a file (not a channel); CLI_FAIL. */
int cli_fail_file(const char *cmd, const char *path, int rc);

/* --- the command table ---------------------------------------------------------------- */
struct command {
    const char *name;
    const char *synopsis; /* arguments, e.g. "NAME" */
    const char *summary;  /* one line */
    const char *details;  /* more lines for `shm_channel CMD --help`, or NULL */
    int min_pos, max_pos; /* positional arguments after the command */
    const struct opt_spec *opts;
    int (*run)(const struct cli_args *a);
};

/* --- JSON writer (json.c) ------------------------------------------------------------- */
/* Writes compact JSON to a FILE; commas are placed automatically. Keys are only for
 * members of objects. */
struct json {
    FILE *f;
    int depth;
    int first[32];
};
void json_init(struct json *j, FILE *f);
void json_obj_begin(struct json *j, const char *key);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j, const char *key);
void json_arr_end(struct json *j);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_double(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, int v);
void json_str(struct json *j, const char *key, const char *s);
void json_strn(struct json *j, const char *key, const void *s, size_t n);
void json_null(struct json *j, const char *key);
void json_hex(struct json *j, const char *key, const void *p, size_t n);
/* End a top-level value with a newline. */
void json_end(struct json *j);

/* --- channels of every kind (kinds.c) -------------------------------------------------- */
/* Text for a recorded peer state and its liveness: alive, dead, closed, none. */
const char *cli_state_name(uint32_t state, int alive);
const char *cli_kind_name(uint32_t kind);

/* One observed channel: a snapshot of its counters, any kind. */
struct chan_snap {
    char name[SHM_CHANNEL_NAME_MAX + 2];
    shm_channel_stat_t st;
    shm_channel_broadcast_stat_t bs; /* broadcast only */
    uint32_t subs_live;              /* broadcast: entries held by a live process */
    uint64_t sub_sleeps;             /* broadcast: sum over entries */
    uint64_t max_lag;                /* broadcast: largest lag of a live subscriber */
    uint64_t missed;                 /* broadcast: sum over entries */
    uint64_t t_ns;                   /* CLOCK_MONOTONIC when taken */
    /* Kinds whose calls the public header may not have yet: each is compiled in when the
     * header defines its block (service: issue 12; compat: issue 13). */
#ifdef SHM_CHANNEL_SERVICE_MAX_CLIENTS
#define CLI_HAVE_SERVICE 1
    shm_channel_service_stat_t svc;
#endif
#ifdef SHM_CHANNEL_KIND_COMPAT
#define CLI_HAVE_COMPAT 1
    shm_channel_compat_stat_t cs;
#endif
};

/* Per-kind operations: one row per kind this tool knows. */
struct kind_ops {
    uint32_t kind;
    const char *name;
    const char *not_yet; /* non-NULL: the kind is not in this build's API; why */
    /* Fill the kind's part of the snapshot from an observer handle. */
    int (*snap)(shm_channel_t *ch, struct chan_snap *s);
    void (*stat_text)(shm_channel_t *ch, const struct chan_snap *s);
    void (*stat_json)(shm_channel_t *ch, const struct chan_snap *s, struct json *j);
};
const struct kind_ops *cli_kind_ops(uint32_t kind);
const struct kind_ops *cli_kind_by_name(const char *name);

/* Open an observer on `name` and take a snapshot; *ch (if not NULL) keeps the handle. */
int cli_observe(const char *name, struct chan_snap *s, shm_channel_t **ch);
/* The same with extra open flags (SHM_CHANNEL_COMPAT for a compat segment). */
int cli_observe_flags(const char *name, uint32_t flags, struct chan_snap *s, shm_channel_t **ch);
/* The members of one channel's JSON object (without the braces). */
void cli_snap_json(shm_channel_t *ch, const struct chan_snap *s, struct json *j);
/* Call fn for every channel in the directory (files that are not channels are skipped).
 * Returns -errno if the directory cannot be read, else the OR of fn's results. */
int cli_each_channel(int (*fn)(const char *name, void *ctx), void *ctx);

uint64_t cli_now_ns(void);
uint64_t cli_realtime_ns(void);
void cli_sleep_ns(uint64_t ns);
/* Set by SIGINT/SIGTERM once cli_catch_signals() ran. */
extern volatile int cli_stop;
void cli_catch_signals(void);

/* --- commands ------------------------------------------------------------------------- */
int cmd_ls(const struct cli_args *a);
int cmd_stat(const struct cli_args *a);
int cmd_rm(const struct cli_args *a);
int cmd_gc(const struct cli_args *a);
int cmd_version(const struct cli_args *a);
int cmd_top(const struct cli_args *a);
int cmd_hz(const struct cli_args *a);
int cmd_send(const struct cli_args *a);
int cmd_recv(const struct cli_args *a);
int cmd_call(const struct cli_args *a);
int cmd_record(const struct cli_args *a);
int cmd_replay(const struct cli_args *a);
int cmd_doctor(const struct cli_args *a);

extern const struct opt_spec opts_none[], opts_json[], opts_stat[], opts_rm[], opts_top[], opts_hz[],
    opts_send[], opts_recv[], opts_call[], opts_record[], opts_replay[], opts_doctor[];

/* --- bridges (bridge.c): counters of the shm-channel-bridge processes serving this folder,
 * from their status files (docs/cli.md, "Bridges"). j NULL: text. */
void cli_bridge_stat(const char *name, struct json *j); /* stat NAME: "bridges" array / lines */
void cli_bridge_top(struct json *j);                    /* top: "bridges" array / a table */

#endif
