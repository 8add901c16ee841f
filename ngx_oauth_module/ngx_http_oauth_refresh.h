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
#include "ngx_oauth_buf.h"
#include "ngx_oauth_url.h"


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

/* the per-provider circuit, shared by the workers through the store */
ngx_uint_t ngx_http_oauth_circuit_state(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider);

#define NGX_HTTP_OAUTH_CIRCUIT_CLOSED     0
#define NGX_HTTP_OAUTH_CIRCUIT_OPEN       1
#define NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN  2

/*
 * A token endpoint call (or revocation, with endpoint): url from
 * token_url with vars, body plus client
 * authentication and token_param lines.  The caller sets handler and
 * data and starts it.
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_token_call(ngx_pool_t *pool,
    ngx_log_t *log, ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_oauth_buf_t *body);

/* the background refresher: one timer per worker */
ngx_int_t ngx_http_oauth_refresher_init(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf);

/* seal a value for conn's row and field, into pool memory */
ngx_int_t ngx_http_oauth_seal_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *plain, ngx_oauth_str_t *sealed);

/* open conn's sealed field into pool memory that is wiped with the pool */
ngx_int_t ngx_http_oauth_open_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *sealed, ngx_str_t *plain);


#endif /* _NGX_HTTP_OAUTH_REFRESH_H_INCLUDED_ */
