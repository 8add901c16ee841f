/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_store.h"


/*
 * Feeds the bytes to both record decoders.  Whatever decodes must encode
 * again and decode to the same record: a record the store reads back is
 * a record it can write.
 */


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
fuzz_str_eq(const ngx_oauth_str_t *a, const ngx_oauth_str_t *b)
{
    /* decoded strings are never NULL and always zero-terminated */

    if (a->data == NULL || a->data[a->len] != '\0') {
        abort();
    }

    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static int
fuzz_params_eq(const ngx_oauth_pair_t *a, size_t na,
    const ngx_oauth_pair_t *b, size_t nb)
{
    size_t  i;

    if (na != nb || na > NGX_OAUTH_PARAMS_MAX) {
        return 0;
    }

    for (i = 0; i < na; i++) {
        if (a[i].name.len == 0
            || !fuzz_str_eq(&a[i].name, &b[i].name)
            || !fuzz_str_eq(&a[i].value, &b[i].value))
        {
            return 0;
        }
    }

    return 1;
}


static void
fuzz_flow(const uint8_t *data, size_t size)
{
    size_t            len;
    unsigned char    *buf;
    ngx_oauth_flow_t  a, b;

    if (ngx_oauth_flow_decode(data, size, &a) != NGX_OAUTH_OK) {
        if (a.mem != NULL) {
            abort();
        }

        return;
    }

    if (ngx_oauth_flow_encode(&a, &buf, &len) != NGX_OAUTH_OK) {
        abort();
    }

    if (ngx_oauth_flow_decode(buf, len, &b) != NGX_OAUTH_OK) {
        abort();
    }

    if (!fuzz_str_eq(&a.owner, &b.owner)
        || !fuzz_str_eq(&a.provider, &b.provider)
        || !fuzz_str_eq(&a.verifier, &b.verifier)
        || !fuzz_str_eq(&a.return_to, &b.return_to)
        || !fuzz_str_eq(&a.browser, &b.browser)
        || a.mode != b.mode
        || a.created != b.created
        || a.expires != b.expires
        || !fuzz_params_eq(a.params, a.nparams, b.params, b.nparams))
    {
        abort();
    }

    ngx_oauth_flow_free(&b);
    ngx_oauth_flow_free(&a);
    free(buf);
}


static void
fuzz_conn(const uint8_t *data, size_t size)
{
    size_t            len;
    unsigned char    *buf;
    ngx_oauth_conn_t  a, b;

    if (ngx_oauth_conn_decode(data, size, &a) != NGX_OAUTH_OK) {
        if (a.mem != NULL) {
            abort();
        }

        return;
    }

    if (ngx_oauth_conn_encode(&a, &buf, &len) != NGX_OAUTH_OK) {
        abort();
    }

    if (ngx_oauth_conn_decode(buf, len, &b) != NGX_OAUTH_OK) {
        abort();
    }

    if (!fuzz_str_eq(&a.owner, &b.owner)
        || !fuzz_str_eq(&a.provider, &b.provider)
        || !fuzz_str_eq(&a.account, &b.account)
        || !fuzz_str_eq(&a.account_name, &b.account_name)
        || a.kind != b.kind
        || a.status != b.status
        || a.flags != b.flags
        || !fuzz_str_eq(&a.scopes, &b.scopes)
        || !fuzz_str_eq(&a.token_type, &b.token_type)
        || !fuzz_params_eq(a.params, a.nparams, b.params, b.nparams)
        || a.created_at != b.created_at
        || a.updated_at != b.updated_at
        || a.expires_at != b.expires_at
        || a.last_refresh_at != b.last_refresh_at
        || a.retry_at != b.retry_at
        || a.failures != b.failures
        || a.version != b.version
        || !fuzz_str_eq(&a.last_error, &b.last_error)
        || !fuzz_str_eq(&a.access, &b.access)
        || !fuzz_str_eq(&a.refresh, &b.refresh)
        || !fuzz_str_eq(&a.secret, &b.secret)
        || ngx_oauth_status_name(a.status) == NULL
        || ngx_oauth_kind_name(a.kind) == NULL)
    {
        abort();
    }

    ngx_oauth_conn_free(&b);
    ngx_oauth_conn_free(&a);
    free(buf);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_flow(data, size);
    fuzz_conn(data, size);

    return 0;
}
