/*
 * usage.h - (policy) a streaming scanner for the `usage` object of
 * OpenAI-compatible responses: a JSON body, or the JSON objects of SSE
 * `data:` lines, fed in pieces split at any byte, in O(1) memory (a few
 * dozen bytes of state per response, nothing buffered).
 *
 * What it reads: a member named exactly "usage" of a top-level object whose
 * value is an object, and in it the members "prompt_tokens",
 * "completion_tokens" and "total_tokens" whose values are non-negative
 * integers.  Nested objects and arrays, strings (escapes included) and
 * anything between top-level objects (SSE's "data: ", "event:" lines,
 * "[DONE]") are skipped.  When several usage objects pass (a stream may
 * carry one per event, cumulative), the last complete one counts.  Numbers
 * saturate at 2^53; a key spelled with escapes does not match; a raw newline
 * inside a string (invalid JSON, an SSE line that broke) resets the scanner
 * to look for the next top-level object.
 *
 * Owns: struct pol_usage.  May call: nothing.
 */
#ifndef SLUICE_POLICY_USAGE_H
#define SLUICE_POLICY_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POL_USAGE_MAX (1ull << 53)

enum { POL_U_PROMPT = 0, POL_U_COMPLETION, POL_U_TOTAL, POL_U__N };

struct pol_usage {
    /* the result: the last complete usage object */
    bool found;
    bool sse;               /* SSE: a blank line outside a string ends an event */
    bool has[POL_U__N];
    uint64_t v[POL_U__N];
    /* scanner state */
    uint32_t depth;         /* 0 = between top-level objects */
    uint8_t st;             /* what the next byte means (usage.c) */
    uint8_t kind;           /* containers at depth 1 and 2: bit (d-1) set = object */
    bool want_key;          /* at depth 1/2 in an object: the next string is a key */
    bool esc;               /* in a string, after a backslash */
    bool key_bad;           /* the key being read cannot match */
    bool in_usage;          /* depth 2 is the usage object */
    uint8_t klen;
    uint8_t nl;             /* SSE: newlines in a row outside strings */
    int8_t key;             /* the last key read at this level: -1 none, else an id */
    char kbuf[20];
    /* the usage object being read */
    bool t_has[POL_U__N];
    uint64_t t_v[POL_U__N];
    uint64_t num;
    int8_t num_slot;        /* which member the number being read is, -1 none */
    bool num_bad;
};

/* sse: the body is text/event-stream (a blank line resets the scanner, so
 * an event whose JSON broke off does not swallow the next). */
void pol_usage_init(struct pol_usage *u, bool sse);

/* Feed the next bytes of the response body (de-chunked). */
void pol_usage_feed(struct pol_usage *u, const char *p, size_t n);

/* The tokens to debit: total_tokens, else prompt + completion, else 0
 * (no usage seen). */
uint64_t pol_usage_tokens(const struct pol_usage *u);

#endif
