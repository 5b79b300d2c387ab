/*
 * llm.h - sluice-echo's stand-in for an LLM server: the request and the
 * events of an OpenAI-compatible POST /v1/chat/completions.  Pure
 * formatting; echo.c does the timing and the I/O.
 */
#ifndef SLUICE_ECHO_LLM_H
#define SLUICE_ECHO_LLM_H

#include <stdbool.h>
#include <stddef.h>

#define LLM_MAX_WORDS 64

struct llm_req {
    char model[128];
    bool stream;
    int max_tokens;                 /* default 16, at most 4096 */
    int prompt_tokens;              /* words in the messages */
    char words[LLM_MAX_WORDS][32];  /* the answer's tokens cycle through these */
    int nwords;
};

/* Parse a request body; false (with *why) when it is not one. */
bool llm_parse(const char *body, size_t n, struct llm_req *r, const char **why);

/* The i-th event of a streamed answer (from 0: the role, then one per
 * token, the finish, the usage, "[DONE]") as "data: ...\n\n" in out;
 * its length, or 0 past the last event (or when out is too small). */
int llm_event(char *out, size_t cap, const struct llm_req *r, const char *id, long created, int i);

/* The whole answer as one chat.completion object; its length or 0. */
int llm_completion(char *out, size_t cap, const struct llm_req *r, const char *id, long created);

#endif
