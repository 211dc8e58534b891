/* shm_channel: list, inspect, watch, talk to and clean up channels from a shell.
 * One command table drives dispatch, option parsing and every --help text. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct command commands[] = {
    {"ls", "", "list channels (--json: their stat objects)", NULL, 0, 0, opts_json, cmd_ls},
    {"stat", "NAME", "a channel's parameters, counters and peers",
     "--kind compat|service names a kind that has no shm_channel header (compat) or that\n"
     "this build may not read yet (service).\n",
     1, 1, opts_stat, cmd_stat},
    {"top", "", "live table of every channel: rates, fill or lag, events, peers",
     "Refreshes every --interval seconds (default 1) in place (ANSI codes, no curses) until\n"
     "interrupted; --once samples one interval and prints one plain table (or --json).\n",
     0, 0, opts_top, cmd_top},
    {"hz", "NAME", "message and byte rate of one channel, one line per interval",
     "Runs until interrupted or --count lines were printed.\n", 1, 1, opts_hz, cmd_hz},
    {"send", "NAME [FILE...]", "write messages from stdin (or files) to a stream or broadcast",
     "stdin: one message per line (the newline not included); --frames: u32 little-endian\n"
     "length, then that many bytes, repeated; --file: each FILE (\"-\": stdin) is one message.\n"
     "A stream producer's exit marks end-of-stream. --create makes the channel if missing\n"
     "(a stream, or with --broadcast a broadcast channel).\n",
     1, CLI_MAX_ARGS - 1, opts_send, cmd_send},
    {"recv", "NAME", "read messages from a stream or broadcast channel to stdout",
     "--format lines (default: each message and a newline), raw (bytes as they are), frames\n"
     "(u32 little-endian length + bytes, what send --frames reads), hex (one line each),\n"
     "json (one object per line: seq, len, missed, hex, text if printable).\n"
     "Stream: waits for messages until end-of-stream or --count. Broadcast: prints the\n"
     "messages held (oldest first) and stops, or with --follow waits for new ones until the\n"
     "publisher closes.\n",
     1, 1, opts_recv, cmd_recv},
    {"call", "NAME", "service: send one request (stdin) and print the response", NULL, 1, 1,
     opts_call, cmd_call},
    {"record", "NAME FILE", "record a channel's messages with timestamps to FILE",
     "Consumes a stream (as its consumer) or subscribes to a broadcast channel, until\n"
     "end-of-stream, --count, or SIGINT/SIGTERM. Format: docs/cli.md.\n",
     2, 2, opts_record, cmd_record},
    {"replay", "FILE NAME", "write a recording's messages to a channel, at the recorded pace",
     "--fast: as fast as the channel takes them. --create as for send.\n", 2, 2, opts_replay,
     cmd_replay},
    {"doctor", "", "check the segment directory: space, limits, dead owners, permissions",
     "Exit status 0 when nothing needs attention, 3 when problems were found.\n", 0, 0,
     opts_doctor, cmd_doctor},
    {"rm", "NAME", "remove a channel no live process uses",
     "--force removes any file under the name, used or not.\n", 1, 1, opts_rm, cmd_rm},
    {"gc", "", "remove every channel no live process uses", NULL, 0, 0, opts_none, cmd_gc},
    {"version", "", "print the library version", NULL, 0, 0, opts_none, cmd_version},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char exit_codes[] =
    "Exit status: 0 done; 1 runtime failure (no such channel, permission, peer died, I/O);\n"
    "2 usage error (nothing was done); 3 doctor found problems; 4 --timeout expired.\n";

static void usage_all(FILE *f)
{
    fprintf(f, "usage: shm_channel COMMAND [OPTIONS] [ARGS]\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s %s", commands[i].name, commands[i].synopsis);
        fprintf(f, "  %-26s %s\n", left, commands[i].summary);
    }
    fprintf(f, "\nshm_channel COMMAND --help shows a command's options. A NAME starting with '-'\n"
               "goes after \"--\". Channels live in $SHM_CHANNEL_DIR, or /dev/shm.\n%s",
            exit_codes);
}

static void usage_cmd(FILE *f, const struct command *c)
{
    fprintf(f, "usage: shm_channel %s [OPTIONS]%s%s\n  %s\n", c->name, *c->synopsis ? " " : "",
            c->synopsis, c->summary);
    if (c->details)
        fprintf(f, "%s", c->details);
    if (c->opts[0].name)
        fprintf(f, "options:\n");
    for (const struct opt_spec *o = c->opts; o->name; o++) {
        char left[48];
        snprintf(left, sizeof left, "%c%c%s--%s%s", o->shortname ? '-' : ' ',
                 o->shortname ? o->shortname : ' ', o->shortname ? ", " : "  ", o->name,
                 o->type == OPT_FLAG ? "" : o->type == OPT_STR ? " S" : " N");
        fprintf(f, "  %-24s %s\n", left, o->help);
    }
    fprintf(f, "  -h, --help               this text\n%s", exit_codes);
}

static const struct command *current;

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    fprintf(stderr, "shm_channel%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (current)
        usage_cmd(stderr, current);
    else
        usage_all(stderr);
    return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *name, const char *what, int rc)
{
    const char *why = rc ? shm_channel_strerror(rc) : "";
    if (rc == -ENOENT && name)
        why = "no such channel"; /* the library's text names the C flag, not --create */
    fprintf(stderr, "shm_channel %s%s%s: %s%s%s", cmd, name ? " " : "", name ? name : "",
            what ? what : "", what && rc ? ": " : "", why);
    if (rc == -ENOENT && name)
        fprintf(stderr, " in %s", shm_channel_dir());
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_fail_file(const char *cmd, const char *path, int rc)
{
    fprintf(stderr, "shm_channel %s: %s: %s\n", cmd, path, strerror(-rc));
    return CLI_FAIL;
}

static int find_opt(const struct opt_spec *spec, const char *name, size_t len, char shortname)
{
    for (int i = 0; spec[i].name; i++)
        if (shortname ? spec[i].shortname == shortname
                      : strlen(spec[i].name) == len && !strncmp(spec[i].name, name, len))
            return i;
    return -1;
}

static int index_of(const struct cli_args *a, const char *name)
{
    int i = find_opt(a->spec, name, strlen(name), 0);
    if (i < 0)
        abort(); /* a command asked for an option it does not declare: a bug */
    return i;
}

int opt_declared(const struct cli_args *a, const char *name)
{
    return find_opt(a->spec, name, strlen(name), 0) >= 0;
}

int opt_given(const struct cli_args *a, const char *name)
{
    return a->given[index_of(a, name)];
}

uint64_t opt_u64(const struct cli_args *a, const char *name, uint64_t dflt)
{
    int i = index_of(a, name);
    return a->given[i] ? a->u64[i] : dflt;
}

double opt_double(const struct cli_args *a, const char *name, double dflt)
{
    int i = index_of(a, name);
    return a->given[i] ? a->dbl[i] : dflt;
}

const char *opt_str(const struct cli_args *a, const char *name, const char *dflt)
{
    int i = index_of(a, name);
    return a->given[i] ? a->str[i] : dflt;
}

/* Unsigned decimal (or 0x hex) with an optional K, M, G suffix (powers of 1024). */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M')
        shift = 20;
    else if (*end == 'G')
        shift = 30;
    if (shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e12)
        return -1;
    *out = v;
    return 0;
}

static int set_value(struct cli_args *a, int i, const char *val)
{
    const struct opt_spec *o = &a->spec[i];
    a->given[i] = 1;
    if (o->type == OPT_U64 && parse_u64(val, &a->u64[i]))
        return cli_usage_error(current->name, "--%s wants a number (N, or N with K/M/G), not \"%s\"",
                               o->name, val);
    if (o->type == OPT_DOUBLE && parse_double(val, &a->dbl[i]))
        return cli_usage_error(current->name, "--%s wants a number >= 0, not \"%s\"", o->name,
                               val);
    a->str[i] = val;
    return 0;
}

/* Parse argv[from..] for command c: options anywhere before "--", positionals. */
static int parse(const struct command *c, int argc, char **argv, int from, struct cli_args *a)
{
    memset(a, 0, sizeof(*a));
    a->spec = c->opts;
    int options = 1;
    for (int k = from; k < argc; k++) {
        const char *s = argv[k];
        if (options && !strcmp(s, "--")) {
            options = 0;
            continue;
        }
        if (options && s[0] == '-' && s[1]) {
            int i;
            const char *val = NULL;
            if (s[1] == '-') {
                const char *eq = strchr(s + 2, '=');
                size_t len = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
                i = find_opt(c->opts, s + 2, len, 0);
                if (eq)
                    val = eq + 1;
            } else {
                i = s[2] ? -1 : find_opt(c->opts, NULL, 0, s[1]);
            }
            if (i < 0) {
                if (!strcmp(s, "-f") || !strcmp(s, "--force"))
                    return cli_usage_error(c->name, "--force is an option of rm, not of %s",
                                           c->name);
                return cli_usage_error(c->name, "unknown option %s", s);
            }
            if (c->opts[i].type == OPT_FLAG) {
                if (val)
                    return cli_usage_error(c->name, "--%s takes no value", c->opts[i].name);
                a->given[i] = 1;
                continue;
            }
            if (!val) {
                if (k + 1 >= argc)
                    return cli_usage_error(c->name, "%s needs a value", s);
                val = argv[++k];
            }
            int rc = set_value(a, i, val);
            if (rc)
                return rc;
            continue;
        }
        if (a->npos >= c->max_pos)
            return cli_usage_error(c->name, "too many arguments, at %s", s);
        a->pos[a->npos++] = s;
    }
    if (a->npos < c->min_pos)
        return cli_usage_error(c->name, "%s needs %s", c->name, c->synopsis);
    return 0;
}

static int wants_help(int argc, char **argv, int from)
{
    for (int k = from; k < argc; k++) {
        if (!strcmp(argv[k], "--"))
            return 0;
        if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help"))
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_all(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
        usage_all(stdout);
        return CLI_OK;
    }
    if (!strcmp(name, "--version"))
        name = "version";
    else if (name[0] == '-')
        return cli_usage_error(NULL, "unknown option %s (options go after the command)", name);
    if (!strcmp(name, "help")) {
        for (size_t i = 0; argc == 3 && i < NCOMMANDS; i++)
            if (!strcmp(argv[2], commands[i].name)) {
                usage_cmd(stdout, &commands[i]);
                return CLI_OK;
            }
        if (argc > 2)
            return cli_usage_error(NULL, "help: no command %s", argv[2]);
        usage_all(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(name, commands[i].name))
            continue;
        current = &commands[i];
        if (wants_help(argc, argv, 2)) {
            usage_cmd(stdout, current);
            return CLI_OK;
        }
        struct cli_args a;
        int rc = parse(current, argc, argv, 2, &a);
        if (rc)
            return rc;
        rc = current->run(&a);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            if (errno != EPIPE)
                fprintf(stderr, "shm_channel %s: writing stdout: %s\n", name, strerror(errno));
            return rc ? rc : CLI_FAIL;
        }
        return rc;
    }
    return cli_usage_error(NULL, "unknown command %s", name);
}
