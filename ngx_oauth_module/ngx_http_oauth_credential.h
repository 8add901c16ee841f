/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_CREDENTIAL_H_INCLUDED_
#define _NGX_HTTP_OAUTH_CREDENTIAL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * A connection's credential as it goes to the provider's API: used by
 * oauth_token to inject it and by the API to test or verify it.
 */


/*
 * Opens conn's credential (the access token of an OAuth connection, the
 * stored secret of the others) into pool memory that is wiped with the
 * pool.  NGX_ERROR when there is none or it does not open.
 */
ngx_int_t ngx_http_oauth_credential_open(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, ngx_str_t *secret);

/*
 * The header value that carries secret for a connection of this kind:
 * the provider's prefix and the token or key, or Basic with "user:pass"
 * encoded.  NGX_DECLINED when secret has characters that could start a
 * new header line; NGX_ERROR when out of memory.
 */
ngx_int_t ngx_http_oauth_credential_value(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *pr, ngx_uint_t kind, ngx_str_t *secret,
    ngx_str_t *value);


#endif /* _NGX_HTTP_OAUTH_CREDENTIAL_H_INCLUDED_ */
