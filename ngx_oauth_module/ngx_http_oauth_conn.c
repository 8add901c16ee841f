/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_oauth_conn.h"


typedef struct {
    u_char  *data;
    size_t   len;
} ngx_http_oauth_conn_secret_t;


static void ngx_http_oauth_conn_cleanup(void *data);
static void ngx_http_oauth_conn_secret_cleanup(void *data);


int
ngx_http_oauth_conn_get(ngx_pool_t *pool, ngx_oauth_store_t *store,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, ngx_oauth_conn_t **conn)
{
    int                  rc;
    ngx_oauth_conn_t    *c;
    ngx_pool_cleanup_t  *cln;

    /* the cleanup's own data is the record: one allocation */

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_oauth_conn_t));
    if (cln == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    c = cln->data;
    ngx_memzero(c, sizeof(ngx_oauth_conn_t));
    cln->handler = ngx_http_oauth_conn_cleanup;

    rc = ngx_oauth_store_conn_get(store, owner, provider, account, c);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    *conn = c;

    return NGX_OAUTH_OK;
}


u_char *
ngx_http_oauth_conn_secret_alloc(ngx_pool_t *pool, size_t len)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_oauth_conn_secret_t  *s;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_http_oauth_conn_secret_t));
    if (cln == NULL) {
        return NULL;
    }

    s = cln->data;

    s->data = ngx_pnalloc(pool, len);
    if (s->data == NULL) {
        s->len = 0;
        cln->handler = NULL;
        return NULL;
    }

    s->len = len;
    cln->handler = ngx_http_oauth_conn_secret_cleanup;

    return s->data;
}


static void
ngx_http_oauth_conn_cleanup(void *data)
{
    ngx_oauth_conn_t  *conn = data;

    ngx_oauth_conn_free(conn);
}


static void
ngx_http_oauth_conn_secret_cleanup(void *data)
{
    ngx_http_oauth_conn_secret_t  *s = data;

    ngx_explicit_memzero(s->data, s->len);
}
