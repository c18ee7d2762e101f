#include "mh_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *mh_code_name(int code)
{
    switch (code) {
    case MH_OK:
        return "ok";
    case MH_E_NOMEM:
        return "internal";
    case MH_E_BAD_JSON:
        return "bad_json";
    case MH_E_BAD_FRAME:
        return "bad_frame";
    case MH_E_UNKNOWN_ACTION:
        return "unknown_action";
    case MH_E_BAD_NAME:
        return "bad_name";
    case MH_E_BAD_PARAM:
        return "bad_param";
    case MH_E_BAD_INVALIDATION:
        return "bad_invalidation";
    case MH_E_BAD_HEADER:
        return "bad_header";
    case MH_E_TOO_LARGE:
        return "too_large";
    case MH_E_BAD_VERSION:
        return "bad_version";
    case MH_E_BAD_ENVELOPE:
        return "bad_envelope";
    case MH_E_UNKNOWN_KIND:
        return "unknown_kind";
    default:
        return "internal";
    }
}

void mh_err_clear(mh_err *e)
{
    if (!e)
        return;
    e->code = MH_OK;
    e->pos = -1;
    e->has_path = 0;
    e->path[0] = '\0';
    e->path_len = 0;
    e->msg[0] = '\0';
}

int mh_err_set(mh_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        mh_err_clear(e);
        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void mh_err_at(mh_err *e, long pos)
{
    if (e)
        e->pos = pos;
}

void mh_err_path(mh_err *e, const char *prefix, const char *key, size_t key_len)
{
    size_t n, i;

    if (!e)
        return;
    e->has_path = 1;
    n = (size_t)snprintf(e->path, sizeof e->path, "%s", prefix);
    if (n >= sizeof e->path)
        n = sizeof e->path - 1;
    e->path_len = n;
    if (!key)
        return;
    e->path[n++] = '/';
    for (i = 0; i < key_len && n + 3 < sizeof e->path; i++) {
        if (key[i] == '~' || key[i] == '/') {
            e->path[n++] = '~';
            e->path[n++] = key[i] == '~' ? '0' : '1';
        } else {
            e->path[n++] = key[i];
        }
    }
    e->path[n] = '\0';
    e->path_len = n;
}
