#include "mh_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mh_buf.h"
#include "mh_envelope.h"
#include "mh_inval.h"
#include "mh_key.h"

mh_sse *mh_sse_new(void)
{
    unsigned char raw[MH_SSE_SECRET_LEN / 2];
    mh_sse *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->secret + 2 * i, 3, "%02x", raw[i]);
    s->next_n = 1;
    return s;
}

void mh_sse_free(mh_sse *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nsubs; i++) {
        free(s->subs[i].key);
        free(s->subs[i].context);
    }
    for (unsigned i = 0; i < s->nheld; i++)
        free(s->held[i].body);
    free(s->subs);
    free(s->id);
    free(s);
}

/*
 * 'c'/'h' + the canonical key of (name, params): how a frame names the
 * subscription it concerns. NULL when they are not a valid scope (such a
 * subscription was refused, so no frame moves it) or out of memory.
 */
static char *key_of(bool channel, const char *name, const json_t *params)
{
    mh_entry e = {0};
    mh_err err;
    mh_buf b;
    char *key = NULL;

    mh_err_clear(&err);
    if (!name || mh_entry_set_context(&e, name, strlen(name), &err))
        goto done;
    if (params && !json_is_object(params))
        goto done;
    if (params && mh_entry_params_from_json(&e, params, "/params", &err))
        goto done;
    mh_buf_init(&b);
    mh_buf_putc(&b, channel ? 'h' : 'c');
    mh_key_canon(&b, e.context, e.context_len, e.params, e.nparams);
    key = b.oom ? NULL : mh_buf_take(&b);
    mh_buf_free(&b);
done:
    mh_entry_free(&e);
    return key;
}

/* The frame's scope: its "context" or "channel" and "params"; NULL if none. */
static char *frame_key(const json_t *v, const char **context)
{
    const char *ctx = json_string_value(json_object_get(v, "context"));
    const char *ch = json_string_value(json_object_get(v, "channel"));

    *context = ctx ? ctx : ch;
    if (!ctx == !ch)
        return NULL;
    return key_of(ch != NULL, *context, json_object_get(v, "params"));
}

int mh_sse_add(mh_sse *s, const json_t *obj, const char *since)
{
    mh_sse_sub *n = realloc(s->subs, (s->nsubs + 1) * sizeof *n), *sub;
    const char *context = NULL;
    char *id;

    if (!n)
        return -1;
    s->subs = n;
    id = realloc(s->id, s->id_max + MH_SSE_POINT_MAX + 2);
    if (!id)
        return -1;
    s->id = id;
    sub = &s->subs[s->nsubs];
    memset(sub, 0, sizeof *sub);
    if (obj) {
        sub->key = frame_key(obj, &context);
        if (sub->key && !(sub->context = strdup(context))) {
            free(sub->key);
            return -1;
        }
    }
    if (sub->key && since && strlen(since) <= MH_SSE_POINT_MAX)
        strcpy(sub->point, since);
    s->nsubs++;
    s->id_max += MH_SSE_POINT_MAX + 1;
    return 0;
}

int mh_sse_parse_id(const char *id, size_t n, char (*points)[MH_SSE_POINT_MAX + 1])
{
    const char *p = id;

    if (!n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char epoch[MH_EPOCH_MAX + 1];
        uint64_t counter;

        if ((end != NULL) != (i + 1 < n))
            return -1; /* not as many points as subscriptions */
        if (len == 1 && *p == '-') {
            points[i][0] = '\0';
        } else {
            if (len > MH_SSE_POINT_MAX || mh_version_parse(p, len, epoch, &counter))
                return -1;
            memcpy(points[i], p, len);
            points[i][len] = '\0';
        }
        p = end ? end + 1 : p + len;
    }
    return 0;
}

/* Sets the point of every query subscription with this key; 'acked' 1 marks
 * them in the index, 0 out of it, -1 leaves that as it is. */
static bool set_key(mh_sse *s, const char *key, const char *point, int acked)
{
    bool moved = false;

    if (!key || !point || strlen(point) > MH_SSE_POINT_MAX)
        return false;
    for (size_t i = 0; i < s->nsubs; i++) {
        mh_sse_sub *sub = &s->subs[i];
        if (!sub->key || strcmp(sub->key, key))
            continue;
        if (acked >= 0)
            sub->acked = acked;
        if (strcmp(sub->point, point)) {
            strcpy(sub->point, point);
            moved = true;
        }
    }
    return moved;
}

/* A channel's point from a frame's epoch and seq: "E:S". */
static bool channel_point(const json_t *v, char *out, size_t cap)
{
    const char *epoch = json_string_value(json_object_get(v, "epoch"));
    const json_t *seq = json_object_get(v, "seq");

    if (!epoch || !json_is_integer(seq))
        return false;
    snprintf(out, cap, "%s:%lld", epoch, (long long)json_integer_value(seq));
    return true;
}

/* An invalidate frame (SPEC 8, one entry): live frames move every query
 * subscription of the context, healing ones only their own (SPEC 10). */
static bool note_invalidate(mh_sse *s, const json_t *v)
{
    const json_t *entry = json_array_get(json_object_get(v, "invalidate"), 0);
    const json_t *versions = json_object_get(v, "versions");
    const char *context, *version;
    bool moved = false;
    char *key;

    if (json_is_string(entry)) {
        context = json_string_value(entry);
        key = key_of(false, context, NULL);
    } else {
        key = frame_key(entry, &context);
    }
    version = context ? json_string_value(json_object_get(versions, context)) : NULL;
    if (!version) {
        free(key); /* a heal given up carries none: nothing moves */
        return false;
    }
    if (json_object_get(v, "reason")) {
        moved = set_key(s, key, version, -1);
    } else {
        /* only subscriptions in the index: an event that matched one not
         * acked yet was not delivered here (SPEC 10) */
        for (size_t i = 0; i < s->nsubs; i++) {
            mh_sse_sub *sub = &s->subs[i];
            if (sub->key && sub->acked && sub->key[0] == 'c' && !strcmp(sub->context, context) &&
                strcmp(sub->point, version) && strlen(version) <= MH_SSE_POINT_MAX) {
                strcpy(sub->point, version);
                moved = true;
            }
        }
    }
    free(key);
    return moved;
}

bool mh_sse_note(mh_sse *s, const char *frame, size_t len)
{
    json_t *v;
    const char *context;
    char point[MH_SSE_POINT_MAX + 1], *key = NULL;
    bool moved = false;

    /* Only frames that can move a point are parsed; most are not. */
    if (!s->nsubs || len < 12 ||
        !(memcmp(frame, "{\"subscribed", 12) == 0 || memcmp(frame, "{\"invalidate", 12) == 0 ||
          memcmp(frame, "{\"channel\"", 10) == 0 || memcmp(frame, "{\"unsubscribed", 14) == 0))
        return false;
    v = json_loadb(frame, len, 0, NULL);
    if (!json_is_object(v))
        goto done;
    if (json_is_true(json_object_get(v, "subscribed"))) {
        key = frame_key(v, &context);
        if (json_object_get(v, "channel")) {
            if (channel_point(v, point, sizeof point))
                moved = set_key(s, key, point, 1);
        } else {
            moved = set_key(s, key, json_string_value(json_object_get(v, "version")), 1);
        }
    } else if (json_is_true(json_object_get(v, "unsubscribed"))) {
        /* out of the index: its point would move past what no longer reaches
         * it; none (the query's since on a reconnect) invalidates more */
        key = frame_key(v, &context);
        moved = set_key(s, key, "", 0);
    } else if (json_object_get(v, "invalidate")) {
        moved = note_invalidate(s, v);
    } else if (!json_object_get(v, "error") && channel_point(v, point, sizeof point)) {
        key = frame_key(v, &context);
        moved = set_key(s, key, point, -1);
    }
done:
    free(key);
    json_decref(v);
    return moved;
}

const char *mh_sse_id(mh_sse *s)
{
    size_t at = 0;

    if (!s->id)
        return "";
    s->id[0] = '\0';
    for (size_t i = 0; i < s->nsubs; i++) {
        const char *p = s->subs[i].point[0] ? s->subs[i].point : "-";
        size_t len = strlen(p);
        if (i)
            s->id[at++] = ',';
        memcpy(s->id + at, p, len + 1);
        at += len;
    }
    return s->id;
}

int mh_sse_order(mh_sse *s, uint64_t n, const char *body, size_t len, uint64_t now_ms)
{
    char *copy;

    if (n == 0)
        return 1; /* unnumbered: handled as it comes */
    if (n == s->next_n) {
        s->next_n++;
        return 1;
    }
    if (n < s->next_n)
        return 0; /* a repeat of one handled already */
    for (unsigned i = 0; i < s->nheld; i++)
        if (s->held[i].n == n)
            return 0;
    if (s->nheld == MH_SSE_HELD_MAX || n - s->next_n > MH_SSE_HELD_MAX || !(copy = malloc(len)))
        return -1;
    memcpy(copy, body, len);
    s->held[s->nheld++] = (mh_sse_post){n, copy, len};
    if (s->nheld == 1)
        s->held_since_ms = now_ms;
    return 0;
}

mh_sse_post *mh_sse_next_held(mh_sse *s, mh_sse_post *out, uint64_t now_ms)
{
    for (unsigned i = 0; i < s->nheld; i++) {
        if (s->held[i].n != s->next_n)
            continue;
        *out = s->held[i];
        s->held[i] = s->held[--s->nheld];
        s->next_n++;
        s->held_since_ms = now_ms; /* what is still kept waits afresh */
        return out;
    }
    return NULL;
}

bool mh_sse_stalled(const mh_sse *s, uint64_t now_ms)
{
    return s->nheld && now_ms - s->held_since_ms > MH_SSE_HELD_MS;
}
