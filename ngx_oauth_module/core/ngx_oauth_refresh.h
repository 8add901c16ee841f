/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_REFRESH_H_INCLUDED_
#define _NGX_OAUTH_REFRESH_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_json.h"


/* what a token endpoint answer means for the grant */
typedef enum {
    NGX_OAUTH_ANSWER_OK = 0,     /* new tokens: store them */
    NGX_OAUTH_ANSWER_FATAL,      /* refused (RFC 6749 5.2): reconnect */
    NGX_OAUTH_ANSWER_RETRY       /* says nothing of the grant: try later */
} ngx_oauth_answer_e;


typedef struct {
    ngx_oauth_answer_e   verdict;

    /*
     * NULL for NGX_OAUTH_ANSWER_OK; otherwise a static code fit for logs,
     * the record's last_error and the API: the RFC 6749 5.2 code of a
     * refusal, or "provider_unavailable", "invalid_response",
     * "provider_error" for a retry
     */
    const char          *error;

    /* no answer, 5xx or 429: counts against the provider's health */
    unsigned             down;
} ngx_oauth_answer_t;


/*
 * Classifies a token endpoint answer, the pure part of a refresh (and of
 * a code exchange).  status is the HTTP status, 0 when there was no
 * answer (connection failure, timeout).  An answer with an RFC 6749 5.2
 * error code ("invalid_grant", "invalid_client", "unauthorized_client",
 * "unsupported_grant_type", "invalid_scope", "invalid_request") is FATAL
 * whatever its status, and so are tokens whose token_type is neither
 * bearer nor one of types[0..ntypes) ("unsupported_token_type", see
 * ngx_oauth_token_type_check()); no answer, 5xx, 429, a body that is not a
 * token response (an HTML page), an unknown error code or a non-2xx
 * status without one are RETRY.  Only on NGX_OAUTH_ANSWER_OK is token filled,
 * and the caller then calls ngx_oauth_token_free().
 */
ngx_oauth_answer_e ngx_oauth_refresh_classify(unsigned status,
    const unsigned char *body, size_t len, const ngx_oauth_str_t *types,
    size_t ntypes, ngx_oauth_token_t *token, ngx_oauth_answer_t *answer);


#endif /* _NGX_OAUTH_REFRESH_H_INCLUDED_ */
