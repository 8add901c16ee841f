/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_SIGN_H_INCLUDED_
#define _NGX_OAUTH_SIGN_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_url.h"


#define NGX_OAUTH_HMAC_LEN  32


/* HMAC-SHA256 of data under key into out (32 bytes) */
int ngx_oauth_hmac_sha256(const unsigned char *key, size_t key_len,
    const unsigned char *data, size_t len, unsigned char *out);

/*
 * Shopify's signature of a redirect (its OAuth callback): every query
 * parameter but "hmac" and "signature", decoded, sorted by name, written
 * "name=value" joined with "&" ("%" and "&" escaped in values, and "="
 * too in names), HMAC-SHA256 under the client secret, in hex.
 * NGX_OAUTH_OK when the query's "hmac" (once, 64 hex digits) matches,
 * compared in constant time; NGX_OAUTH_DENIED when it does not or is
 * missing; NGX_OAUTH_INVALID for a malformed query.
 */
int ngx_oauth_shopify_hmac_check(const unsigned char *query, size_t len,
    const unsigned char *secret, size_t secret_len);


/* lower-case hex SHA-256 of data: 64 chars and a NUL into hex */
int ngx_oauth_sha256_hex(const unsigned char *data, size_t len, char *hex);

/*
 * The same over data given in parts (a request body in buffers): new,
 * update for each part, then final (which frees it) or free.
 */
typedef struct ngx_oauth_sha256_s  ngx_oauth_sha256_t;

ngx_oauth_sha256_t *ngx_oauth_sha256_new(void);
int ngx_oauth_sha256_update(ngx_oauth_sha256_t *h,
    const unsigned char *data, size_t len);
int ngx_oauth_sha256_final_hex(ngx_oauth_sha256_t *h, char *hex);
void ngx_oauth_sha256_free(ngx_oauth_sha256_t *h);


#endif /* _NGX_OAUTH_SIGN_H_INCLUDED_ */
