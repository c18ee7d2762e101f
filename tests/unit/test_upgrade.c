/*
 * mh_upgrade: every request head the hub must refuse, with its status and
 * reason word, and the heads it must let through (RFC 9112, RFC 6455).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mh_upgrade.h"

#define WS "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"
#define GOOD "GET / HTTP/1.1\r\nHost: h\r\n" WS KEY V13

typedef struct head_case {
    const char *head;
    int status; /* 0: accepted */
    const char *reason;
} head_case;

static const head_case cases[] = {
    {GOOD "\r\n", 0, NULL},
    {"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL},
    {"GET /healthz HTTP/1.0\r\n\r\n", 0, NULL},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c, websocket\r\nConnection: keep-alive, "
     "upgrade\r\n" KEY V13 "\r\n",
     0, NULL},
    {GOOD "Content-Length: 0\r\n\r\n", 0, NULL},
    {GOOD "Host: h\r\n\r\n", 400, "duplicate_header"},
    {GOOD KEY "\r\n", 400, "duplicate_header"},
    {GOOD "Origin: https://a\r\nOrigin: https://b\r\n\r\n", 400, "duplicate_header"},
    {GOOD "Cookie: a=1\r\nCookie: b=2\r\n\r\n", 400, "duplicate_header"},
    {"GET / HTTP/1.1\r\nHost: h\r\n" WS KEY "Sec-WebSocket-Version: 8\r\n\r\n", 426,
     "websocket_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\n" WS KEY "\r\n", 426, "websocket_version"},
    {GOOD "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "body_framing"},
    {GOOD "Transfer-Encoding: chunked\r\n\r\n", 400, "body_framing"},
    {GOOD "Content-Length: 12\r\n\r\n", 400, "body_framing"},
    {GOOD "Content-Length: -1\r\n\r\n", 400, "body_framing"},
    {"POST / HTTP/1.1\r\nHost: h\r\n" WS KEY V13 "\r\n", 405, "method"},
    {"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 405, "method"},
    /* a stream's POST (SPEC 6.1) is the one request with a body */
    {"POST /sse/h.1-1?secret=ab HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n", 0, NULL},
    {"POST /sse/h.1-1 HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999\r\n\r\n", 0, NULL},
    {"POST /sse/h.1-1 HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000\r\n\r\n", 400,
     "body_framing"},
    {"POST /sse/h.1-1 HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", 400, "body_framing"},
    {"POST /sse/h.1-1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     "body_framing"},
    {"POST /sse HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n", 400, "body_framing"},
    {"POST /sse2/x HTTP/1.1\r\nHost: h\r\n\r\n", 405, "method"},
    {"GET /sse/h.1-1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n", 400, "body_framing"},
    {"GET / HTTP/1.0\r\nHost: h\r\n" WS KEY V13 "\r\n", 400, "http_version"},
    {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "http_version"},
    {"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505, "http_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\n" WS "Sec-WebSocket-Key: c2hvcnQ=\r\n" V13 "\r\n", 400,
     "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\n" WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=\r\n" V13
     "\r\n",
     400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\n" WS "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" V13
     "\r\n",
     400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\n" WS V13 "\r\n", 400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n" KEY V13 "\r\n", 400, "bad_upgrade"},
    {"GET / HTTP/1.1\r\n" WS KEY V13 "\r\n", 400, "missing_host"},
    {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400, "bad_header"},
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "bad_header"},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400, "bad_header"},
    {"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n", 400, "bad_header"},
    {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rz\r\n\r\n", 400, "bad_header"},
    {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request_line"},
    {"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad_request_line"},
    {"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400, "bad_request_line"},
    {"\r\n\r\n", 400, "bad_request_line"},
};

static void heads_are_judged(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const head_case *t = &cases[i];
        size_t n = strlen(t->head);
        mh_http_request req;
        mh_upgrade_refusal why = {0};
        long end = mh_upgrade_head_end(t->head, n);
        int rc;

        assert_int_equal(end, (long)n);
        rc = mh_upgrade_check(t->head, (size_t)end, &req, &why);
        if (rc == 0 && t->status) {
            fail_msg("case %zu accepted, wanted %d %s: %s", i, t->status, t->reason, t->head);
        } else if (rc != 0 && !t->status) {
            fail_msg("case %zu refused %d %s: %s", i, why.status, why.reason, t->head);
        } else if (rc) {
            if (why.status != t->status || strcmp(why.reason, t->reason))
                fail_msg("case %zu: %d %s, wanted %d %s", i, why.status, why.reason, t->status,
                         t->reason);
        }
    }
}

static void the_426_names_version_13_and_the_405_allow(void **state)
{
    mh_http_request req;
    mh_upgrade_refusal why;
    const char *h = "GET / HTTP/1.1\r\nHost: h\r\n" WS KEY "Sec-WebSocket-Version: 8\r\n\r\n";
    const char *p = "POST / HTTP/1.1\r\nHost: h\r\n\r\n";
    (void)state;

    assert_int_equal(mh_upgrade_check(h, strlen(h), &req, &why), -1);
    assert_string_equal(why.extra, "Sec-WebSocket-Version: 13");
    assert_int_equal(mh_upgrade_check(p, strlen(p), &req, &why), -1);
    assert_string_equal(why.extra, "Allow: GET");
}

static void a_head_without_an_end_is_431_at_the_limit(void **state)
{
    char *big = malloc(MH_UPGRADE_HEAD_MAX + 100);
    size_t n;
    (void)state;

    n = (size_t)snprintf(big, 64, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    memset(big + n, 'a', MH_UPGRADE_HEAD_MAX + 100 - n);
    assert_int_equal(mh_upgrade_head_end(big, 100), 0);                     /* not yet */
    assert_int_equal(mh_upgrade_head_end(big, MH_UPGRADE_HEAD_MAX - 1), 0); /* still not */
    assert_int_equal(mh_upgrade_head_end(big, MH_UPGRADE_HEAD_MAX), -1);
    assert_int_equal(mh_upgrade_head_end(big, MH_UPGRADE_HEAD_MAX + 100), -1);
    /* an end found within the limit counts even with more bytes after it */
    memcpy(big + 200, "\r\n\r\n", 4);
    assert_int_equal(mh_upgrade_head_end(big, MH_UPGRADE_HEAD_MAX + 100), 204);
    free(big);
}

static void headers_are_found_by_name_and_upgrade_is_noticed(void **state)
{
    const char *h = GOOD "X-Mizan-Token: abc \r\n\r\n";
    mh_http_request req;
    mh_upgrade_refusal why;
    const mh_http_header *x;
    (void)state;

    assert_int_equal(mh_upgrade_check(h, strlen(h), &req, &why), 0);
    assert_true(req.upgrade);
    assert_int_equal(req.minor, 1);
    x = mh_upgrade_header(&req, "x-mizan-token");
    assert_non_null(x);
    assert_int_equal(x->value_len, 3); /* trailing whitespace is not the value */
    assert_memory_equal(x->value, "abc", 3);
    assert_null(mh_upgrade_header(&req, "origin"));
}

/* RFC 6455 1.3's own example: key dGhlIHNhbXBsZSBub25jZQ== accepts as s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
 */
static void the_101_carries_the_rfc_accept_key(void **state)
{
    const char *h = "GET /chat?x=1&token=abc.def&token=no HTTP/1.1\r\nHost: server.example.com\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Protocol: chat, mizan.v1\r\nCookie: a=1; sid=x\r\n\r\n";
    mh_http_request req;
    mh_upgrade_refusal why;
    mh_upgrade_view v;
    char out[512], store[MH_UPGRADE_VIEW_STORE];
    (void)state;

    assert_int_equal(mh_upgrade_check(h, strlen(h), &req, &why), 0);
    assert_true(mh_upgrade_accept(&req, out, sizeof out) > 0);
    assert_non_null(strstr(out, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(out, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(out, "Sec-WebSocket-Protocol: mizan.v1\r\n"));
    assert_int_equal(mh_upgrade_accept(&req, out, 40), -1);
    assert_int_equal(mh_upgrade_view_of(&req, &v, store, sizeof store), 0);
    assert_string_equal(v.host, "server.example.com");
    assert_string_equal(v.cookie, "a=1; sid=x");
    assert_string_equal(v.query_token, "abc.def");
    assert_null(v.origin);
    assert_null(v.authorization);
    assert_int_equal(mh_upgrade_view_of(&req, &v, store, 10), -1);
}

static void responses_are_http_1_1_with_a_reason_phrase(void **state)
{
    char out[512];
    int n;
    (void)state;

    n = mh_upgrade_response(out, sizeof out, 429, NULL, "too many connections");
    assert_true(n > 0);
    assert_memory_equal(out, "HTTP/1.1 429 Too Many Requests\r\n", 32);
    assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(out, "\r\nContent-Length: 21\r\n\r\ntoo many connections\n"));
    n = mh_upgrade_response(out, sizeof out, 426, "Sec-WebSocket-Version: 13", "x");
    assert_true(n > 0);
    assert_non_null(strstr(out, "HTTP/1.1 426 Upgrade Required\r\n"));
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_int_equal(mh_upgrade_response(out, 20, 400, NULL, "x"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(heads_are_judged),
        cmocka_unit_test(the_426_names_version_13_and_the_405_allow),
        cmocka_unit_test(a_head_without_an_end_is_431_at_the_limit),
        cmocka_unit_test(headers_are_found_by_name_and_upgrade_is_noticed),
        cmocka_unit_test(responses_are_http_1_1_with_a_reason_phrase),
        cmocka_unit_test(the_101_carries_the_rfc_accept_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
