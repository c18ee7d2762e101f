#include "mh_out.h"

#include <string.h>

#include "mh_json.h"
#include "mh_value.h"

static void put_str(mh_buf *b, const char *s)
{
    mh_json_put_string(b, s, strlen(s));
}

static void put_ref(mh_buf *b, const json_t *ref)
{
    if (ref) {
        mh_buf_puts(b, ",\"ref\":");
        mh_json_dump(b, ref);
    }
}

static void put_identity(mh_buf *b, const char *subject, bool staff, bool super)
{
    if (!subject) {
        mh_buf_puts(b, "null");
        return;
    }
    mh_buf_puts(b, "{\"sub\":");
    put_str(b, subject);
    mh_buf_printf(b, ",\"staff\":%s,\"super\":%s}", staff ? "true" : "false",
                  super ? "true" : "false");
}

void mh_out_welcome(mh_buf *b, const char *hub_id, const char *conn, const char *subject,
                    bool staff, bool super, int64_t expires, int spread_ms, int max_frame)
{
    mh_buf_puts(b, "{\"welcome\":{\"protocol\":1,\"hub\":");
    put_str(b, hub_id);
    mh_buf_puts(b, ",\"conn\":");
    put_str(b, conn);
    mh_buf_puts(b, ",\"identity\":");
    put_identity(b, subject, staff, super);
    if (expires)
        mh_buf_printf(b, ",\"expires\":%lld", (long long)expires);
    else
        mh_buf_puts(b, ",\"expires\":null");
    mh_buf_printf(b, ",\"spread_ms\":%d,\"max_frame\":%d}}", spread_ms, max_frame);
}

void mh_out_authed(mh_buf *b, const char *subject, bool staff, bool super, int64_t expires,
                   const json_t *ref)
{
    mh_buf_puts(b, "{\"authed\":{\"identity\":");
    put_identity(b, subject, staff, super);
    if (expires)
        mh_buf_printf(b, ",\"expires\":%lld", (long long)expires);
    else
        mh_buf_puts(b, ",\"expires\":null");
    put_ref(b, ref);
    mh_buf_puts(b, "}}");
}

void mh_out_expiring(mh_buf *b, int64_t expires, int64_t in)
{
    mh_buf_printf(b, "{\"expiring\":{\"expires\":%lld,\"in\":%lld}}", (long long)expires,
                  (long long)in);
}

void mh_out_rpc_error(mh_buf *b, const char *id_json, const char *code, const char *message)
{
    mh_buf_puts(b, "{\"id\":");
    mh_buf_puts(b, id_json);
    mh_buf_puts(b, ",\"ok\":false,\"error\":{\"code\":");
    put_str(b, code);
    mh_buf_puts(b, ",\"message\":");
    put_str(b, message);
    mh_buf_puts(b, "}}");
}

void mh_out_identity(mh_buf *b, const char *subject, bool staff, bool super)
{
    put_identity(b, subject, staff, super);
}

void mh_out_canary(mh_buf *b, const char *hub_id, const char *nonce)
{
    mh_buf_puts(b, "{\"v\":1,\"kind\":\"canary\",\"hub\":");
    put_str(b, hub_id);
    mh_buf_puts(b, ",\"nonce\":");
    put_str(b, nonce);
    mh_buf_putc(b, '}');
}

void mh_out_invalidate(mh_buf *b, const mh_entry *e, const char *version, const char *reason,
                       int spread_ms, double ts)
{
    mh_buf_puts(b, "{\"invalidate\":[");
    mh_entry_dump(b, e);
    mh_buf_putc(b, ']');
    if (version) {
        mh_buf_puts(b, ",\"versions\":{");
        mh_json_put_string(b, e->context, e->context_len);
        mh_buf_putc(b, ':');
        put_str(b, version);
        mh_buf_putc(b, '}');
    }
    if (reason) {
        mh_buf_puts(b, ",\"reason\":");
        put_str(b, reason);
    }
    if (spread_ms >= 0)
        mh_buf_printf(b, ",\"spread_ms\":%d", spread_ms);
    if (ts > 0) {
        char num[MH_NUMBER_MAX];
        mh_value_number(ts, num);
        mh_buf_printf(b, ",\"ts\":%s", num);
    }
    mh_buf_putc(b, '}');
}

static void put_target(mh_buf *b, bool channel, const mh_entry *e)
{
    mh_buf_puts(b, channel ? ",\"channel\":" : ",\"context\":");
    mh_json_put_string(b, e->context, e->context_len);
    mh_buf_puts(b, ",\"params\":");
    mh_params_dump(b, e->params, e->nparams);
}

void mh_out_ack(mh_buf *b, bool subscribed, bool channel, const mh_entry *e, const char *version,
                const char *epoch, uint64_t seq, const json_t *ref)
{
    mh_buf_puts(b, subscribed ? "{\"subscribed\":true" : "{\"unsubscribed\":true");
    put_target(b, channel, e);
    if (subscribed && !channel && version) {
        mh_buf_puts(b, ",\"version\":");
        put_str(b, version);
    }
    if (subscribed && channel && epoch) {
        mh_buf_puts(b, ",\"epoch\":");
        put_str(b, epoch);
        mh_buf_printf(b, ",\"seq\":%llu", (unsigned long long)seq);
    }
    put_ref(b, ref);
    mh_buf_putc(b, '}');
}

void mh_out_error(mh_buf *b, const char *code, const char *message, const json_t *ref, int target,
                  const mh_entry *e)
{
    mh_buf_puts(b, "{\"error\":{\"code\":");
    put_str(b, code);
    mh_buf_puts(b, ",\"message\":");
    put_str(b, message);
    mh_buf_putc(b, '}');
    put_ref(b, ref);
    if (target && e)
        put_target(b, target == 2, e);
    mh_buf_putc(b, '}');
}

void mh_out_ended(mh_buf *b, bool channel, const mh_entry *e, const char *code, const char *message)
{
    mh_buf_puts(b, "{\"unsubscribed\":true");
    put_target(b, channel, e);
    mh_buf_puts(b, ",\"error\":{\"code\":");
    put_str(b, code);
    mh_buf_puts(b, ",\"message\":");
    put_str(b, message);
    mh_buf_puts(b, "}}");
}

void mh_out_gap(mh_buf *b, const mh_entry *channel, uint64_t from, uint64_t to, bool recovered,
                const char *reason)
{
    mh_buf_puts(b, "{\"gap\":{\"channel\":");
    mh_json_put_string(b, channel->context, channel->context_len);
    mh_buf_puts(b, ",\"params\":");
    mh_params_dump(b, channel->params, channel->nparams);
    mh_buf_printf(b, ",\"from\":%llu,\"to\":%llu,\"recovered\":%s,\"reason\":",
                  (unsigned long long)from, (unsigned long long)to, recovered ? "true" : "false");
    put_str(b, reason);
    mh_buf_puts(b, "}}");
}

int mh_out_channel_message(mh_buf *b, const mh_envelope *env)
{
    int rc = 0;

    mh_buf_puts(b, "{\"channel\":");
    mh_json_put_string(b, env->channel.context, env->channel.context_len);
    mh_buf_puts(b, ",\"params\":");
    mh_params_dump(b, env->channel.params, env->channel.nparams);
    mh_buf_puts(b, ",\"type\":");
    put_str(b, env->type);
    mh_buf_puts(b, ",\"data\":");
    if (env->data)
        rc = mh_json_dump(b, env->data);
    else
        mh_buf_puts(b, "null");
    mh_buf_printf(b, ",\"seq\":%llu,\"epoch\":", (unsigned long long)env->seq);
    put_str(b, env->epoch);
    if (env->has_ts) {
        char num[MH_NUMBER_MAX];
        mh_value_number(env->ts, num);
        mh_buf_printf(b, ",\"ts\":%s", num);
    }
    mh_buf_putc(b, '}');
    return rc;
}

void mh_out_pong(mh_buf *b, const json_t *ref)
{
    mh_buf_puts(b, "{\"pong\":true");
    put_ref(b, ref);
    mh_buf_putc(b, '}');
}

void mh_out_member(mh_buf *b, const char *conn, const char *subject, const char *info)
{
    mh_buf_puts(b, "{\"conn\":");
    put_str(b, conn);
    mh_buf_puts(b, ",\"sub\":");
    if (subject)
        put_str(b, subject);
    else
        mh_buf_puts(b, "null");
    if (info) {
        mh_buf_puts(b, ",\"info\":");
        mh_buf_puts(b, info);
    }
    mh_buf_putc(b, '}');
}

void mh_out_presence_scope(mh_buf *b, const mh_entry *channel)
{
    mh_buf_puts(b, "\"channel\":");
    mh_json_put_string(b, channel->context, channel->context_len);
    mh_buf_puts(b, ",\"params\":");
    mh_params_dump(b, channel->params, channel->nparams);
}

void mh_out_presence_envelope(mh_buf *b, bool join, const char *scope, size_t scope_len,
                              const char *member, size_t member_len)
{
    mh_buf_puts(b, join ? "{\"v\":1,\"kind\":\"presence\",\"op\":\"join\","
                        : "{\"v\":1,\"kind\":\"presence\",\"op\":\"leave\",");
    mh_buf_put(b, scope, scope_len);
    mh_buf_puts(b, ",\"member\":");
    mh_buf_put(b, member, member_len);
    mh_buf_putc(b, '}');
}

void mh_out_presence_event(mh_buf *b, bool join, const mh_entry *channel, const char *member,
                           size_t member_len)
{
    mh_buf_puts(b, join ? "{\"join\":{" : "{\"leave\":{");
    mh_out_presence_scope(b, channel);
    mh_buf_puts(b, ",\"member\":");
    mh_buf_put(b, member, member_len);
    mh_buf_puts(b, "}}");
}

void mh_out_presence(mh_buf *b, const mh_entry *channel, const char *const *members,
                     const size_t *lens, size_t n, const json_t *ref)
{
    mh_buf_puts(b, "{\"presence\":{");
    mh_out_presence_scope(b, channel);
    mh_buf_puts(b, ",\"members\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            mh_buf_putc(b, ',');
        mh_buf_put(b, members[i], lens[i]);
    }
    mh_buf_puts(b, "]}");
    put_ref(b, ref);
    mh_buf_putc(b, '}');
}

void mh_out_stream(mh_buf *b, const char *conn, const char *secret)
{
    mh_buf_puts(b, "{\"stream\":{\"conn\":");
    put_str(b, conn);
    mh_buf_puts(b, ",\"secret\":");
    put_str(b, secret);
    mh_buf_puts(b, "}}");
}

void mh_out_post(mh_buf *b, const char *conn, const char *secret, uint64_t n, const char *body,
                 size_t len)
{
    mh_buf_puts(b, "{\"v\":1,\"kind\":\"post\",\"conn\":");
    put_str(b, conn);
    mh_buf_puts(b, ",\"secret\":");
    put_str(b, secret);
    if (n)
        mh_buf_printf(b, ",\"n\":%llu", (unsigned long long)n);
    mh_buf_puts(b, ",\"body\":");
    mh_json_put_string(b, body, len);
    mh_buf_putc(b, '}');
}

void mh_out_close(mh_buf *b, unsigned code, const char *reason)
{
    mh_buf_printf(b, "{\"close\":{\"code\":%u,\"reason\":", code);
    put_str(b, reason);
    mh_buf_puts(b, "}}");
}

/* Appends s[0..n) at out+at when out is set; the new length either way. */
static size_t put_raw(char *out, size_t at, const char *s, size_t n)
{
    if (out)
        memcpy(out + at, s, n);
    return at + n;
}

size_t mh_out_sse_event(char *out, const char *id, const char *data, size_t len)
{
    size_t at = 0, i = 0;

    if (id) {
        at = put_raw(out, at, "id: ", 4);
        at = put_raw(out, at, id, strlen(id));
        at = put_raw(out, at, "\n", 1);
    }
    /* Frames are one line (compact JSON escapes line breaks inside strings);
     * a frame passed through from Django may still hold one between tokens. */
    do {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        at = put_raw(out, at, "data: ", 6);
        at = put_raw(out, at, data + i, j - i);
        at = put_raw(out, at, "\n", 1);
        if (j < len && data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
            j++;
        i = j + 1;
    } while (i <= len); /* a break at the end leaves one empty line, as EventSource reads it */
    return put_raw(out, at, "\n", 1);
}
