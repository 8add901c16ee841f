/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_SEAL_H_INCLUDED_
#define _NGX_HTTP_OAUTH_SEAL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_store.h"


/*
 * Pool wrappers around core's ngx_oauth_seal()/ngx_oauth_open(): the
 * additional data is conn's row (owner, provider, account) and field.
 */

/* seal a value for conn's row and field, into pool memory */
ngx_int_t ngx_http_oauth_seal_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *plain, ngx_oauth_str_t *sealed);

/* open conn's sealed field into pool memory that is wiped with the pool */
ngx_int_t ngx_http_oauth_open_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *sealed, ngx_str_t *plain);


#endif /* _NGX_HTTP_OAUTH_SEAL_H_INCLUDED_ */
