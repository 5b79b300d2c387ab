/*
 * usage.c - the streaming usage scanner (usage.h).  One byte at a time
 * through a small state machine; only depths 1 and 2 look at keys.
 */
#include "usage.h"

#include <string.h>

enum { ST_TOP = 0, ST_TOK, ST_STR, ST_NUM };
enum { K_NONE = -1, K_USAGE = 10 };     /* 0..2: POL_U_* inside usage */

static const char *const member[POL_U__N] = { "prompt_tokens", "completion_tokens", "total_tokens" };

void pol_usage_init(struct pol_usage *u, bool sse)
{
    memset(u, 0, sizeof(*u));
    u->sse = sse;
    u->key = K_NONE;
    u->num_slot = -1;
}

static void reset(struct pol_usage *u)
{
    u->st = ST_TOP;
    u->depth = 0;
    u->in_usage = false;
    u->key = K_NONE;
    u->nl = 0;
}

static inline bool is_obj(const struct pol_usage *u)
{
    return u->depth >= 1 && u->depth <= 2 && (u->kind >> (u->depth - 1) & 1);
}

/* whether a key string at this depth is worth reading */
static inline bool keys_here(const struct pol_usage *u)
{
    return u->want_key && is_obj(u) && (u->depth == 1 || u->in_usage);
}

static void key_end(struct pol_usage *u)
{
    u->key = K_NONE;
    if (u->key_bad)
        return;
    if (u->depth == 1) {
        if (u->klen == 5 && memcmp(u->kbuf, "usage", 5) == 0)
            u->key = K_USAGE;
        return;
    }
    for (int i = 0; i < POL_U__N; i++)
        if (strlen(member[i]) == u->klen && memcmp(u->kbuf, member[i], u->klen) == 0)
            u->key = (int8_t)i;
}

static void open_(struct pol_usage *u, bool obj)
{
    bool usage = u->depth == 1 && obj && u->key == K_USAGE;

    u->depth++;
    if (u->depth <= 2) {
        uint8_t bit = (uint8_t)(1u << (u->depth - 1));
        u->kind = (uint8_t)(obj ? u->kind | bit : u->kind & ~bit);
        u->want_key = obj;
    }
    if (usage) {
        u->in_usage = true;
        memset(u->t_has, 0, sizeof(u->t_has));
    }
    u->key = K_NONE;
}

static void close_(struct pol_usage *u)
{
    if (u->depth == 2 && u->in_usage) {
        u->in_usage = false;
        u->found = true;
        memcpy(u->has, u->t_has, sizeof(u->has));
        memcpy(u->v, u->t_v, sizeof(u->v));
    }
    u->depth--;
    u->want_key = false;
    u->key = K_NONE;
    if (u->depth == 0)
        u->st = ST_TOP;
}

static void num_end(struct pol_usage *u)
{
    if (!u->num_bad && u->num_slot >= 0) {
        u->t_has[u->num_slot] = true;
        u->t_v[u->num_slot] = u->num;
    }
    u->num_slot = -1;
    u->st = ST_TOK;
}

/* A byte between tokens inside a container. */
static void tok(struct pol_usage *u, char c)
{
    if (c != '\n' && c != '\r')
        u->nl = 0;
    switch (c) {
    case '"':
        u->st = ST_STR;
        u->esc = false;
        u->klen = 0;
        u->key_bad = !keys_here(u);
        return;
    case '{':
        open_(u, true);
        return;
    case '[':
        open_(u, false);
        return;
    case '}':
    case ']':
        close_(u);
        return;
    case ',':
        if (is_obj(u))
            u->want_key = true;
        u->key = K_NONE;
        return;
    case '\n':
        if (u->sse && ++u->nl >= 2)
            reset(u);
        return;
    default:
        break;
    }
    if (u->depth == 2 && u->in_usage && u->key >= 0 && u->key < POL_U__N &&
        ((c >= '0' && c <= '9') || c == '-')) {
        u->st = ST_NUM;
        u->num = 0;
        u->num_bad = c == '-';
        u->num_slot = u->key;
        if (c != '-')
            u->num = (uint64_t)(c - '0');
    }
}

void pol_usage_feed(struct pol_usage *u, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];

        switch (u->st) {
        case ST_TOP:
            if (c == '{') {
                u->st = ST_TOK;
                u->nl = 0;
                u->kind = 0;
                open_(u, true);
            }
            break;
        case ST_TOK:
            tok(u, c);
            break;
        case ST_STR:
            if (u->esc) {
                u->esc = false;
                u->key_bad = true;
            } else if (c == '\\') {
                u->esc = true;
                u->key_bad = true;
            } else if (c == '"') {
                u->st = ST_TOK;
                if (u->want_key && is_obj(u)) {
                    key_end(u);
                    u->want_key = false;
                }
            } else if (c == '\n') {
                reset(u);
            } else if (!u->key_bad) {
                if (u->klen < sizeof(u->kbuf))
                    u->kbuf[u->klen++] = c;
                else
                    u->key_bad = true;
            }
            break;
        case ST_NUM:
            if (c >= '0' && c <= '9') {
                u->num = u->num * 10 + (uint64_t)(c - '0');
                if (u->num > POL_USAGE_MAX)
                    u->num = POL_USAGE_MAX;
            } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                u->num_bad = true;
            } else {
                num_end(u);
                tok(u, c);
            }
            break;
        }
    }
}

uint64_t pol_usage_tokens(const struct pol_usage *u)
{
    if (!u->found)
        return 0;
    if (u->has[POL_U_TOTAL])
        return u->v[POL_U_TOTAL];
    return (u->has[POL_U_PROMPT] ? u->v[POL_U_PROMPT] : 0) +
           (u->has[POL_U_COMPLETION] ? u->v[POL_U_COMPLETION] : 0);
}
