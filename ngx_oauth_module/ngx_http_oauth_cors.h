/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_CORS_H_INCLUDED_
#define _NGX_HTTP_OAUTH_CORS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * CORS for the origins of oauth_allowed_origins, on oauth_api and on JSON
 * starts: a front-end on another origin calls them with fetch() and its
 * credentials.  Same-origin requests need none of it.
 */


/*
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method):
 * answered here, 204 with the CORS headers for an allowed origin, 403
 * forbidden_origin otherwise.  NGX_DECLINED when r is not a preflight.
 * methods is the Access-Control-Allow-Methods value (static).
 */
ngx_int_t ngx_http_oauth_cors_preflight(ngx_http_request_t *r,
    const char *methods);

/* the CORS headers of an answer to an allowed origin; NGX_OK if none */
ngx_int_t ngx_http_oauth_cors_headers(ngx_http_request_t *r);

/*
 * The request's Origin header: NGX_OK, with *origin NULL when there is
 * none; NGX_DECLINED when it is sent more than once.
 */
ngx_int_t ngx_http_oauth_cors_request_origin(ngx_http_request_t *r,
    ngx_str_t **origin);

/* the entry of oauth_allowed_origins that is origin exactly, or NULL */
ngx_str_t *ngx_http_oauth_cors_allowed(ngx_http_request_t *r,
    ngx_str_t *origin);


#endif /* _NGX_HTTP_OAUTH_CORS_H_INCLUDED_ */
