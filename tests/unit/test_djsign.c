/*
 * Django signed_cookies sessions: every case of tests/unit/data/
 * django_signing.json (cookies made by real Django, with Django's own
 * verdict beside ours) is its own cmocka test, and so is every Cookie-header
 * case (checked against Django's parse_cookie). Hand-written tests add what
 * the file cannot say: values not NUL-terminated, a zlib bomb signed here,
 * key lists with holes, clocks at the ends of int64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <zlib.h>

#include "mh_djsign.h"

static const char *KEY = "mizan-unit-test-key";

/* One cookie case: value, keys, salt, max_age, now -> expect (+ json). */
static void run_case(void **state)
{
    const json_t *c = *state, *jkeys = json_object_get(c, "keys"), *js;
    const char *keys[8], *reason = NULL, *expect = json_string_value(json_object_get(c, "expect"));
    const json_t *jv = json_object_get(c, "value");
    size_t len = json_string_length(jv), json_len = 99;
    char *value = malloc(len ? len : 1), *json = (char *)"unset";
    mh_djsign_cfg cfg = {.keys = keys,
                         .nkeys = json_array_size(jkeys),
                         .salt = json_string_value(json_object_get(c, "salt")),
                         .max_age = json_integer_value(json_object_get(c, "max_age"))};
    int rc;

    assert_non_null(expect);
    assert_true(cfg.nkeys <= 8);
    for (size_t i = 0; i < cfg.nkeys; i++)
        keys[i] = json_string_value(json_array_get(jkeys, i));
    /* exactly len bytes, no NUL after them: ASan sees any read past the end */
    memcpy(value, json_string_value(jv), len);
    rc = mh_djsign_unsign(&cfg, value, len, json_integer_value(json_object_get(c, "now")), &json,
                          &json_len, &reason);
    free(value);
    if (strcmp(expect, "ok")) {
        assert_int_equal(rc, -1);
        assert_null(json);
        assert_int_equal(json_len, 0);
        assert_string_equal(reason, expect);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(reason, "ok");
    assert_non_null(json);
    assert_int_equal(json[json_len], '\0');
    if ((js = json_object_get(c, "json"))) {
        assert_int_equal(json_len, json_string_length(js));
        assert_memory_equal(json, json_string_value(js), json_len);
    } else {
        unsigned char d[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        SHA256((const unsigned char *)json, json_len, d);
        for (size_t i = 0; i < sizeof d; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
        assert_int_equal(json_len, json_integer_value(json_object_get(c, "json_len")));
        assert_string_equal(hex, json_string_value(json_object_get(c, "json_sha256")));
    }
    free(json);
}

/* One Cookie-header case: the value Django's parse_cookie finds, or none. */
static void run_cookie(void **state)
{
    const json_t *c = *state, *jh = json_object_get(c, "header"),
                 *want = json_object_get(c, "value");
    size_t len = json_string_length(jh), vlen = 0;
    char *header = malloc(len ? len : 1);
    const char *v = NULL;
    int rc;

    memcpy(header, json_string_value(jh), len);
    rc = mh_djsign_cookie_find(header, len, json_string_value(json_object_get(c, "cookie")), &v,
                               &vlen);
    if (json_is_null(want)) {
        assert_int_equal(rc, -1);
    } else {
        assert_int_equal(rc, 0);
        assert_true(v >= header && v + vlen <= header + len);
        assert_int_equal(vlen, json_string_length(want));
        assert_memory_equal(v, json_string_value(want), vlen);
    }
    free(header);
}

static const char *find(const char *header, size_t len, const char *name)
{
    static char out[256];
    const char *v;
    size_t n;
    if (mh_djsign_cookie_find(header, len, name, &v, &n))
        return NULL;
    snprintf(out, sizeof out, "%.*s", (int)n, v);
    return out;
}

static void cookie_find_edges(void **state)
{
    const char *h = "a=1; sessionid=abcdef; b=2";

    assert_string_equal(find(h, strlen(h), "a"), "1");
    assert_string_equal(find(h, strlen(h), "b"), "2");
    assert_string_equal(find(h, strlen(h), "sessionid"), "abcdef");
    assert_null(find(h, strlen(h), "session"));
    assert_null(find(h, strlen(h), "essionid"));
    assert_null(find(h, strlen(h), ""));
    assert_null(find(h, strlen(h), NULL));
    assert_null(find(NULL, 0, "a"));
    /* 'len' is the end: "sessionid=abc" of the header, then nothing */
    assert_string_equal(find(h, 18, "sessionid"), "abc");
    assert_null(find(h, 14, "sessionid"));
    assert_null(find(h, 26 - 4, "b"));
    /* a quote pair needs two characters; one quote stays */
    assert_string_equal(find("s=\"", 3, "s"), "\"");
    assert_string_equal(find("s=\"\"", 4, "s"), "");
    assert_string_equal(find("s= \"x\" ", 7, "s"), "x");
    /* a NUL inside the header is just a byte */
    assert_string_equal(find("x=1\0; s=2", 9, "s"), "2");
}

static void b64url(const unsigned char *d, size_t n, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | d[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = A[(acc >> bits) & 63];
        }
    }
    if (bits)
        *out++ = A[(acc << (6 - bits)) & 63];
    *out = '\0';
}

/* '.' + base64url(zlib(data)) + ":" + ts, signed with KEY: a Django-shaped
 * compressed cookie around any payload (malloc'd). */
static char *signed_compressed(const char *data, size_t n, const char *ts)
{
    uLongf zn = compressBound(n);
    unsigned char *z = malloc(zn);
    char *v, sig[MH_DJSIGN_SIG_LEN + 1];
    size_t off;

    assert_int_equal(compress2(z, &zn, (const Bytef *)data, n, 9), Z_OK);
    v = malloc(zn * 4 / 3 + 64);
    v[0] = '.';
    b64url(z, zn, v + 1);
    off = strlen(v);
    off += (size_t)sprintf(v + off, ":%s", ts);
    assert_int_equal(mh_djsign_signature(KEY, NULL, v, off, sig), 0);
    sprintf(v + off, ":%s", sig);
    free(z);
    return v;
}

static int unsign1(const char *v, int64_t max_age, int64_t now, char **json, size_t *json_len,
                   const char **reason)
{
    const char *keys[] = {KEY};
    mh_djsign_cfg cfg = {.keys = keys, .nkeys = 1, .max_age = max_age};
    return mh_djsign_unsign(&cfg, v, strlen(v), now, json, json_len, reason);
}

static void zlib_bomb_signed_here(void **state)
{
    size_t n = 1 << 20, json_len;
    char *data = malloc(n), *v, *json;
    const char *reason;

    memset(data, 'a', n);
    data[0] = '"';
    data[n - 1] = '"';
    v = signed_compressed(data, n, "1r31eq");
    assert_true(strlen(v) < MH_DJSIGN_MAX_VALUE);
    assert_int_equal(unsign1(v, 0, 0, &json, &json_len, &reason), -1);
    assert_string_equal(reason, "bad_payload");
    assert_null(json);
    free(v);
    /* one byte under the bound inflates; the bound itself too; one over does not */
    for (size_t m = MH_DJSIGN_MAX_JSON - 1; m <= MH_DJSIGN_MAX_JSON + 1; m++) {
        data[m - 1] = '"';
        v = signed_compressed(data, m, "1r31eq");
        if (m <= MH_DJSIGN_MAX_JSON) {
            assert_int_equal(unsign1(v, 0, 0, &json, &json_len, &reason), 0);
            assert_int_equal(json_len, m);
            assert_memory_equal(json, data, m);
            assert_int_equal(json[m], '\0');
            free(json);
        } else {
            assert_int_equal(unsign1(v, 0, 0, &json, &json_len, &reason), -1);
            assert_string_equal(reason, "bad_payload");
        }
        data[m - 1] = 'a';
        free(v);
    }
    free(data);
}

static void keys_and_clocks(void **state)
{
    char *v = signed_compressed("{\"a\":1}", 7, "-1c"), *json;
    const char *none[] = {NULL, "", KEY}, *reason;
    mh_djsign_cfg cfg = {.keys = none, .nkeys = 0};
    size_t json_len;

    /* no keys: nothing verifies */
    assert_int_equal(mh_djsign_unsign(&cfg, v, strlen(v), 0, &json, &json_len, &reason), -1);
    assert_string_equal(reason, "bad_signature");
    /* NULL and empty keys are skipped */
    cfg.nkeys = 3;
    assert_int_equal(mh_djsign_unsign(&cfg, v, strlen(v), 0, &json, &json_len, &reason), 0);
    assert_string_equal(json, "{\"a\":1}");
    free(json);
    /* the timestamp is -100: age overflows int64 at now = INT64_MAX */
    cfg.max_age = 1;
    assert_int_equal(mh_djsign_unsign(&cfg, v, strlen(v), INT64_MAX, &json, &json_len, &reason),
                     -1);
    assert_string_equal(reason, "expired");
    assert_int_equal(mh_djsign_unsign(&cfg, v, strlen(v), INT64_MIN, &json, &json_len, &reason), 0);
    free(json);
    cfg.max_age = INT64_MAX;
    assert_int_equal(mh_djsign_unsign(&cfg, v, strlen(v), INT64_MAX, &json, &json_len, &reason),
                     -1);
    assert_string_equal(reason, "expired");
    free(v);
    /* the largest int64 timestamp and one past it */
    v = signed_compressed("{}", 2, "AzL8n0Y58m7");
    assert_int_equal(unsign1(v, 1, INT64_MAX, &json, &json_len, &reason), 0);
    free(json);
    free(v);
    v = signed_compressed("{}", 2, "AzL8n0Y58m8");
    assert_int_equal(unsign1(v, 0, 0, &json, &json_len, &reason), -1);
    assert_string_equal(reason, "malformed");
    free(v);
    /* a NULL value, a huge len */
    assert_int_equal(unsign1("", 0, 0, &json, &json_len, &reason), -1);
    assert_string_equal(reason, "malformed");
    cfg.nkeys = 1;
    cfg.keys = (const char *[]){KEY};
    assert_int_equal(mh_djsign_unsign(&cfg, NULL, 5, 0, &json, &json_len, &reason), -1);
    assert_string_equal(reason, "malformed");
    assert_int_equal(mh_djsign_unsign(&cfg, "a:b:c", SIZE_MAX, 0, &json, &json_len, &reason), -1);
    assert_string_equal(reason, "malformed");
}

int main(int argc, char **argv)
{
    /* scripts/dev hands every cmocka binary the vectors folder: only a .json
     * argument names another data file. */
    size_t alen = argc > 1 ? strlen(argv[1]) : 0;
    const char *path = alen > 5 && !strcmp(argv[1] + alen - 5, ".json") ? argv[1] : MH_DJSIGN_DATA;
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(cookie_find_edges),
        cmocka_unit_test(zlib_bomb_signed_here),
        cmocka_unit_test(keys_and_clocks),
    };
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_ALLOW_NUL, &je);
    const json_t *cases = json_object_get(doc, "cases"), *cookies = json_object_get(doc, "cookies");
    size_t nc = json_array_size(cases), nk = json_array_size(cookies);
    size_t n = sizeof fixed / sizeof fixed[0] + nc + nk, t = 0;
    struct CMUnitTest *tests;
    int rc;

    if (!doc || !nc || !nk) {
        fprintf(stderr, "%s: %s (line %d)\n", path, doc ? "no cases" : je.text, je.line);
        return 2;
    }
    tests = calloc(n, sizeof *tests);
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        tests[t++] = fixed[i];
    for (size_t i = 0; i < nc + nk; i++) {
        json_t *c = json_array_get(i < nc ? cases : cookies, i < nc ? i : i - nc);
        char *name = malloc(300);
        snprintf(name, 300, "%s: %s", i < nc ? "django" : "cookie",
                 json_string_value(json_object_get(c, "name")));
        tests[t++] = (struct CMUnitTest){
            .name = name, .test_func = i < nc ? run_case : run_cookie, .initial_state = c};
    }
    rc = _cmocka_run_group_tests("djsign", tests, n, NULL, NULL);
    for (size_t i = sizeof fixed / sizeof fixed[0]; i < n; i++)
        free((char *)tests[i].name);
    free(tests);
    json_decref(doc);
    return rc;
}
