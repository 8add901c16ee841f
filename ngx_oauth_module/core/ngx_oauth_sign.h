/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_SIGN_H_INCLUDED_
#define _NGX_OAUTH_SIGN_H_INCLUDED_


#include "ngx_oauth_core.h"


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


#endif /* _NGX_OAUTH_SIGN_H_INCLUDED_ */
