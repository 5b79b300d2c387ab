/* llm.c - OpenAI-compatible chat completions, streamed or whole. */
#include "llm.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

static void add_words(struct llm_req *r, const char *text)
{
    const char *p = text;

    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \n\t");
        if (n == 0)
            break;
        r->prompt_tokens++;
        if (r->nwords < LLM_MAX_WORDS) {
            size_t k = n < sizeof(r->words[0]) - 1 ? n : sizeof(r->words[0]) - 1;
            memcpy(r->words[r->nwords], p, k);
            r->words[r->nwords][k] = '\0';
            r->nwords++;
        }
        p += n;
    }
}

bool llm_parse(const char *body, size_t n, struct llm_req *r, const char **why)
{
    memset(r, 0, sizeof(*r));
    r->max_tokens = 16;
    cJSON *j = cJSON_ParseWithLength(body, n);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        *why = "the body is not a JSON object";
        return false;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    if (!cJSON_IsString(model) || !cJSON_IsArray(msgs)) {
        cJSON_Delete(j);
        *why = "model (a string) and messages (an array) are required";
        return false;
    }
    snprintf(r->model, sizeof(r->model), "%s", model->valuestring);
    r->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"));
    if (cJSON_IsNumber(mt) && mt->valuedouble >= 1)
        r->max_tokens = mt->valuedouble > 4096 ? 4096 : (int)mt->valuedouble;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(content))
            add_words(r, content->valuestring);
    }
    if (r->nwords == 0) {
        add_words(r, "Hello from sluice-echo");
        r->prompt_tokens = 0;
    }
    cJSON_Delete(j);
    return true;
}

/* The JSON of one chunk: delta (NULL: empty), finish reason (NULL: null). */
static int chunk(char *out, size_t cap, const struct llm_req *r, const char *id, long created,
                 const char *role, const char *content, const char *finish)
{
    cJSON *o = cJSON_CreateObject(), *choices = NULL, *c, *d;
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", r->model);
    choices = cJSON_AddArrayToObject(o, "choices");
    c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    d = cJSON_AddObjectToObject(c, "delta");
    if (role)
        cJSON_AddStringToObject(d, "role", role);
    if (content)
        cJSON_AddStringToObject(d, "content", content);
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    cJSON_AddItemToArray(choices, c);
    char *s = cJSON_PrintUnformatted(o);
    int n = s ? snprintf(out, cap, "data: %s\n\n", s) : 0;
    cJSON_free(s);
    cJSON_Delete(o);
    return n > 0 && (size_t)n < cap ? n : 0;
}

static int usage(char *out, size_t cap, const struct llm_req *r, const char *id, long created)
{
    int n = snprintf(out, cap,
                     "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                     "\"model\":\"%s\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,"
                     "\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
                     id, created, r->model, r->prompt_tokens, r->max_tokens,
                     r->prompt_tokens + r->max_tokens);
    return n > 0 && (size_t)n < cap ? n : 0;
}

int llm_event(char *out, size_t cap, const struct llm_req *r, const char *id, long created, int i)
{
    char tok[40];

    if (i == 0)
        return chunk(out, cap, r, id, created, "assistant", "", NULL);
    if (i <= r->max_tokens) {
        snprintf(tok, sizeof(tok), "%s%s", i > 1 ? " " : "", r->words[(i - 1) % r->nwords]);
        return chunk(out, cap, r, id, created, NULL, tok, NULL);
    }
    if (i == r->max_tokens + 1)
        return chunk(out, cap, r, id, created, NULL, NULL, "length");
    if (i == r->max_tokens + 2)
        return usage(out, cap, r, id, created);
    if (i == r->max_tokens + 3) {
        int n = snprintf(out, cap, "data: [DONE]\n\n");
        return n > 0 && (size_t)n < cap ? n : 0;
    }
    return 0;
}

int llm_completion(char *out, size_t cap, const struct llm_req *r, const char *id, long created)
{
    char text[4096] = "";
    size_t len = 0;

    for (int i = 0; i < r->max_tokens; i++) {
        int k = snprintf(text + len, sizeof(text) - len, "%s%s", i ? " " : "", r->words[i % r->nwords]);
        if (k < 0 || (size_t)k >= sizeof(text) - len)
            break;
        len += (size_t)k;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(c, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", text);
    cJSON_AddStringToObject(c, "finish_reason", "length");
    cJSON_AddItemToArray(choices, c);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r->prompt_tokens);
    cJSON_AddNumberToObject(u, "completion_tokens", r->max_tokens);
    cJSON_AddNumberToObject(u, "total_tokens", r->prompt_tokens + r->max_tokens);
    char *s = cJSON_PrintUnformatted(o);
    int n = s ? snprintf(out, cap, "%s\n", s) : 0;
    cJSON_free(s);
    cJSON_Delete(o);
    return n > 0 && (size_t)n < cap ? n : 0;
}
