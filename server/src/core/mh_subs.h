/*
 * mh_subs — the subscription index: context and canonical key ->
 * subscribers; channel instance -> subscribers.
 *
 * Delivering an invalidation must cost in proportion to its matches, not to
 * the subscriptions held. Subscriptions of a context are grouped by shape
 * (the sorted set of their param names); each shape maps canonical keys to
 * key nodes. A scoped entry naming exactly a shape's params is one lookup;
 * one naming a strict subset uses a projection index of that shape (built on
 * first use, then kept up to date); an unscoped one visits every node of the
 * context, all of which match.
 *
 * A scoped entry is looked up in every shape of its context, so the number
 * of shapes per context is capped (max_shapes): a client inventing param
 * names cannot make every delivery slower for everyone. Finding a shape by
 * its names is one hash lookup.
 *
 * The index does not know connections: a subscriber is an opaque pointer
 * with a back-reference slot, so the transport can remove all of a closing
 * connection's subscriptions without searching.
 */
#ifndef MH_SUBS_H
#define MH_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mh_inval.h"
#include "mh_map.h"

typedef struct mh_shape mh_shape;
typedef struct mh_ctx mh_ctx;

/** One subscription: a subscriber on a key node. Owned by the index. */
struct mh_hold;

typedef struct mh_sub {
    void *owner;          /* the subscriber (a connection), borrowed */
    struct mh_hold *hold; /* channel frames held during a resume; owned by the owner */
    struct mh_keynode *node;
    uint32_t pos_in_node;
    uint32_t pos_in_owner; /* for the owner's own list; maintained by the owner */
} mh_sub;

/** A canonical key (context or channel instance) and its subscribers. */
typedef struct mh_keynode {
    char *key; /* owned canonical key */
    size_t key_len;
    mh_entry entry; /* owned: the subscription's entry (scoped) */
    bool is_channel;
    mh_ctx *ctx;     /* contexts: the context, NULL for channels */
    mh_shape *shape; /* contexts: the shape */
    uint32_t pos_in_shape;
    mh_sub **subs;
    uint32_t nsubs, cap;
    /* channel instances: the position this hub last saw, for resume and gaps */
    bool pos_known;
    bool gap;             /* the hub's Redis link dropped since pos was known */
    struct mh_hold *hold; /* live frames held while the gap heal replays; see mh_hold.h */
    char epoch[33];
    uint64_t seq;
} mh_keynode;

/** Per-context state: shapes and the version last seen (SPEC 10). */
struct mh_ctx {
    char *name;
    size_t name_len;
    mh_shape **shapes;
    size_t nshapes, shapes_cap;
    mh_map by_names; /* shape names key (see shape_names_key) -> mh_shape */
    size_t nnodes;
    /* version this hub has seen: from events, or read from Redis */
    bool version_known;
    char epoch[33];
    uint64_t n;
    /* hub link gap: the version at the moment the link dropped ("" epoch: unknown) */
    bool gap;
    char gap_epoch[33];
    uint64_t gap_n;
};

typedef struct mh_subs {
    /* called before a key node is freed, for what others hang on it (may be NULL) */
    void (*node_freed)(mh_keynode *node);
    mh_map contexts;   /* name -> mh_ctx */
    mh_map channels;   /* canonical key -> mh_keynode */
    size_t nsubs;      /* subscriptions, all kinds */
    size_t nnodes;     /* key nodes, all kinds */
    size_t nshapes;    /* shapes, all contexts */
    size_t max_shapes; /* per context; 0: no cap */
} mh_subs;

/** mh_subs_add's refusals. */
#define MH_SUBS_E_NOMEM (-1)
#define MH_SUBS_E_SHAPES (-2) /* the context already has max_shapes shapes */

/** Sets up an empty index whose contexts hold at most 'max_shapes' shapes (0: no cap). */
void mh_subs_init(mh_subs *s, size_t max_shapes);
/** Frees everything; subscriptions still held are dropped without notice. */
void mh_subs_free(mh_subs *s);

/**
 * Subscribes 'owner' to the context or channel 'e' names (e->scoped; params
 * sorted). Returns 0 and the new subscription (owned by the index) in *out,
 * MH_SUBS_E_SHAPES when it would be a new shape of a context that has
 * max_shapes already, or MH_SUBS_E_NOMEM. On refusal nothing changed.
 * 'e' is copied when a new key node is needed.
 */
int mh_subs_add(mh_subs *s, bool channel, const mh_entry *e, void *owner, mh_sub **out);

/** Removes one subscription (and its key node, shape, context once empty). */
void mh_subs_remove(mh_subs *s, mh_sub *sub);

/** The key node of (channel?, e), or NULL. */
mh_keynode *mh_subs_find(const mh_subs *s, bool channel, const mh_entry *e);

/** The context named 'name', or NULL when nobody here subscribes to it. */
mh_ctx *mh_subs_context(const mh_subs *s, const char *name, size_t len);

typedef void (*mh_subs_visit_fn)(mh_keynode *node, void *arg);

/**
 * Calls 'visit' for every key node whose subscriptions 'e' matches (SPEC 4),
 * each node once. Returns the number of nodes visited, or -1 on OOM while
 * building a projection (then nothing was visited). A scoped entry costs one
 * lookup per shape of its context (at most max_shapes) plus its matches.
 */
long mh_subs_match(mh_subs *s, const mh_entry *e, mh_subs_visit_fn visit, void *arg);

/** Calls 'visit' for every key node of context 'c'. */
void mh_subs_each_node(mh_ctx *c, mh_subs_visit_fn visit, void *arg);

#endif
