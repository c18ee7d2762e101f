#include "mh_opsweb.h"

#include <libwebsockets.h>
#include <string.h>

#include "mh_ops.h"
#include "mh_upgrade.h"

/* server/ops/index.html, generated into the build (server/ops/embed.py) */
extern const unsigned char mh_ops_page[];
extern const size_t mh_ops_page_len;

static const char ctype_json[] = "application/json";

/* The value of query argument 'name' ("name=" as lws compares it), decoded
 * by lws, or NULL when absent. */
static const char *arg(struct lws *wsi, const char *name, char *buf, int len)
{
    return lws_get_urlarg_by_name(wsi, name, buf, len);
}

bool mh_opsweb_answer(mh_hub *h, struct lws *wsi, const char *path, int *status, const char **ctype,
                      mh_buf *body)
{
    /* the whole query fits in each: an argument cut short never passes for
     * a missing one (params left out means "every params") */
    static char a[MH_UPGRADE_HEAD_MAX], b[MH_UPGRADE_HEAD_MAX];

    if (strncmp(path, "/ops", 4) || (path[4] && path[4] != '/'))
        return false;
    *status = 200;
    *ctype = ctype_json;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) >= (int)sizeof a) {
        *status = 400;
        mh_buf_puts(body, "{\"error\":\"query too long\"}");
    } else if (!strcmp(path, "/ops") || !strcmp(path, "/ops/") ||
               !strcmp(path, "/ops/index.html")) {
        *ctype = "text/html; charset=utf-8";
        mh_buf_put(body, mh_ops_page, mh_ops_page_len);
    } else if (!strcmp(path, "/ops/api/hubs")) {
        mh_ops_render_hubs(h, body);
    } else if (!strcmp(path, "/ops/api/self")) {
        mh_ops_snapshot(h, body);
    } else if (!strcmp(path, "/ops/api/trace")) {
        mh_ops_render_trace(h, arg(wsi, "scope=", a, sizeof a), body);
    } else if (!strcmp(path, "/ops/api/trace/start")) {
        const char *ctx = arg(wsi, "context=", a, sizeof a);
        const char *params = arg(wsi, "params=", b, sizeof b);
        bool channel = !ctx;
        if (channel)
            ctx = arg(wsi, "channel=", a, sizeof a);
        *status = mh_ops_trace_start(h, channel, ctx, params, body);
    } else if (!strcmp(path, "/ops/api/trace/stop")) {
        *status = mh_ops_trace_stop(h, arg(wsi, "scope=", a, sizeof a), body);
    } else {
        *status = 404;
        mh_buf_puts(body, "{\"error\":\"not found\"}");
    }
    return true;
}
