/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_refresh.h"
#include "ngx_http_oauth_audit.h"
#include "ngx_http_oauth_circuit.h"
#include "ngx_http_oauth_conn.h"
#include "ngx_http_oauth_endpoint.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_webhook.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_refresh.h"
#include "ngx_oauth_seal.h"


/*
 * Token refresh, once per connection across every worker: a lease record
 * in the store names the one refresher; the others poll the record until
 * the lease is gone and then use what it stored.  No transaction is held
 * while the provider is called; the result is stored only if the record
 * is still the version the refresh started from.
 */


#define NGX_HTTP_OAUTH_WAIT_MS        50
#define NGX_HTTP_OAUTH_REREADS        8
#define NGX_HTTP_OAUTH_BACKOFF_MAX    300

/* last_error of a grant a dead process may have spent; see _call() */
#define NGX_HTTP_OAUTH_INTERRUPTED    "refresh_interrupted"


/*
 * What only this file sees of a refresh: the public part comes first, so
 * that a pointer to one is a pointer to the other.
 */

typedef struct {
    ngx_http_oauth_refresh_t     rf;

    /* the sealed refresh token the provider was sent */
    ngx_oauth_str_t              spent;

    /*
     * the lease was taken over from a holder that had a call out and
     * died: the refresh token may be spent already
     */
    unsigned                     interrupted:1;
} ngx_http_oauth_refresh_priv_t;


static void ngx_http_oauth_refresh_step(ngx_http_oauth_refresh_t *rf);
static ngx_int_t ngx_http_oauth_refresh_read(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t **conn);
static ngx_int_t ngx_http_oauth_refresh_decide(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, time_t now);
static ngx_int_t ngx_http_oauth_refresh_lease(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t **conn, time_t now);
static void ngx_http_oauth_refresh_call(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn);
static ngx_http_oauth_fetch_t *ngx_http_oauth_refresh_fetch(
    ngx_http_oauth_refresh_t *rf, ngx_oauth_conn_t *conn, ngx_str_t *plain);
static void ngx_http_oauth_refresh_timer(ngx_http_oauth_refresh_t *rf,
    ngx_msec_t ms);
static ngx_uint_t ngx_http_oauth_refresh_usable(ngx_oauth_conn_t *conn,
    time_t now);
static void ngx_http_oauth_refresh_wait_handler(ngx_event_t *ev);
static void ngx_http_oauth_refresh_done(ngx_http_oauth_fetch_t *f);
static void ngx_http_oauth_refresh_answer(ngx_http_oauth_refresh_t *rf,
    ngx_http_oauth_fetch_t *f, ngx_oauth_conn_t *conn,
    ngx_oauth_token_t *token, ngx_oauth_answer_t *answer);
static void ngx_http_oauth_refresh_store(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_oauth_token_t *token, ngx_uint_t result,
    const char *error);
static ngx_int_t ngx_http_oauth_refresh_apply(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_oauth_token_t *token, ngx_uint_t result,
    const char *error, time_t now);
static void ngx_http_oauth_refresh_finish(ngx_http_oauth_refresh_t *rf,
    ngx_uint_t result, const char *error);
static void ngx_http_oauth_refresh_destroy(ngx_event_t *ev);
static void ngx_http_oauth_refresh_cleanup(void *data);
static void ngx_http_oauth_refresh_probe_done(ngx_http_oauth_refresh_t *rf);


static uint64_t  ngx_http_oauth_refresh_seq;


ngx_http_oauth_refresh_t *
ngx_http_oauth_refresh_create(ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_provider_t *p, ngx_oauth_str_t *owner,
    ngx_oauth_str_t *account, ngx_log_t *log, ngx_str_t *remote_addr)
{
    ngx_pool_t                *pool;
    ngx_pool_cleanup_t        *cln;
    ngx_http_oauth_refresh_t  *rf;

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    rf = ngx_pcalloc(pool, sizeof(ngx_http_oauth_refresh_priv_t));
    if (rf == NULL) {
        goto failed;
    }

    rf->pool = pool;
    rf->log = ngx_cycle->log;
    rf->omcf = omcf;
    rf->provider = p;

    rf->owner.len = owner->len;
    rf->owner.data = ngx_pnalloc(pool, owner->len);
    rf->account.len = account->len;
    rf->account.data = ngx_pnalloc(pool, account->len);

    if (rf->owner.data == NULL || rf->account.data == NULL) {
        goto failed;
    }

    ngx_memcpy(rf->owner.data, owner->data, owner->len);
    ngx_memcpy(rf->account.data, account->data, account->len);

    if (remote_addr && remote_addr->len) {
        rf->remote_addr.data = ngx_pstrdup(pool, remote_addr);
        if (rf->remote_addr.data == NULL) {
            goto failed;
        }

        rf->remote_addr.len = remote_addr->len;
    }

    /* a holder id unique across processes and across this one's refreshes */

    rf->holder = ((uint64_t) ngx_pid << 32) | ++ngx_http_oauth_refresh_seq;

    rf->wait.handler = ngx_http_oauth_refresh_wait_handler;
    rf->wait.data = rf;
    rf->wait.log = rf->log;
    rf->wait.cancelable = 1;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        goto failed;
    }

    cln->handler = ngx_http_oauth_refresh_cleanup;
    cln->data = rf;

    return rf;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


ngx_int_t
ngx_http_oauth_refresh_start(ngx_http_oauth_refresh_t *rf)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                   "oauth refresh: provider \"%V\": started%s",
                   &rf->provider->name, rf->force ? " (forced)" : "");

    /* the first step runs from the event loop too, never inline */

    ngx_http_oauth_refresh_timer(rf, 1);

    return NGX_OK;
}


void
ngx_http_oauth_refresh_detach(ngx_http_oauth_refresh_t *rf)
{
    rf->handler = NULL;
    rf->data = NULL;

    /* nobody waits any more: a worker that is exiting need not stay */

    rf->wait.cancelable = 1;
}


/*
 * While a request waits on the refresh, its timer is all that keeps a
 * gracefully exiting worker (a reload) alive: the request has no timer of
 * its own in the access phase, and nginx would close its connection with
 * "open socket left".  A refresh without a requester (data is NULL for
 * the background refresher) does not hold the worker; one that calls the
 * provider is held by the call anyway.
 */

static void
ngx_http_oauth_refresh_timer(ngx_http_oauth_refresh_t *rf, ngx_msec_t ms)
{
    rf->wait.cancelable = (rf->data == NULL);

    ngx_add_timer(&rf->wait, ms);
}


ngx_uint_t
ngx_http_oauth_refresh_due(ngx_http_oauth_main_conf_t *omcf,
    ngx_http_oauth_provider_t *p, ngx_oauth_conn_t *conn, time_t now)
{
    time_t  ahead, lifetime;

    if (conn->flags & NGX_OAUTH_CONN_REFRESH_DUE) {
        return 1;
    }

    if (conn->expires_at == 0) {
        return 0;
    }

    /* the window is capped at half of the token's lifetime */

    ahead = omcf->refresh_ahead;
    lifetime = conn->expires_at - conn->last_refresh_at;

    if (lifetime > 0 && ahead > lifetime / 2) {
        ahead = lifetime / 2;
    }

    return now >= conn->expires_at - ahead;
}


/* whether conn's access token works now as it is */

static ngx_uint_t
ngx_http_oauth_refresh_usable(ngx_oauth_conn_t *conn, time_t now)
{
    return conn->status == NGX_OAUTH_STATUS_CONNECTED
           && conn->access.len
           && !(conn->flags & NGX_OAUTH_CONN_REFRESH_DUE)
           && (conn->expires_at == 0 || conn->expires_at > now);
}


static void
ngx_http_oauth_refresh_wait_handler(ngx_event_t *ev)
{
    ngx_http_oauth_refresh_step(ev->data);
}


static void
ngx_http_oauth_refresh_step(ngx_http_oauth_refresh_t *rf)
{
    time_t             now;
    ngx_int_t          rc;
    ngx_uint_t         rereads;
    ngx_oauth_conn_t  *conn;

    now = ngx_time();

    /* the records read are freed with the refresh's pool */

    for (rereads = 0; /* void */; rereads++) {

        if (ngx_http_oauth_refresh_read(rf, &conn) != NGX_OK
            || ngx_http_oauth_refresh_decide(rf, conn, now) != NGX_OK)
        {
            return;
        }

        rc = ngx_http_oauth_refresh_lease(rf, &conn, now);

        if (rc == NGX_OK) {
            break;
        }

        if (rc != NGX_AGAIN) {
            return;
        }

        if (rereads == NGX_HTTP_OAUTH_REREADS) {
            ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                          "store_busy");
            return;
        }
    }

    /* several nodes: PostgreSQL's lease too (ngx_http_oauth_shared.c) */

    rc = ngx_http_oauth_shared_lease(rf, conn);

    if (rc == NGX_BUSY) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                      "shared_store_unavailable");
        return;
    }

    if (rc != NGX_DECLINED) {
        return;
    }

    ngx_http_oauth_refresh_call(rf, conn);
}


/* the record; NGX_DECLINED: gone or unreadable, and the refresh ended */

static ngx_int_t
ngx_http_oauth_refresh_read(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t **conn)
{
    int                          rc;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = rf->omcf;

    if (omcf->store == NULL) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_unavailable");
        return NGX_DECLINED;
    }

    rc = ngx_http_oauth_conn_get(rf->pool, omcf->store, &rf->owner,
                                 (ngx_oauth_str_t *) &rf->provider->name,
                                 &rf->account, conn);

    if (rc == NGX_OAUTH_NOT_FOUND) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_GONE,
                                      "not_connected");
        return NGX_DECLINED;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: cannot read connection: %s",
                      ngx_oauth_strerror(rc));
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_error");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Whether conn is to be refreshed now.  The checks also decide for a
 * refresh that waited on another worker's lease, from what that one
 * stored: fresh tokens make the token not due, a refusal makes the status
 * "error", and a provider failure sets a retry time, which must not be
 * answered with a second call (nor a "reauthorization_required": the
 * grant is fine).  NGX_DECLINED: the refresh ended.
 */

static ngx_int_t
ngx_http_oauth_refresh_decide(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, time_t now)
{
    ngx_uint_t                  result;
    const char                 *error;
    ngx_http_oauth_provider_t  *p;

    p = rf->provider;

    if (conn->status == NGX_OAUTH_STATUS_ERROR
        || conn->status == NGX_OAUTH_STATUS_REVOKED)
    {
        result = NGX_HTTP_OAUTH_REFRESH_REFUSED;
        error = "reauthorization_required";

    } else if (!rf->force
               && !ngx_http_oauth_refresh_due(rf->omcf, p, conn, now))
    {
        result = NGX_HTTP_OAUTH_REFRESH_OK;
        error = NULL;

    } else if ((conn->refresh.len == 0 && p->refresh_url.len == 0)
               || !p->refresh || conn->kind != NGX_OAUTH_KIND_OAUTH2)
    {
        result = NGX_HTTP_OAUTH_REFRESH_REFUSED;
        error = "no_refresh_token";

    } else if (!rf->force && conn->retry_at > now) {
        result = NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE;
        error = "backoff";

    } else {
        return NGX_OK;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                   "oauth refresh: provider \"%V\": not called: %s",
                   &p->name, error ? error : "not due");

    ngx_http_oauth_refresh_finish(rf, result, error);

    return NGX_DECLINED;
}


/*
 * The lease, then the record again under it.  NGX_OK: leased, *conn is
 * the current record.  NGX_AGAIN: the record changed meanwhile, decide
 * again.  NGX_DONE: another worker refreshes, we wait.  NGX_DECLINED: the
 * refresh ended.
 */

static ngx_int_t
ngx_http_oauth_refresh_lease(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t **conn, time_t now)
{
    int                             rc;
    time_t                          deadline;
    unsigned                        taken;
    uint64_t                        version;
    ngx_http_oauth_main_conf_t     *omcf;
    ngx_http_oauth_refresh_priv_t  *priv;

    omcf = rf->omcf;
    priv = (ngx_http_oauth_refresh_priv_t *) rf;

    deadline = now + (time_t) (omcf->http_timeout / 1000) + 5;

    /*
     * The lease says a call may be out from the moment it is taken: a
     * holder that dies leaves that note to whoever takes over.
     */

    rc = ngx_oauth_store_lease_claim(omcf->store, &rf->owner,
                                     (ngx_oauth_str_t *) &rf->provider->name,
                                     &rf->account, rf->holder, now, deadline,
                                     NGX_OAUTH_LEASE_CALLING, &taken);

    if (rc == NGX_OAUTH_BUSY) {

        /*
         * Someone else refreshes.  A token that still works is used
         * meanwhile (the requester is answered at once); otherwise the
         * record is polled without blocking the worker until the holder
         * stores its result, dies (its lease is then free at once) or
         * runs out of time.
         */

        if (!rf->force && ngx_http_oauth_refresh_usable(*conn, now)) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                           "oauth refresh: provider \"%V\": lease busy, "
                           "the current token is still valid",
                           &rf->provider->name);

            ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_OK,
                                          NULL);
            return NGX_DECLINED;
        }

        rf->waits++;

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                       "oauth refresh: provider \"%V\": lease busy, "
                       "wait %ui", &rf->provider->name, rf->waits);

        /*
         * The wait polls every NGX_HTTP_OAUTH_WAIT_MS: each poll's record
         * goes now rather than with the pool (its cleanup then finds it
         * empty).
         */

        ngx_oauth_conn_free(*conn);
        ngx_http_oauth_refresh_timer(rf, NGX_HTTP_OAUTH_WAIT_MS);
        return NGX_DONE;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_error");
        return NGX_DECLINED;
    }

    rf->leased = 1;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                   "oauth refresh: provider \"%V\": lease taken, "
                   "holder %uL, taken over 0x%xd", &rf->provider->name,
                   rf->holder, taken);

    if ((taken & NGX_OAUTH_LEASE_TAKEN_OVER)
        && (taken & NGX_OAUTH_LEASE_CALLING))
    {
        priv->interrupted = 1;

        ngx_log_error(NGX_LOG_WARN, rf->log, 0,
                      "oauth: provider \"%V\": taking over a refresh whose "
                      "process exited with a call out; its refresh token "
                      "may be spent: one attempt", &rf->provider->name);
    }

    /*
     * The record was read before the lease was ours: a refresh in another
     * worker may have stored its result and let the lease go in between,
     * and then the refresh token read above is already spent (a provider
     * that rotates them revokes the whole grant when one comes twice).
     * Under the lease no other refresh can change the record: read it
     * again, and decide again from the fresh one if it changed.
     */

    version = (*conn)->version;

    rc = ngx_http_oauth_conn_get(rf->pool, omcf->store, &rf->owner,
                                 (ngx_oauth_str_t *) &rf->provider->name,
                                 &rf->account, conn);

    if (rc == NGX_OAUTH_OK && (*conn)->version == version) {
        rf->version = version;
        return NGX_OK;
    }

    return NGX_AGAIN;
}


/* under the lease: the provider is called with the refresh token */

static void
ngx_http_oauth_refresh_call(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn)
{
    size_t                          len;
    ngx_str_t                       plain, name;
    ngx_uint_t                      probe, usable;
    ngx_oauth_str_t                *grant;
    ngx_oauth_sealed_e              field;
    ngx_http_oauth_fetch_t         *f;
    ngx_http_oauth_provider_t      *p;
    ngx_http_oauth_refresh_priv_t  *priv;

    p = rf->provider;

    name.len = p->name.len;
    name.data = p->name.data;

    if (!ngx_http_oauth_circuit_allow(rf->omcf, &name, rf->holder, &probe)) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                      "circuit_open");
        return;
    }

    rf->probe = probe;

    priv = (ngx_http_oauth_refresh_priv_t *) rf;

    /*
     * A careful attempt after a takeover that got no answer (a timeout, a
     * dropped connection) says nothing about the grant: it stays
     * retryable, and its last_error keeps the note that a dead process
     * may have spent the refresh token, so that the next attempt is the
     * careful one in its turn.
     */

    if (conn->last_error.len == sizeof(NGX_HTTP_OAUTH_INTERRUPTED) - 1
        && ngx_memcmp(conn->last_error.data, NGX_HTTP_OAUTH_INTERRUPTED,
                      sizeof(NGX_HTTP_OAUTH_INTERRUPTED) - 1)
           == 0)
    {
        priv->interrupted = 1;
    }

    /*
     * A provider's own refresh (refresh_url: Instagram's ig_refresh_token)
     * trades the access token itself; it is then the one spent.
     */

    field = p->refresh_url.len ? NGX_OAUTH_SEALED_ACCESS
                               : NGX_OAUTH_SEALED_REFRESH;
    grant = ngx_oauth_conn_sealed(conn, field);

    priv->spent.len = grant->len;
    priv->spent.data = ngx_pnalloc(rf->pool, grant->len);

    /* the plaintext grant is wiped with the refresh's pool */

    plain.data = ngx_http_oauth_conn_secret_alloc(rf->pool, grant->len);

    if (priv->spent.data == NULL || plain.data == NULL) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "internal_error");
        return;
    }

    ngx_memcpy(priv->spent.data, grant->data, grant->len);

    if (ngx_oauth_conn_open(rf->omcf->keyring, conn, field, plain.data, &len)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: cannot open the sealed %s",
                      ngx_oauth_sealed_name(field));
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "unsealing_failed");
        return;
    }

    plain.len = len;

    f = ngx_http_oauth_refresh_fetch(rf, conn, &plain);

    usable = ngx_http_oauth_refresh_usable(conn, ngx_time());

    if (f == NULL
        || ngx_http_oauth_endpoint_start(f, ngx_http_oauth_refresh_done, rf)
           != NGX_OK)
    {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "internal_error");
        return;
    }

    rf->fetch = f;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                   "oauth refresh: provider \"%V\" called%s%s", &p->name,
                   probe ? " (half-open probe)" : "",
                   priv->interrupted ? " (careful attempt)" : "");

    /*
     * A request whose token still works does not wait for the provider:
     * it goes on with that token, and the refresh goes on without it.
     * Not for a forced refresh (the API's, which reports the result) nor
     * the background refresher's (no data: it counts its own refreshes).
     */

    if (usable && !rf->force && rf->handler && rf->data) {
        rf->result = NGX_HTTP_OAUTH_REFRESH_OK;
        rf->handler(rf);
        ngx_http_oauth_refresh_detach(rf);
    }
}


/*
 * The token endpoint request of a refresh: the grant (plain) with the
 * refresh_token grant type, or as the access_token of the provider's own
 * refresh URL, or the client-credentials request that connected; conn's
 * params fill the endpoint's templates.
 */

static ngx_http_oauth_fetch_t *
ngx_http_oauth_refresh_fetch(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_str_t *plain)
{
    ngx_uint_t                  i;
    ngx_oauth_buf_t             body = ngx_oauth_buf_init;
    ngx_oauth_pair_t           *vars;
    ngx_http_oauth_fetch_t     *f;
    ngx_http_oauth_provider_t  *p;

    p = rf->provider;

    vars = ngx_palloc(rf->pool,
                      sizeof(ngx_oauth_pair_t) * (conn->nparams + 1));
    if (vars == NULL) {
        return NULL;
    }

    for (i = 0; i < conn->nparams; i++) {
        vars[i].name = conn->params[i].name;
        vars[i].value = conn->params[i].value;
    }

    /* Wix: no refresh token; the client-credentials request again */

    if (p->client_credentials) {
        return ngx_http_oauth_endpoint_credentials(rf->pool, rf->log, p,
                                                   vars, conn->nparams,
                                                   NGX_HTTP_OAUTH_CALL_REFRESH);
    }

    if (p->refresh_url.len) {
        vars[conn->nparams].name.data = (u_char *) "access_token";
        vars[conn->nparams].name.len = sizeof("access_token") - 1;
        vars[conn->nparams].value.data = plain->data;
        vars[conn->nparams].value.len = plain->len;

        return ngx_http_oauth_endpoint_get_token(rf->pool, rf->log, p,
                                                 &p->refresh_url, vars,
                                                 conn->nparams + 1);
    }

    ngx_oauth_buf_add_form_pair(&body, "grant_type", 10, "refresh_token",
                                13);
    ngx_oauth_buf_add_form_pair(&body, "refresh_token", 13, plain->data,
                                plain->len);

    f = ngx_http_oauth_endpoint_refresh(rf->pool, rf->log, p, vars,
                                        conn->nparams, &body);

    ngx_oauth_buf_free(&body);

    return f;
}


static void
ngx_http_oauth_refresh_done(ngx_http_oauth_fetch_t *f)
{
    int                             rc;
    ngx_str_t                       name;
    ngx_uint_t                      status;
    ngx_array_t                    *types;
    ngx_oauth_str_t                *grant;
    ngx_oauth_conn_t               *conn;
    ngx_oauth_token_t               token;
    ngx_oauth_answer_t              answer;
    ngx_http_oauth_refresh_t       *rf;
    ngx_http_oauth_refresh_priv_t  *priv;

    rf = f->data;
    rf->fetch = NULL;
    rf->fetch_done = 1;
    rf->status = f->status;

    name.len = rf->provider->name.len;
    name.data = rf->provider->name.data;

    /* a transfer that failed is no answer, whatever status came first */

    status = (f->result == NGX_HTTP_OAUTH_FETCH_OK) ? f->status : 0;

    types = rf->provider->token_types;

    (void) ngx_oauth_refresh_classify(status, f->response.data,
                                      f->response.len,
                                      types ? types->elts : NULL,
                                      types ? types->nelts : 0,
                                      &token, &answer);

    /*
     * The provider's health counts whatever became of the connection
     * meanwhile: a half-open probe must always end the half-open state.
     */

    ngx_http_oauth_circuit_record(rf->omcf, &name, !answer.down);

    rc = ngx_http_oauth_conn_get(rf->pool, rf->omcf->store, &rf->owner,
                                 (ngx_oauth_str_t *) &rf->provider->name,
                                 &rf->account, &conn);

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_token_free(&token);
    }

    if (rc == NGX_OAUTH_NOT_FOUND) {

        /* disconnected meanwhile: store nothing, resurrect nothing */

        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_GONE,
                                      "not_connected");
        return;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_CRIT, rf->log, 0,
                      "oauth: provider \"%V\": cannot read the connection "
                      "to store the refresh result: %s", &name,
                      ngx_oauth_strerror(rc));
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_error");
        return;
    }

    /*
     * A newer version is not always a newer grant: an upstream 401 on a
     * request that used the old token marks the record to be refreshed,
     * and dropping this result then would lose the rotated refresh token
     * the provider just issued, the old one being spent.  The result is
     * stale only when the refresh token it replaces is no longer stored
     * (a reconnect, or a refresh by someone else).
     */

    priv = (ngx_http_oauth_refresh_priv_t *) rf;

    grant = rf->provider->refresh_url.len ? &conn->access : &conn->refresh;

    if (conn->version != rf->version
        && (grant->len != priv->spent.len
            || ngx_memcmp(grant->data, priv->spent.data, priv->spent.len)
               != 0))
    {
        ngx_oauth_token_free(&token);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_OK, NULL);
        return;
    }

    rf->version = conn->version;

    ngx_http_oauth_refresh_answer(rf, f, conn, &token, &answer);
}


/*
 * What the provider's answer, as core classified it, does to the record:
 * new tokens; an RFC 6749 section 5.2 refusal; anything else leaves the
 * grant alone and the refresh is tried again later.
 */

static void
ngx_http_oauth_refresh_answer(ngx_http_oauth_refresh_t *rf,
    ngx_http_oauth_fetch_t *f, ngx_oauth_conn_t *conn,
    ngx_oauth_token_t *token, ngx_oauth_answer_t *answer)
{
    ngx_str_t                       name;
    ngx_http_oauth_refresh_priv_t  *priv;

    priv = (ngx_http_oauth_refresh_priv_t *) rf;

    name.len = rf->provider->name.len;
    name.data = rf->provider->name.data;

    switch (answer->verdict) {

    case NGX_OAUTH_ANSWER_OK:
        ngx_http_oauth_refresh_store(rf, conn, token,
                                     NGX_HTTP_OAUTH_REFRESH_OK, NULL);
        ngx_oauth_token_free(token);
        return;

    case NGX_OAUTH_ANSWER_FATAL:
        ngx_log_error(NGX_LOG_WARN, rf->log, 0,
                      "oauth: provider \"%V\" refused the refresh: %s "
                      "(HTTP %ui)%s", &name, answer->error, f->status,
                      priv->interrupted
                      ? "; the refresh token was most likely spent by a "
                        "call whose process exited before storing the "
                        "answer: the user must connect again" : "");

        /*
         * After a takeover the refusal most likely answers the reuse of a
         * token the dead process had spent: the record says so, rather
         * than the provider's bare invalid_grant.
         */

        ngx_http_oauth_refresh_store(rf, conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_REFUSED,
                                     priv->interrupted
                                     ? NGX_HTTP_OAUTH_INTERRUPTED
                                     : answer->error);
        return;

    default:

        /*
         * No answer, the provider says it is down, an error RFC 6749
         * section 5.2 does not define, or not an OAuth answer at all (an
         * HTML page from a firewall, a 404 from a wrong URL): nothing says
         * the grant is gone, so the tokens stay.
         */

        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: provider \"%V\": refresh failed: %s "
                      "(transfer %s, HTTP %ui)%s", &name, answer->error,
                      ngx_http_oauth_fetch_result_name(f->result),
                      f->status,
                      priv->interrupted
                      ? "; the careful attempt after an interrupted "
                        "refresh is tried again later" : "");

        /* after a takeover: the next attempt is careful too (_call()) */

        ngx_http_oauth_refresh_store(rf, conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                     priv->interrupted
                                     ? NGX_HTTP_OAUTH_INTERRUPTED
                                     : answer->error);
        return;
    }
}


/* one write: the new tokens, or the failure, if the record is unchanged */

static void
ngx_http_oauth_refresh_store(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_oauth_token_t *token, ngx_uint_t result,
    const char *error)
{
    int                             rc;
    time_t                          now;
    uint64_t                        expect;
    ngx_uint_t                      tries;
    ngx_http_oauth_refresh_priv_t  *priv;

    priv = (ngx_http_oauth_refresh_priv_t *) rf;
    tries = 0;

again:

    now = ngx_time();
    expect = rf->version;

    if (ngx_http_oauth_refresh_apply(rf, conn, token, result, error, now)
        != NGX_OK)
    {
        goto failed;
    }

    rc = ngx_http_oauth_webhook_conn_put(rf->omcf, rf->log, conn, &expect,
                            result == NGX_HTTP_OAUTH_REFRESH_OK
                            ? NGX_HTTP_OAUTH_EVENT_NONE
                            : result == NGX_HTTP_OAUTH_REFRESH_REFUSED
                            ? NGX_OAUTH_EVENT_REAUTH
                            : NGX_OAUTH_EVENT_REFRESH_FAILED);

    if (rc == NGX_OAUTH_OK) {
        ngx_http_oauth_shared_conn_saved(rf->omcf, conn);
    }

    if (rc == NGX_OAUTH_CONFLICT && tries++ < 3) {

        /*
         * Another process wrote the record since it was read (a 401 flag,
         * say).  If it still holds the refresh token this refresh spent,
         * the result is applied to the new version: dropping it would
         * lose the rotated refresh token for good.
         */

        rc = ngx_http_oauth_conn_get(rf->pool, rf->omcf->store, &rf->owner,
                                     (ngx_oauth_str_t *) &rf->provider->name,
                                     &rf->account, &conn);

        if (rc == NGX_OAUTH_OK
            && conn->refresh.len == priv->spent.len
            && ngx_memcmp(conn->refresh.data, priv->spent.data,
                          priv->spent.len)
               == 0)
        {
            rf->version = conn->version;
            goto again;
        }

        rc = NGX_OAUTH_CONFLICT;
    }

    if (rc == NGX_OAUTH_CONFLICT) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_GONE,
                                      "not_connected");
        return;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_CRIT, rf->log, 0,
                      "oauth: provider \"%V\": cannot store refreshed "
                      "tokens: %s (%s)", &rf->provider->name,
                      ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(rf->omcf->store));
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      rc == NGX_OAUTH_FULL ? "store_full"
                                      : "store_error");
        return;
    }

    if (result == NGX_HTTP_OAUTH_REFRESH_OK) {
        ngx_log_error(NGX_LOG_INFO, rf->log, 0,
                      "oauth: provider \"%V\": token refreshed",
                      &rf->provider->name);
    }

    ngx_http_oauth_refresh_finish(rf, result, error);
    return;

failed:

    ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                  "internal_error");
}


/* the result written into conn: new tokens, a refusal, or a backoff */

static ngx_int_t
ngx_http_oauth_refresh_apply(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_oauth_token_t *token, ngx_uint_t result,
    const char *error, time_t now)
{
    u_char      *sealed;
    time_t       backoff;
    ngx_uint_t   i;

    conn->updated_at = now;

    if (result == NGX_HTTP_OAUTH_REFRESH_OK) {
        /* no refresh token in the answer: the old one stays valid */

        sealed = ngx_pnalloc(rf->pool,
                             ngx_oauth_token_sealed_size(rf->omcf->keyring,
                                                         token));
        if (sealed == NULL
            || ngx_oauth_conn_seal_token(rf->omcf->keyring, conn, token,
                                         sealed)
               != NGX_OAUTH_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, rf->log, 0, "oauth: sealing failed");
            return NGX_ERROR;
        }

        conn->expires_at = token->expires_in >= 0
                           ? now + (time_t) token->expires_in : 0;

        if (token->scope.len) {
            conn->scopes = token->scope;
        }

        if (token->token_type.len) {
            conn->token_type = token->token_type;
        }

        /* a 401 on this fresh token would mean the grant itself is gone */

        conn->status = NGX_OAUTH_STATUS_CONNECTED;
        conn->flags = (conn->flags & NGX_OAUTH_CONN_REFRESH_DUE)
                      ? NGX_OAUTH_CONN_AFTER_401 : 0;
        conn->failures = 0;
        conn->retry_at = 0;
        conn->last_refresh_at = now;
        conn->last_error.len = 0;

    } else if (result == NGX_HTTP_OAUTH_REFRESH_REFUSED) {
        conn->status = NGX_OAUTH_STATUS_ERROR;
        conn->last_error.len = ngx_strlen(error);
        conn->last_error.data = (u_char *) error;

    } else {
        conn->failures++;

        for (backoff = 1, i = 1;
             i < conn->failures && backoff < NGX_HTTP_OAUTH_BACKOFF_MAX;
             i++)
        {
            backoff *= 2;
        }

        conn->retry_at = now + ngx_min(backoff, NGX_HTTP_OAUTH_BACKOFF_MAX);
        conn->last_error.len = ngx_strlen(error);
        conn->last_error.data = (u_char *) error;

        if (conn->expires_at && conn->expires_at <= now) {
            conn->status = NGX_OAUTH_STATUS_EXPIRED;
        }
    }

    return NGX_OK;
}


static void
ngx_http_oauth_refresh_finish(ngx_http_oauth_refresh_t *rf,
    ngx_uint_t result, const char *error)
{
    rf->result = result;
    rf->error = error;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                   "oauth refresh: provider \"%V\": finished: result %ui "
                   "(%s), HTTP %ui", &rf->provider->name, result,
                   error ? error : "ok", rf->status);

    if (rf->leased) {
        (void) ngx_oauth_store_lease_drop(rf->omcf->store, &rf->owner,
                                    (ngx_oauth_str_t *) &rf->provider->name,
                                    &rf->account, rf->holder);
        rf->leased = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                       "oauth refresh: provider \"%V\": lease released",
                       &rf->provider->name);
    }

    ngx_http_oauth_shared_lease_drop(rf);
    ngx_http_oauth_refresh_probe_done(rf);

    if (rf->fetch_done) {
        ngx_http_oauth_metrics_refresh(rf->provider, result);

        ngx_http_oauth_audit(rf->omcf, rf->log,
                             result == NGX_HTTP_OAUTH_REFRESH_OK
                             ? "refreshed" : "refresh_failed",
                             &rf->owner, &rf->provider->name, &rf->account,
                             result == NGX_HTTP_OAUTH_REFRESH_OK
                             ? "ok" : "error", error,
                             rf->remote_addr.len ? &rf->remote_addr : NULL);
    }

    if (rf->handler) {
        rf->handler(rf);
    }

    /* freed from the event loop, after whoever called us has returned */

    if (rf->wait.timer_set) {
        ngx_del_timer(&rf->wait);
    }

    rf->wait.handler = ngx_http_oauth_refresh_destroy;
    ngx_post_event(&rf->wait, &ngx_posted_events);
}


static void
ngx_http_oauth_refresh_destroy(ngx_event_t *ev)
{
    ngx_http_oauth_refresh_t  *rf = ev->data;

    ngx_destroy_pool(rf->pool);
}


static void
ngx_http_oauth_refresh_cleanup(void *data)
{
    ngx_http_oauth_refresh_t  *rf = data;

    if (rf->wait.timer_set) {
        ngx_del_timer(&rf->wait);
    }

    if (rf->wait.posted) {
        ngx_delete_posted_event(&rf->wait);
    }

    if (rf->leased && rf->omcf->store) {
        (void) ngx_oauth_store_lease_drop(rf->omcf->store, &rf->owner,
                                    (ngx_oauth_str_t *) &rf->provider->name,
                                    &rf->account, rf->holder);
        rf->leased = 0;
    }

    ngx_http_oauth_refresh_probe_done(rf);
}


/* the probe's answer is recorded: the next one may go when half-open */

static void
ngx_http_oauth_refresh_probe_done(ngx_http_oauth_refresh_t *rf)
{
    ngx_str_t  name;

    if (!rf->probe) {
        return;
    }

    name.len = rf->provider->name.len;
    name.data = rf->provider->name.data;

    ngx_http_oauth_circuit_probe_done(rf->omcf, &name, rf->holder);

    rf->probe = 0;
}
