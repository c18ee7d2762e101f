/*
 * mh_netaddr: --trusted-proxies lists, the PROXY protocol (v1 text, v2
 * binary; every refusal), and X-Forwarded-For chains read from the right.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "mh_netaddr.h"

static mh_ip ip(const char *s)
{
    mh_ip v;
    assert_true(mh_ip_parse(&v, s, strlen(s)));
    return v;
}

static void cidr_lists_match_what_they_say(void **state)
{
    mh_cidr_list l;
    char err[128];
    mh_ip a;
    (void)state;

    assert_int_equal(
        mh_cidr_parse(&l, "10.0.0.0/8, 127.0.0.1 192.168.1.128/25,fd00::/8", err, sizeof err), 0);
    assert_int_equal(l.n, 4);
    a = ip("10.200.3.4");
    assert_true(mh_cidr_match(&l, &a));
    a = ip("11.0.0.1");
    assert_false(mh_cidr_match(&l, &a));
    a = ip("127.0.0.1");
    assert_true(mh_cidr_match(&l, &a));
    a = ip("127.0.0.2");
    assert_false(mh_cidr_match(&l, &a));
    a = ip("192.168.1.200");
    assert_true(mh_cidr_match(&l, &a));
    a = ip("192.168.1.100");
    assert_false(mh_cidr_match(&l, &a));
    a = ip("fd12::1");
    assert_true(mh_cidr_match(&l, &a));
    a = ip("::ffff:10.1.2.3"); /* an IPv4 peer on a dual-stack socket */
    assert_true(mh_cidr_match(&l, &a));
    assert_int_equal(mh_cidr_parse(&l, "", err, sizeof err), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(mh_cidr_parse(&l, "10.0.0.0/33", err, sizeof err), -1);
    assert_int_equal(mh_cidr_parse(&l, "10.0.0/8", err, sizeof err), -1);
    assert_int_equal(mh_cidr_parse(&l, "example.com", err, sizeof err), -1);
    assert_int_equal(mh_cidr_parse(&l, "10.0.0.0/", err, sizeof err), -1);
    assert_non_null(strstr(err, "10.0.0.0/"));
}

static void proxy_v1(void **state)
{
    mh_proxy_info info;
    char text[64];
    const char *h = "PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n";
    (void)state;

    assert_int_equal(mh_proxy_parse((const unsigned char *)h, strlen(h), &info), 42);
    assert_false(info.local);
    mh_ip_text(&info.src, text, sizeof text);
    assert_string_equal(text, "203.0.113.7");
    h = "PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n";
    assert_int_equal(mh_proxy_parse((const unsigned char *)h, strlen(h), &info), (int)strlen(h));
    mh_ip_text(&info.src, text, sizeof text);
    assert_string_equal(text, "2001:db8::7");
    h = "PROXY UNKNOWN\r\n";
    assert_int_equal(mh_proxy_parse((const unsigned char *)h, strlen(h), &info), 15);
    assert_true(info.local);
    /* incomplete: more is needed */
    assert_int_equal(mh_proxy_parse((const unsigned char *)"PROX", 4, &info), 0);
    assert_int_equal(mh_proxy_parse((const unsigned char *)"PROXY TCP4 1.2.3.4", 18, &info), 0);
    /* wrong */
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       /* bare LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a field short */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   /* a field more */
        "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", /* family mismatch */
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    /* leading zero */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",     /* protocol */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",    /* two spaces */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mh_proxy_parse((const unsigned char *)bad[i], strlen(bad[i]), &info), -1);
}

static void proxy_v2(void **state)
{
    unsigned char b[64] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    mh_proxy_info info;
    char text[64];
    (void)state;

    b[12] = 0x21; /* v2, PROXY */
    b[13] = 0x11; /* TCP4 */
    b[14] = 0;
    b[15] = 12;
    memcpy(b + 16, "\xcb\x00\x71\x09", 4); /* 203.0.113.9 */
    memcpy(b + 20, "\x0a\x00\x00\x01", 4);
    memcpy(b + 24, "\xc8\x00\x00\x50", 4);
    assert_int_equal(mh_proxy_parse(b, 28, &info), 28);
    assert_false(info.local);
    mh_ip_text(&info.src, text, sizeof text);
    assert_string_equal(text, "203.0.113.9");
    assert_int_equal(mh_proxy_parse(b, 20, &info), 0); /* body not there yet */
    assert_int_equal(mh_proxy_parse(b, 8, &info), 0);  /* signature not there yet */
    b[12] = 0x20;                                      /* LOCAL: a health check */
    assert_int_equal(mh_proxy_parse(b, 28, &info), 28);
    assert_true(info.local);
    b[12] = 0x22; /* unknown command */
    assert_int_equal(mh_proxy_parse(b, 28, &info), -1);
    b[12] = 0x11; /* version 1 in a v2 signature */
    assert_int_equal(mh_proxy_parse(b, 28, &info), -1);
    b[12] = 0x21;
    b[15] = 8; /* TCP4 with too short an address block */
    assert_int_equal(mh_proxy_parse(b, 28, &info), -1);
    b[14] = 0xff; /* over MH_PROXY_MAX */
    assert_int_equal(mh_proxy_parse(b, 28, &info), -1);
}

static void xff_is_read_from_the_right(void **state)
{
    mh_cidr_list l;
    char err[64], text[64];
    mh_ip out;
    const char *one[] = {"198.51.100.1, 203.0.113.5, 10.0.0.2"};
    size_t one_len[] = {strlen(one[0])};
    const char *two[] = {"1.1.1.1", "10.0.0.9,10.0.0.8"};
    size_t two_len[] = {7, 17};
    const char *junk[] = {"1.2.3.4, not-an-ip"};
    size_t junk_len[] = {strlen(junk[0])};
    (void)state;

    assert_int_equal(mh_cidr_parse(&l, "10.0.0.0/8", err, sizeof err), 0);
    /* the client spoofs the left part; the first untrusted hop from the right counts */
    assert_true(mh_xff_client(&l, one, one_len, 1, &out));
    mh_ip_text(&out, text, sizeof text);
    assert_string_equal(text, "203.0.113.5");
    /* several header lines are one list; all trusted but the first */
    assert_true(mh_xff_client(&l, two, two_len, 2, &out));
    mh_ip_text(&out, text, sizeof text);
    assert_string_equal(text, "1.1.1.1");
    /* a chain that does not parse names nobody */
    assert_false(mh_xff_client(&l, junk, junk_len, 1, &out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cidr_lists_match_what_they_say),
        cmocka_unit_test(proxy_v1),
        cmocka_unit_test(proxy_v2),
        cmocka_unit_test(xff_is_read_from_the_right),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
