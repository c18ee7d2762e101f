#include "mh_gate.h"

#include <libwebsockets.h>
#include <string.h>

#include "mh_auth.h"
#include "mh_peer.h"

/* Copies a header lws read into the store: 0 (absent or copied), -1 too long. */
static int lws_view_header(struct lws *wsi, int token, const char *custom, const char **out,
                           char **at, const char *end)
{
    int n, cap = (int)(end - *at);

    *out = NULL;
    if (custom) {
        n = lws_hdr_custom_length(wsi, custom, (int)strlen(custom));
        if (n < 0)
            return 0;
        if (n >= cap || lws_hdr_custom_copy(wsi, *at, cap, custom, (int)strlen(custom)) < 0)
            return -1;
    } else {
        n = lws_hdr_total_length(wsi, (enum lws_token_indexes)token);
        if (n <= 0)
            return 0;
        if (n >= cap || lws_hdr_copy(wsi, *at, cap, (enum lws_token_indexes)token) != n)
            return -1;
    }
    *out = *at;
    *at += strlen(*at) + 1;
    return 0;
}

/* The upgrade as lws read it (TLS sockets): the view mh_auth judges. */
static int lws_view(struct lws *wsi, mh_upgrade_view *v, char *store, size_t cap)
{
    char *at = store;
    const char *end = store + cap, *arg;

    memset(v, 0, sizeof *v);
    if (lws_view_header(wsi, WSI_TOKEN_ORIGIN, NULL, &v->origin, &at, end) ||
        lws_view_header(wsi, WSI_TOKEN_HOST, NULL, &v->host, &at, end) ||
        lws_view_header(wsi, 0, "x-forwarded-proto:", &v->forwarded_proto, &at, end) ||
        lws_view_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, NULL, &v->authorization, &at, end) ||
        lws_view_header(wsi, 0, "x-mizan-token:", &v->mizan_token, &at, end) ||
        lws_view_header(wsi, WSI_TOKEN_HTTP_COOKIE, NULL, &v->cookie, &at, end))
        return -1;
    /* lws copies "token=..." into the store and points after the name */
    if (end - at > 1 && (arg = lws_get_urlarg_by_name(wsi, "token=", at, (int)(end - at))))
        v->query_token = arg;
    return 0;
}

/* Judges an upgrade, wherever its head was read: 0 go on, 1 refused ('why'). */
int mh_gate_judge(mh_hub *h, mh_conn *c, const mh_upgrade_view *v, mh_upgrade_refusal *why)
{
    if (c->peer && c->peer->admin)
        return mh_auth_refuse(h, why, 404, "upgrade", "admin_listener",
                              "no WebSocket on the admin listener");
    if (h->draining)
        return mh_auth_refuse(h, why, 503, "limit", "draining", "the hub is restarting");
    return mh_auth_filter(h, c, v, why);
}

int mh_gate_filter_lws(mh_hub *h, mh_conn *c, struct lws *wsi, mh_upgrade_refusal *why)
{
    static char store[MH_UPGRADE_VIEW_STORE];
    mh_upgrade_view v;

    if (lws_view(wsi, &v, store, sizeof store))
        return mh_auth_refuse(h, why, 431, "upgrade", "headers_too_large",
                              "request headers too large");
    return mh_gate_judge(h, c, &v, why);
}

/* Our own answer, not lws_return_http_status(): lws 4.1 writes an HTTP/1.0
 * status line without a reason phrase for some codes, which clients such as
 * Python's websockets cannot parse. */
int mh_gate_answer_lws(struct lws *wsi, const mh_upgrade_refusal *why)
{
    unsigned char buf[LWS_PRE + 1024];
    int n = mh_upgrade_response((char *)buf + LWS_PRE, sizeof buf - LWS_PRE, why->status,
                                why->extra, why->message);
    if (n > 0)
        lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP);
    return 1;
}
