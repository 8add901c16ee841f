/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_CONN_H_INCLUDED_
#define _NGX_HTTP_OAUTH_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_store.h"


/*
 * A connection record and its opened secrets held by a pool: whatever
 * the pool holds goes with it, so no exit path has to free or wipe.
 * Sealing and opening themselves are core's (ngx_oauth_seal.h).
 */


/*
 * Reads a connection record into *conn, allocated in pool with a cleanup
 * that frees the record when the pool goes.  Returns as
 * ngx_oauth_store_conn_get(); *conn is set only on NGX_OAUTH_OK, and
 * NGX_OAUTH_NOMEM when the pool is out of memory.
 */
int ngx_http_oauth_conn_get(ngx_pool_t *pool, ngx_oauth_store_t *store,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, ngx_oauth_conn_t **conn);

/* len bytes of pool memory for a secret: wiped when the pool goes */
u_char *ngx_http_oauth_conn_secret_alloc(ngx_pool_t *pool, size_t len);


#endif /* _NGX_HTTP_OAUTH_CONN_H_INCLUDED_ */
