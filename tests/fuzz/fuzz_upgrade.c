/*
 * libFuzzer: the upgrade request as a client sends it, before anything else
 * sees it — a PROXY header when there is one, the head's end, its strict judgement (mh_upgrade),
 * then what auth reads from an accepted head: the Cookie header's session cookie and the Origin,
 * and X-Forwarded-For read against a trusted list; and the input as a --trusted-proxies text.
 * Beyond "no crash": a refusal has a status the hub answers with and a response that fits, an
 * accepted head's fields all lie inside the input, and the judgement does not depend on what
 * follows the head.
 */
#include "fuzz_check.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_djsign.h"
#include "mh_netaddr.h"
#include "mh_upgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const char *base, size_t n, const char *p, size_t len)
{
    return p >= base && p + len <= base + n;
}

static void cidr_text(const uint8_t *data, size_t size)
{
    char text[256], err[128];
    mh_cidr_list l;
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;

    memcpy(text, data, n);
    text[n] = '\0';
    if (mh_cidr_parse(&l, text, err, sizeof err) == 0) {
        CHECK(l.n <= MH_CIDR_MAX);
        for (size_t i = 0; i < l.n; i++)
            CHECK(mh_cidr_match(&l, &l.e[i].ip)); /* a network holds its own address */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf;
    mh_http_request req, again;
    mh_upgrade_refusal why = {0}, why2 = {0};
    mh_proxy_info info;
    char out[2048];
    long end;
    int rc, plen;

    cidr_text(data, size);
    plen = mh_proxy_parse(data, size, &info);
    CHECK(plen >= -1 && plen <= (int)size && plen <= MH_PROXY_MAX);
    if (plen > 0) {
        CHECK(info.local || info.src.family == AF_INET || info.src.family == AF_INET6);
        data += plen;
        size -= (size_t)plen;
    }
    buf = (const char *)data;
    end = mh_upgrade_head_end(buf, size);

    CHECK(end >= -1 && end <= (long)size);
    if (end < 0) {
        CHECK(size >= MH_UPGRADE_HEAD_MAX);
        return 0;
    }
    if (end == 0)
        return 0;
    CHECK(end >= 4 && !memcmp(buf + end - 4, "\r\n\r\n", 4) && end <= MH_UPGRADE_HEAD_MAX);
    rc = mh_upgrade_check(buf, (size_t)end, &req, &why);
    CHECK(rc == 0 || rc == -1);
    if (rc) {
        static const int statuses[] = {400, 405, 426, 431, 505};
        int known = 0;
        for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
            known |= why.status == statuses[i];
        CHECK(known && why.reason && why.message);
        CHECK(mh_upgrade_response(out, sizeof out, why.status, why.extra, why.message) > 0);
        /* a copy of just the head is judged the same */
        {
            char *copy = malloc((size_t)end);
            memcpy(copy, buf, (size_t)end);
            CHECK(mh_upgrade_check(copy, (size_t)end, &again, &why2) == -1);
            CHECK(why2.status == why.status && !strcmp(why2.reason, why.reason));
            free(copy);
        }
        return 0;
    }
    CHECK(req.minor == 0 || req.minor == 1);
    CHECK(inside(buf, (size_t)end, req.method, req.method_len));
    CHECK(inside(buf, (size_t)end, req.target, req.target_len) && req.target_len > 0);
    /* GET, or a stream's POST (SPEC 6.1: POST /sse/<conn>, its body framed by Content-Length) */
    CHECK((req.method_len == 3 && !memcmp(req.method, "GET", 3)) ||
          (req.method_len == 4 && !memcmp(req.method, "POST", 4) && req.target_len > 5 &&
           !memcmp(req.target, "/sse/", 5)));
    for (size_t i = 0; i < req.nheaders; i++) {
        const mh_http_header *h = &req.headers[i];
        CHECK(h->name_len > 0 && inside(buf, (size_t)end, h->name, h->name_len));
        CHECK(inside(buf, (size_t)end, h->value, h->value_len));
        CHECK(!memchr(h->value, '\r', h->value_len) && !memchr(h->value, '\n', h->value_len));
    }
    if (req.upgrade)
        CHECK(req.minor == 1 && mh_upgrade_header(&req, "sec-websocket-key") &&
              mh_upgrade_header(&req, "host"));
    {
        const mh_http_header *ck = mh_upgrade_header(&req, "cookie");
        const char *v;
        size_t vlen;
        if (ck && mh_djsign_cookie_find(ck->value, ck->value_len, "sessionid", &v, &vlen) == 0)
            CHECK(inside(ck->value, ck->value_len, v, vlen));
    }
    {
        static mh_cidr_list trusted;
        const mh_http_header *x = mh_upgrade_header(&req, "x-forwarded-for");
        mh_ip client;
        if (!trusted.n) {
            char err[64];
            CHECK(mh_cidr_parse(&trusted, "10.0.0.0/8, ::1, 127.0.0.1", err, sizeof err) == 0);
        }
        if (x) {
            const char *v = x->value;
            if (mh_xff_client(&trusted, &v, &x->value_len, 1, &client))
                CHECK(client.family == AF_INET || client.family == AF_INET6);
        }
    }
    {
        const mh_http_header *o = mh_upgrade_header(&req, "origin");
        if (o)
            CHECK(o->value_len <= MH_UPGRADE_ORIGIN_MAX);
    }
    return 0;
}
