/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_credential.h"
#include "ngx_http_oauth_conn.h"
#include "ngx_http_oauth_util.h"
#include "ngx_oauth_seal.h"


ngx_int_t
ngx_http_oauth_credential_open(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, ngx_str_t *secret)
{
    int                 rc;
    size_t              len;
    ngx_oauth_sealed_e  field;

    field = (conn->kind == NGX_OAUTH_KIND_OAUTH2)
            ? NGX_OAUTH_SEALED_ACCESS : NGX_OAUTH_SEALED_CREDENTIALS;

    len = ngx_oauth_conn_sealed(conn, field)->len;

    if (len == 0) {
        return NGX_ERROR;
    }

    /* room for a terminating zero; the plaintext is wiped with the pool */

    secret->data = ngx_http_oauth_conn_secret_alloc(pool, len + 1);
    if (secret->data == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_oauth_conn_open(kr, conn, field, secret->data, &len);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: cannot open the sealed %s: %s",
                      ngx_oauth_sealed_name(field), ngx_oauth_strerror(rc));
        secret->len = 0;
        return NGX_ERROR;
    }

    secret->len = len;
    secret->data[len] = '\0';

    return NGX_OK;
}


ngx_int_t
ngx_http_oauth_credential_value(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *pr, ngx_uint_t kind, ngx_str_t *secret,
    ngx_str_t *value)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   enc;

    /* AWS keys only sign (ngx_http_oauth_sigv4.c): never sent as such */

    if (kind == NGX_OAUTH_KIND_AWS_SIGV4) {
        return NGX_DECLINED;
    }

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
