/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_oauth_api.h"
#include "ngx_http_oauth_audit.h"
#include "ngx_http_oauth_cors.h"
#include "ngx_http_oauth_credential.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_refresh.h"
#include "ngx_http_oauth_circuit.h"
#include "ngx_http_oauth_endpoint.h"
#include "ngx_http_oauth_conn.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_util.h"
#include "ngx_http_oauth_webhook.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_seal.h"


/*
 * oauth_api: the JSON API of an integrations page, scoped to the owner.
 * Another owner's connection does not exist here: 404, never 403.
 */


#define NGX_HTTP_OAUTH_API_BODY_MAX   (64 * 1024)
#define NGX_HTTP_OAUTH_SECRET_MAX     4096
#define NGX_HTTP_OAUTH_SEGMENTS       5

#define NGX_HTTP_OAUTH_ACT_REFRESH    1
#define NGX_HTTP_OAUTH_ACT_TEST       2


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_http_oauth_provider_t   *provider;
    ngx_str_t                    owner;
    ngx_str_t                    account;
    ngx_str_t                    secret;       /* API credentials, wiped */
    ngx_uint_t                   action;
    ngx_http_oauth_refresh_t    *refresh;
    ngx_http_oauth_fetch_t      *fetch;
    json_t                      *body;
    ngx_uint_t                   status;       /* a refused body */
    const char                  *code;
    const char                  *message;
} ngx_http_oauth_api_ctx_t;


/* a revocation at DELETE; it outlives the request if need be */

typedef struct {
    ngx_pool_t                  *pool;
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_http_oauth_provider_t   *provider;
    ngx_oauth_str_t              owner;
    ngx_oauth_str_t              account;
    ngx_str_t                    addr;
    ngx_str_t                    tokens[2];    /* wiped with the pool */
    const char                  *hints[2];     /* their token_type_hint */
    ngx_uint_t                   ntokens;
    ngx_uint_t                   next;
    ngx_uint_t                   revoked;
    ngx_oauth_pair_t            *vars;         /* params, then 3 tokens */
    size_t                       nvars;
    ngx_http_oauth_api_ctx_t    *ctx;          /* NULL: nobody waits */
    ngx_pool_cleanup_t          *cln;          /* in the request's pool */
} ngx_http_oauth_revoke_t;


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    json_t                      *list;
    ngx_uint_t                   count;
    ngx_int_t                    error;
} ngx_http_oauth_list_t;


typedef ngx_int_t (*ngx_http_oauth_api_route_pt)(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);


/*
 * A resource and one of its methods.  A path segment is a literal, or
 * ":provider" (a configured provider) or ":account" (1 to 128 bytes);
 * a path no route matches is a 404, a method no route of a matching path
 * takes is a 405.
 */

typedef struct {
    const char                  *name;         /* for the debug log */
    ngx_uint_t                   nsegs;
    const char                  *segs[NGX_HTTP_OAUTH_SEGMENTS];
    ngx_uint_t                   methods;
    ngx_http_oauth_api_route_pt  handler;
} ngx_http_oauth_api_route_t;


/* a credential field of the non-OAuth kinds at POST connections/P */

typedef struct {
    ngx_uint_t                   kind;
    const char                  *name;
    const char                  *missing;      /* the 400's message */
    ngx_uint_t                   no_colon;     /* basic's user name */
    ngx_uint_t                   optional;
} ngx_http_oauth_api_cred_t;


static void ngx_http_oauth_api_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_api_dispatch(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_api_route(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_str_t *seg, ngx_uint_t n);
static ngx_uint_t ngx_http_oauth_api_match(ngx_http_oauth_api_ctx_t *ctx,
    ngx_http_oauth_api_route_t *rt, ngx_str_t *seg, ngx_uint_t n);
static ngx_http_oauth_api_ctx_t *ngx_http_oauth_api_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_api_not_allowed(ngx_http_request_t *r,
    ngx_uint_t methods);
static ngx_int_t ngx_http_oauth_api_origin(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_api_read_body(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_uint_t ngx_http_oauth_api_is_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_api_split(ngx_http_request_t *r,
    ngx_str_t *seg, ngx_uint_t *n);
static ngx_int_t ngx_http_oauth_api_providers(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_list(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static int ngx_http_oauth_api_list_one(const ngx_oauth_conn_t *conn,
    void *data);
static ngx_int_t ngx_http_oauth_api_conn_get(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_oauth_conn_t **conn, ngx_int_t *rc);
static ngx_int_t ngx_http_oauth_api_get(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_conn_send(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_uint_t status);
static ngx_int_t ngx_http_oauth_api_refresh_now(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_test_now(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_refresh(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_uint_t action);
static void ngx_http_oauth_api_refreshed(ngx_http_oauth_refresh_t *rf);
static ngx_int_t ngx_http_oauth_api_test(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static void ngx_http_oauth_api_tested(ngx_http_oauth_fetch_t *f);
static ngx_int_t ngx_http_oauth_api_delete(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_patch(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_delete_all(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static int ngx_http_oauth_api_collect(const ngx_oauth_conn_t *conn,
    void *data);
static ngx_http_oauth_revoke_t *ngx_http_oauth_api_revoke_create(
    ngx_http_request_t *r, ngx_http_oauth_api_ctx_t *ctx,
    ngx_oauth_conn_t *conn);
static ngx_int_t ngx_http_oauth_api_revoke_start(ngx_http_oauth_revoke_t *rv);
static ngx_int_t ngx_http_oauth_api_copy_param(ngx_pool_t *pool,
    ngx_oauth_pair_t *from, ngx_oauth_pair_t *to);
static ngx_int_t ngx_http_oauth_api_revoke_grant(
    ngx_http_oauth_revoke_t *rv);
static ngx_int_t ngx_http_oauth_api_revoke_next(ngx_http_oauth_revoke_t *rv);
static void ngx_http_oauth_api_revoked(ngx_http_oauth_fetch_t *f);
static void ngx_http_oauth_api_revoke_end(ngx_http_oauth_revoke_t *rv);
static void ngx_http_oauth_api_revoke_detach(void *data);
static ngx_int_t ngx_http_oauth_api_create(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_create_account(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_create_secret(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_api_refuse(ngx_http_oauth_api_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_http_oauth_api_store_secret(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx);
static void ngx_http_oauth_api_verified(ngx_http_oauth_fetch_t *f);
static ngx_int_t ngx_http_oauth_api_userinfo(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_str_t *value,
    ngx_oauth_pair_t *params, ngx_uint_t nparams,
    ngx_http_oauth_fetch_handler_pt handler, const char *what);
static json_t *ngx_http_oauth_api_conn_json(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn);
static json_t *ngx_http_oauth_api_time(time_t t);
static json_t *ngx_http_oauth_api_str(const u_char *data, size_t len);
static ngx_int_t ngx_http_oauth_api_send(ngx_http_request_t *r,
    ngx_uint_t status, json_t *j);
static void ngx_http_oauth_api_done(ngx_http_request_t *r, ngx_int_t rc);
static void ngx_http_oauth_api_cleanup(void *data);


static ngx_http_oauth_api_route_t  ngx_http_oauth_api_routes[] = {

    { "providers", 1, { "providers" },
      NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_http_oauth_api_providers },

    { "list", 1, { "connections" },
      NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_http_oauth_api_list },

    { "delete_all", 1, { "connections" },
      NGX_HTTP_DELETE, ngx_http_oauth_api_delete_all },

    { "create", 2, { "connections", ":provider" },
      NGX_HTTP_POST, ngx_http_oauth_api_create },

    { "get", 3, { "connections", ":provider", ":account" },
      NGX_HTTP_GET|NGX_HTTP_HEAD, ngx_http_oauth_api_get },

    { "patch", 3, { "connections", ":provider", ":account" },
      NGX_HTTP_PATCH, ngx_http_oauth_api_patch },

    { "delete", 3, { "connections", ":provider", ":account" },
      NGX_HTTP_DELETE, ngx_http_oauth_api_delete },

    { "refresh", 4, { "connections", ":provider", ":account", "refresh" },
      NGX_HTTP_POST, ngx_http_oauth_api_refresh_now },

    { "test", 4, { "connections", ":provider", ":account", "test" },
      NGX_HTTP_POST, ngx_http_oauth_api_test_now },

    { NULL, 0, { NULL }, 0, NULL }
};


static ngx_http_oauth_api_cred_t  ngx_http_oauth_api_creds[] = {

    { NGX_OAUTH_KIND_BASIC, "username",
      "credentials.username is required", 1, 0 },

    { NGX_OAUTH_KIND_BASIC, "password",
      "credentials.password is required", 0, 0 },

    { NGX_OAUTH_KIND_API_KEY, "api_key",
      "credentials.api_key is required", 0, 0 },

    { NGX_OAUTH_KIND_HEADER, "value",
      "credentials.value is required", 0, 0 },

    /* stored "id:secret[:session token]"; none of them has a colon */

    { NGX_OAUTH_KIND_AWS_SIGV4, "access_key_id",
      "credentials.access_key_id is required", 1, 0 },

    { NGX_OAUTH_KIND_AWS_SIGV4, "secret_access_key",
      "credentials.secret_access_key is required", 1, 0 },

    { NGX_OAUTH_KIND_AWS_SIGV4, "session_token",
      "credentials.session_token must be a string", 1, 1 },

    { 0, NULL, NULL, 0, 0 }
};


ngx_int_t
ngx_http_oauth_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_pool_cleanup_t          *cln;
    ngx_http_oauth_loc_conf_t   *olcf;
    ngx_http_oauth_api_ctx_t    *ctx;

    /* a front-end on an allowed origin: preflight, then CORS headers */

    rc = ngx_http_oauth_cors_preflight(r, "GET, HEAD, POST, PATCH, DELETE");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_oauth_cors_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * Other methods go through dispatch too, so that their 405 names
     * what the resource allows; they change nothing on the way.
     */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_oauth_api_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    /*
     * The module's ctx slot belongs to oauth_token (its variables and log
     * handler read it); the API finds its own through its pool cleanup.
     */

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);

    rc = ngx_http_oauth_owner(r, olcf, &ctx->owner);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                         "unauthenticated",
                                         "no owner for this request");
    }

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE|NGX_HTTP_PATCH))
        && ngx_http_oauth_api_origin(r) != NGX_OK)
    {
        return ngx_http_oauth_send_error(r, NGX_HTTP_FORBIDDEN,
                                         "forbidden_origin",
                                         "this origin may not change "
                                         "connections");
    }

    if (r->headers_in.content_length_n > NGX_HTTP_OAUTH_API_BODY_MAX) {
        return ngx_http_oauth_send_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "body_too_large",
                                         "the body is over 64 KiB");
    }

    if (ngx_http_oauth_store_ready(r, ctx->omcf) != NGX_OK) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store_unavailable",
                                         "the credential store is not "
                                         "available");
    }

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PATCH))) {

        /* a DELETE changes state too: no body, or a JSON one (ignored) */

        if ((r->method & NGX_HTTP_DELETE)
            && (r->headers_in.content_length_n > 0 || r->headers_in.chunked)
            && !ngx_http_oauth_api_is_json(r))
        {
            return ngx_http_oauth_send_error(r,
                                             NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                             "unsupported_media_type",
                                             "send application/json");
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_oauth_api_dispatch(r);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_oauth_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_oauth_api_body_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_oauth_api_dispatch(r);

    /* NGX_DONE: an outbound call holds its own reference */

    ngx_http_finalize_request(r, rc);
}


/*
 * CSRF: a state-changing call from a browser names its origin; it must
 * be this server's own or one the operator allowed.
 */

static ngx_int_t
ngx_http_oauth_api_origin(ngx_http_request_t *r)
{
    u_char      *p;
    ngx_str_t   *origin, host;
    ngx_uint_t   secure;

    if (ngx_http_oauth_cors_request_origin(r, &origin) != NGX_OK) {
        goto forbidden;     /* two origins: refuse */
    }

    if (origin == NULL) {
        return NGX_OK;
    }

    /* the request's own origin */

    if (r->headers_in.server.len) {
        host = r->headers_in.server;

        if (r->headers_in.host) {
            host = r->headers_in.host->value;
        }

#if (NGX_HTTP_SSL)
        secure = (r->connection->ssl != NULL);
#else
        secure = 0;
#endif

        p = origin->data;

        if (origin->len == (secure ? 8 : 7) + host.len
            && ngx_strncasecmp(p, (u_char *) (secure ? "https://"
                                                     : "http://"),
                               secure ? 8 : 7) == 0
            && ngx_strncasecmp(p + (secure ? 8 : 7), host.data, host.len)
               == 0)
        {
            return NGX_OK;
        }
    }

    if (ngx_http_oauth_cors_allowed(r, origin)) {
        return NGX_OK;
    }

forbidden:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth: api call from a foreign origin refused");

    return NGX_DECLINED;
}


static ngx_http_oauth_api_ctx_t *
ngx_http_oauth_api_ctx(ngx_http_request_t *r)
{
    return ngx_http_oauth_cleanup_data(r, ngx_http_oauth_api_cleanup);
}


static ngx_int_t
ngx_http_oauth_api_dispatch(ngx_http_request_t *r)
{
    ngx_str_t                  seg[NGX_HTTP_OAUTH_SEGMENTS];
    ngx_uint_t                 n;
    ngx_http_oauth_api_ctx_t  *ctx;

    ctx = ngx_http_oauth_api_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* fleet: what PostgreSQL has of the owner, into the cache first */

    switch (ngx_http_oauth_shared_owner(r, &ctx->owner,
                                        r->method & NGX_HTTP_DELETE,
                                        ngx_http_oauth_api_body_handler))
    {
    case NGX_DECLINED:
        break;

    case NGX_AGAIN:
        return NGX_DONE;

    case NGX_BUSY:
        return ngx_http_oauth_shared_unavailable(r);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if ((r->method & (NGX_HTTP_POST|NGX_HTTP_PATCH))
        && ngx_http_oauth_api_read_body(r, ctx) != NGX_OK)
    {
        if (ctx->status == 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_oauth_send_error(r, ctx->status, ctx->code,
                                         ctx->message);
    }

    switch (ngx_http_oauth_api_split(r, seg, &n)) {

    case NGX_OK:
        return ngx_http_oauth_api_route(r, ctx, seg, n);

    case NGX_DECLINED:
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth api: path does not split");
        return ngx_http_oauth_send_error(r, NGX_HTTP_NOT_FOUND,
                                         "not_found", "no such resource");

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/* the route of the path and method, or the 404 or 405 */

static ngx_int_t
ngx_http_oauth_api_route(ngx_http_request_t *r, ngx_http_oauth_api_ctx_t *ctx,
    ngx_str_t *seg, ngx_uint_t n)
{
    ngx_uint_t                   allowed;
    ngx_http_oauth_api_route_t  *rt;

    allowed = 0;

    for (rt = ngx_http_oauth_api_routes; rt->name; rt++) {

        if (!ngx_http_oauth_api_match(ctx, rt, seg, n)) {
            continue;
        }

        if (r->method & rt->methods) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "oauth api: %V: route \"%s\"",
                           &r->method_name, rt->name);

            return rt->handler(r, ctx);
        }

        allowed |= rt->methods;
    }

    if (allowed) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "oauth api: %V: method not allowed", &r->method_name);

        return ngx_http_oauth_api_not_allowed(r, allowed);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth api: %ui segments: no route", n);

    return ngx_http_oauth_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                     "no such resource");
}


/* whether the path is rt's; its provider and account go into ctx */

static ngx_uint_t
ngx_http_oauth_api_match(ngx_http_oauth_api_ctx_t *ctx,
    ngx_http_oauth_api_route_t *rt, ngx_str_t *seg, ngx_uint_t n)
{
    ngx_uint_t   i;
    const char  *p;

    if (rt->nsegs != n) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        p = rt->segs[i];

        if (ngx_strcmp(p, ":provider") == 0) {
            ctx->provider = ngx_http_oauth_provider_find(ctx->omcf, &seg[i]);

            if (ctx->provider == NULL) {
                return 0;
            }

            continue;
        }

        if (ngx_strcmp(p, ":account") == 0) {
            if (seg[i].len == 0 || seg[i].len > NGX_OAUTH_ACCOUNT_MAX) {
                return 0;
            }

            ctx->account = seg[i];
            continue;
        }

        if (seg[i].len != ngx_strlen(p)
            || ngx_strncmp(seg[i].data, p, seg[i].len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/* RFC 9110: a 405 names the methods the resource has, in Allow */

static ngx_int_t
ngx_http_oauth_api_not_allowed(ngx_http_request_t *r, ngx_uint_t methods)
{
    u_char      *p;
    ngx_str_t    allow;
    ngx_uint_t   i;

    static struct {
        ngx_uint_t   method;
        const char  *name;
    }  names[] = {
        { NGX_HTTP_GET, "GET" },
        { NGX_HTTP_HEAD, "HEAD" },
        { NGX_HTTP_POST, "POST" },
        { NGX_HTTP_PATCH, "PATCH" },
        { NGX_HTTP_DELETE, "DELETE" }
    };

    p = ngx_pnalloc(r->pool, sizeof("GET, HEAD, POST, PATCH, DELETE") - 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    allow.data = p;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (methods & names[i].method) {
            if (p != allow.data) {
                *p++ = ',';
                *p++ = ' ';
            }

            p = ngx_cpymem(p, names[i].name, ngx_strlen(names[i].name));
        }
    }

    allow.len = p - allow.data;

    if (ngx_http_oauth_push_header(r, "Allow", &allow) == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_oauth_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                     "method_not_allowed",
                                     "this method does not apply here");
}


/*
 * The path under the location, split at "/" before decoding, so that an
 * account id may hold an encoded "/" (%2F).
 */

static ngx_int_t
ngx_http_oauth_api_split(ngx_http_request_t *r, ngx_str_t *seg,
    ngx_uint_t *n)
{
    u_char                    *p, *last, *start, *q;
    size_t                     len;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->unparsed_uri.data;
    last = p + r->unparsed_uri.len;

    q = ngx_strlchr(p, last, '?');
    if (q) {
        last = q;
    }

    if (clcf->regex || (size_t) (last - p) < clcf->name.len
        || ngx_strncmp(p, clcf->name.data, clcf->name.len) != 0)
    {
        /* an encoded prefix or a regex location: use the decoded uri */
        p = r->uri.data;
        last = p + r->uri.len;

        if (!clcf->regex && r->uri.len >= clcf->name.len) {
            p += clcf->name.len;
        }

    } else {
        p += clcf->name.len;
    }

    *n = 0;

    while (p < last && *p == '/') {
        p++;
    }

    while (p < last) {
        if (*n == NGX_HTTP_OAUTH_SEGMENTS) {
            return NGX_DECLINED;
        }

        start = p;
        q = ngx_strlchr(p, last, '/');
        p = q ? q : last;

        len = p - start;

        seg[*n].data = ngx_pnalloc(r->pool, len + 1);
        if (seg[*n].data == NULL) {
            return NGX_ERROR;
        }

        if (ngx_oauth_url_decode(start, len, 0, seg[*n].data, &len)
            != NGX_OAUTH_OK)
        {
            return NGX_DECLINED;
        }

        seg[*n].len = len;
        seg[*n].data[len] = '\0';
        (*n)++;

        if (p < last) {
            p++;                /* the "/" */

            if (p == last) {
                break;          /* a trailing slash is fine */
            }
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_api_read_body(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    u_char        *data;
    size_t         len;
    ssize_t        n;
    ngx_buf_t     *b;
    ngx_chain_t   *cl;
    json_error_t   err;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len == 0) {
        return NGX_OK;
    }

    if (len > NGX_HTTP_OAUTH_API_BODY_MAX) {
        ctx->status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        ctx->code = "body_too_large";
        ctx->message = "the body is over 64 KiB";
        return NGX_DECLINED;
    }

    if (!ngx_http_oauth_api_is_json(r)) {
        ctx->status = NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
        ctx->code = "unsupported_media_type";
        ctx->message = "send application/json";
        return NGX_DECLINED;
    }

    data = ngx_pnalloc(r->pool, len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, data + len,
                              b->file_last - b->file_pos, b->file_pos);

            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            len += n;

        } else {
            len = ngx_cpymem(data + len, b->pos, b->last - b->pos) - data;

            /*
             * The body may carry credentials (POST connections/P): what
             * nginx read of it, in its own buffer or in the header
             * buffer it came with, is wiped once copied.  A body that
             * nginx wrote to a temporary file is removed with the
             * request.
             */

            ngx_explicit_memzero(b->pos, b->last - b->pos);
        }
    }

    ctx->body = json_loadb((char *) data, len, JSON_REJECT_DUPLICATES, &err);

    ngx_explicit_memzero(data, len);

    if (ctx->body == NULL || !json_is_object(ctx->body)) {
        ctx->status = NGX_HTTP_BAD_REQUEST;
        ctx->code = "invalid_json";
        ctx->message = "the body must be a JSON object";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Content-Type application/json, with or without parameters (RFC 9110:
 * type "/" subtype *( OWS ";" OWS parameter )); what an HTML form cannot
 * send across origins without a preflight.
 */

static ngx_uint_t
ngx_http_oauth_api_is_json(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *v;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    v = &r->headers_in.content_type->value;

    if (v->len < 16
        || ngx_strncasecmp(v->data, (u_char *) "application/json", 16) != 0)
    {
        return 0;
    }

    p = v->data + 16;
    last = v->data + v->len;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return (p == last || *p == ';');
}


static ngx_int_t
ngx_http_oauth_api_providers(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    json_t                       *list, *o, *params, *cp;
    ngx_uint_t                    i, j, circuit;
    ngx_oauth_str_t               owner, name;
    ngx_http_oauth_list_t         count;
    ngx_http_oauth_provider_t    *p;
    ngx_http_oauth_conn_param_t  *cps;

    static const char  *circuits[] = { "closed", "open", "half_open" };

    list = json_array();
    if (list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ctx->omcf->providers.elts;

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;

    for (i = 0; i < ctx->omcf->providers.nelts; i++) {
        name.len = p[i].name.len;
        name.data = p[i].name.data;

        count.omcf = ctx->omcf;
        count.list = NULL;
        count.count = 0;
        count.error = 0;

        if (ngx_oauth_store_conn_each(ctx->omcf->store, &owner, &name,
                                      ngx_http_oauth_api_list_one, &count)
            != NGX_OAUTH_OK)
        {
            json_decref(list);
            return ngx_http_oauth_send_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "store_error",
                                             "the store cannot be read");
        }

        params = json_array();

        if (p[i].connection_params) {
            cps = p[i].connection_params->elts;

            for (j = 0; j < p[i].connection_params->nelts; j++) {
                cp = json_pack("{s:o,s:b}",
                               "name",
                               ngx_http_oauth_api_str(cps[j].name.data,
                                                      cps[j].name.len),
                               "required", (int) cps[j].required);

                if (cp == NULL || json_array_append_new(params, cp) != 0) {
                    json_decref(params);
                    json_decref(list);
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }
            }
        }

        circuit = ngx_http_oauth_circuit_state(ctx->omcf, &p[i].name);

        o = json_pack("{s:o,s:o,s:s,s:o,s:I,s:s}",
                      "name", ngx_http_oauth_api_str(p[i].name.data,
                                                     p[i].name.len),
                      "display_name",
                      ngx_http_oauth_api_str(p[i].display_name.data,
                                             p[i].display_name.len),
                      "kind", ngx_oauth_kind_name(p[i].kind),
                      "connection_params", params,
                      "connected", (json_int_t) count.count,
                      "circuit", circuits[circuit]);

        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_oauth_api_send(r, NGX_HTTP_OK, list);
}


/* GET connections[?provider=P] */

static ngx_int_t
ngx_http_oauth_api_list(ngx_http_request_t *r, ngx_http_oauth_api_ctx_t *ctx)
{
    u_char                 buf[NGX_OAUTH_PROVIDER_MAX + 1];
    size_t                 count;
    ngx_int_t              rc;
    ngx_oauth_str_t        owner, name;
    ngx_http_oauth_list_t  l;

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    name.len = 0;

    if (r->args.len) {
        rc = ngx_oauth_query_get(r->args.data, r->args.len,
                                 (u_char *) "provider", 8, buf, sizeof(buf),
                                 &name, &count);

        if (rc == NGX_OAUTH_NOT_FOUND) {
            name.len = 0;

        } else if (rc != NGX_OAUTH_OK || count != 1) {
            return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                             "invalid_request",
                                             "bad provider parameter");
        }
    }

    l.omcf = ctx->omcf;
    l.count = 0;
    l.error = 0;
    l.list = json_array();

    if (l.list == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_oauth_store_conn_each(ctx->omcf->store, &owner,
                                  name.len ? &name : NULL,
                                  ngx_http_oauth_api_list_one, &l)
        != NGX_OAUTH_OK
        || l.error)
    {
        json_decref(l.list);
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store_error",
                                         "the store cannot be read");
    }

    return ngx_http_oauth_api_send(r, NGX_HTTP_OK, l.list);
}


static int
ngx_http_oauth_api_list_one(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_http_oauth_list_t *l = data;

    json_t  *o;

    l->count++;

    if (l->list == NULL) {
        return 0;
    }

    o = ngx_http_oauth_api_conn_json(l->omcf, conn);

    if (o == NULL || json_array_append_new(l->list, o) != 0) {
        l->error = 1;
        return 1;
    }

    return 0;
}


/*
 * The owner's connection at ctx's provider and account, into *conn, freed
 * with the request's pool: NGX_OK; else NGX_DECLINED and *rc is the answer
 * already sent (404: none; 503: the store cannot be read).
 */

static ngx_int_t
ngx_http_oauth_api_conn_get(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_oauth_conn_t **conn, ngx_int_t *rc)
{
    int              n;
    ngx_oauth_str_t  owner, provider, account;

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;
    account.len = ctx->account.len;
    account.data = ctx->account.data;

    n = ngx_http_oauth_conn_get(r->pool, ctx->omcf->store, &owner, &provider,
                                &account, conn);

    if (n == NGX_OAUTH_OK) {
        return NGX_OK;
    }

    if (n == NGX_OAUTH_NOT_FOUND || n == NGX_OAUTH_INVALID) {
        *rc = ngx_http_oauth_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                        "no such connection");

    } else {
        *rc = ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "store_error",
                                        "the store cannot be read");
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_oauth_api_get(ngx_http_request_t *r, ngx_http_oauth_api_ctx_t *ctx)
{
    return ngx_http_oauth_api_conn_send(r, ctx, NGX_HTTP_OK);
}


/* the connection as JSON, with status */

static ngx_int_t
ngx_http_oauth_api_conn_send(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_uint_t status)
{
    json_t            *o;
    ngx_int_t          rc;
    ngx_oauth_conn_t  *conn;

    if (ngx_http_oauth_api_conn_get(r, ctx, &conn, &rc) != NGX_OK) {
        return rc;
    }

    o = ngx_http_oauth_api_conn_json(ctx->omcf, conn);

    if (o == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_oauth_api_send(r, status, o);
}


static ngx_int_t
ngx_http_oauth_api_refresh_now(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    return ngx_http_oauth_api_refresh(r, ctx, NGX_HTTP_OAUTH_ACT_REFRESH);
}


static ngx_int_t
ngx_http_oauth_api_test_now(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    return ngx_http_oauth_api_refresh(r, ctx, NGX_HTTP_OAUTH_ACT_TEST);
}


/* refresh now, or (for test) refresh when due and then call userinfo */

static ngx_int_t
ngx_http_oauth_api_refresh(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_uint_t action)
{
    ngx_int_t                  rc;
    ngx_uint_t                 refreshable;
    ngx_oauth_str_t            owner, account;
    ngx_oauth_conn_t          *conn;
    ngx_http_oauth_refresh_t  *rf;

    if (ngx_http_oauth_api_conn_get(r, ctx, &conn, &rc) != NGX_OK) {
        return rc;
    }

    ctx->action = action;

    /*
     * Without a refresh token there is nothing to ask the provider for:
     * that is the caller's mistake (400), not the provider's (502).
     */

    refreshable = (conn->kind == NGX_OAUTH_KIND_OAUTH2
                   && (conn->refresh.len || ctx->provider->refresh_url.len)
                   && ctx->provider->refresh);

    if (!refreshable
        || (action == NGX_HTTP_OAUTH_ACT_TEST
            && !ngx_http_oauth_refresh_due(ctx->omcf, ctx->provider, conn,
                                           ngx_time())))
    {
        if (action == NGX_HTTP_OAUTH_ACT_REFRESH) {
            return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                             "not_refreshable",
                                             "this connection has no "
                                             "token to refresh");
        }

        return ngx_http_oauth_api_test(r, ctx);
    }

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    account.len = ctx->account.len;
    account.data = ctx->account.data;

    rf = ngx_http_oauth_refresh_create(ctx->omcf, ctx->provider, &owner,
                                       &account, r->connection->log,
                                       &r->connection->addr_text);
    if (rf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rf->force = (action == NGX_HTTP_OAUTH_ACT_REFRESH);
    rf->handler = ngx_http_oauth_api_refreshed;
    rf->data = ctx;

    ctx->refresh = rf;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth api: %s: refresh started for provider \"%V\"",
                   action == NGX_HTTP_OAUTH_ACT_TEST ? "test" : "refresh",
                   &ctx->provider->name);

    (void) ngx_http_oauth_refresh_start(rf);

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_oauth_api_refreshed(ngx_http_oauth_refresh_t *rf)
{
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_oauth_api_ctx_t  *ctx;

    ctx = rf->data;
    r = ctx->request;

    ctx->refresh = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth api: refresh ended: %ui (%s)", rf->result,
                   rf->error ? rf->error : "-");

    if (ctx->action == NGX_HTTP_OAUTH_ACT_TEST
        && rf->result == NGX_HTTP_OAUTH_REFRESH_OK)
    {
        rc = ngx_http_oauth_api_test(r, ctx);

        if (rc == NGX_DONE) {
            /* the test call took its own reference */
            ngx_http_oauth_api_done(r, NGX_DONE);
            return;
        }

        ngx_http_oauth_api_done(r, rc);
        return;
    }

    switch (rf->result) {

    case NGX_HTTP_OAUTH_REFRESH_OK:
        rc = ngx_http_oauth_api_conn_send(r, ctx, NGX_HTTP_OK);
        break;

    case NGX_HTTP_OAUTH_REFRESH_GONE:
        rc = ngx_http_oauth_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no such connection");
        break;

    case NGX_HTTP_OAUTH_REFRESH_REFUSED:
    case NGX_HTTP_OAUTH_REFRESH_UNAVAILABLE:
        rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                       rf->error ? rf->error
                                                 : "refresh_failed",
                                       "the provider did not refresh the "
                                       "token");
        break;

    default:
        rc = ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       rf->error ? rf->error
                                                 : "internal_error",
                                       "the refresh could not be done");
    }

    ngx_http_oauth_api_done(r, rc);
}


static ngx_int_t
ngx_http_oauth_api_test(ngx_http_request_t *r, ngx_http_oauth_api_ctx_t *ctx)
{
    ngx_int_t          rc;
    ngx_str_t          secret, value;
    ngx_oauth_conn_t  *conn;

    if (ctx->provider->userinfo_url.len == 0) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "no_userinfo_url",
                                         "the provider has no userinfo_url "
                                         "to test with");
    }

    if (ngx_http_oauth_api_conn_get(r, ctx, &conn, &rc) != NGX_OK) {
        return rc;
    }

    rc = ngx_http_oauth_credential_open(r->pool, r->connection->log,
                                        ctx->omcf->keyring, conn, &secret);

    if (rc == NGX_OK) {
        rc = ngx_http_oauth_credential_value(r->pool, r->connection->log,
                                             ctx->provider, conn->kind,
                                             &secret, &value);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_oauth_api_userinfo(r, ctx, &value, conn->params,
                                         conn->nparams,
                                         ngx_http_oauth_api_tested, "test");
    }

    if (rc != NGX_OK) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                         "test_failed",
                                         "the credential could not be "
                                         "tried");
    }

    return NGX_DONE;
}


/*
 * A GET of userinfo_url carrying conn's credential the way APIs get it;
 * on NGX_OK the request waits for the answer (the caller returns
 * NGX_DONE).
 */

static ngx_int_t
ngx_http_oauth_api_userinfo(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_str_t *value,
    ngx_oauth_pair_t *params, ngx_uint_t nparams,
    ngx_http_oauth_fetch_handler_pt handler, const char *what)
{
    ngx_http_oauth_fetch_t  *f;

    f = ngx_http_oauth_endpoint_userinfo(r->pool, r->connection->log,
                                         ctx->provider, params, nparams,
                                         value);
    if (f == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_endpoint_start(f, handler, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->fetch = f;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth api: %s: userinfo call to provider \"%V\"",
                   what, &ctx->provider->name);

    /* the request waits for the answer; handler finalizes it */

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_api_account(ngx_http_oauth_api_ctx_t *ctx,
    ngx_http_oauth_fetch_t *f, json_t **account)
{
    void             *root;
    ngx_oauth_str_t   v;

    *account = json_null();

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK || f->status != 200
        || ctx->provider->account_id.len == 0
        || ngx_oauth_json_parse(f->response.data, f->response.len, &root)
           != NGX_OAUTH_OK)
    {
        return NGX_DECLINED;
    }

    if (ngx_oauth_json_get(root, ctx->provider->account_id.data,
                           ctx->provider->account_id.len, &v)
        == NGX_OAUTH_OK)
    {
        *account = ngx_http_oauth_api_str(v.data, v.len);
        ngx_oauth_json_str_free(&v);
    }

    ngx_oauth_json_free(root);

    return NGX_OK;
}


static void
ngx_http_oauth_api_tested(ngx_http_oauth_fetch_t *f)
{
    json_t                    *o, *account;
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_oauth_api_ctx_t  *ctx;

    ctx = f->data;
    r = ctx->request;
    ctx->fetch = NULL;

    (void) ngx_http_oauth_api_account(ctx, f, &account);

    o = json_pack("{s:b,s:o,s:I}",
                  "ok", (int) (f->result == NGX_HTTP_OAUTH_FETCH_OK
                               && f->status >= 200 && f->status < 300),
                  "account", account,
                  "status", (json_int_t) f->status);

    rc = o ? ngx_http_oauth_api_send(r, NGX_HTTP_OK, o)
           : NGX_HTTP_INTERNAL_SERVER_ERROR;

    ngx_http_oauth_api_done(r, rc);
}


/*
 * DELETE: the record goes first, so that no refresh can store into it;
 * then the tokens are revoked at the provider, refresh token first
 * (RFC 7009), best effort.
 *
 * The revocation runs in a pool of its own: a client that goes away
 * after its DELETE (a closed tab, a proxy's timeout) must not leave
 * tokens alive at the provider for a connection that no longer exists
 * here.  The request, while it waits, only reads the result.
 */

static ngx_int_t
ngx_http_oauth_api_delete(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    json_t                   *o;
    ngx_int_t                 rc;
    ngx_oauth_str_t           owner, provider, account;
    ngx_oauth_conn_t         *conn;
    ngx_pool_cleanup_t       *cln;
    ngx_http_oauth_revoke_t  *rv;

    if (ngx_http_oauth_api_conn_get(r, ctx, &conn, &rc) != NGX_OK) {
        return rc;
    }

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;
    account.len = ctx->account.len;
    account.data = ctx->account.data;

    rv = NULL;

    if (conn->kind == NGX_OAUTH_KIND_OAUTH2
        && ctx->provider->revocation_url.len)
    {
        rv = ngx_http_oauth_api_revoke_create(r, ctx, conn);

        if (rv == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_oauth_webhook_conn_delete(ctx->omcf, r->connection->log,
                                            &owner, &provider, &account);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth api: delete: %s, %s",
                   ngx_oauth_strerror((int) rc),
                   rv ? "revoking" : "nothing to revoke");

    if (rc != NGX_OAUTH_OK && rc != NGX_OAUTH_NOT_FOUND) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: cannot delete connection: %s (%s)",
                      ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(ctx->omcf->store));

        if (rv) {
            ngx_destroy_pool(rv->pool);
        }

        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store_error",
                                         "the connection could not be "
                                         "deleted");
    }

    ngx_http_oauth_shared_conn_deleted(ctx->omcf, &owner, &provider,
                                       &account);

    ngx_http_oauth_audit(ctx->omcf, r->connection->log, "disconnected",
                         &owner, &ctx->provider->name, &account, "ok", NULL,
                         &r->connection->addr_text);

    if (rv == NULL) {
        o = json_pack("{s:b}", "revoked", 0);
        return o ? ngx_http_oauth_api_send(r, NGX_HTTP_OK, o)
                 : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth_api_revoke_start(rv) != NGX_OK) {
        ngx_http_oauth_api_revoke_end(rv);

        o = json_pack("{s:b}", "revoked", 0);
        return o ? ngx_http_oauth_api_send(r, NGX_HTTP_OK, o)
                 : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the request waits for the result; if it goes first, rv goes on */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        /* rv->ctx stays NULL: it finishes on its own */
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_oauth_api_revoke_detach;
    cln->data = rv;

    rv->ctx = ctx;
    rv->cln = cln;

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_DONE;
}


/* the tokens to revoke, opened into the revocation's own pool */

/*
 * PATCH connections/P/ACCOUNT {"label":..,"metadata":{..}}: what the
 * product keeps about a connection (a name the user chose, a project id,
 * a region).  Plaintext, so never a secret; each key given replaces its
 * value, null clears it.
 */

static ngx_int_t
ngx_http_oauth_api_patch(ngx_http_request_t *r, ngx_http_oauth_api_ctx_t *ctx)
{
    int                rc;
    char              *text;
    json_t            *label, *meta;
    uint64_t           expect;
    ngx_uint_t         tries;
    const char        *l;
    ngx_oauth_str_t    owner, provider, account;
    ngx_oauth_conn_t  *conn;

    if (ctx->body == NULL) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "a JSON body is required");
    }

    label = json_object_get(ctx->body, "label");
    meta = json_object_get(ctx->body, "metadata");

    if ((label && !json_is_null(label)
         && (!json_is_string(label)
             || json_string_length(label) > NGX_OAUTH_LABEL_MAX))
        || (meta && !json_is_null(meta) && !json_is_object(meta))
        || (label == NULL && meta == NULL)
        || json_object_size(ctx->body)
           != (size_t) ((label != NULL) + (meta != NULL)))
    {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "give \"label\" (a string of up to "
                                         "256 bytes) and/or \"metadata\" (an "
                                         "object)");
    }

    text = NULL;

    if (meta && json_is_object(meta) && json_object_size(meta)) {
        text = json_dumps(meta, JSON_COMPACT|JSON_SORT_KEYS);

        if (text == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_strlen(text) > NGX_OAUTH_METADATA_MAX) {
            free(text);
            return ngx_http_oauth_send_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         "metadata_too_large",
                                         "metadata is over 4 KiB as JSON");
        }
    }

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;
    provider.len = ctx->provider->name.len;
    provider.data = ctx->provider->name.data;
    account.len = ctx->account.len;
    account.data = ctx->account.data;

    /* a refresh may write the record meanwhile: read, change, retry */

    for (tries = 0; tries < 5; tries++) {
        rc = ngx_http_oauth_conn_get(r->pool, ctx->omcf->store, &owner,
                                     &provider, &account, &conn);

        if (rc != NGX_OAUTH_OK) {
            break;
        }

        if (label) {
            l = json_string_value(label);
            conn->label.data = (u_char *) l;
            conn->label.len = l ? ngx_strlen(l) : 0;
        }

        if (meta) {
            conn->metadata.data = (u_char *) text;
            conn->metadata.len = text ? ngx_strlen(text) : 0;
        }

        expect = conn->version;
        rc = ngx_http_oauth_webhook_conn_put(ctx->omcf, r->connection->log,
                                             conn, &expect,
                                             NGX_OAUTH_EVENT_UPDATED);

        if (rc == NGX_OAUTH_OK) {
            ngx_http_oauth_shared_conn_saved(ctx->omcf, conn);
        }

        if (rc != NGX_OAUTH_CONFLICT) {
            break;
        }
    }

    free(text);

    if (rc == NGX_OAUTH_NOT_FOUND || rc == NGX_OAUTH_INVALID) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such connection");
    }

    if (rc != NGX_OAUTH_OK) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         rc == NGX_OAUTH_FULL ? "store_full"
                                         : "store_error",
                                         "the connection could not be "
                                         "written");
    }

    return ngx_http_oauth_api_conn_send(r, ctx, NGX_HTTP_OK);
}


typedef struct {
    ngx_pool_t                  *pool;
    ngx_array_t                 *keys;       /* ngx_str_t: provider, account */
    ngx_uint_t                   error;
} ngx_http_oauth_collect_t;


static int
ngx_http_oauth_api_collect(const ngx_oauth_conn_t *conn, void *data)
{
    ngx_http_oauth_collect_t *c = data;

    ngx_str_t  *k;

    k = ngx_array_push_n(c->keys, 2);
    if (k == NULL) {
        c->error = 1;
        return 0;
    }

    k[0].len = conn->provider.len;
    k[0].data = ngx_pstrdup(c->pool, (ngx_str_t *) &conn->provider);
    k[1].len = conn->account.len;
    k[1].data = ngx_pstrdup(c->pool, (ngx_str_t *) &conn->account);

    if (k[0].data == NULL || k[1].data == NULL) {
        c->error = 1;
    }

    return 0;
}


/*
 * DELETE connections: every connection of the owner (a user deleted from
 * the product) goes, each revoked at its provider the way a single
 * DELETE does; the revocations finish after the answer.
 */

static ngx_int_t
ngx_http_oauth_api_delete_all(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    int                        rc;
    json_t                    *o;
    ngx_str_t                 *k;
    ngx_uint_t                 i, deleted, revoking;
    ngx_oauth_str_t            owner, provider, account;
    ngx_oauth_conn_t          *conn;
    ngx_http_oauth_revoke_t   *rv;
    ngx_http_oauth_collect_t   c;

    owner.len = ctx->owner.len;
    owner.data = ctx->owner.data;

    c.pool = r->pool;
    c.error = 0;
    c.keys = ngx_array_create(r->pool, 8, sizeof(ngx_str_t));
    if (c.keys == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_oauth_store_conn_each(ctx->omcf->store, &owner, NULL,
                                   ngx_http_oauth_api_collect, &c);

    if ((rc != NGX_OAUTH_OK && rc != NGX_OAUTH_INVALID) || c.error) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store_error",
                                         "the store cannot be read");
    }

    k = c.keys->elts;
    deleted = 0;
    revoking = 0;

    for (i = 0; i < c.keys->nelts; i += 2) {
        provider.len = k[i].len;
        provider.data = k[i].data;
        account.len = k[i + 1].len;
        account.data = k[i + 1].data;

        rv = NULL;
        ctx->provider = ngx_http_oauth_provider_find(ctx->omcf, &k[i]);
        ctx->account = k[i + 1];

        if (ctx->provider
            && ngx_http_oauth_conn_get(r->pool, ctx->omcf->store, &owner,
                                       &provider, &account, &conn)
               == NGX_OAUTH_OK)
        {
            if (conn->kind == NGX_OAUTH_KIND_OAUTH2
                && ctx->provider->revocation_url.len)
            {
                rv = ngx_http_oauth_api_revoke_create(r, ctx, conn);
            }
        }

        rc = ngx_http_oauth_webhook_conn_delete(ctx->omcf,
                                                r->connection->log, &owner,
                                                &provider, &account);

        if (rc == NGX_OAUTH_OK) {
            ngx_http_oauth_shared_conn_deleted(ctx->omcf, &owner, &provider,
                                               &account);
        }

        if (rc != NGX_OAUTH_OK && rc != NGX_OAUTH_NOT_FOUND) {
            if (rv) {
                ngx_destroy_pool(rv->pool);
            }

            return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                             "store_error",
                                             "a connection could not be "
                                             "deleted");
        }

        deleted++;

        ngx_http_oauth_audit(ctx->omcf, r->connection->log, "disconnected",
                             &owner, &k[i], &account, "ok", NULL,
                             &r->connection->addr_text);

        /* nobody waits for these (rv->ctx NULL): each ends on its own */

        if (rv) {
            if (ngx_http_oauth_api_revoke_start(rv) == NGX_OK) {
                revoking++;

            } else {
                ngx_http_oauth_api_revoke_end(rv);
            }
        }
    }

    o = json_pack("{s:i,s:i}", "deleted", (json_int_t) deleted,
                  "revoking", (json_int_t) revoking);

    return o ? ngx_http_oauth_api_send(r, NGX_HTTP_OK, o)
             : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static ngx_http_oauth_revoke_t *
ngx_http_oauth_api_revoke_create(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx, ngx_oauth_conn_t *conn)
{
    size_t                    len;
    ngx_str_t                *token;
    ngx_uint_t                i;
    ngx_pool_t               *pool;
    ngx_oauth_sealed_e        field;
    ngx_http_oauth_revoke_t  *rv;

    /* the tokens revoked, in this order, with their token_type_hint */

    static ngx_oauth_sealed_e  fields[] = {
        NGX_OAUTH_SEALED_REFRESH, NGX_OAUTH_SEALED_ACCESS
    };
    static const char         *hints[] = { "refresh_token", "access_token" };

    pool = ngx_create_pool(1024, ngx_cycle->log);
    if (pool == NULL) {
        return NULL;
    }

    rv = ngx_pcalloc(pool, sizeof(ngx_http_oauth_revoke_t));
    if (rv == NULL) {
        goto failed;
    }

    rv->pool = pool;
    rv->omcf = ctx->omcf;
    rv->provider = ctx->provider;
    rv->revoked = 1;

    rv->owner.len = ctx->owner.len;
    rv->owner.data = ngx_pnalloc(pool, ctx->owner.len);
    rv->account.len = ctx->account.len;
    rv->account.data = ngx_pnalloc(pool, ctx->account.len);
    rv->addr.len = r->connection->addr_text.len;
    rv->addr.data = ngx_pnalloc(pool, rv->addr.len);

    if (rv->owner.data == NULL || rv->account.data == NULL
        || rv->addr.data == NULL)
    {
        goto failed;
    }

    ngx_memcpy(rv->owner.data, ctx->owner.data, ctx->owner.len);
    ngx_memcpy(rv->account.data, ctx->account.data, ctx->account.len);
    ngx_memcpy(rv->addr.data, r->connection->addr_text.data, rv->addr.len);

    /* the connection's params fill a revocation template (Stripe's id) */

    rv->vars = ngx_palloc(pool, sizeof(ngx_oauth_pair_t)
                                * (conn->nparams + 3));
    if (rv->vars == NULL) {
        goto failed;
    }

    for (rv->nvars = 0; rv->nvars < conn->nparams; rv->nvars++) {
        if (ngx_http_oauth_api_copy_param(pool, &conn->params[rv->nvars],
                                          &rv->vars[rv->nvars])
            != NGX_OK)
        {
            goto failed;
        }
    }

    /* a token that does not open is not revoked: that is a failure */

    for (i = 0; i < 2; i++) {
        field = fields[i];
        len = ngx_oauth_conn_sealed(conn, field)->len;

        if (len == 0) {
            continue;
        }

        token = &rv->tokens[rv->ntokens];

        token->data = ngx_http_oauth_conn_secret_alloc(pool, len);
        if (token->data == NULL) {
            goto failed;
        }

        if (ngx_oauth_conn_open(ctx->omcf->keyring, conn, field, token->data,
                                &len)
            != NGX_OAUTH_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "oauth: cannot open the sealed %s",
                          ngx_oauth_sealed_name(field));
            rv->revoked = 0;
            continue;
        }

        token->len = len;
        rv->hints[rv->ntokens++] = hints[i];
    }

    return rv;

failed:

    ngx_destroy_pool(pool);

    return NULL;
}


static ngx_int_t
ngx_http_oauth_api_copy_param(ngx_pool_t *pool, ngx_oauth_pair_t *from,
    ngx_oauth_pair_t *to)
{
    to->name.len = from->name.len;
    to->name.data = ngx_pnalloc(pool, from->name.len + 1);
    to->value.len = from->value.len;
    to->value.data = ngx_pnalloc(pool, from->value.len + 1);

    if (to->name.data == NULL || to->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(to->name.data, from->name.data, from->name.len);
    ngx_memcpy(to->value.data, from->value.data, from->value.len);

    return NGX_OK;
}


/*
 * A provider that revokes its own way gets one call for the grant, with
 * the access token (else the refresh token) as {token}.
 */

static ngx_int_t
ngx_http_oauth_api_revoke_grant(ngx_http_oauth_revoke_t *rv)
{
    size_t                   n;
    ngx_uint_t               i;
    ngx_oauth_pair_t        *v;
    ngx_http_oauth_fetch_t  *f;

    n = rv->nvars;
    v = rv->vars;

    for (i = 0; i < rv->ntokens; i++) {
        v[n].name.data = (u_char *) rv->hints[i];
        v[n].name.len = ngx_strlen(rv->hints[i]);
        v[n].value.data = rv->tokens[i].data;
        v[n].value.len = rv->tokens[i].len;
        n++;
    }

    i = rv->ntokens - 1;

    v[n].name.data = (u_char *) "token";
    v[n].name.len = sizeof("token") - 1;
    v[n].value.data = rv->tokens[i].data;
    v[n].value.len = rv->tokens[i].len;
    n++;

    /* one call: the grant goes with it */

    rv->next = rv->ntokens - 1;

    f = ngx_http_oauth_endpoint_revoke_grant(rv->pool, ngx_cycle->log,
                                             rv->provider, v, n);
    if (f == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_oauth_endpoint_start(f, ngx_http_oauth_api_revoked, rv);
}


static ngx_int_t
ngx_http_oauth_api_revoke_next(ngx_http_oauth_revoke_t *rv)
{
    ngx_oauth_buf_t             body = ngx_oauth_buf_init;
    ngx_http_oauth_fetch_t     *f;
    ngx_http_oauth_provider_t  *p;

    p = rv->provider;

    if (ngx_http_oauth_endpoint_revoke_custom(p)) {
        return ngx_http_oauth_api_revoke_grant(rv);
    }

    /*
     * the hint goes with the token, not with its position: a record may
     * hold a refresh token whose access token could not be opened
     */

    ngx_oauth_buf_add_form_pair(&body, "token", 5,
                                rv->tokens[rv->next].data,
                                rv->tokens[rv->next].len);
    ngx_oauth_buf_add_form_pair(&body, "token_type_hint", 15,
                                rv->hints[rv->next],
                                ngx_strlen(rv->hints[rv->next]));

    if (body.failed) {
        ngx_oauth_buf_free(&body);
        return NGX_ERROR;
    }

    /* client authentication as at the token endpoint */

    f = ngx_http_oauth_endpoint_revoke(rv->pool, ngx_cycle->log, p,
                                       rv->vars, rv->nvars, &body);

    ngx_oauth_buf_free(&body);

    if (f == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_oauth_endpoint_start(f, ngx_http_oauth_api_revoked, rv);
}


static void
ngx_http_oauth_api_revoked(ngx_http_oauth_fetch_t *f)
{
    ngx_http_oauth_revoke_t  *rv;

    rv = f->data;

    /*
     * RFC 7009: 200, also for a token the provider no longer knows; the
     * providers' own ways answer 204 (GitHub) or another 2xx
     */

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK || f->status < 200
        || f->status > 299)
    {
        rv->revoked = 0;

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "oauth: provider \"%V\": revocation failed: %s "
                      "(HTTP %ui)", &rv->provider->name,
                      ngx_http_oauth_fetch_result_name(f->result),
                      f->status);
    }

    rv->next++;

    if (ngx_http_oauth_api_revoke_start(rv) != NGX_OK) {
        ngx_http_oauth_api_revoke_end(rv);
    }
}


/*
 * Starts the call for the next token still to revoke; each token is
 * tried once, whatever happened to the one before.  NGX_DECLINED: none
 * left to start.
 */

static ngx_int_t
ngx_http_oauth_api_revoke_start(ngx_http_oauth_revoke_t *rv)
{
    while (rv->next < rv->ntokens) {
        if (ngx_http_oauth_api_revoke_next(rv) == NGX_OK) {
            return NGX_OK;
        }

        rv->revoked = 0;
        rv->next++;
    }

    if (rv->ntokens == 0) {
        rv->revoked = 0;
    }

    return NGX_DECLINED;
}


/* the result: audited, sent if the request still waits, then freed */

static void
ngx_http_oauth_api_revoke_end(ngx_http_oauth_revoke_t *rv)
{
    json_t                    *o;
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_oauth_api_ctx_t  *ctx;

    if (!rv->revoked) {
        ngx_http_oauth_audit(rv->omcf, ngx_cycle->log, "revoke_failed",
                             &rv->owner, &rv->provider->name, &rv->account,
                             "error", "revocation_failed", &rv->addr);
    }

    ctx = rv->ctx;

    if (ctx) {
        rv->ctx = NULL;
        rv->cln->handler = NULL;

        r = ctx->request;

        o = json_pack("{s:b}", "revoked", (int) rv->revoked);

        rc = o ? ngx_http_oauth_api_send(r, NGX_HTTP_OK, o)
               : NGX_HTTP_INTERNAL_SERVER_ERROR;

        ngx_http_oauth_api_done(r, rc);
    }

    /* the fetch handler may destroy the fetch's pool */

    ngx_destroy_pool(rv->pool);
}


/* the request goes away first: the revocation goes on by itself */

static void
ngx_http_oauth_api_revoke_detach(void *data)
{
    ngx_http_oauth_revoke_t  *rv = data;

    rv->ctx = NULL;
}


/*
 * POST connections/P: credentials of the non-OAuth kinds.  With a
 * userinfo_url they are tried there first: nothing is stored unless the
 * platform accepts them.
 */

static ngx_int_t
ngx_http_oauth_api_create(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    if (ctx->provider->kind == NGX_OAUTH_KIND_OAUTH2) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "oauth_provider",
                                         "connect OAuth providers through "
                                         "oauth_start");
    }

    if (ctx->body == NULL) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "a JSON body is required");
    }

    rc = ngx_http_oauth_api_create_account(r, ctx);

    if (rc == NGX_OK) {
        rc = ngx_http_oauth_api_create_secret(r, ctx);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_oauth_send_error(r, ctx->status, ctx->code,
                                         ctx->message);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->provider->userinfo_url.len == 0) {
        return ngx_http_oauth_api_store_secret(r, ctx);
    }

    if (ngx_http_oauth_credential_value(r->pool, r->connection->log,
                                        ctx->provider, ctx->provider->kind,
                                        &ctx->secret, &value)
        != NGX_OK
        || ngx_http_oauth_api_userinfo(r, ctx, &value, NULL, 0,
                                       ngx_http_oauth_api_verified, "create")
           != NGX_OK)
    {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                         "verification_failed",
                                         "the credentials could not be "
                                         "verified");
    }

    return NGX_DONE;
}


/* the body's "account", into ctx->account */

static ngx_int_t
ngx_http_oauth_api_create_account(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    size_t   len;
    json_t  *account;

    account = json_object_get(ctx->body, "account");
    len = json_string_length(account);

    if (!json_is_string(account) || len == 0 || len > NGX_OAUTH_ACCOUNT_MAX)
    {
        return ngx_http_oauth_api_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "account must be a string of 1 "
                                         "to 128 characters");
    }

    if (ngx_http_oauth_has_control((u_char *) json_string_value(account),
                                   len))
    {
        return ngx_http_oauth_api_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "account has control characters");
    }

    ctx->account.data = ngx_pnalloc(r->pool, len);
    if (ctx->account.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->account.data, json_string_value(account), len);
    ctx->account.len = len;

    return NGX_OK;
}


/*
 * The body's "credentials" fields of the provider's kind, joined with
 * ":" (basic's "user:password"), into ctx->secret, wiped with the ctx.
 */

static ngx_int_t
ngx_http_oauth_api_create_secret(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    u_char                     *p;
    size_t                      len;
    json_t                     *creds, *v;
    ngx_http_oauth_api_cred_t  *c;

    creds = json_object_get(ctx->body, "credentials");

    if (!json_is_object(creds)) {
        return ngx_http_oauth_api_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "credentials must be an object");
    }

    len = 0;

    for (c = ngx_http_oauth_api_creds; c->name; c++) {
        if (c->kind != ctx->provider->kind) {
            continue;
        }

        v = json_object_get(creds, c->name);

        if (v == NULL && c->optional) {
            continue;
        }

        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > NGX_HTTP_OAUTH_SECRET_MAX)
        {
            return ngx_http_oauth_api_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                             "invalid_credentials",
                                             c->missing);
        }

        /* send_error does not escape: no quote in a message */

        if (c->no_colon && ngx_strchr(json_string_value(v), ':')) {
            return ngx_http_oauth_api_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                             "invalid_credentials",
                                             c->kind == NGX_OAUTH_KIND_BASIC
                                             ? "credentials.username must "
                                               "not contain a colon"
                                             : "AWS keys must not contain "
                                               "a colon");
        }

        len += (len ? 1 : 0) + json_string_length(v);
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->secret.data = p;
    ctx->secret.len = len;

    for (c = ngx_http_oauth_api_creds; c->name; c++) {
        if (c->kind != ctx->provider->kind) {
            continue;
        }

        v = json_object_get(creds, c->name);

        if (v == NULL) {
            continue;       /* an optional one, absent */
        }

        if (p != ctx->secret.data) {
            *p++ = ':';
        }

        p = ngx_cpymem(p, json_string_value(v), json_string_length(v));
    }

    if (ngx_http_oauth_has_control(ctx->secret.data, ctx->secret.len)) {
        return ngx_http_oauth_api_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                         "invalid_credentials",
                                         "credentials must not contain "
                                         "control characters");
    }

    return NGX_OK;
}


/* a client mistake, answered by the caller: NGX_DECLINED */

static ngx_int_t
ngx_http_oauth_api_refuse(ngx_http_oauth_api_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message)
{
    ctx->status = status;
    ctx->code = code;
    ctx->message = message;

    return NGX_DECLINED;
}


static void
ngx_http_oauth_api_verified(ngx_http_oauth_fetch_t *f)
{
    ngx_int_t                  rc;
    ngx_http_request_t        *r;
    ngx_http_oauth_api_ctx_t  *ctx;

    ctx = f->data;
    r = ctx->request;
    ctx->fetch = NULL;

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK) {
        rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                       "verification_failed",
                                       "the platform could not be reached");

    } else if (f->status < 200 || f->status >= 300) {
        rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                       "invalid_credentials",
                                       "the platform refused the "
                                       "credentials");

    } else {
        rc = ngx_http_oauth_api_store_secret(r, ctx);
    }

    ngx_http_oauth_api_done(r, rc);
}


static ngx_int_t
ngx_http_oauth_api_store_secret(ngx_http_request_t *r,
    ngx_http_oauth_api_ctx_t *ctx)
{
    int                rc;
    ngx_oauth_conn_t   conn;
    ngx_oauth_conn_t  *old;

    ngx_memzero(&conn, sizeof(ngx_oauth_conn_t));

    conn.owner.len = ctx->owner.len;
    conn.owner.data = ctx->owner.data;
    conn.provider.len = ctx->provider->name.len;
    conn.provider.data = ctx->provider->name.data;
    conn.account.len = ctx->account.len;
    conn.account.data = ctx->account.data;
    conn.kind = ctx->provider->kind;
    conn.status = NGX_OAUTH_STATUS_CONNECTED;
    conn.created_at = ngx_time();
    conn.updated_at = conn.created_at;

    conn.secret.data = ngx_pnalloc(r->pool,
                                   ngx_oauth_sealed_size(ctx->omcf->keyring,
                                                         ctx->secret.len));
    if (conn.secret.data == NULL
        || ngx_oauth_conn_seal(ctx->omcf->keyring, &conn,
                               NGX_OAUTH_SEALED_CREDENTIALS,
                               ctx->secret.data, ctx->secret.len,
                               conn.secret.data, &conn.secret.len)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "oauth: sealing failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth_conn_get(r->pool, ctx->omcf->store, &conn.owner,
                                &conn.provider, &conn.account, &old)
        == NGX_OAUTH_OK)
    {
        conn.created_at = old->created_at;
    }

    rc = ngx_http_oauth_webhook_conn_put(ctx->omcf, r->connection->log,
                                         &conn, NULL,
                                         NGX_OAUTH_EVENT_CREDENTIALS_SET);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: cannot store credentials: %s (%s)",
                      ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(ctx->omcf->store));
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         rc == NGX_OAUTH_FULL ? "store_full"
                                         : "store_error",
                                         "the credentials could not be "
                                         "stored");
    }

    ngx_http_oauth_shared_conn_replaced(ctx->omcf, &conn);

    ngx_http_oauth_audit(ctx->omcf, r->connection->log, "credentials_set",
                         &conn.owner, &ctx->provider->name, &conn.account,
                         "ok", NULL, &r->connection->addr_text);

    return ngx_http_oauth_api_conn_send(r, ctx, NGX_HTTP_CREATED);
}


static json_t *
ngx_http_oauth_api_conn_json(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn)
{
    json_t       *o, *scopes, *params, *meta;
    size_t        i;
    u_char       *p, *last, *start;
    unsigned      status;

    scopes = json_array();
    params = json_object();

    if (scopes == NULL || params == NULL) {
        goto failed;
    }

    p = conn->scopes.data;
    last = p + conn->scopes.len;

    while (p < last) {
        while (p < last && *p == ' ') {
            p++;
        }

        start = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if (p > start
            && json_array_append_new(scopes,
                                     ngx_http_oauth_api_str(start,
                                                            p - start))
               != 0)
        {
            goto failed;
        }
    }

    for (i = 0; i < conn->nparams; i++) {
        u_char  name[256];
        size_t  n;

        n = ngx_min(conn->params[i].name.len, sizeof(name) - 1);
        ngx_memcpy(name, conn->params[i].name.data, n);
        name[n] = '\0';

        if (json_object_set_new(params, (char *) name,
                                ngx_http_oauth_api_str(
                                    conn->params[i].value.data,
                                    conn->params[i].value.len))
            != 0)
        {
            goto failed;
        }
    }

    status = ngx_oauth_conn_status(conn, ngx_time());

    o = json_pack("{s:o,s:o,s:o,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
                  "provider", ngx_http_oauth_api_str(conn->provider.data,
                                                     conn->provider.len),
                  "account", ngx_http_oauth_api_str(conn->account.data,
                                                    conn->account.len),
                  "account_name",
                  conn->account_name.len
                  ? ngx_http_oauth_api_str(conn->account_name.data,
                                           conn->account_name.len)
                  : json_null(),
                  "status", ngx_oauth_status_name(status),
                  "scopes", scopes,
                  "params", params,
                  "created_at", ngx_http_oauth_api_time(conn->created_at),
                  "updated_at", ngx_http_oauth_api_time(conn->updated_at),
                  "expires_at", ngx_http_oauth_api_time(conn->expires_at),
                  "last_refresh_at",
                  ngx_http_oauth_api_time(conn->last_refresh_at),
                  "last_error",
                  conn->last_error.len
                  ? ngx_http_oauth_api_str(conn->last_error.data,
                                           conn->last_error.len)
                  : json_null());

    /* what the product wrote: a label and a JSON object, never secrets */

    meta = conn->metadata.len
           ? json_loadb((char *) conn->metadata.data, conn->metadata.len, 0,
                        NULL)
           : NULL;

    if (o == NULL
        || json_object_set_new(o, "label",
                               conn->label.len
                               ? ngx_http_oauth_api_str(conn->label.data,
                                                        conn->label.len)
                               : json_null())
           != 0
        || json_object_set_new(o, "metadata", meta ? meta : json_object())
           != 0)
    {
        json_decref(o);
        return NULL;
    }

    return o;

failed:

    json_decref(scopes);
    json_decref(params);

    return NULL;
}


static json_t *
ngx_http_oauth_api_time(time_t t)
{
    u_char    buf[sizeof("1970-01-01T00:00:00Z")];
    ngx_tm_t  tm;

    if (t == 0) {
        return json_null();
    }

    ngx_gmtime(t, &tm);

    ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ%Z",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    return json_string((char *) buf);
}


/* stored strings may not be UTF-8; they are not sent as something else */

static json_t *
ngx_http_oauth_api_str(const u_char *data, size_t len)
{
    json_t  *j;

    j = json_stringn_nocheck((const char *) data, len);

    if (j == NULL || !ngx_oauth_utf8_valid(data, len)) {
        json_decref(j);
        return json_string("?");
    }

    return j;
}


static ngx_int_t
ngx_http_oauth_api_send(ngx_http_request_t *r, ngx_uint_t status, json_t *j)
{
    char       *text;
    size_t      len;
    u_char     *body;
    ngx_str_t   type = ngx_string("application/json");

    text = json_dumps(j, JSON_COMPACT|JSON_ENSURE_ASCII);
    json_decref(j);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    len = ngx_strlen(text);

    body = ngx_pnalloc(r->pool, len + 1);
    if (body == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(body, text, len);
    body[len++] = '\n';
    free(text);

    return ngx_http_oauth_send(r, status, &type, body, len);
}


static void
ngx_http_oauth_api_done(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_oauth_api_cleanup(void *data)
{
    ngx_http_oauth_api_ctx_t  *ctx = data;

    if (ctx->refresh) {
        ngx_http_oauth_refresh_detach(ctx->refresh);
        ctx->refresh = NULL;
    }

    if (ctx->secret.data) {
        ngx_explicit_memzero(ctx->secret.data, ctx->secret.len);
    }

    if (ctx->body) {
        json_decref(ctx->body);
        ctx->body = NULL;
    }
}
