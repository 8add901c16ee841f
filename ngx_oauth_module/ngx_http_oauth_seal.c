/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_oauth_seal.h"


static void ngx_http_oauth_wipe_cleanup(void *data);


ngx_int_t
ngx_http_oauth_seal_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *plain, ngx_oauth_str_t *sealed)
{
    size_t           len;
    u_char          *out;
    ngx_oauth_aad_t  aad;

    aad.owner = conn->owner;
    aad.provider = conn->provider;
    aad.account = conn->account;
    aad.field.len = ngx_strlen(field);
    aad.field.data = (u_char *) field;

    len = ngx_oauth_seal_size(kr->keys[0].kid_len, plain->len);

    out = ngx_pnalloc(pool, len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    if (ngx_oauth_seal(kr, &aad, plain->data, plain->len, out, &len)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "oauth: sealing failed");
        return NGX_ERROR;
    }

    sealed->len = len;
    sealed->data = out;

    return NGX_OK;
}


ngx_int_t
ngx_http_oauth_open_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *sealed, ngx_str_t *plain)
{
    int                  rc;
    size_t               len;
    ngx_oauth_aad_t      aad;
    ngx_pool_cleanup_t  *cln;

    aad.owner = conn->owner;
    aad.provider = conn->provider;
    aad.account = conn->account;
    aad.field.len = ngx_strlen(field);
    aad.field.data = (u_char *) field;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    plain->data = ngx_pnalloc(pool, sealed->len + 1);
    if (plain->data == NULL) {
        return NGX_ERROR;
    }

    plain->len = 0;

    /* the plaintext is wiped when the pool goes */

    ngx_memcpy(cln->data, plain, sizeof(ngx_str_t));
    ((ngx_str_t *) cln->data)->len = sealed->len + 1;
    cln->handler = ngx_http_oauth_wipe_cleanup;

    rc = ngx_oauth_open(kr, &aad, sealed->data, sealed->len, plain->data,
                        &len);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: cannot open the sealed %s: %s",
                      field, ngx_oauth_strerror(rc));
        return NGX_ERROR;
    }

    plain->len = len;
    plain->data[len] = '\0';

    return NGX_OK;
}


static void
ngx_http_oauth_wipe_cleanup(void *data)
{
    ngx_str_t  *s = data;

    ngx_explicit_memzero(s->data, s->len);
}
