/*
 * libFuzzer: X-Mizan-Invalidate decoding. Beyond "no crash": an error has a
 * position inside the input, and whatever decodes re-encodes to a header
 * that decodes to the same list (SPEC 5's round trip).
 */
#include "fuzz_check.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_list(const mh_inval *a, const mh_inval *b)
{
    CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        const mh_entry *x = &a->entries[i], *y = &b->entries[i];
        CHECK(x->scoped == y->scoped && x->nparams == y->nparams);
        CHECK(x->context_len == y->context_len && !memcmp(x->context, y->context, x->context_len));
        for (size_t k = 0; k < x->nparams; k++) {
            CHECK(!strcmp(x->params[k].name, y->params[k].name));
            CHECK(x->params[k].value_len == y->params[k].value_len);
            CHECK(!memcmp(x->params[k].value, y->params[k].value, x->params[k].value_len));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mh_inval l, back;
    mh_err err;
    mh_buf b;
    int rc;

    mh_err_clear(&err);
    rc = mh_header_decode((const char *)data, size, &l, &err);
    if (rc) {
        CHECK(rc == err.code && err.msg[0]);
        CHECK(err.pos >= 0 && (size_t)err.pos <= (size > MH_HEADER_MAX ? MH_HEADER_MAX : size));
        mh_inval_free(&l);
        return 0;
    }
    mh_buf_init(&b);
    /* An encoding over the limit is refused whole (SPEC 5), never written. */
    rc = mh_header_encode(&b, &l, NULL);
    CHECK(rc == 0 ? b.len <= MH_HEADER_MAX : rc == MH_E_TOO_LARGE && b.len == 0);
    CHECK(!b.oom);
    if (rc == 0) {
        rc = mh_header_decode(b.data ? b.data : "", b.len, &back, &err);
        CHECK(rc == 0);
        same_list(&l, &back);
        mh_inval_free(&back);
    }
    mh_buf_free(&b);
    mh_inval_free(&l);
    return 0;
}
