/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>

#include <curl/curl.h>
#include <openssl/err.h>

#include "ngx_oauth_url.h"
#include "ngx_http_oauth_http.h"
#include "ngx_http_oauth_socket.h"


/*
 * Outbound HTTP on libcurl's multi interface, driven by this worker's
 * event loop: every socket curl opens gets an nginx connection whose read
 * and write events call curl_multi_socket_action(), and curl's single
 * timeout is one nginx timer.  Nothing here ever blocks the worker.
 */


#define NGX_HTTP_OAUTH_HTTP_TIMEOUT      10000
#define NGX_HTTP_OAUTH_HTTP_BUF_MIN      4096

/* idle keep-alive connections curl may keep, to the few endpoints used */
#define NGX_HTTP_OAUTH_HTTP_MAX_IDLE     16


typedef struct {
    ngx_http_oauth_fetch_t     *fetch;
    ngx_pool_t                 *pool;
    CURL                       *easy;
    CURLU                      *url;
    struct curl_slist          *headers;

    /* the response body, malloc()ed so that it can grow and be freed */
    u_char                     *buf;
    size_t                      len;
    size_t                      size;

    ngx_queue_t                 queue;

    unsigned                    running:1;
    unsigned                    too_large:1;
    unsigned                    no_memory:1;
    unsigned                    refused:1;     /* a non-public address */

    char                        errbuf[CURL_ERROR_SIZE];
} ngx_http_oauth_fetch_ctx_t;


typedef struct {
    CURLM                      *multi;
    ngx_event_t                 timer;
    ngx_connection_t            dummy;
    ngx_queue_t                 running;
    ngx_uint_t                  connections;
    ngx_msec_t                  timeout;
    char                       *cafile;
    unsigned                    global_init:1;
} ngx_http_oauth_http_t;


typedef struct {
    CURLoption                  option;
    long                        value;
} ngx_http_oauth_http_option_t;


typedef struct {
    CURLoption                  option;
    void                       *value;
} ngx_http_oauth_http_pointer_t;


static ngx_int_t ngx_http_oauth_http_curl_check(ngx_cycle_t *cycle,
    ngx_http_oauth_http_t *h);
static CURLM *ngx_http_oauth_http_multi(ngx_cycle_t *cycle,
    ngx_http_oauth_http_t *h);
static void ngx_http_oauth_fetch_cleanup(void *data);
static void ngx_http_oauth_fetch_reset(ngx_http_oauth_fetch_ctx_t *ctx);
static void ngx_http_oauth_fetch_stop(ngx_http_oauth_fetch_ctx_t *ctx);
static void ngx_http_oauth_fetch_wipe(ngx_http_oauth_fetch_ctx_t *ctx);
static void ngx_http_oauth_fetch_free_buffer(ngx_http_oauth_fetch_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_fetch_parse_url(
    ngx_http_oauth_fetch_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_fetch_check_url(
    ngx_http_oauth_fetch_ctx_t *ctx);
static ngx_uint_t ngx_http_oauth_http_address_public(struct sockaddr *sa);
static curl_socket_t ngx_http_oauth_http_open_socket(void *data,
    curlsocktype purpose, struct curl_sockaddr *address);
static ngx_int_t ngx_http_oauth_fetch_setopt(ngx_http_oauth_fetch_ctx_t *ctx);
static CURLcode ngx_http_oauth_fetch_set_objects(
    ngx_http_oauth_fetch_ctx_t *ctx, ngx_http_oauth_fetch_t *f);
static ngx_int_t ngx_http_oauth_fetch_set_auth(
    ngx_http_oauth_fetch_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_fetch_set_headers(
    ngx_http_oauth_fetch_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_fetch_add_header(
    ngx_http_oauth_fetch_ctx_t *ctx, ngx_str_t *name, ngx_str_t *value);
static ngx_uint_t ngx_http_oauth_http_header_valid(ngx_str_t *name,
    ngx_str_t *value);
static char *ngx_http_oauth_http_cstr(ngx_pool_t *pool, ngx_str_t *s,
    ngx_log_t *log);
static void ngx_http_oauth_http_safe_url(ngx_str_t *url, ngx_str_t *safe);
static size_t ngx_http_oauth_http_write(char *ptr, size_t size, size_t nmemb,
    void *data);
static int ngx_http_oauth_http_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp);
static int ngx_http_oauth_http_set_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_oauth_http_release(ngx_connection_t *c);
static void ngx_http_oauth_http_event_handler(ngx_event_t *ev);
static void ngx_http_oauth_http_timer_handler(ngx_event_t *ev);
static void ngx_http_oauth_http_finish(void);
static void ngx_http_oauth_fetch_done(ngx_http_oauth_fetch_ctx_t *ctx,
    CURLcode code);
static ngx_uint_t ngx_http_oauth_http_result(ngx_http_oauth_fetch_ctx_t *ctx,
    CURLcode code);


/* one per worker process */
static ngx_http_oauth_http_t  ngx_http_oauth_http;


/*
 * Fixed policy for every transfer, kept in one table so that it can be
 * audited at a glance.
 */
static ngx_http_oauth_http_option_t  ngx_http_oauth_http_options[] = {

    /* curl must not install signal handlers or use alarm() in a worker */
    { CURLOPT_NOSIGNAL, 1 },

    /* a redirect would carry the client credentials elsewhere */
    { CURLOPT_FOLLOWLOCATION, 0 },

    { CURLOPT_SSL_VERIFYPEER, 1 },
    { CURLOPT_SSL_VERIFYHOST, 2 },
    { CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2 },

    /* credentials come from the configuration only, never from ~/.netrc */
    { CURLOPT_NETRC, (long) CURL_NETRC_IGNORED },
    { CURLOPT_UNRESTRICTED_AUTH, 0 },

    { CURLOPT_NOPROGRESS, 1 },

    /*
     * no Accept-Encoding is sent, so curl never inflates a body and the
     * size cap below applies to the bytes on the wire (no gzip bombs)
     */
    { CURLOPT_HTTP_CONTENT_DECODING, 0 },
    { CURLOPT_HTTP_TRANSFER_DECODING, 1 }
};


ngx_http_oauth_fetch_t *
ngx_http_oauth_fetch_create(ngx_pool_t *pool, ngx_log_t *log)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_oauth_fetch_t      *f;
    ngx_http_oauth_fetch_ctx_t  *ctx;

    f = ngx_pcalloc(pool, sizeof(ngx_http_oauth_fetch_t));
    if (f == NULL) {
        return NULL;
    }

    ctx = ngx_pcalloc(pool, sizeof(ngx_http_oauth_fetch_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_oauth_fetch_cleanup;
    cln->data = ctx;

    ctx->fetch = f;
    ctx->pool = pool;

    f->priv = ctx;
    f->log = log ? log : ngx_cycle->log;

    ngx_http_oauth_fetch_reset(ctx);

    f->error = "not started";

    return f;
}


ngx_int_t
ngx_http_oauth_fetch_start(ngx_http_oauth_fetch_t *f)
{
    ngx_str_t                    url;
    CURLMcode                    mcode;
    ngx_http_oauth_fetch_ctx_t  *ctx;

    ctx = f->priv;

    if (ngx_http_oauth_http.multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: outbound http is not initialized "
                      "in this process");
        return NGX_ERROR;
    }

    if (ctx->running || ctx->easy != NULL) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: outbound request started twice");
        return NGX_ERROR;
    }

    if (f->handler == NULL || f->url.len == 0) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: outbound request without url or handler");
        return NGX_ERROR;
    }

    ngx_http_oauth_fetch_reset(ctx);

    ngx_http_oauth_http_safe_url(&f->url, &url);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, f->log, 0,
                   "oauth fetch start: \"%V\"", &url);

    if (ngx_http_oauth_fetch_parse_url(ctx) != NGX_OK
        || ngx_http_oauth_fetch_check_url(ctx) != NGX_OK)
    {
        goto failed;
    }

    ctx->easy = curl_easy_init();
    if (ctx->easy == NULL) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: curl_easy_init() failed");
        goto failed;
    }

    if (ngx_http_oauth_fetch_setopt(ctx) != NGX_OK
        || ngx_http_oauth_fetch_set_auth(ctx) != NGX_OK
        || ngx_http_oauth_fetch_set_headers(ctx) != NGX_OK)
    {
        goto failed;
    }

    /*
     * curl_multi_add_handle() only asks for a zero timeout, which is
     * posted, so the transfer and the handler both start from the event
     * loop and never from inside this call
     */

    mcode = curl_multi_add_handle(ngx_http_oauth_http.multi, ctx->easy);
    if (mcode != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(mcode));
        goto failed;
    }

    ctx->running = 1;
    ngx_queue_insert_tail(&ngx_http_oauth_http.running, &ctx->queue);

    /*
     * while transfers run, curl's timer keeps a gracefully exiting worker
     * alive until they end, at most the total timeout, the way a proxied
     * request does; an idle timer never delays the exit
     */

    ngx_http_oauth_http.timer.cancelable = 0;

    return NGX_OK;

failed:

    ngx_http_oauth_fetch_stop(ctx);

    return NGX_ERROR;
}


void
ngx_http_oauth_fetch_cancel(ngx_http_oauth_fetch_t *f)
{
    ngx_http_oauth_fetch_ctx_t  *ctx;

    ctx = f->priv;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, f->log, 0,
                   "oauth fetch cancel, running:%ui",
                   (ngx_uint_t) ctx->running);

    ngx_http_oauth_fetch_stop(ctx);
    ngx_http_oauth_fetch_wipe(ctx);
}


const char *
ngx_http_oauth_fetch_result_name(ngx_uint_t result)
{
    switch (result) {

    case NGX_HTTP_OAUTH_FETCH_OK:
        return "ok";

    case NGX_HTTP_OAUTH_FETCH_TIMEOUT:
        return "timeout";

    case NGX_HTTP_OAUTH_FETCH_TLS:
        return "tls";

    case NGX_HTTP_OAUTH_FETCH_NETWORK:
        return "network";

    case NGX_HTTP_OAUTH_FETCH_TOO_LARGE:
        return "too_large";

    case NGX_HTTP_OAUTH_FETCH_ERROR:
        return "error";

    default:
        return "unknown";
    }
}


ngx_int_t
ngx_http_oauth_http_init_process(ngx_cycle_t *cycle, ngx_msec_t timeout,
    ngx_str_t *cafile)
{
    ngx_http_oauth_http_t  *h;

    h = &ngx_http_oauth_http;

    if (h->multi != NULL) {
        return NGX_OK;
    }

    if (ngx_http_oauth_http_curl_check(cycle, h) != NGX_OK) {
        return NGX_ERROR;
    }

    h->timeout = (timeout == 0 || timeout == NGX_CONF_UNSET_MSEC)
                 ? NGX_HTTP_OAUTH_HTTP_TIMEOUT : timeout;

    h->cafile = NULL;

    if (cafile != NULL && cafile->len) {
        h->cafile = ngx_http_oauth_http_cstr(cycle->pool, cafile, cycle->log);
        if (h->cafile == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_queue_init(&h->running);
    h->connections = 0;

    ngx_memzero(&h->dummy, sizeof(ngx_connection_t));
    ngx_memzero(&h->timer, sizeof(ngx_event_t));

    /* debug builds log the fd of ev->data when timers change */
    h->dummy.fd = (ngx_socket_t) -1;

    h->timer.data = &h->dummy;
    h->timer.log = cycle->log;
    h->timer.handler = ngx_http_oauth_http_timer_handler;
    h->timer.cancelable = 1;

    h->multi = ngx_http_oauth_http_multi(cycle, h);

    return (h->multi != NULL) ? NGX_OK : NGX_ERROR;
}


/* libcurl initialized once per process, and able to do what we rely on */

static ngx_int_t
ngx_http_oauth_http_curl_check(ngx_cycle_t *cycle, ngx_http_oauth_http_t *h)
{
    CURLcode                 code;
    curl_version_info_data  *info;

    if (!h->global_init) {
        code = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (code != CURLE_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "oauth: curl_global_init() failed: %s",
                          curl_easy_strerror(code));
            return NGX_ERROR;
        }

        h->global_init = 1;
    }

    info = curl_version_info(CURLVERSION_NOW);

    /* CURLOPT_PROTOCOLS_STR, on which the protocol policy rests */
    if (info->version_num < 0x075500) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "oauth: libcurl %s is too old, 7.85.0 or newer "
                      "is required", info->version);
        return NGX_ERROR;
    }

    if (!(info->features & CURL_VERSION_ASYNCHDNS)) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "oauth: libcurl %s resolves host names synchronously, "
                      "a slow DNS server will block this worker",
                      info->version);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "oauth http: libcurl %s, %s", info->version,
                   info->ssl_version ? info->ssl_version : "no ssl");

    return NGX_OK;
}


/* the worker's multi handle, its sockets and timer given to nginx */

static CURLM *
ngx_http_oauth_http_multi(ngx_cycle_t *cycle, ngx_http_oauth_http_t *h)
{
    CURLM      *multi;
    CURLMcode   mcode;

    multi = curl_multi_init();
    if (multi == NULL) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "oauth: curl_multi_init() failed");
        return NULL;
    }

    mcode = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION,
                              ngx_http_oauth_http_socket);
    if (mcode != CURLM_OK) {
        goto failed;
    }

    mcode = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, h);
    if (mcode != CURLM_OK) {
        goto failed;
    }

    mcode = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION,
                              ngx_http_oauth_http_set_timer);
    if (mcode != CURLM_OK) {
        goto failed;
    }

    mcode = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, h);
    if (mcode != CURLM_OK) {
        goto failed;
    }

    mcode = curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS,
                              (long) NGX_HTTP_OAUTH_HTTP_MAX_IDLE);
    if (mcode == CURLM_OK) {
        return multi;
    }

failed:

    ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                  "oauth: curl_multi_setopt() failed: %s",
                  curl_multi_strerror(mcode));

    (void) curl_multi_cleanup(multi);

    return NULL;
}


void
ngx_http_oauth_http_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    CURLMcode                    mcode;
    ngx_queue_t                 *q;
    ngx_connection_t            *c;
    ngx_http_oauth_http_t       *h;
    ngx_http_oauth_fetch_ctx_t  *ctx;

    h = &ngx_http_oauth_http;

    if (h->multi != NULL) {

        while (!ngx_queue_empty(&h->running)) {
            q = ngx_queue_head(&h->running);
            ctx = ngx_queue_data(q, ngx_http_oauth_fetch_ctx_t, queue);

            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "oauth: outbound request cancelled on exit (a "
                          "refresh cut off here may need a reconnect; "
                          "raise worker_shutdown_timeout)");

            /* handlers do not run: their requests die with the worker */
            ngx_http_oauth_fetch_stop(ctx);
        }

        mcode = curl_multi_cleanup(h->multi);
        if (mcode != CURLM_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "oauth: curl_multi_cleanup() failed: %s",
                          curl_multi_strerror(mcode));
        }

        h->multi = NULL;

        if (h->timer.timer_set) {
            ngx_del_timer(&h->timer);
        }

        if (h->timer.posted) {
            ngx_delete_posted_event(&h->timer);
        }

        /*
         * curl reports every socket it stops watching, so nothing should be
         * left; if something is, release it here rather than have nginx
         * report an open socket left in a connection
         */

        if (h->connections) {
            c = cycle->connections;

            for (i = 0; i < cycle->connection_n; i++) {
                if (c[i].fd != (ngx_socket_t) -1
                    && c[i].read != NULL
                    && c[i].read->handler == ngx_http_oauth_http_event_handler)
                {
                    ngx_http_oauth_http_release(&c[i]);
                }
            }
        }
    }

    if (h->global_init) {
        curl_global_cleanup();
        h->global_init = 0;
    }
}


static void
ngx_http_oauth_fetch_cleanup(void *data)
{
    ngx_http_oauth_fetch_ctx_t  *ctx = data;

    ngx_http_oauth_fetch_stop(ctx);
    ngx_http_oauth_fetch_wipe(ctx);
}


static void
ngx_http_oauth_fetch_reset(ngx_http_oauth_fetch_ctx_t *ctx)
{
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    ngx_http_oauth_fetch_free_buffer(ctx);

    f->result = NGX_HTTP_OAUTH_FETCH_ERROR;
    f->status = 0;
    f->response.len = 0;
    f->response.data = (u_char *) "";
    ngx_str_null(&f->content_type);
    f->elapsed = 0;
    f->error = "not finished";

    ctx->too_large = 0;
    ctx->no_memory = 0;
    ctx->errbuf[0] = '\0';
}


/* releases the curl side of a fetch; idempotent */

static void
ngx_http_oauth_fetch_stop(ngx_http_oauth_fetch_ctx_t *ctx)
{
    CURLMcode           mcode;
    struct curl_slist  *l;

    if (ctx->running) {
        mcode = curl_multi_remove_handle(ngx_http_oauth_http.multi,
                                         ctx->easy);
        if (mcode != CURLM_OK) {
            ngx_log_error(NGX_LOG_ALERT, ctx->fetch->log, 0,
                          "oauth: curl_multi_remove_handle() failed: %s",
                          curl_multi_strerror(mcode));
        }

        ctx->running = 0;
        ngx_queue_remove(&ctx->queue);

        if (ngx_queue_empty(&ngx_http_oauth_http.running)) {
            ngx_http_oauth_http.timer.cancelable = 1;
        }
    }

    if (ctx->easy != NULL) {
        curl_easy_cleanup(ctx->easy);
        ctx->easy = NULL;
    }

    if (ctx->headers != NULL) {

        /* curl frees its copies without wiping; the Authorization is one */

        for (l = ctx->headers; l; l = l->next) {
            ngx_explicit_memzero(l->data, ngx_strlen(l->data));
        }

        curl_slist_free_all(ctx->headers);
        ctx->headers = NULL;
    }

    if (ctx->url != NULL) {
        curl_url_cleanup(ctx->url);
        ctx->url = NULL;
    }
}


/*
 * The caller's request body, password and authorization are zeroed in
 * place: the header promises it and the memory belongs to the fetch's pool.
 */

static void
ngx_http_oauth_fetch_wipe(ngx_http_oauth_fetch_ctx_t *ctx)
{
    ngx_uint_t               i;
    ngx_table_elt_t         *h;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    ngx_http_oauth_fetch_free_buffer(ctx);

    if (f->body.data != NULL && f->body.len) {
        ngx_explicit_memzero(f->body.data, f->body.len);
    }

    if (f->password.data != NULL && f->password.len) {
        ngx_explicit_memzero(f->password.data, f->password.len);
    }

    if (f->authorization.data != NULL && f->authorization.len) {
        ngx_explicit_memzero(f->authorization.data, f->authorization.len);
    }

    if (f->wipe_url && f->url.data != NULL && f->url.len) {
        ngx_explicit_memzero(f->url.data, f->url.len);
    }

    /* extra headers carry credentials too (X-Shopify-Access-Token, keys) */

    if (f->headers != NULL) {
        h = f->headers->elts;

        for (i = 0; i < f->headers->nelts; i++) {
            if (h[i].value.data != NULL && h[i].value.len) {
                ngx_explicit_memzero(h[i].value.data, h[i].value.len);
            }
        }
    }
}


static void
ngx_http_oauth_fetch_free_buffer(ngx_http_oauth_fetch_ctx_t *ctx)
{
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    if (ctx->buf != NULL) {
        ngx_explicit_memzero(ctx->buf, ctx->size);
        ngx_free(ctx->buf);
    }

    ctx->buf = NULL;
    ctx->len = 0;
    ctx->size = 0;

    f->response.len = 0;
    f->response.data = (u_char *) "";
}


static ngx_int_t
ngx_http_oauth_fetch_parse_url(ngx_http_oauth_fetch_ctx_t *ctx)
{
    char                    *url;
    CURLUcode                ucode;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    url = ngx_http_oauth_http_cstr(ctx->pool, &f->url, f->log);
    if (url == NULL) {
        return NGX_ERROR;
    }

    ctx->url = curl_url();
    if (ctx->url == NULL) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0, "oauth: curl_url() failed");
        return NGX_ERROR;
    }

    /*
     * the same parsed URL is handed to curl with CURLOPT_CURLU, so the
     * host checked below is exactly the host curl connects to
     */

    ucode = curl_url_set(ctx->url, CURLUPART_URL, url, 0);
    if (ucode != CURLUE_OK) {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "oauth: refusing outbound request: invalid url (%d)",
                      (int) ucode);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Only https://, or http:// to this host: the client secret, codes and
 * tokens must never cross a network in clear text.
 */

static ngx_int_t
ngx_http_oauth_fetch_check_url(ngx_http_oauth_fetch_ctx_t *ctx)
{
    char                    *scheme, *host, *user;
    ngx_int_t                rc;
    CURLUcode                ucode;
    const char              *reason;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    rc = NGX_ERROR;
    scheme = NULL;
    host = NULL;
    user = NULL;

    if (curl_url_get(ctx->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(ctx->url, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "oauth: refusing outbound request: "
                      "url without scheme or host");
        goto done;
    }

    /* credentials in a URL end up in logs; they belong in the config */

    ucode = curl_url_get(ctx->url, CURLUPART_USER, &user, 0);
    if (ucode != CURLUE_NO_USER) {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "oauth: refusing outbound request to \"%s\": "
                      "url with user info", host);
        goto done;
    }

    /*
     * libcurl hands the host on normalized ("127.1" as "127.0.0.1",
     * "[0:0::1]" or "[::1%25lo]" as "[::1]"), the spellings the core's
     * one rule accepts
     */

    if (ngx_oauth_url_check_transport((u_char *) scheme, ngx_strlen(scheme),
                                      (u_char *) host, ngx_strlen(host),
                                      &reason)
        == NGX_OAUTH_OK)
    {
        rc = NGX_OK;
        goto done;
    }

    ngx_log_error(NGX_LOG_ERR, f->log, 0,
                  "oauth: refusing outbound request to %s://%s: only "
                  "https:// or http:// to a loopback host is allowed (%s)",
                  scheme, host, reason);

done:

    curl_free(scheme);
    curl_free(host);
    curl_free(user);

    return rc;
}


/*
 * Loopback, private (RFC 1918, RFC 4193), link-local (cloud metadata at
 * 169.254.169.254), carrier-grade NAT, unspecified and multicast addresses
 * are the operator's own network: no user-chosen host may lead there.
 */

static ngx_uint_t
ngx_http_oauth_http_address_public(struct sockaddr *sa)
{
    u_char                *a;
    struct sockaddr_in    *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6   *sin6;
#endif

    if (sa->sa_family == AF_INET) {
        sin = (struct sockaddr_in *) sa;
        a = (u_char *) &sin->sin_addr.s_addr;
        goto ipv4;
    }

#if (NGX_HAVE_INET6)

    if (sa->sa_family == AF_INET6) {
        sin6 = (struct sockaddr_in6 *) sa;
        a = sin6->sin6_addr.s6_addr;

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)
            || IN6_IS_ADDR_V4COMPAT(&sin6->sin6_addr))
        {
            a += 12;
            goto ipv4;
        }

        return !(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)
                 || IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)
                 || IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr)
                 || IN6_IS_ADDR_SITELOCAL(&sin6->sin6_addr)
                 || IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr)
                 || (a[0] & 0xfe) == 0xfc);
    }

#endif

    return 0;

ipv4:

    return !(a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224
             || (a[0] == 169 && a[1] == 254)
             || (a[0] == 172 && (a[1] & 0xf0) == 16)
             || (a[0] == 192 && a[1] == 168)
             || (a[0] == 100 && (a[1] & 0xc0) == 64));
}


static curl_socket_t
ngx_http_oauth_http_open_socket(void *data, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    u_char                       text[NGX_SOCKADDR_STRLEN];
    size_t                       len;
    ngx_http_oauth_fetch_ctx_t  *ctx = data;

    if (!ngx_http_oauth_http_address_public(&address->addr)) {
        ctx->refused = 1;

        len = ngx_sock_ntop(&address->addr, address->addrlen, text,
                            NGX_SOCKADDR_STRLEN, 0);

        ngx_log_error(NGX_LOG_ERR, ctx->fetch->log, 0,
                      "oauth: refused to connect to %*s: a loopback, "
                      "private or link-local address, and the host came "
                      "from a connection_param (see allow_private_hosts)",
                      len, text);

        return CURL_SOCKET_BAD;
    }

    return socket(address->family, address->socktype, address->protocol);
}


/*
 * The transfer's options: the fixed policy of the table above, the
 * transfer's own objects and strings, then callbacks and numbers.
 */

static ngx_int_t
ngx_http_oauth_fetch_setopt(ngx_http_oauth_fetch_ctx_t *ctx)
{
    CURL                          *easy;
    CURLcode                       code;
    ngx_uint_t                     i;
    ngx_http_oauth_fetch_t        *f;
    ngx_http_oauth_http_option_t  *opt;

    f = ctx->fetch;
    easy = ctx->easy;

    opt = ngx_http_oauth_http_options;

    for (i = 0; i < sizeof(ngx_http_oauth_http_options)
                    / sizeof(ngx_http_oauth_http_option_t); i++)
    {
        code = curl_easy_setopt(easy, opt[i].option, opt[i].value);
        if (code != CURLE_OK) {
            goto failed;
        }
    }

    code = ngx_http_oauth_fetch_set_objects(ctx, f);
    if (code != CURLE_OK) {
        goto failed;
    }

    code = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                            ngx_http_oauth_http_write);
    if (code != CURLE_OK) {
        goto failed;
    }

    if (f->public_only) {
        code = curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                                ngx_http_oauth_http_open_socket);
        if (code != CURLE_OK) {
            goto failed;
        }
    }

    /* a total deadline: a server that drips bytes is cut off as well */

    code = curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                            (long) ngx_http_oauth_http.timeout);
    if (code != CURLE_OK) {
        goto failed;
    }

    /* refuses a too large Content-Length before any of the body arrives */

    code = curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                            (curl_off_t) NGX_HTTP_OAUTH_FETCH_MAX_BODY);
    if (code != CURLE_OK) {
        goto failed;
    }

    if (f->body.len || f->post) {
        code = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t) f->body.len);

    } else {
        code = curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    }

    if (code == CURLE_OK) {
        return NGX_OK;
    }

failed:

    ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                  "oauth: curl_easy_setopt() failed: %s",
                  curl_easy_strerror(code));

    return NGX_ERROR;
}


/* a NULL value is not set: curl's default stays */

static CURLcode
ngx_http_oauth_fetch_set_objects(ngx_http_oauth_fetch_ctx_t *ctx,
    ngx_http_oauth_fetch_t *f)
{
    CURLcode    code;
    ngx_uint_t  i;

    ngx_http_oauth_http_pointer_t  ptr[] = {

        { CURLOPT_PRIVATE, ctx },
        { CURLOPT_ERRORBUFFER, ctx->errbuf },
        { CURLOPT_PROTOCOLS_STR, "https,http" },
        { CURLOPT_CURLU, ctx->url },

        /* an empty proxy overrides the environment's http_proxy & co. */
        { CURLOPT_PROXY, "" },
        { CURLOPT_NOPROXY, "*" },

        /* a host a user's value chose: checked at connect, after resolving */
        { CURLOPT_OPENSOCKETDATA, f->public_only ? ctx : NULL },

        { CURLOPT_WRITEDATA, ctx },

        /* some providers want their own (Reddit: a unique one per client) */
        { CURLOPT_USERAGENT, f->user_agent.len ? (char *) f->user_agent.data
                                               : "ngx_oauth_module" },

        { CURLOPT_CAINFO, ngx_http_oauth_http.cafile },

        /* not copied by curl: the body lives in the fetch's pool */
        { CURLOPT_POSTFIELDS, f->body.len ? (char *) f->body.data
                              : f->post ? "" : NULL },

        /* a revocation that is not RFC 7009 (GitHub: DELETE of the grant) */
        { CURLOPT_CUSTOMREQUEST, f->method.len ? (char *) f->method.data
                                               : NULL }
    };

    for (i = 0; i < sizeof(ptr) / sizeof(ngx_http_oauth_http_pointer_t);
         i++)
    {
        if (ptr[i].value == NULL) {
            continue;
        }

        code = curl_easy_setopt(ctx->easy, ptr[i].option, ptr[i].value);
        if (code != CURLE_OK) {
            return code;
        }
    }

    return CURLE_OK;
}


static ngx_int_t
ngx_http_oauth_fetch_set_auth(ngx_http_oauth_fetch_ctx_t *ctx)
{
    char                    *user, *password;
    CURLcode                 code;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    if (f->user.len == 0) {
        return NGX_OK;
    }

    /* the caller has form-encoded both halves (RFC 6749, 2.3.1) */

    user = ngx_http_oauth_http_cstr(ctx->pool, &f->user, f->log);
    if (user == NULL) {
        return NGX_ERROR;
    }

    password = ngx_http_oauth_http_cstr(ctx->pool, &f->password, f->log);
    if (password == NULL) {
        return NGX_ERROR;
    }

    code = curl_easy_setopt(ctx->easy, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);

    if (code == CURLE_OK) {
        code = curl_easy_setopt(ctx->easy, CURLOPT_USERNAME, user);
    }

    if (code == CURLE_OK) {
        code = curl_easy_setopt(ctx->easy, CURLOPT_PASSWORD, password);
    }

    /* curl keeps its own copy */
    ngx_explicit_memzero(password, f->password.len);

    if (code != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: curl_easy_setopt() failed: %s",
                      curl_easy_strerror(code));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_fetch_set_headers(ngx_http_oauth_fetch_ctx_t *ctx)
{
    CURLcode                 code;
    ngx_str_t                name, value;
    ngx_uint_t               i;
    ngx_table_elt_t         *h;
    struct curl_slist       *l;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    ngx_str_set(&name, "Accept");
    ngx_str_set(&value, "application/json");

    if (ngx_http_oauth_fetch_add_header(ctx, &name, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (f->body.len || f->post) {
        ngx_str_set(&name, "Content-Type");
        ngx_str_set(&value, "application/x-www-form-urlencoded");

        if (f->body_type.len) {
            value = f->body_type;
        }

        if (ngx_http_oauth_fetch_add_header(ctx, &name, &value) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (f->authorization.len) {
        ngx_str_set(&name, "Authorization");

        if (ngx_http_oauth_fetch_add_header(ctx, &name, &f->authorization)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (f->headers != NULL) {
        h = f->headers->elts;

        for (i = 0; i < f->headers->nelts; i++) {
            if (ngx_http_oauth_fetch_add_header(ctx, &h[i].key, &h[i].value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    /* "Expect:" suppresses curl's 100-continue round trip on large bodies */

    l = curl_slist_append(ctx->headers, "Expect:");
    if (l == NULL) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: curl_slist_append() failed");
        return NGX_ERROR;
    }

    ctx->headers = l;

    code = curl_easy_setopt(ctx->easy, CURLOPT_HTTPHEADER, ctx->headers);
    if (code != CURLE_OK) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: curl_easy_setopt() failed: %s",
                      curl_easy_strerror(code));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_fetch_add_header(ngx_http_oauth_fetch_ctx_t *ctx,
    ngx_str_t *name, ngx_str_t *value)
{
    u_char                  *line, *p;
    size_t                   len;
    struct curl_slist       *l;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    if (!ngx_http_oauth_http_header_valid(name, value)) {
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "oauth: refusing outbound request: invalid header "
                      "\"%V\"", name);
        return NGX_ERROR;
    }

    len = name->len + sizeof(": ") - 1 + value->len + 1;

    line = ngx_pnalloc(ctx->pool, len);
    if (line == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(line, name->data, name->len);

    /* curl drops "Name:" but sends "Name;" as an empty header */

    if (value->len) {
        *p++ = ':';
        *p++ = ' ';
        p = ngx_cpymem(p, value->data, value->len);

    } else {
        *p++ = ';';
    }

    *p = '\0';

    l = curl_slist_append(ctx->headers, (char *) line);

    /* curl_slist_append() copies; this may be "Authorization: Bearer ..." */
    ngx_explicit_memzero(line, len);

    if (l == NULL) {
        ngx_log_error(NGX_LOG_ALERT, f->log, 0,
                      "oauth: curl_slist_append() failed");
        return NGX_ERROR;
    }

    ctx->headers = l;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_oauth_http_header_valid(ngx_str_t *name, ngx_str_t *value)
{
    ngx_uint_t  i;

    if (name->len == 0) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        if (name->data[i] <= 0x20 || name->data[i] >= 0x7f
            || name->data[i] == ':' || name->data[i] == ';')
        {
            return 0;
        }
    }

    /* no header injection through a token or a configured value */

    for (i = 0; i < value->len; i++) {
        if (value->data[i] == '\r' || value->data[i] == '\n'
            || value->data[i] == '\0')
        {
            return 0;
        }
    }

    return 1;
}


/* a NUL-terminated copy; NULL also for strings with a NUL inside */

static char *
ngx_http_oauth_http_cstr(ngx_pool_t *pool, ngx_str_t *s, ngx_log_t *log)
{
    u_char  *p;

    if (s->len && ngx_strlchr(s->data, s->data + s->len, '\0') != NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: refusing outbound request: NUL in a parameter");
        return NULL;
    }

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return (char *) p;
}


/* the URL without query and fragment, which may carry tokens */

static void
ngx_http_oauth_http_safe_url(ngx_str_t *url, ngx_str_t *safe)
{
    u_char  *p, *last;

    last = url->data + url->len;

    for (p = url->data; p < last; p++) {
        if (*p == '?' || *p == '#') {
            break;
        }
    }

    safe->data = url->data;
    safe->len = p - url->data;
}


static size_t
ngx_http_oauth_http_write(char *ptr, size_t size, size_t nmemb, void *data)
{
    ngx_http_oauth_fetch_ctx_t *ctx = data;

    u_char  *buf;
    size_t   n, need, cap;

    n = size * nmemb;

    if (n > NGX_HTTP_OAUTH_FETCH_MAX_BODY - ctx->len) {
        ctx->too_large = 1;
        return 0;
    }

    /* one more byte for the terminating NUL */
    need = ctx->len + n + 1;

    if (need > ctx->size) {
        cap = ngx_max(ctx->size * 2, NGX_HTTP_OAUTH_HTTP_BUF_MIN);

        while (cap < need) {
            cap *= 2;
        }

        cap = ngx_min(cap, NGX_HTTP_OAUTH_FETCH_MAX_BODY + 1);

        buf = ngx_alloc(cap, ctx->fetch->log);
        if (buf == NULL) {
            ctx->no_memory = 1;
            return 0;
        }

        if (ctx->buf != NULL) {
            ngx_memcpy(buf, ctx->buf, ctx->len);
            ngx_explicit_memzero(ctx->buf, ctx->size);
            ngx_free(ctx->buf);
        }

        ctx->buf = buf;
        ctx->size = cap;
    }

    ngx_memcpy(ctx->buf + ctx->len, ptr, n);
    ctx->len += n;

    return n;
}


/*
 * Called by curl, from within curl_multi_socket_action() or a call that
 * adds or removes a handle, whenever the set of events it wants on a
 * socket changes.  Events are registered level-triggered: curl may leave
 * data in a socket, and with edge-triggered epoll it would never be
 * reported again.
 */

static int
ngx_http_oauth_http_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_http_oauth_http_t *h = userp;

    CURLMcode          mcode;
    ngx_connection_t  *c;

    c = socketp;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "oauth http socket: fd:%d what:%d c:%p", s, what, c);

    if (what == CURL_POLL_REMOVE) {

        /* curl owns the descriptor and closes it itself */

        if (c != NULL) {
            ngx_http_oauth_http_release(c);
        }

        return 0;
    }

    if (c == NULL) {
        c = ngx_get_connection(s, ngx_cycle->log);
        if (c == NULL) {
            return -1;
        }

        h->connections++;

        c->read->handler = ngx_http_oauth_http_event_handler;
        c->write->handler = ngx_http_oauth_http_event_handler;
        c->read->log = c->log;
        c->write->log = c->log;
        c->data = h;

        mcode = curl_multi_assign(h->multi, s, c);
        if (mcode != CURLM_OK) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "oauth: curl_multi_assign() failed: %s",
                          curl_multi_strerror(mcode));
            ngx_http_oauth_http_release(c);
            return -1;
        }
    }

    if (ngx_http_oauth_socket_watch(c, what & CURL_POLL_IN,
                                    what & CURL_POLL_OUT)
        != NGX_OK)
    {
        return -1;
    }

    return 0;
}


static void
ngx_http_oauth_http_release(ngx_connection_t *c)
{
    /* the descriptor is curl's: curl closes it itself */

    ngx_http_oauth_socket_release(c);

    ngx_http_oauth_http.connections--;
}


/*
 * Called by curl with the time until it next wants
 * curl_multi_socket_action(CURL_SOCKET_TIMEOUT); -1 deletes the timer.
 */

static int
ngx_http_oauth_http_set_timer(CURLM *multi, long timeout_ms, void *userp)
{
    ngx_http_oauth_http_t *h = userp;

    ngx_event_t  *ev;

    ev = &h->timer;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "oauth http timer: %l", timeout_ms);

    /*
     * ngx_add_timer() keeps an old timer that differs by less than
     * NGX_TIMER_LAZY_DELAY, but curl's timeouts must be exact
     */

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    if (timeout_ms < 0) {
        if (ev->posted) {
            ngx_delete_posted_event(ev);
        }

        return 0;
    }

    if (timeout_ms == 0) {

        /* curl may not be re-entered from its own callback: post instead */

        if (!ev->posted) {
            ngx_post_event(ev, &ngx_posted_events);
        }

        return 0;
    }

    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    ngx_add_timer(ev, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_oauth_http_event_handler(ngx_event_t *ev)
{
    int                running;
    CURLMcode          mcode;
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    c = ev->data;

    /* c may be released during the call below */
    fd = c->fd;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "oauth http event: fd:%d write:%ui",
                   fd, (ngx_uint_t) ev->write);

    if (ngx_http_oauth_http.multi == NULL) {
        return;
    }

    mcode = curl_multi_socket_action(ngx_http_oauth_http.multi, fd,
                                     ev->write ? CURL_CSELECT_OUT
                                               : CURL_CSELECT_IN,
                                     &running);
    if (mcode != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "oauth: curl_multi_socket_action() failed: %s",
                      curl_multi_strerror(mcode));
    }

    ngx_http_oauth_http_finish();
}


static void
ngx_http_oauth_http_timer_handler(ngx_event_t *ev)
{
    int        running;
    CURLMcode  mcode;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "oauth http timer fired");

    if (ngx_http_oauth_http.multi == NULL) {
        return;
    }

    mcode = curl_multi_socket_action(ngx_http_oauth_http.multi,
                                     CURL_SOCKET_TIMEOUT, 0, &running);
    if (mcode != CURLM_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "oauth: curl_multi_socket_action() failed: %s",
                      curl_multi_strerror(mcode));
    }

    ngx_http_oauth_http_finish();
}


/*
 * Runs the handlers of finished transfers.  This is outside any curl
 * callback, so a handler may start new fetches or cancel others: removing
 * a handle also drops its pending message.
 */

static void
ngx_http_oauth_http_finish(void)
{
    int                          left;
    char                        *priv;
    CURL                        *easy;
    CURLMsg                     *msg;
    CURLcode                     code;
    ngx_http_oauth_fetch_ctx_t  *ctx;

    while (ngx_http_oauth_http.multi != NULL) {

        msg = curl_multi_info_read(ngx_http_oauth_http.multi, &left);
        if (msg == NULL) {
            break;
        }

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg is invalid once its handle is removed */
        easy = msg->easy_handle;
        code = msg->data.result;

        priv = NULL;

        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK
            || priv == NULL)
        {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "oauth: finished transfer without a fetch");
            (void) curl_multi_remove_handle(ngx_http_oauth_http.multi, easy);
            continue;
        }

        ctx = (ngx_http_oauth_fetch_ctx_t *) priv;

        ngx_http_oauth_fetch_done(ctx, code);
    }

    /*
     * libcurl shares the worker's OpenSSL error queue: a failed handshake
     * left there would be reported by nginx's next client handshake as a
     * "stale global SSL error" alert.
     */

    ERR_clear_error();
}


static void
ngx_http_oauth_fetch_done(ngx_http_oauth_fetch_ctx_t *ctx, CURLcode code)
{
    long                     status;
    char                    *type;
    size_t                   len;
    ngx_str_t                url;
    curl_off_t               total;
    const char              *detail;
    ngx_http_oauth_fetch_t  *f;

    f = ctx->fetch;

    status = 0;
    type = NULL;
    total = 0;

    if (curl_easy_getinfo(ctx->easy, CURLINFO_RESPONSE_CODE, &status)
        == CURLE_OK && status > 0)
    {
        f->status = (ngx_uint_t) status;
    }

    if (curl_easy_getinfo(ctx->easy, CURLINFO_TOTAL_TIME_T, &total)
        == CURLE_OK && total > 0)
    {
        f->elapsed = (ngx_msec_t) (total / 1000);
    }

    f->result = ngx_http_oauth_http_result(ctx, code);

    /* the type string belongs to the easy handle, which goes below */

    if (curl_easy_getinfo(ctx->easy, CURLINFO_CONTENT_TYPE, &type)
        == CURLE_OK && type != NULL)
    {
        len = ngx_strlen(type);

        f->content_type.data = ngx_pnalloc(ctx->pool, len);
        if (f->content_type.data == NULL) {
            ctx->no_memory = 1;
            f->result = NGX_HTTP_OAUTH_FETCH_ERROR;

        } else {
            ngx_memcpy(f->content_type.data, type, len);
            f->content_type.len = len;
        }
    }

    if (ctx->refused) {
        f->error = "the host is a loopback, private or link-local address";

    } else if (ctx->too_large) {
        f->error = "response too large";

    } else if (ctx->no_memory) {
        f->error = "out of memory";

    } else {
        f->error = curl_easy_strerror(code);
    }

    if (f->result == NGX_HTTP_OAUTH_FETCH_OK) {
        if (ctx->buf != NULL) {
            ctx->buf[ctx->len] = '\0';
            f->response.data = ctx->buf;
            f->response.len = ctx->len;
        }

    } else {
        /* a partial body is of no use and may hold a secret */
        ngx_http_oauth_fetch_free_buffer(ctx);
    }

    ngx_http_oauth_fetch_stop(ctx);

    ngx_http_oauth_http_safe_url(&f->url, &url);

    if (f->result == NGX_HTTP_OAUTH_FETCH_OK) {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, f->log, 0,
                       "oauth fetch done: \"%V\" status:%ui "
                       "body:%uz time:%M",
                       &url, f->status, f->response.len, f->elapsed);

    } else {
        /* curl's message names host and port at most, never a body */

        detail = (ctx->errbuf[0] && !ctx->too_large && !ctx->no_memory)
                 ? ctx->errbuf : f->error;

        len = ngx_strlen(detail);

        while (len && (detail[len - 1] == '\n' || detail[len - 1] == '\r')) {
            len--;
        }

        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "oauth: request to \"%V\" failed (%s): %*s",
                      &url, ngx_http_oauth_fetch_result_name(f->result),
                      len, detail);
    }

    /* f may be freed by the handler */
    f->handler(f);
}


static ngx_uint_t
ngx_http_oauth_http_result(ngx_http_oauth_fetch_ctx_t *ctx, CURLcode code)
{
    switch (code) {

    case CURLE_OK:
        return ctx->no_memory ? NGX_HTTP_OAUTH_FETCH_ERROR
                              : NGX_HTTP_OAUTH_FETCH_OK;

    case CURLE_OPERATION_TIMEDOUT:
        return NGX_HTTP_OAUTH_FETCH_TIMEOUT;

    case CURLE_WRITE_ERROR:
        return ctx->too_large ? NGX_HTTP_OAUTH_FETCH_TOO_LARGE
                              : NGX_HTTP_OAUTH_FETCH_ERROR;

    case CURLE_FILESIZE_EXCEEDED:
        ctx->too_large = 1;
        return NGX_HTTP_OAUTH_FETCH_TOO_LARGE;

    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return NGX_HTTP_OAUTH_FETCH_TLS;

    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return NGX_HTTP_OAUTH_FETCH_NETWORK;

    default:
        return NGX_HTTP_OAUTH_FETCH_ERROR;
    }
}
