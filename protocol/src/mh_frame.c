#include "mh_frame.h"

#include <string.h>

#include "mh_json.h"
#include "mh_value.h"

static const struct {
    const char *name;
    mh_action action;
} actions[] = {
    {"auth", MH_ACT_AUTH},
    {"refresh", MH_ACT_REFRESH},
    {"subscribe", MH_ACT_SUBSCRIBE},
    {"unsubscribe", MH_ACT_UNSUBSCRIBE},
    {"message", MH_ACT_MESSAGE},
    {"rpc", MH_ACT_RPC},
    {"ctx", MH_ACT_CTX},
    {"ping", MH_ACT_PING},
    {"presence", MH_ACT_PRESENCE},
};

const char *mh_action_name(mh_action a)
{
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (actions[i].action == a)
            return actions[i].name;
    return "?";
}

void mh_frame_free(mh_frame *f)
{
    mh_entry_free(&f->scope);
    json_decref(f->root);
    memset(f, 0, sizeof *f);
}

/* A `ref` or rpc `id`: a string of at most 64 bytes (non-empty for ids) or an integer. */
static int check_ref(const json_t *v, const char *field, bool nonempty, mh_err *err)
{
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (nonempty && n == 0)
            return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" must not be empty", field);
        if (n > MH_REF_MAX)
            return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" is longer than %d bytes", field,
                              MH_REF_MAX);
        return 0;
    }
    if (mh_json_is_safe_integer(v))
        return 0;
    return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" must be a string or an integer", field);
}

bool mh_frame_id_valid(const json_t *v)
{
    return check_ref(v, "id", true, NULL) == 0;
}

/* Reads an optional string field with a length limit into *out. */
static int opt_string(const json_t *root, const char *field, size_t max, bool nonempty,
                      const char **out, size_t *len, mh_err *err)
{
    const json_t *v = json_object_get(root, field);

    *out = NULL;
    *len = 0;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" must be a string", field);
    if (nonempty && json_string_length(v) == 0)
        return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" must not be empty", field);
    if (json_string_length(v) > max)
        return mh_err_set(err, MH_E_TOO_LARGE, "\"%s\" is longer than %zu bytes", field, max);
    *out = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* The context or channel a frame addresses, and its params. */
static int read_target(mh_frame *f, bool context_ok, bool channel_ok, mh_err *err)
{
    const json_t *ctx = context_ok ? json_object_get(f->root, "context") : NULL;
    const json_t *ch = channel_ok ? json_object_get(f->root, "channel") : NULL;
    const json_t *name, *params;
    int rc;

    if (ctx && ch)
        return mh_err_set(err, MH_E_BAD_FRAME, "give \"context\" or \"channel\", not both");
    if (!ctx && !ch) {
        if (context_ok && channel_ok)
            return mh_err_set(err, MH_E_BAD_FRAME, "\"context\" or \"channel\" is required");
        return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" is required",
                          context_ok ? "context" : "channel");
    }
    name = ctx ? ctx : ch;
    f->target = ctx ? MH_TARGET_CONTEXT : MH_TARGET_CHANNEL;
    if (!json_is_string(name))
        return mh_err_set(err, MH_E_BAD_FRAME, "\"%s\" must be a string",
                          ctx ? "context" : "channel");
    if ((rc = mh_entry_set_context(&f->scope, json_string_value(name), json_string_length(name),
                                   err)))
        return rc;
    f->scope.scoped = true;
    params = json_object_get(f->root, "params");
    if (!params)
        return 0;
    if (!json_is_object(params))
        return mh_err_set(err, MH_E_BAD_FRAME, "\"params\" must be an object");
    return mh_entry_params_from_json(&f->scope, params, "/params", err);
}

static int read_id(mh_frame *f, mh_err *err)
{
    f->id = json_object_get(f->root, "id");
    if (!f->id)
        return mh_err_set(err, MH_E_BAD_FRAME, "\"id\" is required");
    return check_ref(f->id, "id", true, err);
}

int mh_frame_decode(const char *text, size_t len, mh_frame *f, mh_err *err)
{
    const json_t *action;
    const char *name;
    size_t name_len, i;
    int rc, too_deep, ref_rc;

    memset(f, 0, sizeof *f);
    f->root = mh_json_parse_keep(text, len, err, &too_deep);
    if (!f->root)
        return err ? err->code : MH_E_BAD_JSON;
    if (!json_is_object(f->root))
        return too_deep ? MH_E_TOO_LARGE
                        : mh_err_set(err, MH_E_BAD_FRAME, "a frame is a JSON object");
    /* `ref` is read first, so every later error can echo it (SPEC 7); a bad
     * one is reported after `action`, the order SPEC 1 gives. */
    f->ref = json_object_get(f->root, "ref");
    ref_rc = f->ref ? check_ref(f->ref, "ref", true, NULL) : 0;
    if (ref_rc)
        f->ref = NULL; /* never echo what failed the check */
    if (too_deep)
        return MH_E_TOO_LARGE;
    action = json_object_get(f->root, "action");
    if (!json_is_string(action))
        return mh_err_set(err, MH_E_BAD_FRAME, "\"action\" must be a string");
    name = json_string_value(action);
    name_len = json_string_length(action);
    for (i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strlen(actions[i].name) == name_len && !memcmp(actions[i].name, name, name_len))
            break;
    if (i == sizeof actions / sizeof actions[0])
        return mh_err_set(err, MH_E_UNKNOWN_ACTION, "unknown action \"%.*s\"",
                          (int)(name_len > 40 ? 40 : name_len), name);
    if (ref_rc)
        return check_ref(json_object_get(f->root, "ref"), "ref", true, err);
    f->action = actions[i].action;

    switch (f->action) {
    case MH_ACT_AUTH:
    case MH_ACT_REFRESH:
        if ((rc = opt_string(f->root, "token", MH_TOKEN_MAX, true, &f->token, &f->token_len, err)))
            return rc;
        if (!f->token)
            return mh_err_set(err, MH_E_BAD_FRAME, "\"token\" is required");
        return 0;
    case MH_ACT_SUBSCRIBE:
        if ((rc = read_target(f, true, true, err)))
            return rc;
        if ((rc = opt_string(f->root, "since", MH_SINCE_MAX, false, &f->since, &f->since_len, err)))
            return rc;
        return opt_string(f->root, "token", MH_TOKEN_MAX, true, &f->token, &f->token_len, err);
    case MH_ACT_UNSUBSCRIBE:
        return read_target(f, true, true, err);
    case MH_ACT_MESSAGE:
        if ((rc = read_target(f, false, true, err)))
            return rc;
        f->data = json_object_get(f->root, "data");
        return 0;
    case MH_ACT_RPC: {
        const json_t *fn;
        if ((rc = read_id(f, err)))
            return rc;
        fn = json_object_get(f->root, "fn");
        if (!json_is_string(fn))
            return mh_err_set(err, MH_E_BAD_FRAME, "\"fn\" is required and must be a string");
        f->fn = json_string_value(fn);
        f->fn_len = json_string_length(fn);
        if ((rc = mh_name_check(f->fn, f->fn_len, MH_NAME_MAX, err)))
            return rc;
        f->args = json_object_get(f->root, "args");
        if (f->args && !json_is_object(f->args) && !json_is_array(f->args))
            return mh_err_set(err, MH_E_BAD_FRAME, "\"args\" must be an object or an array");
        return 0;
    }
    case MH_ACT_CTX:
        if ((rc = read_id(f, err)))
            return rc;
        return read_target(f, true, false, err);
    case MH_ACT_PING:
        return 0;
    case MH_ACT_PRESENCE:
        return read_target(f, false, true, err);
    }
    return mh_err_set(err, MH_E_UNKNOWN_ACTION, "unknown action");
}

json_t *mh_frame_to_json(const mh_frame *f)
{
    json_t *o = json_object();
    int bad = !o;

#define SET(k, v) (bad |= json_object_set_new(o, (k), (v)))
#define SET_REF(k, v) (bad |= json_object_set(o, (k), (v)))
    if (bad)
        return NULL;
    SET("action", json_string(mh_action_name(f->action)));
    switch (f->action) {
    case MH_ACT_AUTH:
    case MH_ACT_REFRESH:
        SET("token", json_stringn(f->token, f->token_len));
        break;
    case MH_ACT_SUBSCRIBE:
    case MH_ACT_UNSUBSCRIBE:
    case MH_ACT_MESSAGE:
    case MH_ACT_PRESENCE:
        SET(f->target == MH_TARGET_CONTEXT ? "context" : "channel",
            json_stringn(f->scope.context, f->scope.context_len));
        SET("params", mh_params_to_json(f->scope.params, f->scope.nparams));
        if (f->since)
            SET("since", json_stringn(f->since, f->since_len));
        if (f->action == MH_ACT_SUBSCRIBE && f->token)
            SET("token", json_stringn(f->token, f->token_len));
        if (f->action == MH_ACT_MESSAGE)
            SET_REF("data", f->data ? f->data : json_null());
        break;
    case MH_ACT_RPC:
        SET_REF("id", f->id);
        SET("fn", json_stringn(f->fn, f->fn_len));
        if (f->args)
            SET_REF("args", f->args);
        else
            SET("args", json_object());
        break;
    case MH_ACT_CTX:
        SET_REF("id", f->id);
        SET("context", json_stringn(f->scope.context, f->scope.context_len));
        SET("params", mh_params_to_json(f->scope.params, f->scope.nparams));
        break;
    case MH_ACT_PING:
        break;
    }
    if (f->ref)
        SET_REF("ref", f->ref);
#undef SET
#undef SET_REF
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int mh_frame_dump(mh_buf *out, const mh_frame *f)
{
    json_t *o = mh_frame_to_json(f);
    int rc;

    if (!o)
        return MH_E_NOMEM;
    rc = mh_json_dump(out, o);
    json_decref(o);
    return rc || out->oom ? MH_E_NOMEM : 0;
}
