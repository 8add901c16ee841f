/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_credential.h"
#include "ngx_http_oauth_seal.h"
#include "ngx_http_oauth_util.h"


ngx_int_t
ngx_http_oauth_credential_open(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, ngx_str_t *secret)
{
    const char       *field;
    ngx_oauth_str_t  *sealed;

    if (conn->kind == NGX_OAUTH_KIND_OAUTH2) {
        field = "access";
        sealed = &conn->access;

    } else {
        field = "credentials";
        sealed = &conn->secret;
    }

    if (sealed->len == 0) {
        return NGX_ERROR;
    }

    return ngx_http_oauth_open_field(pool, log, kr, conn, field, sealed,
                                     secret);
}


ngx_int_t
ngx_http_oauth_credential_value(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *pr, ngx_uint_t kind, ngx_str_t *secret,
    ngx_str_t *value)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   enc;

    /* nothing from a provider or a client may start a new header line */

    if (ngx_http_oauth_has_control(secret->data, secret->len)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": credential has control "
                      "characters, refused", &pr->name);
        return NGX_DECLINED;
    }

    if (kind == NGX_OAUTH_KIND_BASIC) {
        len = pr->token_prefix.len + ngx_base64_encoded_length(secret->len);

    } else {
        len = pr->token_prefix.len + secret->len;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value->data = p;
    p = ngx_cpymem(p, pr->token_prefix.data, pr->token_prefix.len);

    if (kind == NGX_OAUTH_KIND_BASIC) {
        enc.data = p;
        ngx_encode_base64(&enc, secret);
        p += enc.len;

    } else {
        p = ngx_cpymem(p, secret->data, secret->len);
    }

    value->len = p - value->data;

    return NGX_OK;
}
