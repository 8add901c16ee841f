/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_refresh.h"
#include "ngx_oauth_json.h"


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
#define NGX_HTTP_OAUTH_BG_BATCH       16


typedef struct {
    uint32_t                     failures;
    int64_t                      opened_at;
    int64_t                      unused;     /* keeps the stored size */
} ngx_http_oauth_circuit_t;


/*
 * What only this file sees of a refresh: the public part comes first, so
 * that a pointer to one is a pointer to the other.
 */

typedef struct {
    ngx_http_oauth_refresh_t     rf;

    /* the sealed refresh token the provider was sent */
    ngx_oauth_str_t              spent;
} ngx_http_oauth_refresh_priv_t;


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    time_t                       now;
    ngx_uint_t                   n;
    ngx_oauth_conn_t             due[NGX_HTTP_OAUTH_BG_BATCH];
} ngx_http_oauth_scan_t;


static void ngx_http_oauth_refresh_step(ngx_http_oauth_refresh_t *rf);
static void ngx_http_oauth_refresh_timer(ngx_http_oauth_refresh_t *rf,
    ngx_msec_t ms);
static void ngx_http_oauth_refresh_wait_handler(ngx_event_t *ev);
static void ngx_http_oauth_refresh_done(ngx_http_oauth_fetch_t *f);
static void ngx_http_oauth_refresh_store(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_oauth_token_t *token, ngx_uint_t result,
    const char *error);
static void ngx_http_oauth_refresh_finish(ngx_http_oauth_refresh_t *rf,
    ngx_uint_t result, const char *error);
static void ngx_http_oauth_refresh_destroy(ngx_event_t *ev);
static void ngx_http_oauth_refresh_cleanup(void *data);
static ngx_uint_t ngx_http_oauth_circuit_allow(
    ngx_http_oauth_main_conf_t *omcf, ngx_str_t *provider, uint64_t holder,
    ngx_uint_t *probe);
static void ngx_http_oauth_circuit_probe_done(ngx_http_oauth_refresh_t *rf);
static void ngx_http_oauth_circuit_record(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_uint_t ok);
static ngx_int_t ngx_http_oauth_circuit_get(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_http_oauth_circuit_t *c, char *key);
static void ngx_http_oauth_refresher_handler(ngx_event_t *ev);
static void ngx_http_oauth_store_watch(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log);
static int ngx_http_oauth_refresher_scan(const ngx_oauth_conn_t *conn,
    void *data);
static void ngx_http_oauth_wipe_cleanup(void *data);


/*
 * The half-open probe is a lease too, taken in one write transaction, so
 * that only one worker gets it; its owner has a NUL, which no request's
 * owner has (nginx refuses NUL in headers), so no connection shares it.
 */

static u_char  ngx_http_oauth_probe_owner[] = {
    '\0', 'c', 'i', 'r', 'c', 'u', 'i', 't'
};

static ngx_oauth_str_t  ngx_http_oauth_probe_who = {
    sizeof(ngx_http_oauth_probe_owner), ngx_http_oauth_probe_owner
};

static ngx_oauth_str_t  ngx_http_oauth_probe_what = {
    sizeof("probe") - 1, (u_char *) "probe"
};


static uint64_t     ngx_http_oauth_refresh_seq;
static ngx_event_t  ngx_http_oauth_refresher;
static ngx_uint_t   ngx_http_oauth_refresher_running;


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


static void
ngx_http_oauth_refresh_wait_handler(ngx_event_t *ev)
{
    ngx_http_oauth_refresh_step(ev->data);
}


static void
ngx_http_oauth_refresh_step(ngx_http_oauth_refresh_t *rf)
{
    int                             rc;
    time_t                          now, deadline;
    uint64_t                        version;
    ngx_str_t                       plain, name;
    ngx_uint_t                      i, probe, rereads;
    ngx_oauth_buf_t                 body = ngx_oauth_buf_init;
    ngx_oauth_conn_t                conn;
    ngx_oauth_pair_t               *vars;
    ngx_http_oauth_fetch_t         *f;
    ngx_http_oauth_provider_t      *p;
    ngx_http_oauth_main_conf_t     *omcf;
    ngx_http_oauth_refresh_priv_t  *priv;

    omcf = rf->omcf;
    p = rf->provider;
    now = ngx_time();
    rereads = 0;

again:

    if (omcf->store == NULL) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_unavailable");
        return;
    }

    rc = ngx_oauth_store_conn_get(omcf->store, &rf->owner,
                                  (ngx_oauth_str_t *) &p->name,
                                  &rf->account, &conn);

    if (rc == NGX_OAUTH_NOT_FOUND) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_GONE,
                                      "not_connected");
        return;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: cannot read connection: %s",
                      ngx_oauth_strerror(rc));
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_error");
        return;
    }

    /*
     * The checks below also decide for a refresh that waited on another
     * worker's lease, from what that one stored: fresh tokens make the
     * token not due, a refusal makes the status "error", and a provider
     * failure sets a retry time, which must not be answered with a second
     * call (nor a "reauthorization_required": the grant is fine).
     */

    if (conn.status == NGX_OAUTH_STATUS_ERROR
        || conn.status == NGX_OAUTH_STATUS_REVOKED)
    {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_REFUSED,
                                      "reauthorization_required");
        return;
    }

    if (!rf->force && !ngx_http_oauth_refresh_due(omcf, p, &conn, now)) {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_OK, NULL);
        return;
    }

    if (conn.refresh.len == 0 || !p->refresh
        || conn.kind != NGX_OAUTH_KIND_OAUTH2)
    {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_REFUSED,
                                      "no_refresh_token");
        return;
    }

    if (!rf->force && conn.retry_at > now) {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                      "backoff");
        return;
    }

    deadline = now + (time_t) (omcf->http_timeout / 1000) + 5;

    rc = ngx_oauth_store_lease_take(omcf->store, &rf->owner,
                                    (ngx_oauth_str_t *) &p->name,
                                    &rf->account, rf->holder, now, deadline);

    if (rc == NGX_OAUTH_BUSY) {

        /*
         * Someone else refreshes: poll the record without blocking the
         * worker; a holder that died leaves a lease that expires.
         */

        rf->waits++;

        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_timer(rf, NGX_HTTP_OAUTH_WAIT_MS);
        return;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "store_error");
        return;
    }

    rf->leased = 1;

    /*
     * The record was read before the lease was ours: a refresh in another
     * worker may have stored its result and let the lease go in between,
     * and then the refresh token read above is already spent (a provider
     * that rotates them revokes the whole grant when one comes twice).
     * Under the lease no other refresh can change the record: read it
     * again, and decide again from the fresh one if it changed.
     */

    version = conn.version;
    ngx_oauth_conn_free(&conn);

    rc = ngx_oauth_store_conn_get(omcf->store, &rf->owner,
                                  (ngx_oauth_str_t *) &p->name,
                                  &rf->account, &conn);

    if (rc != NGX_OAUTH_OK || conn.version != version) {
        if (rc == NGX_OAUTH_OK) {
            ngx_oauth_conn_free(&conn);
        }

        if (++rereads > NGX_HTTP_OAUTH_REREADS) {
            ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                          "store_busy");
            return;
        }

        goto again;
    }

    rf->version = conn.version;

    name.len = p->name.len;
    name.data = p->name.data;

    if (!ngx_http_oauth_circuit_allow(omcf, &name, rf->holder, &probe)) {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                      "circuit_open");
        return;
    }

    rf->probe = probe;

    priv = (ngx_http_oauth_refresh_priv_t *) rf;

    priv->spent.len = conn.refresh.len;
    priv->spent.data = ngx_pnalloc(rf->pool, conn.refresh.len);

    if (priv->spent.data == NULL) {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "internal_error");
        return;
    }

    ngx_memcpy(priv->spent.data, conn.refresh.data, conn.refresh.len);

    if (ngx_http_oauth_open_field(rf->pool, rf->log, omcf->keyring, &conn,
                                  "refresh", &conn.refresh, &plain)
        != NGX_OK)
    {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "unsealing_failed");
        return;
    }

    vars = ngx_palloc(rf->pool, sizeof(ngx_oauth_pair_t) * (conn.nparams + 1));
    if (vars == NULL) {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "internal_error");
        return;
    }

    for (i = 0; i < conn.nparams; i++) {
        vars[i].name = conn.params[i].name;
        vars[i].value = conn.params[i].value;
    }

    ngx_oauth_buf_add_form_pair(&body, "grant_type", 10, "refresh_token",
                                13);
    ngx_oauth_buf_add_form_pair(&body, "refresh_token", 13, plain.data,
                                plain.len);

    f = ngx_http_oauth_token_call(rf->pool, rf->log, p, NULL, vars,
                                  conn.nparams, &body);

    ngx_oauth_buf_free(&body);
    ngx_oauth_conn_free(&conn);

    if (f == NULL) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "internal_error");
        return;
    }

    f->handler = ngx_http_oauth_refresh_done;
    f->data = rf;

    if (ngx_http_oauth_fetch_start(f) != NGX_OK) {
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                      "internal_error");
        return;
    }

    rf->fetch = f;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rf->log, 0,
                   "oauth refresh: provider \"%V\" called", &p->name);
}


static ngx_uint_t
ngx_http_oauth_error_code(ngx_oauth_str_t *e)
{
    size_t  i;

    if (e->len == 0 || e->len > 64) {
        return 0;
    }

    for (i = 0; i < e->len; i++) {
        if (!((e->data[i] >= 'a' && e->data[i] <= 'z') || e->data[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The RFC 6749 section 5.2 codes: the provider says this refresh token,
 * or this client, will not do; the user has to connect again.
 */

static ngx_uint_t
ngx_http_oauth_refusal(ngx_oauth_str_t *e)
{
    ngx_uint_t  i;

    static ngx_str_t  codes[] = {
        ngx_string("invalid_grant"),
        ngx_string("invalid_request"),
        ngx_string("invalid_client"),
        ngx_string("unauthorized_client"),
        ngx_string("unsupported_grant_type"),
        ngx_string("invalid_scope")
    };

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (e->len == codes[i].len
            && ngx_memcmp(e->data, codes[i].data, e->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_oauth_refresh_done(ngx_http_oauth_fetch_t *f)
{
    int                             rc;
    u_char                         *code;
    ngx_str_t                       name;
    ngx_uint_t                      down;
    ngx_oauth_conn_t                conn;
    ngx_oauth_token_t               token;
    ngx_http_oauth_refresh_t       *rf;
    ngx_http_oauth_refresh_priv_t  *priv;

    rf = f->data;
    rf->fetch = NULL;
    rf->fetch_done = 1;
    rf->status = f->status;

    name.len = rf->provider->name.len;
    name.data = rf->provider->name.data;

    down = (f->result != NGX_HTTP_OAUTH_FETCH_OK || f->status >= 500
            || f->status == 429);

    /*
     * The provider's health counts whatever became of the connection
     * meanwhile: a half-open probe must always end the half-open state.
     */

    ngx_http_oauth_circuit_record(rf->omcf, &name, !down);

    rc = ngx_oauth_store_conn_get(rf->omcf->store, &rf->owner,
                                  (ngx_oauth_str_t *) &rf->provider->name,
                                  &rf->account, &conn);

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

    if (conn.version != rf->version
        && (conn.refresh.len != priv->spent.len
            || ngx_memcmp(conn.refresh.data, priv->spent.data,
                          priv->spent.len)
               != 0))
    {
        ngx_oauth_conn_free(&conn);
        ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_OK, NULL);
        return;
    }

    rf->version = conn.version;

    if (down) {
        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: provider \"%V\": refresh failed: %s "
                      "(HTTP %ui)", &name,
                      ngx_http_oauth_fetch_result_name(f->result),
                      f->status);
        ngx_http_oauth_refresh_store(rf, &conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                     "provider_unavailable");
        return;
    }

    /* the provider answered (it is up, as recorded): what did it say */

    rc = ngx_oauth_token_parse(f->response.data, f->response.len, &token);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: provider \"%V\": malformed refresh response "
                      "(HTTP %ui)", &name, f->status);

        /*
         * Not an OAuth answer (an HTML page from a firewall, a 404 from a
         * wrong URL): nothing says the grant is gone, so the tokens stay
         * and the refresh is tried again later.
         */

        ngx_http_oauth_refresh_store(rf, &conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                     "invalid_response");
        return;
    }

    if (token.error.len && !ngx_http_oauth_refusal(&token.error)) {

        /* an error RFC 6749 section 5.2 does not define: not a refusal */

        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: provider \"%V\": refresh answered with an "
                      "unknown error (HTTP %ui)", &name, f->status);

        ngx_oauth_token_free(&token);
        ngx_http_oauth_refresh_store(rf, &conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                     "provider_error");
        return;
    }

    if (token.error.len == 0 && (f->status < 200 || f->status >= 300)) {
        ngx_log_error(NGX_LOG_ERR, rf->log, 0,
                      "oauth: provider \"%V\": refresh answered HTTP %ui "
                      "without an OAuth error", &name, f->status);

        ngx_oauth_token_free(&token);
        ngx_http_oauth_refresh_store(rf, &conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE,
                                     "invalid_response");
        return;
    }

    if (token.error.len) {
        code = NULL;

        if (ngx_http_oauth_error_code(&token.error)) {
            code = ngx_pnalloc(rf->pool, token.error.len + 1);
            if (code) {
                ngx_memcpy(code, token.error.data, token.error.len);
                code[token.error.len] = '\0';
            }
        }

        ngx_log_error(NGX_LOG_WARN, rf->log, 0,
                      "oauth: provider \"%V\" refused the refresh: %s "
                      "(HTTP %ui)", &name,
                      code ? (char *) code : "refresh_refused", f->status);

        ngx_oauth_token_free(&token);
        ngx_http_oauth_refresh_store(rf, &conn, NULL,
                                     NGX_HTTP_OAUTH_REFRESH_REFUSED,
                                     code ? (char *) code
                                          : "refresh_refused");
        return;
    }

    ngx_http_oauth_refresh_store(rf, &conn, &token, NGX_HTTP_OAUTH_REFRESH_OK,
                                 NULL);
    ngx_oauth_token_free(&token);
}


/* one write: the new tokens, or the failure, if the record is unchanged */

static void
ngx_http_oauth_refresh_store(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn, ngx_oauth_token_t *token, ngx_uint_t result,
    const char *error)
{
    int                             rc;
    time_t                          now, backoff;
    uint64_t                        expect;
    ngx_uint_t                      i, tries;
    ngx_http_oauth_refresh_priv_t  *priv;

    priv = (ngx_http_oauth_refresh_priv_t *) rf;
    tries = 0;

again:

    now = ngx_time();
    expect = rf->version;

    conn->updated_at = now;

    if (result == NGX_HTTP_OAUTH_REFRESH_OK) {
        if (ngx_http_oauth_seal_field(rf->pool, rf->log, rf->omcf->keyring,
                                      conn, "access", &token->access_token,
                                      &conn->access)
            != NGX_OK)
        {
            goto failed;
        }

        /* no refresh token in the answer: the old one stays valid */

        if (token->refresh_token.len
            && ngx_http_oauth_seal_field(rf->pool, rf->log,
                                         rf->omcf->keyring, conn, "refresh",
                                         &token->refresh_token,
                                         &conn->refresh)
               != NGX_OK)
        {
            goto failed;
        }

        conn->expires_at = token->expires_in >= 0
                           ? now + (time_t) token->expires_in : 0;

        if (token->scope.len) {
            conn->scopes = token->scope;
        }

        if (token->token_type.len) {
            conn->token_type = token->token_type;
        }

        conn->status = NGX_OAUTH_STATUS_CONNECTED;
        conn->flags &= ~NGX_OAUTH_CONN_REFRESH_DUE;
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

    rc = ngx_oauth_store_conn_put(rf->omcf->store, conn, &expect);

    ngx_oauth_conn_free(conn);

    if (rc == NGX_OAUTH_CONFLICT && tries++ < 3) {

        /*
         * Another process wrote the record since it was read (a 401 flag,
         * say).  If it still holds the refresh token this refresh spent,
         * the result is applied to the new version: dropping it would
         * lose the rotated refresh token for good.
         */

        rc = ngx_oauth_store_conn_get(rf->omcf->store, &rf->owner,
                                    (ngx_oauth_str_t *) &rf->provider->name,
                                    &rf->account, conn);

        if (rc == NGX_OAUTH_OK
            && conn->refresh.len == priv->spent.len
            && ngx_memcmp(conn->refresh.data, priv->spent.data,
                          priv->spent.len)
               == 0)
        {
            rf->version = conn->version;
            goto again;
        }

        if (rc == NGX_OAUTH_OK) {
            ngx_oauth_conn_free(conn);
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

    ngx_oauth_conn_free(conn);
    ngx_http_oauth_refresh_finish(rf, NGX_HTTP_OAUTH_REFRESH_ERROR,
                                  "internal_error");
}


static void
ngx_http_oauth_refresh_finish(ngx_http_oauth_refresh_t *rf,
    ngx_uint_t result, const char *error)
{
    rf->result = result;
    rf->error = error;

    if (rf->leased) {
        (void) ngx_oauth_store_lease_drop(rf->omcf->store, &rf->owner,
                                    (ngx_oauth_str_t *) &rf->provider->name,
                                    &rf->account, rf->holder);
        rf->leased = 0;
    }

    ngx_http_oauth_circuit_probe_done(rf);

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

    ngx_http_oauth_circuit_probe_done(rf);
}


ngx_http_oauth_fetch_t *
ngx_http_oauth_token_call(ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_oauth_provider_t *p, ngx_str_t *endpoint,
    const ngx_oauth_pair_t *vars, size_t nvars, ngx_oauth_buf_t *body)
{
    ngx_uint_t               i;
    ngx_oauth_buf_t          url = ngx_oauth_buf_init;
    ngx_oauth_buf_t          user = ngx_oauth_buf_init;
    ngx_oauth_buf_t          pass = ngx_oauth_buf_init;
    ngx_oauth_str_t          missing;
    const char              *why;
    ngx_http_oauth_pair_t   *tp;
    ngx_http_oauth_fetch_t  *f;

    f = NULL;

    if (endpoint == NULL) {
        endpoint = &p->token_url;
    }

    if (ngx_oauth_url_expand(&url, endpoint->data, endpoint->len,
                             vars, nvars, &missing)
        != NGX_OAUTH_OK
        || ngx_oauth_url_check_endpoint(url.data, url.len, 0, &why)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: provider \"%V\": cannot build token_url",
                      &p->name);
        goto done;
    }

    if (p->token_auth == NGX_HTTP_OAUTH_TOKEN_AUTH_POST) {
        ngx_oauth_buf_add_form_pair(body, "client_id", 9, p->client_id.data,
                                    p->client_id.len);

        if (p->client_secret.len) {
            ngx_oauth_buf_add_form_pair(body, "client_secret", 13,
                                        p->client_secret.data,
                                        p->client_secret.len);
        }

    } else {
        /* RFC 6749 section 2.3.1: form-encoded, then Basic */

        ngx_oauth_buf_add_form_escaped(&user, p->client_id.data,
                                       p->client_id.len);
        ngx_oauth_buf_add_form_escaped(&pass, p->client_secret.data,
                                       p->client_secret.len);
    }

    if (p->token_params) {
        tp = p->token_params->elts;

        for (i = 0; i < p->token_params->nelts; i++) {
            ngx_oauth_buf_add_form_pair(body, tp[i].name.data,
                                        tp[i].name.len, tp[i].value.data,
                                        tp[i].value.len);
        }
    }

    if (body->failed || user.failed || pass.failed || url.failed) {
        goto done;
    }

    f = ngx_http_oauth_fetch_create(pool, log);
    if (f == NULL) {
        goto done;
    }

#define ngx_http_oauth_copy(dst, b)                                          \
    (dst)->len = (b)->len;                                                   \
    (dst)->data = ngx_pnalloc(pool, (b)->len + 1);                           \
    if ((dst)->data == NULL) { f = NULL; goto done; }                         \
    ngx_memcpy((dst)->data, (b)->data, (b)->len);                            \
    (dst)->data[(b)->len] = '\0'

    ngx_http_oauth_copy(&f->url, &url);
    ngx_http_oauth_copy(&f->body, body);

    if (p->token_auth == NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC) {
        ngx_http_oauth_copy(&f->user, &user);
        ngx_http_oauth_copy(&f->password, &pass);
    }

#undef ngx_http_oauth_copy

    f->post = 1;

done:

    ngx_oauth_buf_free(&url);
    ngx_oauth_buf_free(&user);
    ngx_oauth_buf_free(&pass);

    return f;
}


ngx_int_t
ngx_http_oauth_seal_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *plain, ngx_oauth_str_t *sealed)
{
    size_t           len;
    u_char          *out;
    ngx_oauth_aad_t  aad;

    aad.owner = conn->owner;
    aad.provider = conn->provider;
    aad.account = conn->account;
    aad.field.len = ngx_strlen(field);
    aad.field.data = (u_char *) field;

    len = ngx_oauth_seal_size(kr->keys[0].kid_len, plain->len);

    out = ngx_pnalloc(pool, len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    if (ngx_oauth_seal(kr, &aad, plain->data, plain->len, out, &len)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "oauth: sealing failed");
        return NGX_ERROR;
    }

    sealed->len = len;
    sealed->data = out;

    return NGX_OK;
}


ngx_int_t
ngx_http_oauth_open_field(ngx_pool_t *pool, ngx_log_t *log,
    ngx_oauth_keyring_t *kr, ngx_oauth_conn_t *conn, const char *field,
    ngx_oauth_str_t *sealed, ngx_str_t *plain)
{
    int                  rc;
    size_t               len;
    ngx_oauth_aad_t      aad;
    ngx_pool_cleanup_t  *cln;

    aad.owner = conn->owner;
    aad.provider = conn->provider;
    aad.account = conn->account;
    aad.field.len = ngx_strlen(field);
    aad.field.data = (u_char *) field;

    cln = ngx_pool_cleanup_add(pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    plain->data = ngx_pnalloc(pool, sealed->len + 1);
    if (plain->data == NULL) {
        return NGX_ERROR;
    }

    plain->len = 0;

    /* the plaintext is wiped when the pool goes */

    ngx_memcpy(cln->data, plain, sizeof(ngx_str_t));
    ((ngx_str_t *) cln->data)->len = sealed->len + 1;
    cln->handler = ngx_http_oauth_wipe_cleanup;

    rc = ngx_oauth_open(kr, &aad, sealed->data, sealed->len, plain->data,
                        &len);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "oauth: cannot open the sealed %s: %s",
                      field, ngx_oauth_strerror(rc));
        return NGX_ERROR;
    }

    plain->len = len;
    plain->data[len] = '\0';

    return NGX_OK;
}


static void
ngx_http_oauth_wipe_cleanup(void *data)
{
    ngx_str_t  *s = data;

    ngx_explicit_memzero(s->data, s->len);
}


/*
 * The circuit lives in the store's meta database so that every worker,
 * and the workers of a new binary, see the same one.
 */

static ngx_int_t
ngx_http_oauth_circuit_get(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_http_oauth_circuit_t *c, char *key)
{
    int     rc;
    size_t  len;

    ngx_sprintf((u_char *) key, "circuit:%V%Z", provider);

    ngx_memzero(c, sizeof(ngx_http_oauth_circuit_t));

    if (omcf->store == NULL) {
        return NGX_ERROR;
    }

    len = sizeof(ngx_http_oauth_circuit_t);

    rc = ngx_oauth_store_meta_get(omcf->store, key, (u_char *) c, &len);

    if (rc == NGX_OAUTH_OK && len == sizeof(ngx_http_oauth_circuit_t)) {
        return NGX_OK;
    }

    ngx_memzero(c, sizeof(ngx_http_oauth_circuit_t));

    return (rc == NGX_OAUTH_NOT_FOUND || rc == NGX_OAUTH_OK)
           ? NGX_OK : NGX_ERROR;
}


ngx_uint_t
ngx_http_oauth_circuit_state(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider)
{
    char                      key[NGX_OAUTH_PROVIDER_MAX + 16];
    ngx_http_oauth_circuit_t  c;

    if (ngx_http_oauth_circuit_get(omcf, provider, &c, key) != NGX_OK
        || c.failures < omcf->circuit_failures)
    {
        return NGX_HTTP_OAUTH_CIRCUIT_CLOSED;
    }

    if (ngx_time() < c.opened_at + omcf->circuit_reset) {
        return NGX_HTTP_OAUTH_CIRCUIT_OPEN;
    }

    return NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN;
}


static ngx_uint_t
ngx_http_oauth_circuit_allow(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, uint64_t holder, ngx_uint_t *probe)
{
    char                      key[NGX_OAUTH_PROVIDER_MAX + 16];
    time_t                    now, deadline;
    ngx_http_oauth_circuit_t  c;

    *probe = 0;

    if (ngx_http_oauth_circuit_get(omcf, provider, &c, key) != NGX_OK
        || c.failures < omcf->circuit_failures)
    {
        return 1;
    }

    now = ngx_time();

    if (now < c.opened_at + omcf->circuit_reset) {
        return 0;
    }

    /*
     * half-open: one probe at a time goes through; a probe whose worker
     * died frees the way when its lease runs out
     */

    deadline = now + (time_t) (omcf->http_timeout / 1000) + 1;

    if (ngx_oauth_store_lease_take(omcf->store, &ngx_http_oauth_probe_who,
                                   (ngx_oauth_str_t *) provider,
                                   &ngx_http_oauth_probe_what, holder, now,
                                   deadline)
        != NGX_OAUTH_OK)
    {
        return 0;
    }

    *probe = 1;

    return 1;
}


/* the probe's answer is recorded: the next one may go when half-open */

static void
ngx_http_oauth_circuit_probe_done(ngx_http_oauth_refresh_t *rf)
{
    if (!rf->probe || rf->omcf->store == NULL) {
        return;
    }

    (void) ngx_oauth_store_lease_drop(rf->omcf->store,
                                      &ngx_http_oauth_probe_who,
                                      (ngx_oauth_str_t *) &rf->provider->name,
                                      &ngx_http_oauth_probe_what, rf->holder);
    rf->probe = 0;
}


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_str_t                   *provider;
    ngx_uint_t                   ok;
} ngx_http_oauth_circuit_ctx_t;


/* runs inside the store's write transaction: no I/O but a log line */

static int
ngx_http_oauth_circuit_update(unsigned char *buf, size_t *len, size_t size,
    void *data)
{
    ngx_http_oauth_circuit_ctx_t *cc = data;

    ngx_http_oauth_circuit_t  c;

    if (*len == sizeof(ngx_http_oauth_circuit_t)) {
        ngx_memcpy(&c, buf, sizeof(c));

    } else {
        ngx_memzero(&c, sizeof(c));
    }

    if (cc->ok) {
        if (c.failures == 0) {
            return 0;           /* no write on the common path */
        }

        ngx_memzero(&c, sizeof(ngx_http_oauth_circuit_t));

    } else {
        c.failures++;

        if (c.failures >= cc->omcf->circuit_failures) {
            if (c.failures == cc->omcf->circuit_failures || c.opened_at == 0
                || ngx_time() >= c.opened_at + cc->omcf->circuit_reset)
            {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "oauth: provider \"%V\": circuit open after "
                              "%uD failures", cc->provider, c.failures);
            }

            c.opened_at = ngx_time();
        }
    }

    ngx_memcpy(buf, &c, sizeof(c));
    *len = sizeof(c);

    return 1;
}


/*
 * Workers failing at the same moment each count: the read, the change
 * and the write are one transaction.
 */

static void
ngx_http_oauth_circuit_record(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_uint_t ok)
{
    char                          key[NGX_OAUTH_PROVIDER_MAX + 16];
    ngx_http_oauth_circuit_t      c;
    ngx_http_oauth_circuit_ctx_t  cc;

    if (ngx_http_oauth_circuit_get(omcf, provider, &c, key) != NGX_OK) {
        return;
    }

    /* the common path: a success with nothing to reset reads only */

    if (ok && c.failures == 0) {
        return;
    }

    cc.omcf = omcf;
    cc.provider = provider;
    cc.ok = ok;

    if (ngx_oauth_store_meta_update(omcf->store, key,
                                    ngx_http_oauth_circuit_update, &cc)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "oauth: provider \"%V\": cannot record the circuit: %s",
                      provider, ngx_oauth_store_error(omcf->store));
    }
}


/*
 * The background refresher: each worker looks at the store now and then
 * and refreshes what is due; the leases make sure only one of them calls
 * the provider for a connection.
 */

ngx_int_t
ngx_http_oauth_refresher_init(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf)
{
    /* the same timer purges flows, so it runs even without refreshing */

    if (omcf->store == NULL) {
        return NGX_OK;
    }

    ngx_http_oauth_refresher.handler = ngx_http_oauth_refresher_handler;
    ngx_http_oauth_refresher.data = omcf;
    ngx_http_oauth_refresher.log = cycle->log;
    ngx_http_oauth_refresher.cancelable = 1;

    /* workers start together: spread their first looks */

    ngx_add_timer(&ngx_http_oauth_refresher,
                  500 + (ngx_random() % 1000));

    return NGX_OK;
}


static void
ngx_http_oauth_refresh_bg_done(ngx_http_oauth_refresh_t *rf)
{
    if (ngx_http_oauth_refresher_running) {
        ngx_http_oauth_refresher_running--;
    }
}


/*
 * A store file deleted or replaced under running workers is not the one
 * they use: they go on with the old, unlinked one until a reload, and
 * what they write is lost with it.  Said once, loudly.
 */

static void
ngx_http_oauth_store_watch(ngx_http_oauth_main_conf_t *omcf, ngx_log_t *log)
{
    ngx_file_info_t  fi;

    if (omcf->store_gone) {
        return;
    }

    if (ngx_file_info(omcf->store_path.data, &fi) == NGX_FILE_ERROR) {
        if (ngx_errno != NGX_ENOENT) {
            return;
        }

    } else if (ngx_file_uniq(&fi) == omcf->store_uniq) {
        return;
    }

    omcf->store_gone = 1;

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "oauth: store \"%V\" was deleted or replaced while in "
                  "use; this worker keeps the old file until a reload",
                  &omcf->store_path);
}


static void
ngx_http_oauth_refresher_handler(ngx_event_t *ev)
{
    time_t                       interval;
    ngx_str_t                    name;
    ngx_uint_t                   i;
    ngx_http_oauth_scan_t       *scan;
    ngx_http_oauth_refresh_t    *rf;
    ngx_http_oauth_provider_t   *p;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_oauth_store_watch(omcf, ev->log);

    /*
     * Flows are purged one oauth_state_ttl after they expire: until then a
     * late callback still finds its flow and is sent back to the app with
     * expired_state rather than a bare invalid_state.
     */

    if (ngx_oauth_store_flow_purge(omcf->store,
                                   ngx_time() - omcf->state_ttl, &i)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "oauth: cannot purge expired flows: %s",
                      ngx_oauth_store_error(omcf->store));
    }

    scan = NULL;

    if (omcf->background_refresh && omcf->providers.nelts) {
        scan = ngx_alloc(sizeof(ngx_http_oauth_scan_t), ev->log);
    }

    if (scan && ngx_http_oauth_refresher_running < NGX_HTTP_OAUTH_BG_BATCH) {
        scan->omcf = omcf;
        scan->now = ngx_time();
        scan->n = 0;

        if (ngx_oauth_store_conn_each(omcf->store, NULL, NULL,
                                      ngx_http_oauth_refresher_scan, scan)
            != NGX_OAUTH_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                          "oauth: background refresher cannot read the "
                          "store");
        }

        for (i = 0; i < scan->n; i++) {
            name.len = scan->due[i].provider.len;
            name.data = scan->due[i].provider.data;

            p = ngx_http_oauth_provider_find(omcf, &name);

            rf = p ? ngx_http_oauth_refresh_create(omcf, p,
                                                   &scan->due[i].owner,
                                                   &scan->due[i].account,
                                                   ev->log, NULL)
                   : NULL;

            free(scan->due[i].owner.data);
            free(scan->due[i].provider.data);
            free(scan->due[i].account.data);

            if (rf == NULL) {
                continue;
            }

            rf->handler = ngx_http_oauth_refresh_bg_done;
            ngx_http_oauth_refresher_running++;

            (void) ngx_http_oauth_refresh_start(rf);
        }
    }

    if (scan) {
        ngx_free(scan);
    }

    /* look again well within the window, but not busily */

    interval = omcf->background_refresh ? omcf->refresh_ahead / 4
                                        : omcf->state_ttl;
    interval = ngx_max(interval, 1);
    interval = ngx_min(interval, 30);

    ngx_add_timer(ev, interval * 1000 + ngx_random() % 500);
}


static int
ngx_http_oauth_refresher_scan(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_http_oauth_scan_t *scan = data;

    ngx_str_t                   name;
    ngx_http_oauth_provider_t  *p;

    /*
     * "expired" is a token that could not be refreshed in time because
     * the provider failed: it is retried here too, after its backoff, or
     * an idle connection would stay expired after the provider is back.
     */

    if (conn->kind != NGX_OAUTH_KIND_OAUTH2
        || (conn->status != NGX_OAUTH_STATUS_CONNECTED
            && conn->status != NGX_OAUTH_STATUS_EXPIRED)
        || conn->refresh.len == 0 || conn->retry_at > scan->now)
    {
        return 0;
    }

    name.len = conn->provider.len;
    name.data = conn->provider.data;

    p = ngx_http_oauth_provider_find(scan->omcf, &name);

    if (p == NULL || !p->refresh
        || !ngx_http_oauth_refresh_due(scan->omcf, p,
                                       (ngx_oauth_conn_t *) conn, scan->now))
    {
        return 0;
    }

    /* keep only the key: the refresh reads the record itself */

    ngx_memzero(&scan->due[scan->n], sizeof(ngx_oauth_conn_t));

    scan->due[scan->n].owner.data = malloc(conn->owner.len);
    scan->due[scan->n].provider.data = malloc(conn->provider.len);
    scan->due[scan->n].account.data = malloc(conn->account.len);

    if (scan->due[scan->n].owner.data == NULL
        || scan->due[scan->n].provider.data == NULL
        || scan->due[scan->n].account.data == NULL)
    {
        free(scan->due[scan->n].owner.data);
        free(scan->due[scan->n].provider.data);
        free(scan->due[scan->n].account.data);
        return 1;
    }

    scan->due[scan->n].owner.len = conn->owner.len;
    scan->due[scan->n].provider.len = conn->provider.len;
    scan->due[scan->n].account.len = conn->account.len;

    ngx_memcpy(scan->due[scan->n].owner.data, conn->owner.data,
               conn->owner.len);
    ngx_memcpy(scan->due[scan->n].provider.data, conn->provider.data,
               conn->provider.len);
    ngx_memcpy(scan->due[scan->n].account.data, conn->account.data,
               conn->account.len);

    scan->n++;

    return scan->n == NGX_HTTP_OAUTH_BG_BATCH;
}
