/* mx_test.c - unit tests for gateway/mx.c: the metric model's renderers.
 * The same families through both: Prometheus text byte for byte, the JSON
 * document byte for byte and re-read by cJSON, and JSON strings for every
 * kind of byte a route or upstream name may hold. */
#include "tap.h"
#include "../../gateway/mx.c"
#include "../../core/counter.c"

#include <cJSON.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

/* The buffer's bytes as a string (caller frees). */
static char *text_of(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);

    evbuffer_copyout(b, s, n);
    s[n] = '\0';
    return s;
}

/* A few families of each kind, as a producer writes them. */
static void families(struct mx_emit *e)
{
    struct mx_hist h = { { 0 }, 0 };

    h.b[0] = 1;                 /* one under 0.5 ms */
    h.b[3] = 2;                 /* two in (2.5 ms, 5 ms] */
    h.b[GW_HIST_N] = 1;         /* one over 10 s */
    h.sum_ns = 12500000000ull;  /* 12.5 s */
    mx_scalar(e, "t_up", "gauge", "Up.", 1);
    mx_family(e, "t_req_total", "counter", "Requests.");
    struct mx_label l[2] = { { "route", "a\"b\\c\nd" }, { "code", "2xx" } };
    mx_value(e, l, 2, 7);
    mx_value(e, &(struct mx_label){ "route", "z" }, 1, 18446744073709551615ull);
    mx_family(e, "t_empty_total", "counter", "No samples.");
    mx_family(e, "t_lat_seconds", "histogram", "Latency.");
    mx_hist(e, NULL, 0, &h);
    mx_hist(e, &(struct mx_label){ "upstream", "u" }, 1, &h);
}

static void test_prom(void)
{
    struct evbuffer *b = evbuffer_new();
    struct mx_prom p;

    mx_prom_init(&p, b);
    families(&p.e);
    char *s = text_of(b);
    const char *want =
        "# HELP t_up Up.\n# TYPE t_up gauge\nt_up 1\n"
        "# HELP t_req_total Requests.\n# TYPE t_req_total counter\n"
        "t_req_total{route=\"a\\\"b\\\\c\\nd\",code=\"2xx\"} 7\n"
        "t_req_total{route=\"z\"} 18446744073709551615\n"
        "# HELP t_empty_total No samples.\n# TYPE t_empty_total counter\n"
        "# HELP t_lat_seconds Latency.\n# TYPE t_lat_seconds histogram\n"
        "t_lat_seconds_bucket{le=\"0.0005\"} 1\nt_lat_seconds_bucket{le=\"0.001\"} 1\n"
        "t_lat_seconds_bucket{le=\"0.0025\"} 1\nt_lat_seconds_bucket{le=\"0.005\"} 3\n"
        "t_lat_seconds_bucket{le=\"0.01\"} 3\nt_lat_seconds_bucket{le=\"0.025\"} 3\n"
        "t_lat_seconds_bucket{le=\"0.05\"} 3\nt_lat_seconds_bucket{le=\"0.1\"} 3\n"
        "t_lat_seconds_bucket{le=\"0.25\"} 3\nt_lat_seconds_bucket{le=\"0.5\"} 3\n"
        "t_lat_seconds_bucket{le=\"1\"} 3\nt_lat_seconds_bucket{le=\"2.5\"} 3\n"
        "t_lat_seconds_bucket{le=\"5\"} 3\nt_lat_seconds_bucket{le=\"10\"} 3\n"
        "t_lat_seconds_bucket{le=\"+Inf\"} 4\nt_lat_seconds_sum 12.500000000\nt_lat_seconds_count 4\n"
        "t_lat_seconds_bucket{upstream=\"u\",le=\"0.0005\"} 1\n";
    ok(strncmp(s, want, strlen(want)) == 0, "Prometheus text: families, escapes, unlabelled histogram");
    if (strncmp(s, want, strlen(want)) != 0)
        printf("# got:\n%s\n", s);
    ok(strstr(s, "t_lat_seconds_bucket{upstream=\"u\",le=\"+Inf\"} 4\n"
                 "t_lat_seconds_sum{upstream=\"u\"} 12.500000000\n"
                 "t_lat_seconds_count{upstream=\"u\"} 4\n") != NULL,
       "Prometheus text: a labelled histogram's +Inf, sum and count");
    free(s);
    evbuffer_free(b);
}

static void test_json(void)
{
    struct evbuffer *b = evbuffer_new();
    struct mx_json j;

    mx_json_init(&j, b);
    families(&j.e);
    mx_json_end(&j, "\"version\":3");
    char *s = text_of(b);
    const char *head =
        "{\"families\":[{\"name\":\"t_up\",\"type\":\"gauge\",\"help\":\"Up.\",\"samples\":"
        "[{\"labels\":{},\"value\":1}]},"
        "{\"name\":\"t_req_total\",\"type\":\"counter\",\"help\":\"Requests.\",\"samples\":"
        "[{\"labels\":{\"route\":\"a\\\"b\\\\c\\u000ad\",\"code\":\"2xx\"},\"value\":7},"
        "{\"labels\":{\"route\":\"z\"},\"value\":18446744073709551615}]},"
        "{\"name\":\"t_empty_total\",\"type\":\"counter\",\"help\":\"No samples.\",\"samples\":[]},"
        "{\"name\":\"t_lat_seconds\",\"type\":\"histogram\",\"help\":\"Latency.\","
        "\"le\":[0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,\"+Inf\"],"
        "\"samples\":[{\"labels\":{},\"buckets\":[1,1,1,3,3,3,3,3,3,3,3,3,3,3,4],"
        "\"sum\":12.500000000,\"count\":4},";
    ok(strncmp(s, head, strlen(head)) == 0, "JSON: the document's bytes");
    if (strncmp(s, head, strlen(head)) != 0)
        printf("# got:\n%s\n", s);
    size_t n = strlen(s);
    ok(n > 2 && strcmp(s + n - 15, "],\"version\":3}\n") == 0, "JSON: extra members after the families, a newline");

    cJSON *d = cJSON_Parse(s);
    ok(d != NULL, "JSON: cJSON reads it");
    cJSON *fams = cJSON_GetObjectItem(d, "families");
    ok(cJSON_GetArraySize(fams) == 4, "JSON: four families");
    cJSON *req = cJSON_GetArrayItem(fams, 1);
    cJSON *lab = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(req, "samples"), 0), "labels");
    ok(strcmp(cJSON_GetObjectItem(lab, "route")->valuestring, "a\"b\\c\nd") == 0,
       "JSON: the label value reads back as written");
    cJSON *lat = cJSON_GetArrayItem(fams, 3);
    cJSON *smp = cJSON_GetArrayItem(cJSON_GetObjectItem(lat, "samples"), 1);
    ok(cJSON_GetArraySize(cJSON_GetObjectItem(smp, "buckets")) == GW_HIST_N + 1 &&
       cJSON_GetArraySize(cJSON_GetObjectItem(lat, "le")) == GW_HIST_N + 1,
       "JSON: a count per bound, +Inf included");
    ok(cJSON_GetObjectItem(smp, "count")->valuedouble == 4 &&
       cJSON_GetObjectItem(smp, "sum")->valuedouble == 12.5, "JSON: sum and count");
    cJSON_Delete(d);
    free(s);
    evbuffer_free(b);

    /* nothing at all is still a document */
    b = evbuffer_new();
    mx_json_init(&j, b);
    mx_json_end(&j, NULL);
    s = text_of(b);
    ok(strcmp(s, "{\"families\":[]}\n") == 0, "JSON: no families: %s", s);
    free(s);
    evbuffer_free(b);
}

static void str_case(const char *in, const char *want, const char *what)
{
    struct evbuffer *b = evbuffer_new();

    mx_json_str(b, in);
    char *s = text_of(b);
    ok(strcmp(s, want) == 0, "JSON string: %s", what);
    if (strcmp(s, want) != 0)
        printf("# got \"%s\", want \"%s\"\n", s, want);
    /* and every result is a valid JSON string */
    size_t n = strlen(s);
    char *doc = malloc(n + 3);
    doc[0] = '"';
    memcpy(doc + 1, s, n);
    doc[n + 1] = '"';
    doc[n + 2] = '\0';
    cJSON *d = cJSON_Parse(doc);
    ok(d && cJSON_IsString(d), "JSON string: %s parses", what);
    cJSON_Delete(d);
    free(doc);
    free(s);
    evbuffer_free(b);
}

static void test_json_str(void)
{
    str_case("", "", "empty");
    str_case("plain route-1/x", "plain route-1/x", "ASCII as is");
    str_case("a\"b\\c", "a\\\"b\\\\c", "quote and backslash");
    str_case("\x01\t\n\r\x1f", "\\u0001\\u0009\\u000a\\u000d\\u001f", "controls as \\u00XX");
    str_case("\x7f", "\x7f", "DEL as is");
    str_case("\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80", "\xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80",
             "2-, 3- and 4-byte UTF-8 as is");
    str_case("a\x80z", "a\\ufffdz", "a lone continuation byte");
    str_case("\xc0\x80", "\\ufffd\\ufffd", "an overlong NUL");
    str_case("\xe0\x80\xaf", "\\ufffd\\ufffd\\ufffd", "an overlong 3-byte form");
    str_case("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd", "a UTF-16 surrogate");
    str_case("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd", "over U+10FFFF");
    str_case("\xf5\xff", "\\ufffd\\ufffd", "bytes that never start a sequence");
    str_case("x\xe6\xbc", "x\\ufffd\\ufffd", "a sequence cut by the end");
    str_case("\xe6\xbc\"", "\\ufffd\\ufffd\\\"", "a sequence cut by a quote");
}

int main(void)
{
    test_prom();
    test_json();
    test_json_str();
    return tap_done();
}
