#include "mh_registry.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_map.h"
#include "mh_value.h"

typedef struct reg_entry {
    char *name; /* owned; the map's key */
    size_t len;
    mh_guard guard;
    size_t nrules;
    char **rules;  /* owned: params that must equal the identity's sub */
    bool declared; /* "params" given: no other param name is accepted */
    size_t nparams;
    char **params; /* owned: the declared param names */
    bool presence; /* channels: members kept (SPEC 11.2) */
    bool quiet;    /* presence without join/leave events ("join_leave": false) */
} reg_entry;

struct mh_registry {
    bool default_allow;
    mh_map contexts, channels; /* name -> reg_entry (owned) */
};

static const char *guard_names[] = {"public", "auth", "staff", "superuser", "token"};

static void entry_free(reg_entry *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nrules; i++)
        free(e->rules[i]);
    free(e->rules);
    for (size_t i = 0; i < e->nparams; i++)
        free(e->params[i]);
    free(e->params);
    free(e->name);
    free(e);
}

static void map_free(mh_map *m)
{
    size_t it = 0;
    void *v;

    while (mh_map_next(m, &it, NULL, NULL, &v))
        entry_free(v);
    mh_map_free(m);
}

void mh_registry_free(mh_registry *r)
{
    if (!r)
        return;
    map_free(&r->contexts);
    map_free(&r->channels);
    free(r);
}

size_t mh_registry_count(const mh_registry *r, bool channels)
{
    return channels ? r->channels.count : r->contexts.count;
}

/* "params": the names a subscription may use (SPEC 12.4); absent or null: any. */
static int parse_params(const char *kind, const char *name, json_t *list, reg_entry *e, char *err,
                        size_t errlen)
{
    size_t i;
    json_t *p;
    mh_err merr;

    if (!list || json_is_null(list))
        return 0;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "%s '%s': params must be a list of param names", kind, name);
        return -1;
    }
    e->declared = true;
    e->params = calloc(json_array_size(list) + 1, sizeof *e->params);
    if (!e->params) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(list, i, p)
    {
        const char *pn = json_string_value(p);
        if (!pn || mh_name_check(pn, json_string_length(p), 64, &merr)) {
            snprintf(err, errlen, "%s '%s': params[%zu]: %s", kind, name, i,
                     pn ? merr.msg : "not a string");
            return -1;
        }
        e->params[e->nparams] = strdup(pn);
        if (!e->params[e->nparams++]) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int parse_entry(const char *kind, const char *name, json_t *spec, reg_entry **out, char *err,
                       size_t errlen)
{
    reg_entry *e = calloc(1, sizeof *e);
    json_t *g, *rules;
    mh_err merr;

    *out = NULL;
    if (!e)
        goto oom;
    if (mh_name_check(name, strlen(name), 128, &merr)) {
        snprintf(err, errlen, "%s '%.64s': %s", kind, name, merr.msg);
        goto fail;
    }
    if (!json_is_object(spec)) {
        snprintf(err, errlen, "%s '%s': not an object", kind, name);
        goto fail;
    }
    e->name = strdup(name);
    if (!e->name)
        goto oom;
    e->len = strlen(name);
    /* A missing guard is `auth`, as the exporter writes it: never public by accident. */
    e->guard = MH_GUARD_AUTH;
    g = json_object_get(spec, "guard");
    if (g) {
        size_t i;
        for (i = 0; i < sizeof guard_names / sizeof guard_names[0]; i++)
            if (json_is_string(g) && !strcmp(json_string_value(g), guard_names[i]))
                break;
        if (i == sizeof guard_names / sizeof guard_names[0]) {
            snprintf(err, errlen,
                     "%s '%s': guard must be public, auth, staff, superuser or token "
                     "(a callable guard is exported as token)",
                     kind, name);
            goto fail;
        }
        e->guard = (mh_guard)i;
    }
    if (parse_params(kind, name, json_object_get(spec, "params"), e, err, errlen))
        goto fail;
    {
        json_t *p = json_object_get(spec, "presence");
        if (p && !json_is_boolean(p)) {
            snprintf(err, errlen, "%s '%s': presence must be true or false", kind, name);
            goto fail;
        }
        if (json_is_true(p) && strcmp(kind, "channel")) {
            snprintf(err, errlen, "%s '%s': only channels keep presence", kind, name);
            goto fail;
        }
        e->presence = json_is_true(p);
        p = json_object_get(spec, "join_leave");
        if (p && (!json_is_boolean(p) || !e->presence)) {
            snprintf(err, errlen, "%s '%s': join_leave is true or false, with presence only", kind,
                     name);
            goto fail;
        }
        e->quiet = json_is_false(p);
    }
    rules = json_object_get(spec, "param_rules");
    if (rules && !json_is_null(rules)) {
        const char *param;
        json_t *rule;
        if (!json_is_object(rules)) {
            snprintf(err, errlen, "%s '%s': param_rules must be an object", kind, name);
            goto fail;
        }
        e->rules = calloc(json_object_size(rules) + 1, sizeof *e->rules);
        if (!e->rules)
            goto oom;
        json_object_foreach(rules, param, rule)
        {
            if (mh_name_check(param, strlen(param), 64, &merr)) {
                snprintf(err, errlen, "%s '%s': param_rules: %s", kind, name, merr.msg);
                goto fail;
            }
            if (!json_is_string(rule) || strcmp(json_string_value(rule), "sub")) {
                snprintf(err, errlen, "%s '%s': param_rules.%s: the only rule is \"sub\"", kind,
                         name, param);
                goto fail;
            }
            e->rules[e->nrules] = strdup(param);
            if (!e->rules[e->nrules++])
                goto oom;
        }
    }
    *out = e;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    entry_free(e);
    return -1;
}

static int parse_section(json_t *root, const char *key, const char *kind, mh_map *m, char *err,
                         size_t errlen)
{
    json_t *sec = json_object_get(root, key), *spec;
    const char *name;

    if (!sec || json_is_null(sec))
        return 0;
    if (!json_is_object(sec)) {
        snprintf(err, errlen, "'%s' must be an object of %s names", key, kind);
        return -1;
    }
    json_object_foreach(sec, name, spec)
    {
        reg_entry *e;
        if (parse_entry(kind, name, spec, &e, err, errlen))
            return -1;
        if (mh_map_put(m, e->name, e->len, e)) {
            entry_free(e);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

mh_registry *mh_registry_parse(const char *text, size_t len, char *err, size_t errlen)
{
    mh_registry *r = calloc(1, sizeof *r);
    json_error_t jerr;
    json_t *root = NULL, *v;

    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mh_map_init(&r->contexts);
    mh_map_init(&r->channels);
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "not JSON: line %d: %s", jerr.line, jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object");
        goto fail;
    }
    v = json_object_get(root, "version");
    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        snprintf(err, errlen, "\"version\" must be 1");
        goto fail;
    }
    v = json_object_get(root, "default");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) ||
            (strcmp(json_string_value(v), "deny") && strcmp(json_string_value(v), "allow"))) {
            snprintf(err, errlen, "\"default\" must be \"deny\" or \"allow\"");
            goto fail;
        }
        r->default_allow = !strcmp(json_string_value(v), "allow");
    }
    if (parse_section(root, "contexts", "context", &r->contexts, err, errlen) ||
        parse_section(root, "channels", "channel", &r->channels, err, errlen))
        goto fail;
    json_decref(root);
    return r;
fail:
    json_decref(root);
    mh_registry_free(r);
    return NULL;
}

mh_registry *mh_registry_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    mh_registry *r = NULL;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len == cap) {
            char *t;
            cap = cap ? cap * 2 : 65536;
            if (cap > (64u << 20)) {
                snprintf(err, errlen, "%s: larger than 64 MiB", path);
                goto done;
            }
            t = realloc(text, cap);
            if (!t) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
            text = t;
        }
        n = fread(text + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto done;
    }
    r = mh_registry_parse(text, len, err, errlen);
done:
    free(text);
    fclose(f);
    return r;
}

static const char *param_value(const mh_entry *e, const char *name, size_t *len)
{
    for (size_t i = 0; i < e->nparams; i++)
        if (!strcmp(e->params[i].name, name)) {
            *len = e->params[i].value_len;
            return e->params[i].value;
        }
    return NULL;
}

mh_reg_result mh_registry_check(const mh_registry *r, bool channel, const mh_entry *e,
                                const mh_who *who, const char **code, char *msg, size_t msglen)
{
    const char *kind = channel ? "channel" : "context";
    const reg_entry *re =
        mh_map_get(channel ? &r->channels : &r->contexts, e->context, e->context_len);
    mh_guard guard = re ? re->guard : MH_GUARD_AUTH;

    if (!re && !r->default_allow) {
        *code = "not_found";
        snprintf(msg, msglen, "no %s named '%.128s'", kind, e->context);
        return MH_REG_DENY;
    }
    /* Before the guard: an undeclared name is a malformed request whoever asks. */
    for (size_t i = 0; re && re->declared && i < e->nparams; i++) {
        size_t k = 0;
        while (k < re->nparams && strcmp(re->params[k], e->params[i].name))
            k++;
        if (k == re->nparams) {
            *code = "bad_param";
            snprintf(msg, msglen, "params.%.64s: %s '%.128s' has no param named '%.64s'",
                     e->params[i].name, kind, e->context, e->params[i].name);
            return MH_REG_DENY;
        }
    }
    if (guard != MH_GUARD_PUBLIC && guard != MH_GUARD_TOKEN && !who->subject) {
        *code = "unauthorized";
        snprintf(msg, msglen, "%s '%.128s' needs a signed-in user", kind, e->context);
        return MH_REG_DENY;
    }
    if ((guard == MH_GUARD_STAFF && !who->staff && !who->super) ||
        (guard == MH_GUARD_SUPERUSER && !who->super)) {
        *code = "forbidden";
        snprintf(msg, msglen, "%s '%.128s' is for %s only", kind, e->context,
                 guard == MH_GUARD_STAFF ? "staff" : "superusers");
        return MH_REG_DENY;
    }
    for (size_t i = 0; re && i < re->nrules; i++) {
        size_t n = 0;
        const char *v = param_value(e, re->rules[i], &n);
        if (!who->subject) {
            *code = "unauthorized";
            snprintf(msg, msglen, "params.%s must be the signed-in user's id", re->rules[i]);
            return MH_REG_DENY;
        }
        if (!v || n != strlen(who->subject) || memcmp(v, who->subject, n)) {
            *code = "forbidden";
            snprintf(msg, msglen, "params.%s must be the signed-in user's id", re->rules[i]);
            return MH_REG_DENY;
        }
    }
    return guard == MH_GUARD_TOKEN ? MH_REG_NEED_TOKEN : MH_REG_ALLOW;
}

bool mh_registry_presence(const mh_registry *r, const char *channel, size_t len)
{
    const reg_entry *re = mh_map_get(&r->channels, channel, len);
    return re && re->presence;
}

bool mh_registry_join_leave(const mh_registry *r, const char *channel, size_t len)
{
    const reg_entry *re = mh_map_get(&r->channels, channel, len);
    return re && re->presence && !re->quiet;
}
