/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_TOKEN_H_INCLUDED_
#define _NGX_HTTP_OAUTH_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * oauth_token: the handlers ngx_http_oauth_module.c registers.  The
 * variables are added in preconfiguration; the precontent handler injects,
 * the log handler (run first) takes the credential out again, and the
 * header filter notes an upstream 401.
 */

extern ngx_http_variable_t  ngx_http_oauth_token_vars[];
extern ngx_http_output_header_filter_pt
    ngx_http_oauth_token_next_header_filter;

ngx_int_t ngx_http_oauth_token_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth_token_log_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth_token_header_filter(ngx_http_request_t *r);


#endif /* _NGX_HTTP_OAUTH_TOKEN_H_INCLUDED_ */
