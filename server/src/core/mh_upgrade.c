#define _GNU_SOURCE /* memmem */
#include "mh_upgrade.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

long mh_upgrade_head_end(const char *buf, size_t len)
{
    size_t scan = len < MH_UPGRADE_HEAD_MAX ? len : MH_UPGRADE_HEAD_MAX;
    const char *end = memmem(buf, scan, "\r\n\r\n", 4);

    if (end)
        return (long)(end - buf) + 4;
    return len >= MH_UPGRADE_HEAD_MAX ? -1 : 0;
}

/* RFC 9110 token characters (method and field names). */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A field value byte: visible, obs-text, space or tab — never another control. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int refuse(mh_upgrade_refusal *why, int status, const char *reason, const char *message)
{
    why->status = status;
    why->reason = reason;
    why->message = message;
    why->extra = NULL;
    return -1;
}

static bool name_is(const mh_http_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && !strncasecmp(h->name, name, n);
}

const mh_http_header *mh_upgrade_header(const mh_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (name_is(&req->headers[i], name))
            return &req->headers[i];
    return NULL;
}

static size_t count_header(const mh_http_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        n += name_is(&req->headers[i], name);
    return n;
}

/* Does the comma-separated list 'v' hold 'token' (case-insensitive)? */
static bool has_token(const mh_http_header *h, const char *token)
{
    size_t tl = strlen(token), i = 0;

    if (!h)
        return false;
    while (i < h->value_len) {
        size_t start, end;
        while (i < h->value_len &&
               (h->value[i] == ' ' || h->value[i] == '\t' || h->value[i] == ','))
            i++;
        start = i;
        while (i < h->value_len && h->value[i] != ',')
            i++;
        end = i;
        while (end > start && (h->value[end - 1] == ' ' || h->value[end - 1] == '\t'))
            end--;
        if (end - start == tl && !strncasecmp(h->value + start, token, tl))
            return true;
    }
    return false;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* RFC 6455 4.2.1: the key is base64 (standard alphabet, padded) of 16 bytes. */
static bool key_valid(const mh_http_header *h)
{
    /* 16 bytes = 22 symbols + "==", and the last symbol's low 4 bits unused */
    if (!h || h->value_len != 24 || h->value[22] != '=' || h->value[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (b64val((unsigned char)h->value[i]) < 0)
            return false;
    return (b64val((unsigned char)h->value[21]) & 15) == 0;
}

/* Headers a request may carry once: two would let two parsers disagree. */
static const char *const singletons[] = {"host",
                                         "content-length",
                                         "transfer-encoding",
                                         "upgrade",
                                         "origin",
                                         "cookie",
                                         "authorization",
                                         "x-mizan-token",
                                         "sec-websocket-key",
                                         "sec-websocket-version",
                                         "connection",
                                         NULL};

static int parse_request_line(const char *p, const char *eol, mh_http_request *req,
                              mh_upgrade_refusal *why)
{
    const char *sp1, *sp2;

    for (sp1 = p; sp1 < eol && is_tchar((unsigned char)*sp1); sp1++)
        ;
    if (sp1 == p || sp1 >= eol || *sp1 != ' ')
        return refuse(why, 400, "bad_request_line", "malformed request line");
    for (sp2 = sp1 + 1; sp2 < eol && (unsigned char)*sp2 > 0x20 && (unsigned char)*sp2 < 0x7f;
         sp2++)
        ;
    if (sp2 == sp1 + 1 || sp2 >= eol || *sp2 != ' ')
        return refuse(why, 400, "bad_request_line", "malformed request line");
    req->method = p;
    req->method_len = (size_t)(sp1 - p);
    req->target = sp1 + 1;
    req->target_len = (size_t)(sp2 - sp1 - 1);
    p = sp2 + 1;
    if (eol - p != 8 || memcmp(p, "HTTP/", 5) || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return refuse(why, 400, "bad_request_line", "malformed request line");
    if (p[5] != '1' || p[7] > '1')
        return refuse(why, 505, "http_version", "only HTTP/1.1 (and 1.0 without an upgrade)");
    req->minor = p[7] - '0';
    return 0;
}

static int parse_headers(const char *p, const char *end, mh_http_request *req,
                         mh_upgrade_refusal *why)
{
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2), *colon, *v, *ve;
        mh_http_header *h;

        if (!eol)
            return refuse(why, 400, "bad_header", "malformed header line");
        if (eol == p)
            return 0; /* the blank line */
        if (*p == ' ' || *p == '\t')
            return refuse(why, 400, "bad_header", "obsolete line folding is not accepted");
        for (colon = p; colon < eol && is_tchar((unsigned char)*colon); colon++)
            ;
        if (colon == p || colon >= eol || *colon != ':')
            return refuse(why, 400, "bad_header", "malformed header line");
        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
            ;
        for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
            ;
        for (const char *q = v; q < ve; q++)
            if (!is_value_char((unsigned char)*q))
                return refuse(why, 400, "bad_header", "control character in a header value");
        if (req->nheaders == MH_UPGRADE_MAX_HEADERS)
            return refuse(why, 431, "headers_too_large", "too many header lines");
        h = &req->headers[req->nheaders++];
        h->name = p;
        h->name_len = (size_t)(colon - p);
        h->value = v;
        h->value_len = (size_t)(ve - v);
        p = eol + 2;
    }
    return refuse(why, 400, "bad_header", "malformed header line");
}

/* A browser frame POSTed to a Server-Sent Events stream (SPEC 6.1): the one
 * request here with a body, whose size the hub bounds by max_frame. */
static bool is_stream_post(const mh_http_request *req)
{
    return req->method_len == 4 && !memcmp(req->method, "POST", 4) && req->target_len > 5 &&
           !memcmp(req->target, "/sse/", 5);
}

/* RFC 9112 6.3: a body's framing must be unambiguous, and ours are bodiless
 * but for a stream's POST, which has a Content-Length. */
static int check_framing(const mh_http_request *req, mh_upgrade_refusal *why)
{
    const mh_http_header *cl = mh_upgrade_header(req, "content-length");
    const mh_http_header *te = mh_upgrade_header(req, "transfer-encoding");

    if (cl && te)
        return refuse(why, 400, "body_framing", "Content-Length together with Transfer-Encoding");
    if (te)
        return refuse(why, 400, "body_framing", "a request body is not accepted here");
    if (cl && is_stream_post(req)) {
        /* digits only; more than 9 is far over any max_frame (413 then) */
        bool digits = cl->value_len && cl->value_len <= 9;
        for (size_t i = 0; i < cl->value_len && digits; i++)
            digits = cl->value[i] >= '0' && cl->value[i] <= '9';
        return digits ? 0 : refuse(why, 400, "body_framing", "malformed Content-Length");
    }
    if (cl) {
        if (!cl->value_len)
            return refuse(why, 400, "body_framing", "malformed Content-Length");
        for (size_t i = 0; i < cl->value_len; i++)
            if (cl->value[i] != '0')
                return refuse(why, 400, "body_framing",
                              cl->value[i] >= '1' && cl->value[i] <= '9'
                                  ? "a request body is not accepted here"
                                  : "malformed Content-Length");
    }
    return 0;
}

static int check_websocket(const mh_http_request *req, mh_upgrade_refusal *why)
{
    const mh_http_header *ver = mh_upgrade_header(req, "sec-websocket-version");

    if (req->minor < 1)
        return refuse(why, 400, "http_version", "a WebSocket upgrade needs HTTP/1.1");
    if (!has_token(mh_upgrade_header(req, "connection"), "upgrade"))
        return refuse(why, 400, "bad_upgrade", "Connection must include Upgrade");
    if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2)) {
        refuse(why, 426, "websocket_version", "only WebSocket version 13 is spoken here");
        why->extra = "Sec-WebSocket-Version: 13";
        return -1;
    }
    if (!key_valid(mh_upgrade_header(req, "sec-websocket-key")))
        return refuse(why, 400, "bad_key", "Sec-WebSocket-Key must be base64 of 16 bytes");
    return 0;
}

int mh_upgrade_check(const char *buf, size_t head_len, mh_http_request *req,
                     mh_upgrade_refusal *why)
{
    const char *end = buf + head_len, *eol;
    const mh_http_header *origin;

    memset(req, 0, sizeof *req);
    req->head_len = head_len;
    if (head_len > MH_UPGRADE_HEAD_MAX)
        return refuse(why, 431, "headers_too_large", "request headers too large");
    if (memchr(buf, '\0', head_len))
        return refuse(why, 400, "bad_header", "NUL in the request head");
    eol = memmem(buf, head_len, "\r\n", 2);
    if (!eol)
        return refuse(why, 400, "bad_request_line", "malformed request line");
    if (parse_request_line(buf, eol, req, why) || parse_headers(eol + 2, end, req, why))
        return -1;
    for (size_t i = 0; singletons[i]; i++)
        if (count_header(req, singletons[i]) > 1)
            return refuse(why, 400, "duplicate_header",
                          "a header that may appear once appears twice");
    /* RFC 9112 3.2: an HTTP/1.1 request without exactly one Host is a 400. */
    if (req->minor == 1 && !mh_upgrade_header(req, "host"))
        return refuse(why, 400, "missing_host", "Host is required");
    if (check_framing(req, why))
        return -1;
    if ((req->method_len != 3 || memcmp(req->method, "GET", 3)) && !is_stream_post(req)) {
        refuse(why, 405, "method", "only GET is served here");
        why->extra = "Allow: GET";
        return -1;
    }
    origin = mh_upgrade_header(req, "origin");
    if (origin && origin->value_len > MH_UPGRADE_ORIGIN_MAX)
        return refuse(why, 400, "bad_origin", "Origin too long");
    req->upgrade = has_token(mh_upgrade_header(req, "upgrade"), "websocket");
    if (req->upgrade && check_websocket(req, why))
        return -1;
    return 0;
}

const char *mh_upgrade_phrase(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

int mh_upgrade_response(char *out, size_t cap, int status, const char *extra, const char *body)
{
    size_t blen = strlen(body) + 1; /* the body ends with a newline */
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nCache-Control: no-store\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "%s%s\r\n%s\n",
                     status, mh_upgrade_phrase(status), blen, extra ? extra : "",
                     extra ? "\r\n" : "", body);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Copies 'n' bytes and a NUL into the store; NULL when it is full. */
static const char *stash(char **at, const char *end, const char *p, size_t n)
{
    char *r = *at;

    if ((size_t)(end - r) < n + 1)
        return NULL;
    memcpy(r, p, n);
    r[n] = '\0';
    *at = r + n + 1;
    return r;
}

static int view_header(const mh_http_request *req, const char *name, const char **out, char **at,
                       const char *end)
{
    const mh_http_header *h = mh_upgrade_header(req, name);

    *out = NULL;
    if (!h)
        return 0;
    *out = stash(at, end, h->value, h->value_len);
    return *out ? 0 : -1;
}

int mh_upgrade_view_of(const mh_http_request *req, mh_upgrade_view *v, char *store, size_t cap)
{
    char *at = store;
    const char *end = store + cap, *q, *tend = req->target + req->target_len;

    memset(v, 0, sizeof *v);
    if (view_header(req, "origin", &v->origin, &at, end) ||
        view_header(req, "host", &v->host, &at, end) ||
        view_header(req, "x-forwarded-proto", &v->forwarded_proto, &at, end) ||
        view_header(req, "authorization", &v->authorization, &at, end) ||
        view_header(req, "x-mizan-token", &v->mizan_token, &at, end) ||
        view_header(req, "cookie", &v->cookie, &at, end))
        return -1;
    /* ?token=: the first argument of that name, as sent (tokens are URL-safe) */
    q = memchr(req->target, '?', req->target_len);
    while (q && q < tend) {
        const char *arg = q + 1, *amp = memchr(arg, '&', (size_t)(tend - arg));
        const char *aend = amp ? amp : tend;
        if (aend - arg >= 6 && !memcmp(arg, "token=", 6)) {
            v->query_token = stash(&at, end, arg + 6, (size_t)(aend - arg - 6));
            return v->query_token ? 0 : -1;
        }
        q = amp;
    }
    return 0;
}

int mh_upgrade_accept(const mh_http_request *req, char *out, size_t cap)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    const mh_http_header *key = mh_upgrade_header(req, "sec-websocket-key");
    unsigned char in[24 + sizeof guid], digest[SHA_DIGEST_LENGTH];
    char accept[32];
    int n;

    if (!key || key->value_len != 24)
        return -1;
    memcpy(in, key->value, 24);
    memcpy(in + 24, guid, sizeof guid - 1);
    SHA1(in, 24 + sizeof guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
    n = snprintf(out, cap,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                 accept,
                 has_token(mh_upgrade_header(req, "sec-websocket-protocol"), "mizan.v1")
                     ? "Sec-WebSocket-Protocol: mizan.v1\r\n"
                     : "");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
