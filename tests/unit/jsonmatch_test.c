/* jsonmatch_test.c - router/jsonmatch.c: match.json_body over request
 * bodies: strict JSON, escapes decoded, prefixes, duplicates, bounds. */
#include "tap.h"
#include "../../router/jsonmatch.c"

#include <stdio.h>
#include <string.h>

static struct cfg_json_match cond(const char *field, const char *value)
{
    struct cfg_json_match m = { (char *)field, (uint32_t)strlen(field), (char *)value,
                                (uint32_t)strlen(value), false };
    if (m.value_len && value[m.value_len - 1] == '*') {
        m.prefix = true;
        m.value_len--;
    }
    return m;
}

static bool match1(const char *body, const char *field, const char *value)
{
    struct cfg_json_match m = cond(field, value);
    return rt_json_match(body, strlen(body), &m, 1);
}

static void test_basic(void)
{
    ok(match1("{\"model\":\"llama-3-8b\",\"stream\":true}", "model", "llama-3-8b"), "exact value");
    ok(!match1("{\"model\":\"llama-3-8b\"}", "model", "llama-3"), "exact means whole");
    ok(match1("{\"model\":\"llama-3-8b\"}", "model", "llama-3*"), "a trailing * is a prefix");
    ok(match1("{\"model\":\"\"}", "model", "*"), "* alone matches any string, even empty");
    ok(!match1("{\"model\":7}", "model", "*"), "a number is not a string");
    ok(!match1("{\"model\":null}", "model", "*"), "null is not a string");
    ok(!match1("{\"other\":\"llama\"}", "model", "*"), "a missing field does not match");
    ok(match1(" \r\n\t{ \"a\" : [1, {\"b\": [true,false,null]}], \"model\" : \"x\" } \n", "model", "x"),
       "whitespace and nested values around the field");
    ok(!match1("{\"meta\":{\"model\":\"x\"}}", "model", "x"), "only top-level members count");
    ok(!match1("[{\"model\":\"x\"}]", "model", "x"), "an array is not an object");
    ok(!match1("{}", "model", "*"), "empty object");
}

static void test_escapes(void)
{
    ok(match1("{\"mod\\u0065l\":\"x\"}", "model", "x"), "escaped name decoded");
    ok(match1("{\"model\":\"ll\\u0061ma\"}", "model", "llama"), "escaped value decoded");
    ok(match1("{\"model\":\"a\\/b\\\\c\\\"d\"}", "model", "a/b\\c\"d"), "short escapes");
    ok(match1("{\"model\":\"\\u00e9\"}", "model", "\xc3\xa9"), "\\u00e9 is UTF-8 c3 a9");
    ok(match1("{\"model\":\"\\ud83d\\ude00\"}", "model", "\xf0\x9f\x98\x80"), "a surrogate pair");
    ok(!match1("{\"model\":\"\\ud83d\"}", "model", "*"), "a lone high surrogate: not JSON");
    ok(!match1("{\"model\":\"\\ude00\"}", "model", "*"), "a lone low surrogate: not JSON");
    ok(!match1("{\"model\":\"\\x41\"}", "model", "*"), "\\x is not a JSON escape");
    ok(!match1("{\"model\":\"a\nb\"}", "model", "*"), "a raw control character: not JSON");
    ok(!match1("{\"model\":\"\\u12\"}", "model", "*"), "short \\u");
}

static void test_strict(void)
{
    const char *bad[] = {
        "", "{", "{\"model\":\"x\"", "{\"model\":\"x\",}", "{\"model\" \"x\"}", "{model:\"x\"}",
        "{\"model\":\"x\"} trailing", "{\"model\":\"x\"}{}", "{\"a\":01,\"model\":\"x\"}",
        "{\"a\":1.,\"model\":\"x\"}", "{\"a\":.5,\"model\":\"x\"}", "{\"a\":+1,\"model\":\"x\"}",
        "{\"a\":1e,\"model\":\"x\"}", "{\"a\":tru,\"model\":\"x\"}", "{\"a\":[1,],\"model\":\"x\"}",
        "{\"a\":'s',\"model\":\"x\"}", "{\"model\":\"x\",\"a\":NaN}", "{\"model\":\"x\" /* c */}",
        "\xef\xbb\xbf{\"model\":\"x\"}",
    };
    int good = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        good += !match1(bad[i], "model", "x");
    ok(good == (int)(sizeof(bad) / sizeof(bad[0])), "%d of %zu malformed bodies match nothing", good,
       sizeof(bad) / sizeof(bad[0]));
    ok(match1("{\"a\":-0.5e+10,\"b\":1E-2,\"c\":0,\"model\":\"x\"}", "model", "x"), "valid numbers");
    /* nesting bounded: 63 deep is fine, 100 deep is refused */
    char deep[512];
    size_t n = 0;
    n += (size_t)sprintf(deep + n, "{\"model\":\"x\",\"d\":");
    for (int i = 0; i < 62; i++)
        deep[n++] = '[';
    for (int i = 0; i < 62; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    ok(rt_json_match(deep, n, (struct cfg_json_match[]){ cond("model", "x") }, 1), "63 levels deep");
    n = 0;
    n += (size_t)sprintf(deep + n, "{\"model\":\"x\",\"d\":");
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    ok(!rt_json_match(deep, n, (struct cfg_json_match[]){ cond("model", "x") }, 1),
       "100 levels deep: refused, bounded");
}

static void test_duplicates_and_many(void)
{
    ok(!match1("{\"model\":\"x\",\"model\":\"y\"}", "model", "x"), "a field given twice matches nothing");
    ok(!match1("{\"model\":\"y\",\"mod\\u0065l\":\"x\"}", "model", "*"),
       "twice, once escaped: still twice");
    ok(match1("{\"other\":1,\"other\":2,\"model\":\"x\"}", "model", "x"),
       "duplicates of other members do not matter");
    struct cfg_json_match two[2] = { cond("model", "gpt-*"), cond("user", "team-a") };
    const char *b1 = "{\"user\":\"team-a\",\"model\":\"gpt-4o\"}", *b2 = "{\"user\":\"team-b\",\"model\":\"gpt-4o\"}";
    ok(rt_json_match(b1, strlen(b1), two, 2), "two conditions, both hold");
    ok(!rt_json_match(b2, strlen(b2), two, 2), "one fails: no match");
    struct cfg_json_match same[2] = { cond("model", "gpt-*"), cond("model", "*4o") };
    ok(rt_json_match("{\"model\":\"gpt-4o\"}", 18, same, 2) == false,
       "only a trailing * is special: '*4o' must equal the value, so no match");
    struct cfg_json_match same2[2] = { cond("model", "gpt-*"), cond("model", "gpt-4o") };
    ok(rt_json_match("{\"model\":\"gpt-4o\"}", 18, same2, 2), "two conditions on one field, both hold");
    /* a long value cannot equal a short one, and is not read past its bound */
    char big[3000];
    int k = sprintf(big, "{\"model\":\"");
    memset(big + k, 'a', 2000);
    k += 2000;
    k += sprintf(big + k, "\"}");
    ok(!rt_json_match(big, (size_t)k, (struct cfg_json_match[]){ cond("model", "aaa") }, 1), "long value");
    ok(rt_json_match(big, (size_t)k, (struct cfg_json_match[]){ cond("model", "aaa*") }, 1),
       "long value, prefix");
    /* every prefix of a valid body is refused (the body must be whole) */
    const char *full = "{\"model\":\"llama-3\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    int refused = 0;
    size_t fl = strlen(full);
    for (size_t i = 0; i < fl; i++)
        refused += !rt_json_match(full, i, (struct cfg_json_match[]){ cond("model", "llama*") }, 1);
    ok(refused == (int)fl && rt_json_match(full, fl, (struct cfg_json_match[]){ cond("model", "llama*") }, 1),
       "each of %zu cut bodies refused, the whole one matches", fl);
}

int main(void)
{
    test_basic();
    test_escapes();
    test_strict();
    test_duplicates_and_many();
    return tap_done();
}
