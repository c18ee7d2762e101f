/* mh_wsframe: RFC 6455 framing as the hub writes and judges it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mh_wsframe.h"

static void headers_use_the_shortest_length(void **state)
{
    unsigned char h[MH_WS_HEADER_MAX];

    (void)state;
    assert_int_equal(mh_ws_header(h, MH_WS_TEXT, 125), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 125);
    assert_int_equal(mh_ws_header(h, MH_WS_TEXT, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2] << 8 | h[3], 126);
    assert_int_equal(mh_ws_header(h, MH_WS_PING, 65535), 4);
    assert_int_equal(h[0], 0x89);
    assert_int_equal(mh_ws_header(h, MH_WS_TEXT, 65536), 10);
    assert_int_equal(h[1], 127);
    assert_memory_equal(h + 2, "\0\0\0\0\0\x01\0\0", 8);
}

/* A masked browser frame: header + mask + masked payload. */
static size_t client_frame(unsigned char *out, unsigned b0, const char *payload, size_t n)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t o = 0;

    out[o++] = (unsigned char)b0;
    if (n < 126) {
        out[o++] = (unsigned char)(0x80 | n);
    } else {
        out[o++] = 0x80 | 126;
        out[o++] = (unsigned char)(n >> 8);
        out[o++] = (unsigned char)n;
    }
    memcpy(out + o, mask, 4);
    o += 4;
    for (size_t i = 0; i < n; i++)
        out[o + i] = (unsigned char)(payload[i] ^ mask[i & 3]);
    return o + n;
}

static void parses_and_unmasks_a_text_frame(void **state)
{
    unsigned char buf[64];
    size_t n = client_frame(buf, 0x81, "Hello", 5);
    mh_ws_frame f;
    mh_ws_fault flt;

    (void)state;
    for (size_t cut = 0; cut < 6; cut++) /* a header in pieces waits for the rest */
        assert_int_equal(mh_ws_parse(buf, cut, 1 << 20, &f, &flt), 0);
    assert_int_equal(mh_ws_parse(buf, n, 1 << 20, &f, &flt), 1);
    assert_true(f.fin);
    assert_int_equal(f.opcode, MH_WS_TEXT);
    assert_int_equal(f.len, 5);
    assert_int_equal(f.head_len, 6);
    /* unmasking in two pieces is the same as in one */
    mh_ws_unmask(buf + 6, 2, f.mask, 0);
    mh_ws_unmask(buf + 8, 3, f.mask, 2);
    assert_memory_equal(buf + 6, "Hello", 5);
}

static void extended_lengths(void **state)
{
    static char big[300];
    unsigned char buf[400];
    mh_ws_frame f;
    mh_ws_fault flt;
    size_t n = client_frame(buf, 0x82, big, sizeof big);

    (void)state;
    assert_int_equal(mh_ws_parse(buf, 7, 1 << 20, &f, &flt), 0);
    assert_int_equal(mh_ws_parse(buf, n, 1 << 20, &f, &flt), 1);
    assert_int_equal(f.len, 300);
    assert_int_equal(f.head_len, 8);
    /* over the limit: refused from the header alone, with 1009 */
    assert_int_equal(mh_ws_parse(buf, 8, 299, &f, &flt), -1);
    assert_int_equal(flt.code, 1009);
}

static void refuses_what_rfc6455_forbids(void **state)
{
    struct {
        unsigned char bytes[14];
        size_t len;
        uint16_t code;
    } cases[] = {
        {{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 7, 1002},                /* unmasked */
        {{0xC1, 0x80, 0, 0, 0, 0}, 6, 1002},                             /* RSV1 */
        {{0x83, 0x80, 0, 0, 0, 0}, 6, 1002},                             /* opcode 3 */
        {{0x8B, 0x80, 0, 0, 0, 0}, 6, 1002},                             /* opcode 0xB */
        {{0x09, 0x80, 0, 0, 0, 0}, 6, 1002},                             /* fragmented ping */
        {{0x89, 0xFE, 0, 126, 0, 0, 0, 0}, 8, 1002},                     /* ping of 126 */
        {{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, 14, 1002}, /* 2^63 + 1 */
    };
    mh_ws_frame f;
    mh_ws_fault flt;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        flt.code = 0;
        assert_int_equal(mh_ws_parse(cases[i].bytes, cases[i].len, 1 << 20, &f, &flt), -1);
        assert_int_equal(flt.code, cases[i].code);
        assert_non_null(flt.why);
    }
}

static void close_payloads(void **state)
{
    unsigned char p[MH_WS_CONTROL_MAX] = {0};
    uint16_t code;
    mh_ws_fault flt;
    char reason[200];

    (void)state;
    assert_int_equal(mh_ws_close_parse(p, 0, &code, &flt), 0);
    assert_int_equal(code, 1005);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x03", 1, &code, &flt), -1);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x03\xe8ok", 4, &code, &flt), 0);
    assert_int_equal(code, 1000);
    /* 1005, 1006 and 1015 are never sent; 999 and 5000 do not exist */
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x03\xed", 2, &code, &flt), -1);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x03\xee", 2, &code, &flt), -1);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x03\xe7", 2, &code, &flt), -1);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x13\x88", 2, &code, &flt), -1);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x0f\xa0", 2, &code, &flt), 0);
    assert_int_equal(mh_ws_close_parse((const unsigned char *)"\x03\xe8\xff", 3, &code, &flt), -1);
    assert_int_equal(flt.code, 1007);

    assert_int_equal(mh_ws_close_payload(p, 4008, "slow consumer"), 15);
    assert_memory_equal(p, "\x0f\xa8slow consumer", 15);
    /* a long reason is cut to fit a control frame, never inside a character */
    memset(reason, 'a', sizeof reason);
    memcpy(reason + 122, "\xc3\xa9", 2); /* é straddles the 123-byte cut */
    reason[sizeof reason - 1] = '\0';
    assert_int_equal(mh_ws_close_payload(p, 1000, reason), 2 + 122);
    reason[122] = reason[123] = 'a'; /* plain ASCII: cut at exactly 123 */
    assert_int_equal(mh_ws_close_payload(p, 1000, reason), 2 + 123);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(headers_use_the_shortest_length),
        cmocka_unit_test(parses_and_unmasks_a_text_frame),
        cmocka_unit_test(extended_lengths),
        cmocka_unit_test(refuses_what_rfc6455_forbids),
        cmocka_unit_test(close_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
