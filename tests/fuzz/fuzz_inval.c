/*
 * libFuzzer: JSON invalidation lists (what Django's middleware and the
 * envelopes carry). Decoded lists must survive JSON -> header -> list, and
 * every entry's canonical key must be computable.
 */
#include "fuzz_check.h"
#include <stdint.h>
#include <string.h>

#include "mh_header.h"
#include "mh_json.h"
#include "mh_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_inval l, back;
    mh_err err;
    mh_buf b;
    json_t *v;
    int rc;

    mh_err_clear(&err);
    v = mh_json_parse((const char *)data, size, &err);
    if (!v) {
        CHECK(err.code == MH_E_BAD_JSON || err.code == MH_E_TOO_LARGE);
        return 0;
    }
    if (mh_inval_from_json(v, &l, &err)) {
        CHECK(err.has_path && err.msg[0]);
        mh_inval_free(&l);
        json_decref(v);
        return 0;
    }
    mh_buf_init(&b);
    for (size_t i = 0; i < l.n; i++) {
        const mh_entry *e = &l.entries[i];
        mh_buf_reset(&b);
        mh_key_canon(&b, e->context, e->context_len, e->params, e->nparams);
        CHECK(!b.oom && b.len > 0);
        /* An entry always matches the subscription it names. */
        if (e->scoped)
            CHECK(mh_match(e, e));
    }
    mh_buf_reset(&b);
    /* An encoding over the limit is refused whole (SPEC 5), never written. */
    rc = mh_header_encode(&b, &l, NULL);
    CHECK(rc == 0 ? b.len <= MH_HEADER_MAX : rc == MH_E_TOO_LARGE && b.len == 0);
    if (rc == 0) {
        CHECK(mh_header_decode(b.data ? b.data : "", b.len, &back, &err) == 0);
        CHECK(back.n == l.n);
        mh_inval_free(&back);
    }
    mh_buf_free(&b);
    mh_inval_free(&l);
    json_decref(v);
    return 0;
}
