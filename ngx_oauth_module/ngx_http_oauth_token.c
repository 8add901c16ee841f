/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_token.h"
#include "ngx_http_oauth_conn.h"
#include "ngx_http_oauth_credential.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_refresh.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_sigv4.h"
#include "ngx_http_oauth_util.h"
#include "ngx_oauth_url.h"


/*
 * oauth_token: in the access phase, find the owner's connection, refresh
 * it when due (waiting without blocking the worker), and put its
 * credential into the request that nginx proxies; the client's own
 * credentials and cookies are taken out first.  The credential is taken
 * out again when the request moves to another location (an internal
 * redirect) and before it is logged.
 */


#define NGX_HTTP_OAUTH_TOKEN_NEW       0
#define NGX_HTTP_OAUTH_TOKEN_WAITING   1
#define NGX_HTTP_OAUTH_TOKEN_RESUMED   2
#define NGX_HTTP_OAUTH_TOKEN_DONE      3

/*
 * headers injected beside the credential: AWS's x-amz-* ones, or a
 * provider's api_header lines
 */
#define NGX_HTTP_OAUTH_TOKEN_EXTRA     4

#if (NGX_HTTP_OAUTH_API_HEADERS > NGX_HTTP_OAUTH_TOKEN_EXTRA)
#error "api_header lines must fit oauth_token's extra headers"
#endif


/* why no credential was injected: an index into the table below */
#define NGX_HTTP_OAUTH_TOKEN_E_NO_STORE       0
#define NGX_HTTP_OAUTH_TOKEN_E_NO_OWNER       1
#define NGX_HTTP_OAUTH_TOKEN_E_NO_PROVIDER    2
#define NGX_HTTP_OAUTH_TOKEN_E_STORE          3
#define NGX_HTTP_OAUTH_TOKEN_E_NOT_CONNECTED  4
#define NGX_HTTP_OAUTH_TOKEN_E_ACCOUNT        5
#define NGX_HTTP_OAUTH_TOKEN_E_REAUTH         6
#define NGX_HTTP_OAUTH_TOKEN_E_EXPIRED        7
#define NGX_HTTP_OAUTH_TOKEN_E_PROVIDER_DOWN  8
#define NGX_HTTP_OAUTH_TOKEN_E_CREDENTIAL     9
#define NGX_HTTP_OAUTH_TOKEN_E_UNSEALING      10
#define NGX_HTTP_OAUTH_TOKEN_E_SHARED         11


typedef struct {
    ngx_uint_t                   state;
    ngx_uint_t                   refresh_result;
    ngx_http_request_t          *request;
    ngx_http_oauth_refresh_t    *refresh;
    ngx_http_oauth_provider_t   *provider;
    ngx_str_t                    owner;
    ngx_str_t                    account;
    ngx_str_t                    access_token;
    ngx_str_t                    authorization;
    ngx_str_t                    api_base_url;
    ngx_oauth_pair_t            *params;
    ngx_uint_t                   nparams;
    ngx_uint_t                   kind;
    uint64_t                     version;
    ngx_keyval_t                 extra[NGX_HTTP_OAUTH_TOKEN_EXTRA];
    ngx_uint_t                   nextra;
    ngx_uint_t                   secret_extra;   /* bit i: a secret */
    u_char                       payload_hash[65];   /* aws_sigv4 */
    unsigned                     refreshed:1;
    unsigned                     body_hashed:1;
    unsigned                     logging:1;    /* the log phase began */
} ngx_http_oauth_token_ctx_t;


typedef struct {
    ngx_oauth_str_t             *account;
    ngx_uint_t                   count;
    ngx_pool_t                  *pool;
} ngx_http_oauth_count_t;


typedef struct {
    ngx_uint_t                   status;
    ngx_uint_t                   metric;     /* NGX_HTTP_OAUTH_INJECT_* */
    const char                  *code;
    const char                  *message;
} ngx_http_oauth_token_error_t;


/*
 * The header put into the client's request headers; found again through
 * its pool cleanup, which also survives the module context being cleared
 * by an internal redirect.
 */

typedef struct {
    ngx_table_elt_t             *header;    /* NULL once taken out */
    ngx_str_t                    value;     /* wiped with the pool */
    ngx_table_elt_t             *extra[NGX_HTTP_OAUTH_TOKEN_EXTRA];
    ngx_uint_t                   nextra;
    ngx_uint_t                   secret_extra;   /* these wiped as well */
} ngx_http_oauth_injected_t;


static ngx_int_t ngx_http_oauth_token_use(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_token_refresh(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_token_fail(ngx_http_request_t *r,
    ngx_uint_t err);
static ngx_int_t ngx_http_oauth_token_find(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_conn_t *conn, ngx_uint_t *err);
static ngx_int_t ngx_http_oauth_token_target(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_uint_t *err);
static ngx_int_t ngx_http_oauth_token_only_account(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_uint_t *err);
static ngx_int_t ngx_http_oauth_token_miss(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_str_t *account,
    ngx_uint_t *err);
static int ngx_http_oauth_token_count(const ngx_oauth_conn_t *conn,
    void *data);
static ngx_int_t ngx_http_oauth_token_inject(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_conn_t *conn, ngx_uint_t *err);
static ngx_int_t ngx_http_oauth_token_params(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_conn_t *conn);
static ngx_int_t ngx_http_oauth_token_headers(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_token_push(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *value, ngx_table_elt_t **h);
static ngx_int_t ngx_http_oauth_token_sign(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_uint_t *err);
static ngx_int_t ngx_http_oauth_token_api_headers(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_token_api_value(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_str_t *tpl, ngx_str_t *value);
static ngx_str_t *ngx_http_oauth_token_var(ngx_http_oauth_token_ctx_t *ctx,
    u_char *name, size_t len, ngx_str_t *buf);
static ngx_int_t ngx_http_oauth_token_body(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx);
static void ngx_http_oauth_token_body_read(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_token_rebuild(ngx_http_request_t *r,
    ngx_str_t *drop, ngx_uint_t ndrop, ngx_http_oauth_injected_t *skip);
static ngx_http_oauth_injected_t *ngx_http_oauth_token_injected(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_token_uninject(ngx_http_request_t *r);
static void ngx_http_oauth_injected_cleanup(void *data);
static void ngx_http_oauth_token_refreshed(ngx_http_oauth_refresh_t *rf);
static void ngx_http_oauth_token_cleanup(void *data);
static void ngx_http_oauth_upstream_401(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_oauth_conn_t *conn);
static ngx_int_t ngx_http_oauth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_oauth_param_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


ngx_http_output_header_filter_pt  ngx_http_oauth_token_next_header_filter;


static ngx_http_oauth_token_error_t  ngx_http_oauth_token_errors[] = {

    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_OAUTH_INJECT_UNAVAILABLE,
      "store_unavailable", "the credential store is not available" },

    { NGX_HTTP_UNAUTHORIZED, NGX_HTTP_OAUTH_INJECT_UNAUTH,
      "unauthenticated", "no owner for this request" },

    { NGX_HTTP_NOT_FOUND, NGX_HTTP_OAUTH_INJECT_ERROR,
      "unknown_provider", "no such provider" },

    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_OAUTH_INJECT_UNAVAILABLE,
      "store_error", "the credential store cannot be read" },

    { NGX_HTTP_UNAUTHORIZED, NGX_HTTP_OAUTH_INJECT_NOT_CONNECTED,
      "not_connected", "no connection for this provider" },

    { NGX_HTTP_CONFLICT, NGX_HTTP_OAUTH_INJECT_ACCOUNT,
      "account_required", "several accounts are connected: choose one" },

    { NGX_HTTP_UNAUTHORIZED, NGX_HTTP_OAUTH_INJECT_REAUTH,
      "reauthorization_required",
      "the connection must be authorized again" },

    { NGX_HTTP_UNAUTHORIZED, NGX_HTTP_OAUTH_INJECT_REAUTH,
      "reauthorization_required",
      "the token expired and cannot be refreshed" },

    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_OAUTH_INJECT_UNAVAILABLE,
      "provider_unavailable", "the provider cannot refresh the token now" },

    { NGX_HTTP_BAD_GATEWAY, NGX_HTTP_OAUTH_INJECT_ERROR,
      "invalid_credential", "the stored credential cannot be sent" },

    { NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_OAUTH_INJECT_ERROR,
      "unsealing_failed", "the stored credential cannot be opened" },

    { NGX_HTTP_SERVICE_UNAVAILABLE, NGX_HTTP_OAUTH_INJECT_UNAVAILABLE,
      "shared_store_unavailable",
      "the shared store (PostgreSQL) is not available" }
};


ngx_http_variable_t  ngx_http_oauth_token_vars[] = {

    { ngx_string("oauth_access_token"), NULL, ngx_http_oauth_variable,
      offsetof(ngx_http_oauth_token_ctx_t, access_token),
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_NOHASH, 0 },

    { ngx_string("oauth_authorization"), NULL, ngx_http_oauth_variable,
      offsetof(ngx_http_oauth_token_ctx_t, authorization),
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_NOHASH, 0 },

    { ngx_string("oauth_account"), NULL, ngx_http_oauth_variable,
      offsetof(ngx_http_oauth_token_ctx_t, account),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("oauth_api_base_url"), NULL, ngx_http_oauth_variable,
      offsetof(ngx_http_oauth_token_ctx_t, api_base_url),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("oauth_provider"), NULL, ngx_http_oauth_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("oauth_param_"), NULL, ngx_http_oauth_param_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


/*
 * The precontent handler returns NGX_DECLINED when done, so that
 * try_files and mirror still run.
 */

ngx_int_t
ngx_http_oauth_token_handler(ngx_http_request_t *r)
{
    ngx_http_oauth_loc_conf_t   *olcf;
    ngx_http_oauth_token_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth_module);

    /*
     * An internal redirect (error_page, X-Accel-Redirect, rewrite ... last)
     * keeps the request headers but not the module context: a credential
     * injected for the location the request came from must not go on to
     * another location's upstream.
     */

    if (ctx == NULL && r->internal
        && ngx_http_oauth_token_uninject(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (olcf->token == NULL) {
        return NGX_DECLINED;
    }

    if (ctx) {
        if (ctx->state == NGX_HTTP_OAUTH_TOKEN_WAITING) {
            return NGX_AGAIN;
        }

        if (ctx->state == NGX_HTTP_OAUTH_TOKEN_DONE) {
            return NGX_DECLINED;
        }

    } else {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth_token_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->request = r;

        ngx_http_set_ctx(r, ctx, ngx_http_oauth_module);
    }

    return ngx_http_oauth_token_use(r, ctx);
}


/* find the connection, refresh it if due, inject its credential */

static ngx_int_t
ngx_http_oauth_token_use(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_uint_t                   err;
    ngx_oauth_conn_t             conn;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (ngx_http_oauth_store_ready(r, omcf) != NGX_OK) {
        return ngx_http_oauth_token_fail(r,
                                         NGX_HTTP_OAUTH_TOKEN_E_NO_STORE);
    }

    rc = ngx_http_oauth_token_find(r, ctx, &conn, &err);

    if (rc == NGX_DECLINED) {
        return ngx_http_oauth_token_fail(r, err);
    }

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;       /* the shared store is asked meanwhile */
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The injection path frees the record itself on every exit rather
     * than through ngx_http_oauth_conn_get(): a pool cleanup is one more
     * allocation per proxied request, and the record is done with before
     * the request goes upstream.
     */

    if (conn.status == NGX_OAUTH_STATUS_ERROR
        || conn.status == NGX_OAUTH_STATUS_REVOKED)
    {
        ngx_oauth_conn_free(&conn);
        return ngx_http_oauth_token_fail(r, NGX_HTTP_OAUTH_TOKEN_E_REAUTH);
    }

    if (conn.kind == NGX_OAUTH_KIND_OAUTH2 && !ctx->refreshed
        && ngx_http_oauth_refresh_due(omcf, ctx->provider, &conn,
                                      ngx_time())
        && conn.refresh.len && ctx->provider->refresh)
    {
        ngx_oauth_conn_free(&conn);
        return ngx_http_oauth_token_refresh(r, ctx);
    }

    if (conn.kind == NGX_OAUTH_KIND_OAUTH2 && conn.expires_at
        && conn.expires_at <= ngx_time())
    {
        ngx_oauth_conn_free(&conn);

        if (ctx->refresh_result == NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE
            || ctx->refresh_result == NGX_HTTP_OAUTH_REFRESH_ERROR)
        {
            return ngx_http_oauth_token_fail(r,
                                     NGX_HTTP_OAUTH_TOKEN_E_PROVIDER_DOWN);
        }

        return ngx_http_oauth_token_fail(r, NGX_HTTP_OAUTH_TOKEN_E_EXPIRED);
    }

    /* a body to sign is read first (the request resumes when it is in) */

    if (conn.kind == NGX_OAUTH_KIND_AWS_SIGV4 && !ctx->body_hashed
        && ngx_http_oauth_sigv4_needs_body(r, ctx->provider))
    {
        ngx_oauth_conn_free(&conn);
        return ngx_http_oauth_token_body(r, ctx);
    }

    rc = ngx_http_oauth_token_inject(r, ctx, &conn, &err);

    ngx_oauth_conn_free(&conn);

    if (rc == NGX_DECLINED) {
        return ngx_http_oauth_token_fail(r, err);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = NGX_HTTP_OAUTH_TOKEN_DONE;

    ngx_http_oauth_metrics_inject(ctx->provider, NGX_HTTP_OAUTH_INJECT_OK);

    return NGX_DECLINED;
}


/* the request waits for a refresh; token_refreshed resumes it */

static ngx_int_t
ngx_http_oauth_token_refresh(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_oauth_refresh_t    *rf;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    rf = ngx_http_oauth_refresh_create(omcf, ctx->provider,
                                       (ngx_oauth_str_t *) &ctx->owner,
                                       (ngx_oauth_str_t *) &ctx->account,
                                       r->connection->log,
                                       &r->connection->addr_text);
    if (rf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rf->handler = ngx_http_oauth_token_refreshed;
    rf->data = ctx;

    cln->handler = ngx_http_oauth_token_cleanup;
    cln->data = ctx;

    ctx->refresh = rf;
    ctx->refreshed = 1;
    ctx->state = NGX_HTTP_OAUTH_TOKEN_WAITING;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth token: waiting for a refresh at provider \"%V\"",
                   &ctx->provider->name);

    (void) ngx_http_oauth_refresh_start(rf);

    /* the client may go away meanwhile; the refresh goes on */

    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


/*
 * The body is read without blocking, as the mirror module reads it; when
 * it is in, its hash is kept and the phases run again to sign.
 */

static ngx_int_t
ngx_http_oauth_token_body(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->state = NGX_HTTP_OAUTH_TOKEN_WAITING;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_oauth_token_body_read);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_oauth_token_body_read(ngx_http_request_t *r)
{
    ngx_http_oauth_token_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth_module);

    if (ctx == NULL
        || ngx_http_oauth_sigv4_hash_body(r, ctx->payload_hash) != NGX_OK)
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->body_hashed = 1;
    ctx->state = NGX_HTTP_OAUTH_TOKEN_NEW;

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/* the response is ours: send it and end the phases here */

static ngx_int_t
ngx_http_oauth_token_fail(ngx_http_request_t *r, ngx_uint_t err)
{
    ngx_int_t                     rc;
    ngx_http_oauth_token_ctx_t    *ctx;
    ngx_http_oauth_token_error_t  *e;

    e = &ngx_http_oauth_token_errors[err];
    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth_module);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth: token not injected: %s", e->code);

    ngx_http_oauth_metrics_inject(ctx ? ctx->provider : NULL, e->metric);

    rc = ngx_http_oauth_send_error(r, e->status, e->code, e->message);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/*
 * The owner's connection for this location into conn: NGX_OK; or
 * NGX_DECLINED with *err the refusal; NGX_ERROR.
 */

static ngx_int_t
ngx_http_oauth_token_find(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_conn_t *conn, ngx_uint_t *err)
{
    int                          rc;
    ngx_int_t                    n;
    ngx_oauth_str_t              owner, provider, account;
    ngx_http_oauth_main_conf_t  *omcf;

    if (ctx->provider == NULL) {
        n = ngx_http_oauth_token_target(r, ctx, err);
        if (n != NGX_OK) {
            return n;
        }
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;

    if (ctx->account.len == 0) {

        /*
         * no account chosen: the owner's only connection, read at once;
         * several, or a record that does not decode, are counted by
         * only_account as before
         */

        rc = ngx_oauth_store_conn_only(omcf->store, &owner, &provider, conn);

        if (rc == NGX_OAUTH_OK) {
            ctx->account.len = conn->account.len;
            ctx->account.data = ngx_pnalloc(r->pool, conn->account.len);

            if (ctx->account.data == NULL) {
                ngx_oauth_conn_free(conn);
                return NGX_ERROR;
            }

            ngx_memcpy(ctx->account.data, conn->account.data,
                       conn->account.len);

            return NGX_OK;
        }

        if (rc == NGX_OAUTH_NOT_FOUND) {
            return ngx_http_oauth_token_miss(r, ctx, NULL, err);
        }

        n = ngx_http_oauth_token_only_account(r, ctx, err);

        if (n == NGX_DECLINED && *err == NGX_HTTP_OAUTH_TOKEN_E_NOT_CONNECTED)
        {
            return ngx_http_oauth_token_miss(r, ctx, NULL, err);
        }

        if (n != NGX_OK) {
            return n;
        }
    }

    account.len = ctx->account.len;
    account.data = ctx->account.data;

    if (account.len > NGX_OAUTH_ACCOUNT_MAX) {
        *err = NGX_HTTP_OAUTH_TOKEN_E_NOT_CONNECTED;
        return NGX_DECLINED;
    }

    rc = ngx_oauth_store_conn_get(omcf->store, &owner, &provider, &account,
                                  conn);

    if (rc == NGX_OAUTH_OK) {
        return NGX_OK;
    }

    if (rc == NGX_OAUTH_NOT_FOUND) {
        return ngx_http_oauth_token_miss(r, ctx, &account, err);
    }

    *err = NGX_HTTP_OAUTH_TOKEN_E_STORE;

    return NGX_DECLINED;
}


/*
 * Not in this node's store.  With a shared store that is only a cache:
 * PostgreSQL is asked (NGX_AGAIN, the request resumes later).
 */

static ngx_int_t
ngx_http_oauth_token_miss(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_str_t *account,
    ngx_uint_t *err)
{
    ngx_int_t        rc;
    ngx_oauth_str_t  owner, provider;

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;

    rc = ngx_http_oauth_shared_miss(r, &owner, &provider, account);

    if (rc == NGX_AGAIN || rc == NGX_ERROR) {
        return rc;
    }

    *err = (rc == NGX_BUSY) ? NGX_HTTP_OAUTH_TOKEN_E_SHARED
                            : NGX_HTTP_OAUTH_TOKEN_E_NOT_CONNECTED;

    return NGX_DECLINED;
}


/* the owner, the provider and the account= of this location, once */

static ngx_int_t
ngx_http_oauth_token_target(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_uint_t *err)
{
    u_char                      *dst;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_str_t                    name, *a;
    ngx_http_oauth_loc_conf_t   *olcf;
    ngx_http_oauth_main_conf_t  *omcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);
    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (ngx_http_complex_value(r, olcf->token, &name) != NGX_OK) {
        return NGX_ERROR;
    }

    /* known before the owner: a refusal is counted by provider */

    ctx->provider = ngx_http_oauth_provider_find(omcf, &name);

    rc = ngx_http_oauth_owner(r, olcf, &ctx->owner);

    if (rc == NGX_DECLINED) {
        *err = NGX_HTTP_OAUTH_TOKEN_E_NO_OWNER;
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->provider == NULL) {

        /* a fixed name is checked at "nginx -t"; this is the config's */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: \"oauth_token\" gave the provider name \"%V\", "
                      "which no oauth_provider block has", &name);

        *err = NGX_HTTP_OAUTH_TOKEN_E_NO_PROVIDER;
        return NGX_DECLINED;
    }

    if (olcf->token_account == NULL) {
        return NGX_OK;
    }

    a = &ctx->account;

    if (ngx_http_complex_value(r, olcf->token_account, a) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * account=$arg_account is the usual form: the value is decoded once,
     * as a query argument is, so that "team%2Fone" finds "team/one"; a
     * value that does not decode is used as it is.
     */

    if (ngx_strlchr(a->data, a->data + a->len, '%') == NULL
        && ngx_strlchr(a->data, a->data + a->len, '+') == NULL)
    {
        return NGX_OK;
    }

    dst = ngx_pnalloc(r->pool, a->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    if (ngx_oauth_url_decode(a->data, a->len, NGX_OAUTH_URL_FORM, dst, &len)
        == NGX_OAUTH_OK)
    {
        a->data = dst;
        a->len = len;
    }

    return NGX_OK;
}


/* no account chosen: fine when the owner has exactly one */

static ngx_int_t
ngx_http_oauth_token_only_account(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_uint_t *err)
{
    ngx_oauth_str_t              owner, provider, account;
    ngx_http_oauth_count_t       count;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;

    count.count = 0;
    count.account = &account;
    count.pool = r->pool;

    if (ngx_oauth_store_conn_each(omcf->store, &owner, &provider,
                                  ngx_http_oauth_token_count, &count)
        != NGX_OAUTH_OK)
    {
        *err = NGX_HTTP_OAUTH_TOKEN_E_STORE;
        return NGX_DECLINED;
    }

    if (count.count != 1) {
        *err = count.count ? NGX_HTTP_OAUTH_TOKEN_E_ACCOUNT
                           : NGX_HTTP_OAUTH_TOKEN_E_NOT_CONNECTED;
        return NGX_DECLINED;
    }

    if (account.data == NULL) {
        return NGX_ERROR;
    }

    ctx->account.len = account.len;
    ctx->account.data = account.data;

    return NGX_OK;
}


static int
ngx_http_oauth_token_count(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_http_oauth_count_t *count = data;

    if (count->count++ == 0) {
        count->account->len = conn->account.len;
        count->account->data = ngx_pnalloc(count->pool, conn->account.len);

        if (count->account->data) {
            ngx_memcpy(count->account->data, conn->account.data,
                       conn->account.len);
        }
    }

    return count->count > 1;
}


static ngx_int_t
ngx_http_oauth_token_inject(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_conn_t *conn, ngx_uint_t *err)
{
    ngx_int_t                    rc;
    ngx_http_oauth_provider_t   *pr;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);
    pr = ctx->provider;

    ctx->kind = conn->kind;
    ctx->version = conn->version;

    ctx->nextra = 0;
    ctx->secret_extra = 0;

    rc = ngx_http_oauth_credential_open(r->pool, r->connection->log,
                                        omcf->keyring, conn,
                                        &ctx->access_token);

    if (rc == NGX_OK && conn->kind != NGX_OAUTH_KIND_AWS_SIGV4) {
        rc = ngx_http_oauth_credential_value(r->pool, r->connection->log,
                                             pr, conn->kind,
                                             &ctx->access_token,
                                             &ctx->authorization);
    }

    if (rc != NGX_OK) {
        *err = (rc == NGX_DECLINED) ? NGX_HTTP_OAUTH_TOKEN_E_CREDENTIAL
                                    : NGX_HTTP_OAUTH_TOKEN_E_UNSEALING;
        return NGX_DECLINED;
    }

    if (ngx_http_oauth_token_params(r, ctx, conn) != NGX_OK) {
        return NGX_ERROR;
    }

    if (conn->kind == NGX_OAUTH_KIND_AWS_SIGV4) {
        rc = ngx_http_oauth_token_sign(r, ctx, err);
        if (rc != NGX_OK) {
            return rc;
        }

    } else if (pr->api_headers
               && ngx_http_oauth_token_api_headers(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_token_headers(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth token: credential injected for provider \"%V\"",
                   &pr->name);

    return NGX_OK;
}


/*
 * Kind aws_sigv4: the keys sign the request and go no further ($oauth_
 * access_token stays empty); the signature and its x-amz-* headers are
 * injected.
 */

static ngx_int_t
ngx_http_oauth_token_sign(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_uint_t *err)
{
    ngx_int_t                rc;
    ngx_http_oauth_sigv4_t   aws;

    rc = ngx_http_oauth_sigv4_sign(r, ctx->provider, &ctx->access_token,
                                   &ctx->api_base_url,
                                   ctx->body_hashed ? ctx->payload_hash
                                                    : NULL,
                                   &aws);

    if (rc == NGX_OK && aws.security_token.len) {

        /* a copy: the keys are wiped below */

        ctx->extra[2].value.data = ngx_pnalloc(r->pool,
                                               aws.security_token.len);
        if (ctx->extra[2].value.data == NULL) {
            rc = NGX_ERROR;

        } else {
            ngx_memcpy(ctx->extra[2].value.data, aws.security_token.data,
                       aws.security_token.len);
            ctx->extra[2].value.len = aws.security_token.len;
            ngx_str_set(&ctx->extra[2].key, "X-Amz-Security-Token");
        }
    }

    ngx_explicit_memzero(ctx->access_token.data, ctx->access_token.len);
    ngx_str_null(&ctx->access_token);

    if (rc == NGX_DECLINED) {
        *err = NGX_HTTP_OAUTH_TOKEN_E_CREDENTIAL;
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->authorization = aws.authorization;

    ngx_str_set(&ctx->extra[0].key, "X-Amz-Date");
    ctx->extra[0].value = aws.amz_date;
    ngx_str_set(&ctx->extra[1].key, "X-Amz-Content-Sha256");
    ctx->extra[1].value = aws.content_sha256;

    ctx->nextra = aws.security_token.len ? 3 : 2;
    ctx->secret_extra = 1 << 2;

    return NGX_OK;
}


/*
 * api_header lines: Amazon Ads' client id and profile beside the token.
 * A value without a placeholder is the configuration's own string; one
 * with placeholders is written once into the request's pool.  A line
 * whose param the connection lacks (an optional lookup that found
 * nothing) is left out.
 */

static ngx_int_t
ngx_http_oauth_token_api_headers(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx)
{
    ngx_int_t               rc;
    ngx_uint_t              i;
    ngx_http_oauth_pair_t  *h;

    h = ctx->provider->api_headers->elts;

    for (i = 0; i < ctx->provider->api_headers->nelts; i++) {
        rc = ngx_http_oauth_token_api_value(r, ctx, &h[i].value,
                                            &ctx->extra[ctx->nextra].value);

        if (rc == NGX_DECLINED) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "oauth token: api_header \"%V\" left out: a "
                           "param it names is not kept", &h[i].name);
            continue;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->extra[ctx->nextra].key = h[i].name;
        ctx->nextra++;
    }

    return NGX_OK;
}


/* two passes: the length, then the value in one allocation */

static ngx_int_t
ngx_http_oauth_token_api_value(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_str_t *tpl, ngx_str_t *value)
{
    u_char     *c, *end, *close, *out;
    size_t      len;
    ngx_str_t  *v, buf;
    ngx_uint_t  pass;

    end = tpl->data + tpl->len;

    if (ngx_strlchr(tpl->data, end, '{') == NULL) {
        *value = *tpl;
        return NGX_OK;
    }

    out = NULL;
    len = 0;

    for (pass = 0; pass < 2; pass++) {

        for (c = tpl->data; c < end; /* void */) {
            close = (*c == '{') ? ngx_strlchr(c, end, '}') : NULL;
            v = close ? ngx_http_oauth_token_var(ctx, c + 1, close - c - 1,
                                                 &buf)
                      : NULL;

            if (close && v == NULL) {
                return NGX_DECLINED;
            }

            if (v == NULL) {
                if (pass) {
                    *out++ = *c;
                }

                len++;
                c++;
                continue;
            }

            if (pass) {
                out = ngx_cpymem(out, v->data, v->len);
            }

            len += v->len;
            c = close + 1;
        }

        if (pass == 0) {
            value->data = ngx_pnalloc(r->pool, len);
            if (value->data == NULL) {
                return NGX_ERROR;
            }

            value->len = len;
            out = value->data;
        }
    }

    return NGX_OK;
}


/* a placeholder's value: client_id or a kept param (checked when kept) */

static ngx_str_t *
ngx_http_oauth_token_var(ngx_http_oauth_token_ctx_t *ctx, u_char *name,
    size_t len, ngx_str_t *buf)
{
    ngx_uint_t  i;

    if (len == sizeof("client_id") - 1
        && ngx_strncmp(name, "client_id", len) == 0)
    {
        return &ctx->provider->client_id;
    }

    for (i = 0; i < ctx->nparams; i++) {
        if (ctx->params[i].name.len == len
            && ngx_strncmp(ctx->params[i].name.data, name, len) == 0)
        {
            buf->data = ctx->params[i].value.data;
            buf->len = ctx->params[i].value.len;
            return buf;
        }
    }

    return NULL;
}


/*
 * The params kept with the connection, copied (the record goes away
 * after this) for $oauth_param_NAME, and $oauth_api_base_url with them.
 */

static ngx_int_t
ngx_http_oauth_token_params(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx, ngx_oauth_conn_t *conn)
{
    ngx_uint_t                  i;
    ngx_oauth_buf_t             url = ngx_oauth_buf_init;
    ngx_oauth_str_t             missing;
    ngx_oauth_pair_t           *kp;
    ngx_http_oauth_provider_t  *pr;

    pr = ctx->provider;

    ctx->nparams = conn->nparams;
    ctx->params = ngx_pnalloc(r->pool,
                              sizeof(ngx_oauth_pair_t) * (conn->nparams + 1));

    if (ctx->params == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < conn->nparams; i++) {
        kp = &ctx->params[i];

        kp->name.len = conn->params[i].name.len;
        kp->value.len = conn->params[i].value.len;
        kp->name.data = ngx_pnalloc(r->pool, kp->name.len + 1);
        kp->value.data = ngx_pnalloc(r->pool, kp->value.len + 1);

        if (kp->name.data == NULL || kp->value.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(kp->name.data, conn->params[i].name.data, kp->name.len);
        ngx_memcpy(kp->value.data, conn->params[i].value.data,
                   kp->value.len);
    }

    if (pr->api_base_url.len == 0
        || ngx_oauth_url_expand(&url, pr->api_base_url.data,
                                pr->api_base_url.len, ctx->params,
                                ctx->nparams,
                                &missing)
           != NGX_OAUTH_OK)
    {
        ngx_oauth_buf_free(&url);
        return NGX_OK;
    }

    ctx->api_base_url.len = url.len;
    ctx->api_base_url.data = ngx_pnalloc(r->pool, url.len + 1);

    if (ctx->api_base_url.data == NULL) {
        ngx_oauth_buf_free(&url);
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->api_base_url.data, url.data, url.len);
    ngx_oauth_buf_free(&url);

    return NGX_OK;
}


/* a header name compared the way clients can vary it: case and "_"/"-" */

static ngx_uint_t
ngx_http_oauth_header_is(ngx_str_t *key, ngx_str_t *name)
{
    u_char      a, b;
    ngx_uint_t  i;

    if (key->len != name->len) {
        return 0;
    }

    for (i = 0; i < key->len; i++) {
        a = ngx_tolower(key->data[i]);
        b = ngx_tolower(name->data[i]);

        if (a == '_') {
            a = '-';
        }

        if (b == '_') {
            b = '-';
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}


static ngx_int_t
ngx_http_oauth_token_headers(ngx_http_request_t *r,
    ngx_http_oauth_token_ctx_t *ctx)
{
    ngx_str_t                   drop[4 + NGX_HTTP_OAUTH_TOKEN_EXTRA];
    ngx_uint_t                  i, ndrop;
    ngx_table_elt_t            *nh;
    ngx_pool_cleanup_t         *cln;
    ngx_http_oauth_injected_t  *inj;

    ngx_str_set(&drop[0], "Authorization");
    ngx_str_set(&drop[1], "Proxy-Authorization");
    ngx_str_set(&drop[2], "Cookie");
    drop[3] = ctx->provider->token_header;
    ndrop = 4;

    /* a client's own x-amz-* signing headers would not match ours */

    if (ctx->kind == NGX_OAUTH_KIND_AWS_SIGV4) {
        ngx_str_set(&drop[4], "X-Amz-Date");
        ngx_str_set(&drop[5], "X-Amz-Content-Sha256");
        ngx_str_set(&drop[6], "X-Amz-Security-Token");
        ndrop = 7;
    }

    /* nor would a client's own header of an api_header's name */

    for (i = 0; ctx->kind != NGX_OAUTH_KIND_AWS_SIGV4 && i < ctx->nextra;
         i++)
    {
        drop[ndrop++] = ctx->extra[i].key;
    }

    inj = ngx_http_oauth_token_injected(r);

    if (inj == NULL) {
        cln = ngx_pool_cleanup_add(r->pool,
                                   sizeof(ngx_http_oauth_injected_t));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        inj = cln->data;
        ngx_memzero(inj, sizeof(ngx_http_oauth_injected_t));

        cln->handler = ngx_http_oauth_injected_cleanup;
    }

    /* one injected before, for another location, goes too */

    if (ngx_http_oauth_token_rebuild(r, drop, ndrop, inj) != NGX_OK) {
        return NGX_ERROR;
    }

    /* values injected for another location are not needed any more */

    ngx_http_oauth_injected_cleanup(inj);
    inj->nextra = 0;
    inj->secret_extra = 0;

    if (ngx_http_oauth_token_push(r, &ctx->provider->token_header,
                                  &ctx->authorization, &nh)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    inj->header = nh;
    inj->value = ctx->authorization;

    for (i = 0; i < ctx->nextra; i++) {
        if (ctx->extra[i].key.len == 0) {
            continue;
        }

        if (ngx_http_oauth_token_push(r, &ctx->extra[i].key,
                                      &ctx->extra[i].value,
                                      &inj->extra[inj->nextra])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ctx->secret_extra & (1 << i)) {
            inj->secret_extra |= 1 << inj->nextra;
        }

        inj->nextra++;
    }

    r->headers_in.authorization = ngx_http_oauth_header_is(&nh->key,
                                                           &drop[0])
                                  ? nh : NULL;

#if (nginx_version >= 1023000)
    r->headers_in.cookie = NULL;
#else
    r->headers_in.cookies.nelts = 0;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_token_push(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value, ngx_table_elt_t **h)
{
    ngx_uint_t        j;
    ngx_table_elt_t  *nh;

    nh = ngx_list_push(&r->headers_in.headers);
    if (nh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(nh, sizeof(ngx_table_elt_t));

    nh->key = *key;
    nh->value = *value;
    nh->lowcase_key = ngx_pnalloc(r->pool, nh->key.len);
    if (nh->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    ngx_strlow(nh->lowcase_key, nh->key.data, nh->key.len);

    nh->hash = 0;

    for (j = 0; j < nh->key.len; j++) {
        nh->hash = ngx_hash(nh->hash, nh->lowcase_key[j]);
    }

    *h = nh;

    return NGX_OK;
}


/*
 * The client's request headers again, without those named in drop (as
 * clients vary names) and without skip: headers cannot be taken out of an
 * ngx_list_t in place.
 */

static ngx_int_t
ngx_http_oauth_token_rebuild(ngx_http_request_t *r, ngx_str_t *drop,
    ngx_uint_t ndrop, ngx_http_oauth_injected_t *skip)
{
    ngx_uint_t        i, k, e;
    ngx_list_t        headers;
    ngx_table_elt_t  *h, *nh;
    ngx_list_part_t  *part;

    if (ngx_list_init(&headers, r->pool, 20, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (skip && &h[i] == skip->header) {
            continue;
        }

        for (e = 0; skip && e < skip->nextra; e++) {
            if (&h[i] == skip->extra[e]) {
                break;
            }
        }

        if (skip && e < skip->nextra) {
            continue;
        }

        for (k = 0; k < ndrop; k++) {
            if (ngx_http_oauth_header_is(&h[i].key, &drop[k])) {
                break;
            }
        }

        if (k < ndrop) {
            continue;
        }

        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    r->headers_in.headers = headers;

    /* the copy must not point into this stack frame */

    if (headers.last == &headers.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    if (skip && skip->header
        && r->headers_in.authorization == skip->header)
    {
        r->headers_in.authorization = NULL;
    }

    return NGX_OK;
}


static ngx_http_oauth_injected_t *
ngx_http_oauth_token_injected(ngx_http_request_t *r)
{
    return ngx_http_oauth_cleanup_data(r, ngx_http_oauth_injected_cleanup);
}


/* takes out the credential injected earlier, if there is one */

static ngx_int_t
ngx_http_oauth_token_uninject(ngx_http_request_t *r)
{
    ngx_http_oauth_injected_t  *inj;

    inj = ngx_http_oauth_token_injected(r);

    if (inj == NULL || inj->header == NULL) {
        return NGX_OK;
    }

    if (ngx_http_oauth_token_rebuild(r, NULL, 0, inj) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the upstream has them, or another location gets its own */

    ngx_http_oauth_injected_cleanup(inj);

    inj->header = NULL;
    inj->nextra = 0;
    inj->secret_extra = 0;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth token: injected credential taken out");

    return NGX_OK;
}


static void
ngx_http_oauth_injected_cleanup(void *data)
{
    ngx_http_oauth_injected_t  *inj = data;

    ngx_uint_t  i;

    if (inj->value.len) {
        ngx_explicit_memzero(inj->value.data, inj->value.len);
        inj->value.len = 0;
    }

    /* AWS's session token is a secret too */

    for (i = 0; i < inj->nextra; i++) {
        if (inj->extra[i] && (inj->secret_extra & (1 << i))) {
            ngx_explicit_memzero(inj->extra[i]->value.data,
                                 inj->extra[i]->value.len);
        }
    }
}


/*
 * The upstream request was made long before: from here on the credential
 * is only something a log format such as $http_authorization could show.
 */

ngx_int_t
ngx_http_oauth_token_log_handler(ngx_http_request_t *r)
{
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_http_oauth_token_ctx_t  *ctx;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (omcf->enabled && r == r->main) {
        (void) ngx_http_oauth_token_uninject(r);

        /* nor may $oauth_access_token and $oauth_authorization show it */

        ctx = ngx_http_get_module_ctx(r, ngx_http_oauth_module);
        if (ctx && ctx->request == r) {
            ctx->logging = 1;
        }
    }

    return NGX_OK;
}


static void
ngx_http_oauth_token_refreshed(ngx_http_oauth_refresh_t *rf)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_http_oauth_token_ctx_t  *ctx;

    ctx = rf->data;
    r = ctx->request;
    c = r->connection;

    ctx->refresh = NULL;
    ctx->refresh_result = rf->result;
    ctx->state = NGX_HTTP_OAUTH_TOKEN_RESUMED;

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_oauth_token_cleanup(void *data)
{
    ngx_http_oauth_token_ctx_t  *ctx = data;

    if (ctx->refresh) {
        ngx_http_oauth_refresh_detach(ctx->refresh);
        ctx->refresh = NULL;
    }
}


/*
 * An upstream 401 from the provider's API says the token no longer
 * works: the next use refreshes it first.
 */

ngx_int_t
ngx_http_oauth_token_header_filter(ngx_http_request_t *r)
{
    uint64_t                     expect;
    ngx_oauth_str_t              owner, provider, account;
    ngx_oauth_conn_t            *conn;
    ngx_http_oauth_token_ctx_t  *ctx;
    ngx_http_oauth_main_conf_t  *omcf;

    if (r != r->main || r->upstream == NULL
        || r->headers_out.status != NGX_HTTP_UNAUTHORIZED)
    {
        return ngx_http_oauth_token_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_oauth_module);

    if (ctx == NULL || ctx->state != NGX_HTTP_OAUTH_TOKEN_DONE
        || ctx->kind != NGX_OAUTH_KIND_OAUTH2)
    {
        return ngx_http_oauth_token_next_header_filter(r);
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;
    account.len = ctx->account.len;
    account.data = ctx->account.data;

    if (omcf->store
        && ngx_http_oauth_conn_get(r->pool, omcf->store, &owner, &provider,
                                   &account, &conn)
           == NGX_OAUTH_OK)
    {
        /* a flag already set costs no write (and no fsync) again */

        if (conn->version == ctx->version
            && !(conn->flags & NGX_OAUTH_CONN_REFRESH_DUE)
            && conn->status == NGX_OAUTH_STATUS_CONNECTED)
        {
            ngx_http_oauth_upstream_401(r, ctx->provider, conn);

            expect = conn->version;

            if (ngx_oauth_store_conn_put(omcf->store, conn, &expect)
                == NGX_OAUTH_OK)
            {
                ngx_http_oauth_shared_conn_saved(omcf, conn);
            }
        }
    }

    return ngx_http_oauth_token_next_header_filter(r);
}


/*
 * What an upstream 401 says about the connection.  A token that cannot
 * be refreshed was revoked at the provider; a token refreshed because of
 * the last 401 that is refused again means the grant is gone: the user has
 * to connect again.  Otherwise the next use refreshes first.
 */

static void
ngx_http_oauth_upstream_401(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_oauth_conn_t *conn)
{
    static u_char  revoked[] = "revoked";
    static u_char  reauth[] = "reauthorization_required";

    if (!p->refresh || (conn->refresh.len == 0 && p->refresh_url.len == 0)) {
        conn->status = NGX_OAUTH_STATUS_REVOKED;
        conn->last_error.data = revoked;
        conn->last_error.len = sizeof(revoked) - 1;

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth: provider \"%V\" answered 401 to a token that "
                      "cannot be refreshed: connection revoked", &p->name);
        return;
    }

    if (conn->flags & NGX_OAUTH_CONN_AFTER_401) {
        conn->status = NGX_OAUTH_STATUS_ERROR;
        conn->last_error.data = reauth;
        conn->last_error.len = sizeof(reauth) - 1;

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth: provider \"%V\" answered 401 to a freshly "
                      "refreshed token: reauthorization required",
                      &p->name);
        return;
    }

    conn->flags |= NGX_OAUTH_CONN_REFRESH_DUE;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth: provider \"%V\" answered 401: token will be "
                  "refreshed before its next use", &p->name);
}


static ngx_int_t
ngx_http_oauth_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t                   *s;
    ngx_http_oauth_token_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_oauth_module);

    if (ctx == NULL || ctx->state != NGX_HTTP_OAUTH_TOKEN_DONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ctx->logging
        && (data == offsetof(ngx_http_oauth_token_ctx_t, access_token)
            || data == offsetof(ngx_http_oauth_token_ctx_t, authorization)))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    s = data ? (ngx_str_t *) ((char *) ctx + data) : &ctx->provider->name;

    v->len = s->len;
    v->data = s->data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_param_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                   *name = (ngx_str_t *) data;
    size_t                       len;
    u_char                      *p;
    ngx_uint_t                   i;
    ngx_http_oauth_token_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_oauth_module);

    if (ctx == NULL || ctx->state != NGX_HTTP_OAUTH_TOKEN_DONE) {
        return NGX_OK;
    }

    len = name->len - (sizeof("oauth_param_") - 1);
    p = name->data + sizeof("oauth_param_") - 1;

    for (i = 0; i < ctx->nparams; i++) {
        if (ctx->params[i].name.len == len
            && ngx_strncasecmp(ctx->params[i].name.data, p, len) == 0)
        {
            v->len = ctx->params[i].value.len;
            v->data = ctx->params[i].value.data;
            v->valid = 1;
            v->no_cacheable = 1;
            v->not_found = 0;
            break;
        }
    }

    return NGX_OK;
}
