/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_ENDPOINT_H_INCLUDED_
#define _NGX_HTTP_OAUTH_ENDPOINT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_http.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_url.h"


/*
 * Calls to a provider's endpoints.  Each returns a fetch in pool, ready
 * to go with ngx_http_oauth_endpoint_start().  NULL: the URL could not be
 * built or memory ran out.  vars fill the endpoint's {placeholders}.
 */

/*
 * The token endpoint (a code exchange or a refresh): body holds the grant;
 * client authentication (Basic or in the body, per token_auth) and the
 * token_param lines are added to it.
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_token(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_oauth_buf_t *body);

/* the same for a refresh grant, authenticated per refresh_token_auth */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_refresh(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_oauth_buf_t *body);

/*
 * A client-credentials grant (token_grant client_credentials: Wix's app
 * instance tokens): token_body expanded with vars (the kept callback
 * values), "client_id" and "client_secret", sent as JSON when it is an
 * object, else form; without token_body, the form grant with the
 * client's authentication and the token_param lines.  The same request
 * connects (call NGX_HTTP_OAUTH_CALL_TOKEN) and refreshes (_REFRESH).
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_credentials(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_uint_t call);

/*
 * RFC 7009 revocation: body holds token and token_type_hint; the client
 * authenticates as at the token endpoint; vars (the connection's params)
 * fill a templated revocation_url (salesforce-mydomain's {domain}).
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_revoke(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_oauth_buf_t *body);

/*
 * Whether the provider revokes its own way (revocation_method,
 * revocation_auth or revocation_body set): then one call revokes the
 * grant, built by ngx_http_oauth_endpoint_revoke_grant() from vars (the
 * connection's params, plus "token", "access_token", "refresh_token").
 */
ngx_uint_t ngx_http_oauth_endpoint_revoke_custom(
    ngx_http_oauth_provider_t *p);
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_revoke_grant(
    ngx_pool_t *pool, ngx_log_t *log, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars);

/*
 * A GET of a templated URL that answers with a token (exchange_url,
 * refresh_url): vars hold "access_token" and the connection's params;
 * "client_id" and "client_secret" are added.  The URL then carries
 * secrets: it is never logged beyond its path.
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_get_token(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars);

/*
 * A GET of userinfo_url with credential, the whole header value (prefix
 * and token, say), sent in the provider's token_header.  credential must
 * be pool memory that may be wiped: it is zeroed with the fetch.
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_userinfo(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_str_t *credential);

/*
 * The same for a post-connect lookup (ngx_http_oauth_lookup.c): a GET of
 * endpoint, a "lookup" line's URL, which vars fill.
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_endpoint_lookup(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_str_t *credential);


/*
 * Starts f as ngx_http_oauth_fetch_start() does, and counts the call's
 * time in the metrics before handler runs with data in f->data.
 */
ngx_int_t ngx_http_oauth_endpoint_start(ngx_http_oauth_fetch_t *f,
    ngx_http_oauth_fetch_handler_pt handler, void *data);


#endif /* _NGX_HTTP_OAUTH_ENDPOINT_H_INCLUDED_ */
