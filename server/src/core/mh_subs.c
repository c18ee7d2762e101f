#include "mh_subs.h"

#include <stdlib.h>
#include <string.h>

#include "mh_buf.h"
#include "mh_key.h"
#include "mh_value.h"

/* A projection of a shape onto a subset of its names (a bit per name). */
typedef struct proj_bucket {
    char *key; /* owned: projected canonical key */
    size_t key_len;
    mh_keynode **nodes;
    uint32_t n, cap;
} proj_bucket;

typedef struct mh_proj {
    uint32_t mask;
    mh_map buckets; /* projected key -> proj_bucket */
} mh_proj;

struct mh_shape {
    mh_ctx *ctx;
    char **names; /* owned, sorted */
    size_t nnames;
    char *names_key; /* owned: its key in ctx->by_names (shape_names_key) */
    size_t names_key_len;
    mh_map by_key; /* canonical key -> mh_keynode */
    mh_keynode **nodes;
    uint32_t nnodes, cap;
    mh_proj *projs;
    size_t nprojs;
    uint32_t pos_in_ctx;
};

static int push_ptr(void ***arr, uint32_t *n, uint32_t *cap, void *p)
{
    if (*n == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 2;
        void **na = realloc(*arr, ncap * sizeof *na);
        if (!na)
            return -1;
        *arr = na;
        *cap = ncap;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

void mh_subs_init(mh_subs *s, size_t max_shapes)
{
    memset(s, 0, sizeof *s);
    mh_map_init(&s->contexts);
    mh_map_init(&s->channels);
    s->max_shapes = max_shapes;
}

/*
 * A shape's identity: its sorted param names, each followed by a NUL (names
 * never contain one, SPEC 1), so two shapes have the same key exactly when
 * they have the same names. Sets b->oom when out of memory.
 */
static void shape_names_key(mh_buf *b, const mh_entry *e)
{
    mh_buf_putc(b, '\0'); /* the empty shape's key is one NUL, never zero bytes */
    for (size_t i = 0; i < e->nparams; i++) {
        mh_buf_put(b, e->params[i].name, e->params[i].name_len);
        mh_buf_putc(b, '\0');
    }
}

/* Canonical key of the params of 'e' selected by 'mask' over 'sh->names'. */
static void project_key(mh_buf *b, const mh_shape *sh, const mh_entry *e, uint32_t mask)
{
    mh_param sel[MH_PARAMS_MAX];
    size_t n = 0, j = 0;

    for (size_t i = 0; i < sh->nnames; i++) {
        if (!(mask & (1u << i)))
            continue;
        while (j < e->nparams && strcmp(e->params[j].name, sh->names[i]))
            j++;
        if (j < e->nparams)
            sel[n++] = e->params[j];
    }
    mh_key_canon(b, e->context, e->context_len, sel, n);
}

static int proj_insert(mh_proj *pj, const mh_shape *sh, mh_keynode *node)
{
    mh_buf b;
    proj_bucket *bk;

    mh_buf_init(&b);
    project_key(&b, sh, &node->entry, pj->mask);
    if (b.oom)
        goto fail;
    bk = mh_map_get(&pj->buckets, b.data, b.len);
    if (!bk) {
        bk = calloc(1, sizeof *bk);
        if (!bk)
            goto fail;
        bk->key = mh_buf_take(&b);
        bk->key_len = strlen(bk->key);
        if (!bk->key || mh_map_put(&pj->buckets, bk->key, bk->key_len, bk)) {
            free(bk->key);
            free(bk);
            goto fail;
        }
    }
    mh_buf_free(&b);
    return push_ptr((void ***)&bk->nodes, &bk->n, &bk->cap, node);
fail:
    mh_buf_free(&b);
    return -1;
}

static void proj_remove(mh_proj *pj, const mh_shape *sh, mh_keynode *node)
{
    mh_buf b;
    proj_bucket *bk;

    mh_buf_init(&b);
    project_key(&b, sh, &node->entry, pj->mask);
    bk = b.oom ? NULL : mh_map_get(&pj->buckets, b.data, b.len);
    mh_buf_free(&b);
    if (!bk)
        return;
    for (uint32_t i = 0; i < bk->n; i++) {
        if (bk->nodes[i] == node) {
            bk->nodes[i] = bk->nodes[--bk->n];
            break;
        }
    }
    if (bk->n == 0) {
        mh_map_del(&pj->buckets, bk->key, bk->key_len);
        free(bk->nodes);
        free(bk->key);
        free(bk);
    }
}

static void proj_free(mh_proj *pj)
{
    size_t it = 0;
    void *v;
    while (mh_map_next(&pj->buckets, &it, NULL, NULL, &v)) {
        proj_bucket *bk = v;
        free(bk->nodes);
        free(bk->key);
        free(bk);
    }
    mh_map_free(&pj->buckets);
}

static void shape_free(mh_shape *sh)
{
    for (size_t i = 0; i < sh->nprojs; i++)
        proj_free(&sh->projs[i]);
    free(sh->projs);
    for (size_t i = 0; i < sh->nnames; i++)
        free(sh->names[i]);
    free(sh->names);
    free(sh->names_key);
    free(sh->nodes);
    mh_map_free(&sh->by_key);
    free(sh);
}

static void node_free(const mh_subs *s, mh_keynode *node)
{
    if (s->node_freed)
        s->node_freed(node);
    for (uint32_t i = 0; i < node->nsubs; i++)
        free(node->subs[i]);
    free(node->subs);
    mh_entry_free(&node->entry);
    free(node->key);
    free(node);
}

static void ctx_free(mh_ctx *c)
{
    for (size_t i = 0; i < c->nshapes; i++)
        shape_free(c->shapes[i]);
    free(c->shapes);
    mh_map_free(&c->by_names);
    free(c->name);
    free(c);
}

void mh_subs_free(mh_subs *s)
{
    size_t it = 0;
    void *v;

    while (mh_map_next(&s->contexts, &it, NULL, NULL, &v)) {
        mh_ctx *c = v;
        for (size_t i = 0; i < c->nshapes; i++)
            for (uint32_t k = 0; k < c->shapes[i]->nnodes; k++)
                node_free(s, c->shapes[i]->nodes[k]);
        ctx_free(c);
    }
    it = 0;
    while (mh_map_next(&s->channels, &it, NULL, NULL, &v))
        node_free(s, v);
    mh_map_free(&s->contexts);
    mh_map_free(&s->channels);
    memset(s, 0, sizeof *s);
}

mh_ctx *mh_subs_context(const mh_subs *s, const char *name, size_t len)
{
    return mh_map_get(&s->contexts, name, len);
}

/* The shape of 'c' whose names key is 'nk', or NULL: one hash lookup. */
static mh_shape *shape_find(const mh_ctx *c, const mh_buf *nk)
{
    return mh_map_get(&c->by_names, nk->data, nk->len);
}

/* A new, empty shape of 'c' with the names of 'e' (key 'nk'), or NULL on OOM. */
static mh_shape *shape_new(mh_ctx *c, const mh_entry *e, const mh_buf *nk)
{
    mh_shape *sh = calloc(1, sizeof *sh);

    if (!sh)
        return NULL;
    sh->ctx = c;
    mh_map_init(&sh->by_key);
    sh->names_key = malloc(nk->len);
    if (!sh->names_key)
        goto fail;
    memcpy(sh->names_key, nk->data, nk->len);
    sh->names_key_len = nk->len;
    if (e->nparams) {
        sh->names = calloc(e->nparams, sizeof *sh->names);
        if (!sh->names)
            goto fail;
        for (size_t i = 0; i < e->nparams; i++) {
            sh->names[i] = strdup(e->params[i].name);
            if (!sh->names[i])
                goto fail;
            sh->nnames = i + 1;
        }
    }
    if (c->nshapes == c->shapes_cap) {
        size_t ncap = c->shapes_cap ? c->shapes_cap * 2 : 4;
        mh_shape **ns = realloc(c->shapes, ncap * sizeof *ns);
        if (!ns)
            goto fail;
        c->shapes = ns;
        c->shapes_cap = ncap;
    }
    if (mh_map_put(&c->by_names, sh->names_key, sh->names_key_len, sh))
        goto fail;
    sh->pos_in_ctx = (uint32_t)c->nshapes;
    c->shapes[c->nshapes++] = sh;
    return sh;
fail:
    shape_free(sh);
    return NULL;
}

/* Removes an (empty) shape from its context and frees it. */
static void shape_drop(mh_subs *s, mh_shape *sh)
{
    mh_ctx *c = sh->ctx;

    mh_map_del(&c->by_names, sh->names_key, sh->names_key_len);
    c->shapes[sh->pos_in_ctx] = c->shapes[--c->nshapes];
    c->shapes[sh->pos_in_ctx]->pos_in_ctx = sh->pos_in_ctx;
    s->nshapes--;
    shape_free(sh);
}

static mh_keynode *node_new(const mh_entry *e, const char *key, size_t key_len, bool channel)
{
    mh_keynode *node = calloc(1, sizeof *node);
    if (!node)
        return NULL;
    node->key = malloc(key_len + 1);
    if (!node->key || mh_entry_copy(&node->entry, e)) {
        free(node->key);
        free(node);
        return NULL;
    }
    memcpy(node->key, key, key_len);
    node->key[key_len] = '\0';
    node->key_len = key_len;
    node->entry.scoped = true;
    node->is_channel = channel;
    return node;
}

/* Adds a new context node to its shape and the shape's projections. */
static int shape_add_node(mh_shape *sh, mh_keynode *node)
{
    if (mh_map_put(&sh->by_key, node->key, node->key_len, node))
        return -1;
    node->pos_in_shape = sh->nnodes;
    if (push_ptr((void ***)&sh->nodes, &sh->nnodes, &sh->cap, node)) {
        mh_map_del(&sh->by_key, node->key, node->key_len);
        return -1;
    }
    for (size_t i = 0; i < sh->nprojs; i++) {
        if (proj_insert(&sh->projs[i], sh, node)) {
            for (size_t k = 0; k < i; k++)
                proj_remove(&sh->projs[k], sh, node);
            sh->nnodes--;
            mh_map_del(&sh->by_key, node->key, node->key_len);
            return -1;
        }
    }
    node->shape = sh;
    node->ctx = sh->ctx;
    sh->ctx->nnodes++;
    return 0;
}

static void shape_remove_node(mh_shape *sh, mh_keynode *node)
{
    for (size_t i = 0; i < sh->nprojs; i++)
        proj_remove(&sh->projs[i], sh, node);
    mh_map_del(&sh->by_key, node->key, node->key_len);
    sh->nodes[node->pos_in_shape] = sh->nodes[--sh->nnodes];
    sh->nodes[node->pos_in_shape]->pos_in_shape = node->pos_in_shape;
    sh->ctx->nnodes--;
}

mh_keynode *mh_subs_find(const mh_subs *s, bool channel, const mh_entry *e)
{
    mh_keynode *node = NULL;
    mh_buf b, nk;

    mh_buf_init(&b);
    mh_buf_init(&nk);
    mh_key_canon(&b, e->context, e->context_len, e->params, e->nparams);
    if (channel)
        node = b.oom ? NULL : mh_map_get(&s->channels, b.data, b.len);
    else {
        mh_ctx *c = mh_map_get(&s->contexts, e->context, e->context_len);
        mh_shape *sh = NULL;
        if (c) {
            shape_names_key(&nk, e);
            sh = nk.oom ? NULL : shape_find(c, &nk);
        }
        node = sh && !b.oom ? mh_map_get(&sh->by_key, b.data, b.len) : NULL;
    }
    mh_buf_free(&b);
    mh_buf_free(&nk);
    return node;
}

int mh_subs_add(mh_subs *s, bool channel, const mh_entry *e, void *owner, mh_sub **out)
{
    mh_keynode *node = NULL;
    mh_ctx *c = NULL;
    mh_shape *sh = NULL;
    mh_sub *sub;
    mh_buf b, nk;
    bool new_node = false, new_ctx = false, new_shape = false;
    int rc = MH_SUBS_E_NOMEM;

    *out = NULL;
    mh_buf_init(&b);
    mh_buf_init(&nk);
    mh_key_canon(&b, e->context, e->context_len, e->params, e->nparams);
    if (b.oom)
        goto fail;
    if (channel) {
        node = mh_map_get(&s->channels, b.data, b.len);
        if (!node) {
            node = node_new(e, b.data, b.len, true);
            if (!node)
                goto fail;
            new_node = true;
            if (mh_map_put(&s->channels, node->key, node->key_len, node))
                goto fail;
        }
    } else {
        c = mh_map_get(&s->contexts, e->context, e->context_len);
        if (!c) {
            c = calloc(1, sizeof *c);
            if (!c || !(c->name = malloc(e->context_len + 1))) {
                free(c);
                c = NULL;
                goto fail;
            }
            memcpy(c->name, e->context, e->context_len);
            c->name[e->context_len] = '\0';
            c->name_len = e->context_len;
            mh_map_init(&c->by_names);
            new_ctx = true;
            if (mh_map_put(&s->contexts, c->name, c->name_len, c))
                goto fail;
        }
        shape_names_key(&nk, e);
        if (nk.oom)
            goto fail;
        sh = shape_find(c, &nk);
        if (!sh) {
            if (s->max_shapes && c->nshapes >= s->max_shapes) {
                rc = MH_SUBS_E_SHAPES;
                goto fail;
            }
            sh = shape_new(c, e, &nk);
            if (!sh)
                goto fail;
            new_shape = true;
            s->nshapes++;
        }
        node = mh_map_get(&sh->by_key, b.data, b.len);
        if (!node) {
            node = node_new(e, b.data, b.len, false);
            if (!node)
                goto fail;
            new_node = true;
            if (shape_add_node(sh, node))
                goto fail;
        }
    }
    sub = calloc(1, sizeof *sub);
    if (!sub)
        goto fail;
    sub->owner = owner;
    sub->node = node;
    sub->pos_in_node = node->nsubs;
    if (push_ptr((void ***)&node->subs, &node->nsubs, &node->cap, sub)) {
        free(sub);
        goto fail;
    }
    if (new_node)
        s->nnodes++;
    s->nsubs++;
    mh_buf_free(&b);
    mh_buf_free(&nk);
    *out = sub;
    return 0;
fail:
    /* Undo what this call created, newest first. */
    if (new_node && node) {
        if (channel) {
            mh_map_del(&s->channels, node->key, node->key_len);
        } else if (node->shape) {
            shape_remove_node(node->shape, node);
        }
        node_free(s, node);
    }
    if (new_shape && sh)
        shape_drop(s, sh);
    if (new_ctx && c) {
        mh_map_del(&s->contexts, c->name, c->name_len);
        ctx_free(c);
    }
    mh_buf_free(&b);
    mh_buf_free(&nk);
    return rc;
}

void mh_subs_remove(mh_subs *s, mh_sub *sub)
{
    mh_keynode *node = sub->node;

    node->subs[sub->pos_in_node] = node->subs[--node->nsubs];
    node->subs[sub->pos_in_node]->pos_in_node = sub->pos_in_node;
    free(sub);
    s->nsubs--;
    if (node->nsubs)
        return;
    s->nnodes--;
    if (node->is_channel) {
        mh_map_del(&s->channels, node->key, node->key_len);
        node_free(s, node);
        return;
    }
    {
        mh_shape *sh = node->shape;
        mh_ctx *c = sh->ctx;
        shape_remove_node(sh, node);
        node_free(s, node);
        if (sh->nnodes)
            return;
        shape_drop(s, sh);
        if (c->nshapes)
            return;
        mh_map_del(&s->contexts, c->name, c->name_len);
        ctx_free(c);
    }
}

/* Bit mask of the entry's param names within the shape, or -1 if not a subset. */
static long subset_mask(const mh_shape *sh, const mh_entry *e)
{
    uint32_t mask = 0;
    size_t j = 0;

    for (size_t i = 0; i < e->nparams; i++) {
        while (j < sh->nnames && strcmp(sh->names[j], e->params[i].name) < 0)
            j++;
        if (j == sh->nnames || strcmp(sh->names[j], e->params[i].name))
            return -1;
        mask |= 1u << j++;
    }
    return mask;
}

static mh_proj *proj_get(mh_shape *sh, uint32_t mask)
{
    mh_proj *np, *pj;

    for (size_t i = 0; i < sh->nprojs; i++)
        if (sh->projs[i].mask == mask)
            return &sh->projs[i];
    np = realloc(sh->projs, (sh->nprojs + 1) * sizeof *np);
    if (!np)
        return NULL;
    sh->projs = np;
    pj = &sh->projs[sh->nprojs];
    pj->mask = mask;
    mh_map_init(&pj->buckets);
    /* Built once over the shape's nodes; add/remove keep it current after. */
    for (uint32_t i = 0; i < sh->nnodes; i++) {
        if (proj_insert(pj, sh, sh->nodes[i])) {
            proj_free(pj);
            return NULL;
        }
    }
    sh->nprojs++;
    return pj;
}

/* A growable list of key nodes that starts on the caller's stack. */
typedef struct hitlist {
    mh_keynode **v;
    size_t n, cap;
    mh_keynode *stack[64];
} hitlist;

static int hits_append(hitlist *h, mh_keynode *const *nodes, size_t n)
{
    if (h->n + n > h->cap) {
        size_t ncap = h->cap;
        mh_keynode **nv;
        while (ncap < h->n + n)
            ncap *= 2;
        nv = malloc(ncap * sizeof *nv);
        if (!nv)
            return -1;
        memcpy(nv, h->v, h->n * sizeof *nv);
        if (h->v != h->stack)
            free(h->v);
        h->v = nv;
        h->cap = ncap;
    }
    memcpy(h->v + h->n, nodes, n * sizeof *nodes);
    h->n += n;
    return 0;
}

long mh_subs_match(mh_subs *s, const mh_entry *e, mh_subs_visit_fn visit, void *arg)
{
    mh_ctx *c = mh_map_get(&s->contexts, e->context, e->context_len);
    hitlist h;
    long rc = -1;
    mh_buf key;

    if (!c)
        return 0;
    if (!e->scoped || e->nparams == 0) {
        mh_subs_each_node(c, visit, arg);
        return (long)c->nnodes;
    }
    h.v = h.stack;
    h.n = 0;
    h.cap = sizeof h.stack / sizeof h.stack[0];
    mh_buf_init(&key);
    mh_key_canon(&key, e->context, e->context_len, e->params, e->nparams);
    if (key.oom)
        goto done;
    /* Collect first, visit after: building a projection can fail, and then
     * nothing must have been delivered half-way. */
    for (size_t i = 0; i < c->nshapes; i++) {
        mh_shape *sh = c->shapes[i];
        long mask = subset_mask(sh, e);

        if (mask < 0)
            continue;
        if (e->nparams == sh->nnames) {
            mh_keynode *node = mh_map_get(&sh->by_key, key.data, key.len);
            if (node && hits_append(&h, &node, 1))
                goto done;
        } else {
            mh_proj *pj = proj_get(sh, (uint32_t)mask);
            proj_bucket *bk;
            if (!pj)
                goto done;
            bk = mh_map_get(&pj->buckets, key.data, key.len);
            if (bk && hits_append(&h, bk->nodes, bk->n))
                goto done;
        }
    }
    for (size_t i = 0; i < h.n; i++)
        visit(h.v[i], arg);
    rc = (long)h.n;
done:
    if (h.v != h.stack)
        free(h.v);
    mh_buf_free(&key);
    return rc;
}

void mh_subs_each_node(mh_ctx *c, mh_subs_visit_fn visit, void *arg)
{
    for (size_t i = 0; i < c->nshapes; i++)
        for (uint32_t k = 0; k < c->shapes[i]->nnodes; k++)
            visit(c->shapes[i]->nodes[k], arg);
}
