/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_REFRESH_H_INCLUDED_
#define _NGX_HTTP_OAUTH_REFRESH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_http.h"


/* how a refresh ended */
#define NGX_HTTP_OAUTH_REFRESH_OK           0  /* fresh tokens stored */
#define NGX_HTTP_OAUTH_REFRESH_REFUSED      1  /* invalid_grant & co */
#define NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE  2  /* network, 5xx, circuit */
#define NGX_HTTP_OAUTH_REFRESH_GONE         3  /* disconnected meanwhile */
#define NGX_HTTP_OAUTH_REFRESH_ERROR        4  /* ours: store, memory */


typedef struct ngx_http_oauth_refresh_s  ngx_http_oauth_refresh_t;

typedef void (*ngx_http_oauth_refresh_pt)(ngx_http_oauth_refresh_t *rf);


/*
 * A refresh runs in a pool of its own, so that it finishes and stores
 * its result even when the request that asked for it goes away: a
 * rotated refresh token must never be lost on the way.
 */

struct ngx_http_oauth_refresh_s {
    ngx_pool_t                  *pool;
    ngx_log_t                   *log;
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_http_oauth_provider_t   *provider;

    ngx_oauth_str_t              owner;
    ngx_oauth_str_t              account;
    ngx_str_t                    remote_addr;  /* who asked; may be empty */

    /* NULL once the requester is gone; then the result is just stored */
    ngx_http_oauth_refresh_pt    handler;
    void                        *data;

    ngx_uint_t                   result;   /* NGX_HTTP_OAUTH_REFRESH_* */
    const char                  *error;    /* short code, never a secret */
    ngx_uint_t                   status;   /* provider's HTTP status */

    /* private */
    uint64_t                     holder;
    uint64_t                     version;
    ngx_uint_t                   waits;
    ngx_event_t                  wait;
    ngx_http_oauth_fetch_t      *fetch;
    unsigned                     force:1;
    unsigned                     leased:1;
    unsigned                     probe:1;
    unsigned                     fetch_done:1;
    unsigned                     shared_leased:1;  /* the fleet's too */
    unsigned                     shared_down:1;
};


/*
 * Starts a refresh of (owner, provider, account); the strings are copied.
 * force: refresh even when the token is not due (the API's refresh).
 * NGX_OK: handler runs later from the event loop; NGX_ERROR otherwise.
 */
ngx_http_oauth_refresh_t *ngx_http_oauth_refresh_create(
    ngx_http_oauth_main_conf_t *omcf, ngx_http_oauth_provider_t *p,
    ngx_oauth_str_t *owner, ngx_oauth_str_t *account, ngx_log_t *log,
    ngx_str_t *remote_addr);
ngx_int_t ngx_http_oauth_refresh_start(ngx_http_oauth_refresh_t *rf);

/* the requester goes away; the refresh itself goes on */
void ngx_http_oauth_refresh_detach(ngx_http_oauth_refresh_t *rf);

/* whether conn should be refreshed before use at now */
ngx_uint_t ngx_http_oauth_refresh_due(ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_provider_t *p, ngx_oauth_conn_t *conn, time_t now);


#endif /* _NGX_HTTP_OAUTH_REFRESH_H_INCLUDED_ */
