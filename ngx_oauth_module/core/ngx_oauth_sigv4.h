/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_SIGV4_H_INCLUDED_
#define _NGX_OAUTH_SIGV4_H_INCLUDED_


#include "ngx_oauth_core.h"


/*
 * AWS Signature Version 4 of one request.  path is the URI path as sent
 * (percent-encoded); the canonical path is built from it by the rule of
 * the service: S3 ("s3", "s3-object-lambda", "s3express") signs each
 * segment encoded once and keeps the path as it is; every other service
 * removes "." and ".." segments and empty ones, and signs each segment
 * encoded twice.  query is the raw query string (canonicalized here:
 * decoded, RFC 3986-encoded, sorted by name, then value).  headers are
 * the ones to sign, names in any case; "host" must be among them;
 * "x-amz-date" is added from amz_date; a name given more than once is
 * signed once with its values joined by "," in the order given.
 * payload_hash is the hex SHA-256 of the body or "UNSIGNED-PAYLOAD";
 * amz_date is "YYYYMMDDTHHMMSSZ".
 */
typedef struct {
    ngx_oauth_str_t          method;
    ngx_oauth_str_t          path;
    ngx_oauth_str_t          query;
    const ngx_oauth_pair_t  *headers;
    size_t                   nheaders;
    ngx_oauth_str_t          payload_hash;
    ngx_oauth_str_t          access_key;
    ngx_oauth_str_t          secret_key;
    ngx_oauth_str_t          region;
    ngx_oauth_str_t          service;
    ngx_oauth_str_t          amz_date;
} ngx_oauth_sigv4_t;


/*
 * Writes the Authorization header value into out (NUL-terminated).
 * NGX_OAUTH_INVALID for a malformed path, query or date,
 * NGX_OAUTH_TOO_LARGE when out is too small.
 */
int ngx_oauth_sigv4_sign(const ngx_oauth_sigv4_t *req, char *out,
    size_t size);


#endif /* _NGX_OAUTH_SIGV4_H_INCLUDED_ */
