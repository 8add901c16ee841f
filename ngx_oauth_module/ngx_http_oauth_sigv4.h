/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_SIGV4_H_INCLUDED_
#define _NGX_HTTP_OAUTH_SIGV4_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * Kind aws_sigv4: the proxied request signed with AWS Signature Version 4
 * under the connection's stored keys ("id:secret[:session token]").
 */


/* the headers that carry the signature, each a value in pool memory */
typedef struct {
    ngx_str_t                    authorization;
    ngx_str_t                    amz_date;
    ngx_str_t                    content_sha256;
    ngx_str_t                    security_token;   /* len 0: none */
} ngx_http_oauth_sigv4_t;


/* whether the request has a body to read and hash before it is signed */
ngx_uint_t ngx_http_oauth_sigv4_needs_body(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *pr);

/* lower-case hex SHA-256 of the body read, into hex (65 bytes) */
ngx_int_t ngx_http_oauth_sigv4_hash_body(ngx_http_request_t *r,
    u_char *hex);

/*
 * Signs r as proxy_pass without a URI part sends it (its URI after
 * rewrite, its arguments, the method) for the Host of base_url, with the
 * request's Content-Type and x-amz-* headers.  payload_hash is the hex
 * SHA-256 of the body, or NULL for none.  NGX_DECLINED when the keys or
 * base_url are unusable; NGX_ERROR when out of memory.
 */
ngx_int_t ngx_http_oauth_sigv4_sign(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *pr, ngx_str_t *keys, ngx_str_t *base_url,
    u_char *payload_hash, ngx_http_oauth_sigv4_t *out);


#endif /* _NGX_HTTP_OAUTH_SIGV4_H_INCLUDED_ */
