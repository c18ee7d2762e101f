#include "mh_envelope.h"

#include <stdio.h>
#include <string.h>

#include "mh_frame.h"
#include "mh_json.h"
#include "mh_value.h"

static const char *kind_names[] = {"invalidate", "message",  "logout", "disconnect",
                                   "canary",     "reply",    "send",   "close",
                                   "registry",   "presence", "post"};

const char *mh_kind_name(mh_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "?";
}

void mh_envelope_free(mh_envelope *env)
{
    mh_inval_free(&env->inval);
    mh_entry_free(&env->channel);
    json_decref(env->root);
    memset(env, 0, sizeof *env);
}

bool mh_epoch_valid(const char *s, size_t len)
{
    if (len == 0 || len > MH_EPOCH_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
            return false;
    return true;
}

size_t mh_version_format(char out[MH_VERSION_MAX], const char *epoch, uint64_t n)
{
    int len =
        snprintf(out, MH_VERSION_MAX, "%.*s:%llu", MH_EPOCH_MAX, epoch, (unsigned long long)n);
    return len < 0 ? 0 : (size_t)len;
}

int mh_version_parse(const char *s, size_t len, char *epoch, uint64_t *n)
{
    const char *colon = memchr(s, ':', len);
    size_t elen, dlen;
    uint64_t v = 0;

    if (!colon)
        return MH_E_BAD_VERSION;
    elen = (size_t)(colon - s);
    dlen = len - elen - 1;
    if (!mh_epoch_valid(s, elen) || dlen == 0 || dlen > 16 || (dlen > 1 && colon[1] == '0'))
        return MH_E_BAD_VERSION;
    for (size_t i = 0; i < dlen; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9')
            return MH_E_BAD_VERSION;
        v = v * 10 + (uint64_t)(colon[1 + i] - '0');
    }
    memcpy(epoch, s, elen);
    epoch[elen] = '\0';
    *n = v;
    return 0;
}

static int bad(mh_err *err, const char *what)
{
    return mh_err_set(err, MH_E_BAD_ENVELOPE, "bad envelope: %s", what);
}

/* A string field of min..max bytes (required unless it has a default). */
static int str_field(const json_t *root, const char *field, size_t min, size_t max,
                     const char **out, mh_err *err)
{
    const json_t *v = json_object_get(root, field);

    if (!json_is_string(v) || json_string_length(v) < min || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return mh_err_set(err, MH_E_BAD_ENVELOPE,
                          "bad envelope: \"%s\" must be a string of 1-%zu bytes", field, max);
    *out = json_string_value(v);
    return 0;
}

static int decode_invalidate(mh_envelope *env, mh_err *err)
{
    const json_t *list = json_object_get(env->root, "invalidate");
    mh_err inner;
    int rc;

    mh_err_clear(&inner);
    if ((rc = mh_inval_from_json(list, &env->inval, &inner)))
        return mh_err_set(err, MH_E_BAD_ENVELOPE, "bad envelope: invalidate%s: %s", inner.path,
                          inner.msg);
    if (env->inval.n == 0)
        return bad(err, "\"invalidate\" is empty");
    env->versions = json_object_get(env->root, "versions");
    if (!json_is_object(env->versions))
        return bad(err, "\"versions\" must be an object");
    {
        const char *k;
        json_t *v;
        json_object_foreach(env->versions, k, v)
        {
            char epoch[MH_EPOCH_MAX + 1];
            uint64_t n;
            if (!json_is_string(v) ||
                mh_version_parse(json_string_value(v), json_string_length(v), epoch, &n))
                return mh_err_set(err, MH_E_BAD_ENVELOPE,
                                  "bad envelope: versions.%s is not a version \"E:N\"", k);
        }
    }
    for (size_t i = 0; i < env->inval.n; i++)
        if (!json_object_get(env->versions, env->inval.entries[i].context))
            return mh_err_set(err, MH_E_BAD_ENVELOPE, "bad envelope: no version for context \"%s\"",
                              env->inval.entries[i].context);
    return 0;
}

/* "channel" and "params" of a message or presence envelope. */
static int decode_channel(mh_envelope *env, mh_err *err)
{
    const json_t *name = json_object_get(env->root, "channel");
    const json_t *params = json_object_get(env->root, "params");
    mh_err inner;

    mh_err_clear(&inner);
    if (!json_is_string(name) || mh_entry_set_context(&env->channel, json_string_value(name),
                                                      json_string_length(name), &inner))
        return bad(err, "\"channel\" must be a channel name");
    env->channel.scoped = true;
    if (params) {
        if (!json_is_object(params))
            return bad(err, "\"params\" must be an object");
        if (mh_entry_params_from_json(&env->channel, params, "/params", &inner))
            return mh_err_set(err, MH_E_BAD_ENVELOPE, "bad envelope: params%s: %s", inner.path,
                              inner.msg);
    }
    return 0;
}

static int decode_message(mh_envelope *env, mh_err *err)
{
    const json_t *type = json_object_get(env->root, "type");
    const json_t *seq = json_object_get(env->root, "seq");
    const json_t *epoch = json_object_get(env->root, "epoch");
    double s;
    int rc;

    if ((rc = decode_channel(env, err)))
        return rc;
    if (type) {
        if (!json_is_string(type) ||
            mh_name_check(json_string_value(type), json_string_length(type), MH_NAME_MAX, NULL))
            return bad(err, "\"type\" must be a name");
        env->type = json_string_value(type);
    } else {
        env->type = "message";
    }
    env->data = json_object_get(env->root, "data");
    if (!json_is_number(seq))
        return bad(err, "\"seq\" is required");
    s = json_number_value(seq);
    if (!mh_json_is_safe_integer(seq) || s < 1)
        return bad(err, "\"seq\" must be an integer >= 1");
    env->seq = (uint64_t)s;
    if (!json_is_string(epoch) ||
        !mh_epoch_valid(json_string_value(epoch), json_string_length(epoch)))
        return bad(err, "\"epoch\" must be 1-32 characters of [0-9a-z]");
    env->epoch = json_string_value(epoch);
    return 0;
}

/* SPEC 11: op, channel, params, member {conn, sub, info}. */
static int decode_presence(mh_envelope *env, mh_err *err)
{
    const json_t *op = json_object_get(env->root, "op");
    const json_t *member, *sub;
    int rc;

    if (!json_is_string(op) ||
        (strcmp(json_string_value(op), "join") && strcmp(json_string_value(op), "leave")))
        return bad(err, "\"op\" must be \"join\" or \"leave\"");
    env->join = !strcmp(json_string_value(op), "join");
    if ((rc = decode_channel(env, err)))
        return rc;
    member = json_object_get(env->root, "member");
    if (!json_is_object(member))
        return bad(err, "\"member\" must be an object");
    if ((rc = str_field(member, "conn", 1, 128, &env->conn, err)))
        return rc;
    sub = json_object_get(member, "sub");
    if (!json_is_null(sub) && (rc = str_field(member, "sub", 1, 256, &env->subject, err)))
        return rc;
    env->info = json_object_get(member, "info");
    if (env->info) {
        mh_buf b;
        bool big;
        mh_buf_init(&b);
        rc = mh_json_dump(&b, env->info);
        big = rc || b.oom || b.len > MH_INFO_MAX;
        mh_buf_free(&b);
        if (json_is_null(env->info) || big)
            return bad(err, "\"info\" must be JSON other than null of at most 1024 bytes");
    }
    return 0;
}

static int decode_frame_field(mh_envelope *env, bool need_id, mh_err *err)
{
    int rc;

    if ((rc = str_field(env->root, "conn", 1, 128, &env->conn, err)))
        return rc;
    env->frame = json_object_get(env->root, "frame");
    if (!json_is_object(env->frame))
        return bad(err, "\"frame\" must be an object");
    if (need_id && !mh_frame_id_valid(json_object_get(env->frame, "id")))
        return bad(err, "a reply frame's \"id\" is a string of 1-64 bytes or an integer");
    return 0;
}

int mh_envelope_decode(const char *text, size_t len, mh_envelope *env, mh_err *err)
{
    const json_t *v, *kind, *ts;
    const char *k;
    size_t i;
    int rc;

    memset(env, 0, sizeof *env);
    env->root = mh_json_parse(text, len, err);
    if (!env->root)
        return err ? err->code : MH_E_BAD_JSON;
    if (!json_is_object(env->root))
        return bad(err, "an envelope is a JSON object");
    v = json_object_get(env->root, "v");
    if (!json_is_number(v) || json_number_value(v) != 1)
        return bad(err, "\"v\" must be 1");
    kind = json_object_get(env->root, "kind");
    if (!json_is_string(kind))
        return bad(err, "\"kind\" must be a string");
    k = json_string_value(kind);
    for (i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (strlen(kind_names[i]) == json_string_length(kind) && !strcmp(k, kind_names[i]))
            break;
    if (i == sizeof kind_names / sizeof kind_names[0])
        return mh_err_set(err, MH_E_UNKNOWN_KIND, "unknown envelope kind \"%.40s\"", k);
    env->kind = (mh_kind)i;
    ts = json_object_get(env->root, "ts");
    if (ts) {
        if (!json_is_number(ts) || json_number_value(ts) < 0)
            return bad(err, "\"ts\" must be a number of milliseconds");
        env->has_ts = true;
        env->ts = json_number_value(ts);
    }
    switch (env->kind) {
    case MH_KIND_INVALIDATE:
        return decode_invalidate(env, err);
    case MH_KIND_MESSAGE:
        return decode_message(env, err);
    case MH_KIND_LOGOUT:
        if ((rc = str_field(env->root, "session", 1, 64, &env->session, err)))
            return rc;
        if (strlen(env->session) != 64 || strspn(env->session, "0123456789abcdef") != 64)
            return bad(err, "\"session\" must be 64 lowercase hex digits");
        return 0;
    case MH_KIND_DISCONNECT:
        if ((rc = str_field(env->root, "sub", 1, 256, &env->subject, err)))
            return rc;
        env->reason = "";
        if (json_object_get(env->root, "reason") &&
            (rc = str_field(env->root, "reason", 0, MH_CLOSE_REASON_MAX, &env->reason, err)))
            return rc;
        return 0;
    case MH_KIND_CANARY:
        if ((rc = str_field(env->root, "hub", 1, 64, &env->hub, err)))
            return rc;
        return str_field(env->root, "nonce", 1, 64, &env->nonce, err);
    case MH_KIND_REGISTRY:
        return str_field(env->root, "version", 1, 64, &env->version, err);
    case MH_KIND_PRESENCE:
        return decode_presence(env, err);
    case MH_KIND_REPLY:
        return decode_frame_field(env, true, err);
    case MH_KIND_SEND:
        return decode_frame_field(env, false, err);
    case MH_KIND_POST:
        if ((rc = str_field(env->root, "conn", 1, 128, &env->conn, err)) ||
            (rc = str_field(env->root, "secret", 32, 32, &env->secret, err)) ||
            (rc = str_field(env->root, "body", 1, MH_POST_BODY_MAX, &env->body, err)))
            return rc;
        if (strspn(env->secret, "0123456789abcdef") != 32)
            return bad(err, "\"secret\" must be 32 lowercase hex digits");
        env->body_len = strlen(env->body);
        if (json_object_get(env->root, "n")) {
            const json_t *n = json_object_get(env->root, "n");
            if (!mh_json_is_safe_integer(n) || json_number_value(n) < 1)
                return bad(err, "\"n\" must be an integer >= 1");
            env->post_n = (uint64_t)json_number_value(n);
        }
        return 0;
    case MH_KIND_CLOSE: {
        const json_t *code = json_object_get(env->root, "code");
        double c;
        if ((rc = str_field(env->root, "conn", 1, 128, &env->conn, err)))
            return rc;
        if (!json_is_number(code))
            return bad(err, "\"code\" is required");
        c = json_number_value(code);
        if (!mh_json_is_safe_integer(code) || c < 4000 || c > 4999)
            return bad(err, "\"code\" must be an integer in 4000-4999");
        env->code = (int)c;
        env->reason = "";
        if (json_object_get(env->root, "reason") &&
            (rc = str_field(env->root, "reason", 0, MH_CLOSE_REASON_MAX, &env->reason, err)))
            return rc;
        return 0;
    }
    }
    return bad(err, "unknown kind");
}

json_t *mh_envelope_to_json(const mh_envelope *env)
{
    json_t *o = json_object();
    int bad_ = !o;

#define SET(k, v) (bad_ |= json_object_set_new(o, (k), (v)))
    if (bad_)
        return NULL;
    SET("v", json_integer(1));
    SET("kind", json_string(mh_kind_name(env->kind)));
    if (env->has_ts)
        SET("ts", json_real(env->ts));
    switch (env->kind) {
    case MH_KIND_INVALIDATE:
        SET("invalidate", mh_inval_to_json(&env->inval));
        SET("versions", json_incref(env->versions));
        break;
    case MH_KIND_MESSAGE:
        SET("channel", json_stringn(env->channel.context, env->channel.context_len));
        SET("params", mh_params_to_json(env->channel.params, env->channel.nparams));
        SET("type", json_string(env->type));
        SET("data", env->data ? json_incref(env->data) : json_null());
        SET("seq", json_integer((json_int_t)env->seq));
        SET("epoch", json_string(env->epoch));
        break;
    case MH_KIND_LOGOUT:
        SET("session", json_string(env->session));
        break;
    case MH_KIND_DISCONNECT:
        SET("sub", json_string(env->subject));
        SET("reason", json_string(env->reason));
        break;
    case MH_KIND_CANARY:
        SET("hub", json_string(env->hub));
        SET("nonce", json_string(env->nonce));
        break;
    case MH_KIND_REGISTRY:
        SET("version", json_string(env->version));
        break;
    case MH_KIND_PRESENCE: {
        json_t *m = json_object();
        SET("op", json_string(env->join ? "join" : "leave"));
        SET("channel", json_stringn(env->channel.context, env->channel.context_len));
        SET("params", mh_params_to_json(env->channel.params, env->channel.nparams));
        bad_ |= !m;
        if (m) {
            bad_ |= json_object_set_new(m, "conn", json_string(env->conn));
            bad_ |= json_object_set_new(m, "sub",
                                        env->subject ? json_string(env->subject) : json_null());
            if (env->info)
                bad_ |= json_object_set(m, "info", env->info);
            SET("member", m);
        }
        break;
    }
    case MH_KIND_REPLY:
    case MH_KIND_SEND:
        SET("conn", json_string(env->conn));
        SET("frame", json_incref(env->frame));
        break;
    case MH_KIND_POST:
        SET("conn", json_string(env->conn));
        SET("secret", json_string(env->secret));
        if (env->post_n)
            SET("n", json_integer((json_int_t)env->post_n));
        SET("body", json_stringn(env->body, env->body_len));
        break;
    case MH_KIND_CLOSE:
        SET("conn", json_string(env->conn));
        SET("code", json_integer(env->code));
        SET("reason", json_string(env->reason));
        break;
    }
#undef SET
    if (bad_) {
        json_decref(o);
        return NULL;
    }
    return o;
}
