/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_HTTP_H_INCLUDED_
#define _NGX_HTTP_OAUTH_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * Outbound HTTP for token, userinfo and revocation calls: libcurl's multi
 * interface driven by nginx events, one multi handle per worker.
 */

#define NGX_HTTP_OAUTH_FETCH_OK          0
#define NGX_HTTP_OAUTH_FETCH_TIMEOUT     1
#define NGX_HTTP_OAUTH_FETCH_TLS         2
#define NGX_HTTP_OAUTH_FETCH_NETWORK     3
#define NGX_HTTP_OAUTH_FETCH_TOO_LARGE   4
#define NGX_HTTP_OAUTH_FETCH_ERROR       5

#define NGX_HTTP_OAUTH_FETCH_MAX_BODY    (1024 * 1024)


typedef struct ngx_http_oauth_fetch_s  ngx_http_oauth_fetch_t;

typedef void (*ngx_http_oauth_fetch_handler_pt)(ngx_http_oauth_fetch_t *f);


struct ngx_http_oauth_fetch_s {
    /* set by the caller before start */
    ngx_str_t                         url;
    ngx_str_t                         body;       /* non-empty: POST form */
    ngx_str_t                         user;       /* non-empty: Basic auth */
    ngx_str_t                         password;
    ngx_str_t                         authorization;  /* header value */
    ngx_array_t                      *headers;    /* values wiped too */
    ngx_str_t                         method;     /* non-empty: this verb */
    ngx_str_t                         body_type;  /* default: form */
    ngx_str_t                         user_agent; /* default: the module's */
    unsigned                          post:1;     /* POST even when empty */
    /*
     * refuse loopback, private and link-local addresses of the host (a
     * templated host without the provider's allow_private_hosts)
     */
    unsigned                          public_only:1;
    unsigned                          wipe_url:1; /* the URL holds secrets */

    ngx_http_oauth_fetch_handler_pt   handler;
    void                             *data;
    ngx_log_t                        *log;

    /* results, valid in handler */
    ngx_uint_t                        result;     /* NGX_HTTP_OAUTH_FETCH_* */
    ngx_uint_t                        status;     /* HTTP status */
    ngx_str_t                         response;   /* wiped with the pool */
    ngx_str_t                         content_type;
    ngx_msec_t                        elapsed;
    const char                       *error;      /* short text for logs */

    /* private */
    void                             *priv;
};


/*
 * What a call sends is an allow-list built here, never a copy of a client
 * request (a fetch has none): Host, User-Agent (user_agent or the
 * module's), Accept, Content-Type and Content-Length of a body,
 * Authorization (Basic from user and password, or authorization), and
 * headers, which only the module fills from configuration (token_header,
 * token_header_param, a webhook's signature).
 *
 * The fetch lives in pool; destroying the pool cancels a transfer still
 * running and wipes the request and response bodies.
 *
 * body, password and authorization are zeroed in place when the pool is
 * destroyed or the fetch cancelled: point them at copies in this pool,
 * never at configuration strings.  All caller fields must stay valid while
 * the transfer runs (body is not copied).  response is NUL-terminated,
 * empty unless result is OK, and valid until the pool goes, the fetch is
 * cancelled or started again.  result OK means a complete HTTP response of
 * any status (redirects are never followed): check status.  Failures are
 * already logged at "error" level with curl's reason.  For a fetch without
 * a request, use a pool of its own (ngx_create_pool), not cycle->pool.
 */
ngx_http_oauth_fetch_t *ngx_http_oauth_fetch_create(ngx_pool_t *pool,
    ngx_log_t *log);

/*
 * NGX_OK: started; handler runs later from the event loop, never from
 * inside this call.  NGX_ERROR: not started, handler never runs.
 *
 * The handler runs once, from a socket or timer event, not from a request
 * handler: to resume a request it must call ngx_http_core_run_phases() (or
 * finalize) and then ngx_http_run_posted_requests().  It may start or
 * cancel fetches, start this one again, and destroy the fetch's pool.
 * Only https:// URLs, or http:// to 127.0.0.0/8, [::1] or localhost, are
 * accepted; user info in the URL, and CR, LF or NUL in a header, are not.
 */
ngx_int_t ngx_http_oauth_fetch_start(ngx_http_oauth_fetch_t *f);

/* stops a running transfer; handler does not run */
void ngx_http_oauth_fetch_cancel(ngx_http_oauth_fetch_t *f);

const char *ngx_http_oauth_fetch_result_name(ngx_uint_t result);

/*
 * From the module's init_process and exit_process.  timeout is the total
 * deadline of each call (0 or unset: 10s); cafile NULL or empty: the system
 * store.  Exit cancels transfers still running; their handlers do not run.
 * While transfers run, a gracefully exiting worker waits for them (at most
 * timeout); an idle client never delays the exit.
 */
ngx_int_t ngx_http_oauth_http_init_process(ngx_cycle_t *cycle,
    ngx_msec_t timeout, ngx_str_t *cafile);
void ngx_http_oauth_http_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_OAUTH_HTTP_H_INCLUDED_ */
