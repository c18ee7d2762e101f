#include "mh_history.h"

#include <stdlib.h>
#include <string.h>

#include "mh_buf.h"

uint64_t mh_history_u64(const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return 0;
    return strtoull(r->str, NULL, 10);
}

unsigned mh_history_shard(mh_hub *h, const mh_keynode *node)
{
    /* A context's versions are one hash for all its scopes: by its name. */
    if (node->is_channel)
        return mh_redis_shard_of(h->redis, node->key, node->key_len);
    return mh_redis_shard_of(h->redis, node->entry.context, node->entry.context_len);
}

/* XRANGE h:K <from>-0 + COUNT 10000: the history from seq 'from' on. */
int mh_history_read(mh_hub *h, const mh_keynode *node, uint64_t from, mh_redis_reply_fn fn,
                    void *arg)
{
    mh_buf key, start;
    const char *argv[6];
    size_t lens[6];
    int rc;

    mh_buf_init(&key);
    mh_buf_init(&start);
    mh_redis_name(h->redis, &key, "h:", node->key, node->key_len);
    mh_buf_printf(&start, "%llu-0", (unsigned long long)from);
    argv[0] = "XRANGE", lens[0] = 6;
    argv[1] = key.data, lens[1] = key.len;
    argv[2] = start.data, lens[2] = start.len;
    argv[3] = "+", lens[3] = 1;
    argv[4] = "COUNT", lens[4] = 5;
    argv[5] = "10000", lens[5] = 5;
    rc = key.oom || start.oom
             ? -1
             : mh_redis_cmd_on(h->redis, mh_history_shard(h, node), fn, arg, 6, argv, lens);
    mh_buf_free(&key);
    mh_buf_free(&start);
    return rc;
}

/* HMGET c:K e s: a channel's epoch and last seq. */
int mh_history_read_pos(mh_hub *h, const mh_keynode *node, mh_redis_reply_fn fn, void *arg)
{
    mh_buf key;
    const char *argv[4];
    size_t lens[4];
    int rc;

    mh_buf_init(&key);
    mh_redis_name(h->redis, &key, "c:", node->key, node->key_len);
    argv[0] = "HMGET", lens[0] = 5;
    argv[1] = key.data, lens[1] = key.len;
    argv[2] = "e", lens[2] = 1;
    argv[3] = "s", lens[3] = 1;
    rc =
        key.oom ? -1 : mh_redis_cmd_on(h->redis, mh_history_shard(h, node), fn, arg, 4, argv, lens);
    mh_buf_free(&key);
    return rc;
}

/*
 * Walks an XRANGE reply in order, calling 'fn' for each well-formed entry.
 * Returns the seq of the first entry (0: no entries, or the reply is not a
 * history); *last gets the seq of the last entry passed to 'fn'.
 */
uint64_t mh_history_each(const redisReply *reply, uint64_t *last, mh_history_fn fn, void *arg)
{
    uint64_t first = 0;

    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *ent = reply->element[i], *fields;
        uint64_t seq;
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2 ||
            ent->element[0]->type != REDIS_REPLY_STRING ||
            ent->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        seq = strtoull(ent->element[0]->str, NULL, 10);
        if (!first)
            first = seq;
        fields = ent->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            const redisReply *name = fields->element[k], *val = fields->element[k + 1];
            if (name->type == REDIS_REPLY_STRING && name->len == 1 && name->str[0] == 'f' &&
                val->type == REDIS_REPLY_STRING) {
                if (fn)
                    fn(seq, val->str, (size_t)val->len, arg);
                *last = seq;
            }
        }
    }
    return first;
}
