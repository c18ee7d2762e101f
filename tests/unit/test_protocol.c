/*
 * Unit tests of libmizan-protocol beyond the shared vectors: properties that
 * need many inputs (number formatting round trips, exhaustive short headers)
 * and the C-only helpers (buffers, versions, the JSON writer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "mh_envelope.h"
#include "mh_frame.h"
#include "mh_header.h"
#include "mh_json.h"
#include "mh_key.h"
#include "mh_value.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Any finite double formats to text that reads back as the same double. */
static void number_round_trips(void **state)
{
    char out[MH_NUMBER_MAX];
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = next_rand();
        double d;
        int n;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d))
            continue;
        n = mh_value_number(d, out);
        assert_true(n > 0 && n < MH_NUMBER_MAX);
        assert_true(strtod(out, NULL) == d);
    }
    assert_int_equal(mh_value_number(NAN, out), -1);
    assert_int_equal(mh_value_number(INFINITY, out), -1);
}

/* Integers print as JavaScript prints them: no exponent up to 1e21. */
static void integers_have_no_exponent(void **state)
{
    char out[MH_NUMBER_MAX], want[32];
    for (int i = 0; i < 10000; i++) {
        int64_t v = (int64_t)(next_rand() % 9007199254740992ull) * (i % 2 ? 1 : -1);
        mh_value_number((double)v, out);
        snprintf(want, sizeof want, "%lld", (long long)v);
        assert_string_equal(out, want);
    }
}

/* The JSON writer writes what JSON.stringify writes. */
static void json_dump_is_stringify(void **state)
{
    const char *in = "{\"b\":[1,2.5,1e21,0.1,-0,\"x\\u0001\\n\\u2028\"],\"a\":null,\"c\":{}}";
    const char *want = "{\"b\":[1,2.5,1e+21,0.1,0,\"x\\u0001\\n\u2028\"],\"a\":null,\"c\":{}}";
    json_t *v = mh_json_parse(in, strlen(in), NULL);
    mh_buf b;

    assert_non_null(v);
    mh_buf_init(&b);
    assert_int_equal(mh_json_dump(&b, v), 0);
    assert_string_equal(mh_buf_cstr(&b), want);
    mh_buf_free(&b);
    json_decref(v);
}

static void buffer_head_room(void **state)
{
    mh_buf b;
    char *block;

    mh_buf_init_head(&b, 16);
    for (int i = 0; i < 1000; i++)
        mh_buf_printf(&b, "%d,", i);
    assert_false(b.oom);
    assert_memory_equal(b.data, "0,1,2,", 6);
    block = mh_buf_take(&b);
    assert_non_null(block);
    assert_memory_equal(block + 16, "0,1,2,", 6);
    assert_null(b.data);
    free(block);
}

static void versions(void **state)
{
    char epoch[MH_EPOCH_MAX + 1];
    uint64_t n;
    const char *bad[] = {"",
                         ":",
                         "a:",
                         ":1",
                         "a:01",
                         "A:1",
                         "a:1x",
                         "a:-1",
                         "a:12345678901234567",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
                         "a:1:2"};

    assert_int_equal(mh_version_parse("k2f9a:42", 8, epoch, &n), 0);
    assert_string_equal(epoch, "k2f9a");
    assert_int_equal(n, 42);
    assert_int_equal(mh_version_parse("0:0", 3, epoch, &n), 0);
    assert_int_equal(n, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mh_version_parse(bad[i], strlen(bad[i]), epoch, &n), MH_E_BAD_VERSION);
}

/* Every header of up to two bytes decodes or fails cleanly with a position. */
static void short_headers_exhaustive(void **state)
{
    char s[2];
    for (int a = 0; a < 256; a++) {
        for (int b = -1; b < 256; b++) {
            mh_inval l;
            mh_err err;
            size_t len = b < 0 ? 1 : 2;
            int rc;
            s[0] = (char)a;
            s[1] = (char)b;
            mh_err_clear(&err);
            rc = mh_header_decode(s, len, &l, &err);
            if (rc) {
                assert_int_equal(rc, err.code);
                assert_true(err.pos >= 0 && (size_t)err.pos <= len);
            }
            mh_inval_free(&l);
        }
    }
}

/* A decoded header re-encodes to a header that decodes to the same list. */
static void header_reencode_stable(void **state)
{
    const char *h = " a ; z=%F0%9F%98%80 ; b=1 ,, c; , %2C;%3B=%3D ";
    mh_inval l, l2;
    mh_buf b, b2;

    mh_buf_init(&b);
    mh_buf_init(&b2);
    assert_int_equal(mh_header_decode(h, strlen(h), &l, NULL), 0);
    assert_int_equal(mh_header_encode(&b, &l, NULL), 0);
    assert_string_equal(mh_buf_cstr(&b), "a;b=1;z=%F0%9F%98%80, c;, %2C;%3B=%3D");
    assert_int_equal(mh_header_decode(b.data, b.len, &l2, NULL), 0);
    assert_int_equal(mh_header_encode(&b2, &l2, NULL), 0);
    assert_string_equal(mh_buf_cstr(&b2), b.data);
    mh_inval_free(&l);
    mh_inval_free(&l2);
    mh_buf_free(&b);
    mh_buf_free(&b2);
}

/*
 * A frame nested too deep is too_large and still yields its `ref`, before or
 * after the deep value (the error reply echoes it), even when the text breaks
 * later on; a bad ref is not echoed.
 */
static void too_deep_frame_keeps_ref(void **state)
{
    static const struct {
        const char *head, *tail;
        double ref; /* 0: none */
    } cases[] = {
        {"{\"action\":\"message\",\"channel\":\"c\",\"data\":", ",\"ref\":11}", 11},
        {"{\"ref\":12,\"data\":", "}", 12},
        {"{\"action\":\"ping\",\"data\":", ",\"x\":\"]}\\\"[\",\"ref\":13}", 13},
        {"{\"ref\":14,\"data\":", ",\"x\":1e400,}", 14},
        {"{\"data\":", ",\"x\":01,\"ref\":15}", 0},
        {"{\"ref\":1.5,\"data\":", "}", 0},
    };
    char text[512];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mh_frame f;
        mh_err err;
        int n = snprintf(text, sizeof text, "%s", cases[i].head);
        for (int k = 0; k < 70; k++)
            text[n++] = '[';
        for (int k = 0; k < 70; k++)
            text[n++] = ']';
        snprintf(text + n, sizeof text - (size_t)n, "%s", cases[i].tail);
        mh_err_clear(&err);
        assert_int_equal(mh_frame_decode(text, strlen(text), &f, &err), MH_E_TOO_LARGE);
        assert_int_equal(err.code, MH_E_TOO_LARGE);
        if (cases[i].ref) {
            assert_non_null(f.ref);
            assert_true(json_number_value(f.ref) == cases[i].ref);
        } else {
            assert_null(f.ref);
        }
        mh_frame_free(&f);
    }
}

/* Versions are written in one place and read back by the one parser. */
static void versions_format_and_parse_back(void **state)
{
    char text[MH_VERSION_MAX], epoch[MH_EPOCH_MAX + 1];
    uint64_t n = 0;
    static const char long_epoch[] = "abcdefghijklmnopqrstuvwxyz012345"; /* MH_EPOCH_MAX */
    (void)state;

    assert_int_equal(mh_version_format(text, "k2f9a", 42), 8);
    assert_string_equal(text, "k2f9a:42");
    /* the longest the parser takes: a 32-byte epoch, 16 digits */
    assert_int_equal(mh_version_format(text, long_epoch, 9999999999999999ull), 32 + 1 + 16);
    assert_int_equal(mh_version_parse(text, strlen(text), epoch, &n), 0);
    assert_string_equal(epoch, long_epoch);
    assert_true(n == 9999999999999999ull);
    /* and the buffer holds any counter */
    assert_int_equal(mh_version_format(text, long_epoch, UINT64_MAX), 32 + 1 + 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(number_round_trips),
        cmocka_unit_test(versions_format_and_parse_back),
        cmocka_unit_test(integers_have_no_exponent),
        cmocka_unit_test(json_dump_is_stringify),
        cmocka_unit_test(buffer_head_room),
        cmocka_unit_test(versions),
        cmocka_unit_test(short_headers_exhaustive),
        cmocka_unit_test(header_reencode_stable),
        cmocka_unit_test(too_deep_frame_keeps_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
