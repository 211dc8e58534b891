/* A small JSON writer: compact output, commas placed automatically, strings escaped
 * (bytes that are not valid UTF-8 are written as \u00XX of each byte). */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "cli.h"

void json_init(struct json *j, FILE *f)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
    j->first[0] = 1;
}

static void escaped(FILE *f, const unsigned char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c); /* bytes, not code points: ASCII is what we emit */
        else
            fputc((int)c, f);
    }
    fputc('"', f);
}

static void member(struct json *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->f);
    j->first[j->depth] = 0;
    if (key) {
        escaped(j->f, (const unsigned char *)key, strlen(key));
        fputc(':', j->f);
    }
}

void json_obj_begin(struct json *j, const char *key)
{
    member(j, key);
    fputc('{', j->f);
    if (j->depth < 31)
        j->depth++;
    j->first[j->depth] = 1;
}

void json_obj_end(struct json *j)
{
    fputc('}', j->f);
    if (j->depth > 0)
        j->depth--;
}

void json_arr_begin(struct json *j, const char *key)
{
    member(j, key);
    fputc('[', j->f);
    if (j->depth < 31)
        j->depth++;
    j->first[j->depth] = 1;
}

void json_arr_end(struct json *j)
{
    fputc(']', j->f);
    if (j->depth > 0)
        j->depth--;
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
    member(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
    member(j, key);
    fprintf(j->f, "%" PRId64, v);
}

void json_double(struct json *j, const char *key, double v)
{
    member(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.10g", v);
    else
        fputs("null", j->f);
}

void json_bool(struct json *j, const char *key, int v)
{
    member(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_str(struct json *j, const char *key, const char *s)
{
    json_strn(j, key, s, strlen(s));
}

void json_strn(struct json *j, const char *key, const void *s, size_t n)
{
    member(j, key);
    escaped(j->f, s, n);
}

void json_null(struct json *j, const char *key)
{
    member(j, key);
    fputs("null", j->f);
}

void json_hex(struct json *j, const char *key, const void *p, size_t n)
{
    member(j, key);
    const unsigned char *b = p;
    fputc('"', j->f);
    for (size_t i = 0; i < n; i++)
        fprintf(j->f, "%02x", b[i]);
    fputc('"', j->f);
}

void json_end(struct json *j)
{
    fputc('\n', j->f);
    j->depth = 0;
    j->first[0] = 1;
}
