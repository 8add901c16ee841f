/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_audit.h"
#include "ngx_http_oauth_conn.h"
#include "ngx_http_oauth_cors.h"
#include "ngx_http_oauth_http.h"
#include "ngx_http_oauth_endpoint.h"
#include "ngx_http_oauth_lookup.h"
#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_http_oauth_util.h"
#include "ngx_http_oauth_webhook.h"
#include "ngx_oauth_buf.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_pattern.h"
#include "ngx_oauth_json.h"
#include "ngx_oauth_seal.h"
#include "ngx_oauth_template.h"
#include "ngx_oauth_sign.h"


/*
 * oauth_start and oauth_callback: the authorization-code flow.  The flow
 * record is written at start and consumed at the callback in one write
 * transaction each; no transaction is open while the token endpoint is
 * called.
 */


#define NGX_HTTP_OAUTH_PARAM_MAX      512
#define NGX_HTTP_OAUTH_CODE_MAX       4096
#define NGX_HTTP_OAUTH_PARAMS_MAX     32
#define NGX_HTTP_OAUTH_COOKIE_PREFIX  "__Host-oauth_flow_"
#define NGX_HTTP_OAUTH_COOKIE_ID      12   /* state chars in the name */


/* a start's request and the flow's secrets, wiped after the answer */

typedef struct {
    char                         state[NGX_OAUTH_STATE_LEN + 1];
    char                         verifier[NGX_OAUTH_VERIFIER_LEN + 1];
    char                         challenge[NGX_OAUTH_CHALLENGE_LEN + 1];
    char                         cookie[NGX_OAUTH_STATE_LEN + 1];
    u_char                       rbuf[NGX_OAUTH_RETURN_TO_MAX + 1];
    u_char                       mbuf[16];
    u_char                       hash[NGX_OAUTH_SHA256_LEN];
    ngx_str_t                    owner;
    ngx_str_t                    return_to;
    unsigned                     mode;       /* NGX_OAUTH_MODE_* */
    unsigned                     json:1;     /* answer 200 JSON, no 302 */
    ngx_array_t                  params;     /* ngx_oauth_pair_t */
    ngx_http_oauth_provider_t   *provider;
    ngx_int_t                    rc;         /* the answer when not NGX_OK */
} ngx_http_oauth_start_t;


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_http_oauth_provider_t   *provider;
    ngx_oauth_flow_t             flow;
    ngx_str_t                    code;
    ngx_str_t                    iss;
    ngx_str_t                    error;
    ngx_array_t                  kept;         /* ngx_oauth_pair_t */
    ngx_oauth_token_t            token;
    void                        *userinfo;     /* parsed JSON or NULL */
    ngx_http_oauth_fetch_t      *fetch;
    unsigned                     token_parsed:1;
    unsigned                     exchanged:1;  /* exchange_url called */
    unsigned                     has_code:1;
    unsigned                     has_iss:1;
    unsigned                     has_error:1;
} ngx_http_oauth_cb_ctx_t;


static ngx_int_t ngx_http_oauth_start_parse(ngx_http_request_t *r,
    ngx_http_oauth_start_t *st);
static ngx_int_t ngx_http_oauth_start_mode(ngx_http_request_t *r,
    ngx_http_oauth_start_t *st);
static ngx_int_t ngx_http_oauth_start_return_to(ngx_http_request_t *r,
    ngx_http_oauth_loc_conf_t *olcf, ngx_http_oauth_start_t *st);
static ngx_int_t ngx_http_oauth_start_flow(ngx_http_request_t *r,
    ngx_http_oauth_start_t *st, ngx_oauth_flow_t *flow, ngx_str_t *url);
static ngx_int_t ngx_http_oauth_start_redirect(ngx_http_request_t *r,
    ngx_http_oauth_start_t *st, ngx_oauth_flow_t *flow, ngx_str_t *url);
static ngx_uint_t ngx_http_oauth_wants_json(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_start_json(ngx_http_request_t *r,
    ngx_str_t *url, time_t expires);
static ngx_int_t ngx_http_oauth_start_params(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, ngx_str_t *bad);
static ngx_int_t ngx_http_oauth_bad_param(ngx_http_request_t *r,
    ngx_str_t *name);
static ngx_int_t ngx_http_oauth_arg(ngx_http_request_t *r, const char *name,
    u_char *buf, size_t size, ngx_str_t *value);
static ngx_int_t ngx_http_oauth_authorization_url(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, char *state,
    char *challenge, ngx_str_t *url);
static size_t ngx_http_oauth_authorization_query(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, char *state,
    char *challenge, ngx_oauth_buf_t *scope, ngx_oauth_pair_t *q);
static ngx_int_t ngx_http_oauth_set_cookie(ngx_http_request_t *r,
    char *state, char *value, time_t ttl);
static ngx_int_t ngx_http_oauth_code_param(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_callback_redact(ngx_http_request_t *r);
static ngx_int_t ngx_http_oauth_cb_take(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *state, ngx_int_t *rc);
static ngx_int_t ngx_http_oauth_cb_bad_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_cb_spent(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *state);
static ngx_int_t ngx_http_oauth_cb_bad_state(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static void ngx_http_oauth_cb_failed(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, const char *reason);
static void ngx_http_oauth_cb_cleanup(void *data);
static ngx_uint_t ngx_http_oauth_cb_path_ok(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_http_oauth_cb_ctx_t *ngx_http_oauth_cb_create(
    ngx_http_request_t *r, ngx_http_oauth_main_conf_t *omcf);
static ngx_int_t ngx_http_oauth_cb_verdict(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, u_char *state, const char **error);
static ngx_int_t ngx_http_oauth_cb_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_cb_check(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, u_char *state, const char **error);
static ngx_uint_t ngx_http_oauth_cb_browser_ok(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, u_char *state);
static ngx_int_t ngx_http_oauth_cb_same_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_cb_keep(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_exchange_start(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static void ngx_http_oauth_exchange_done(ngx_http_oauth_fetch_t *f);
static ngx_int_t ngx_http_oauth_credentials_start(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static ngx_int_t ngx_http_oauth_exchange_long(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static void ngx_http_oauth_userinfo_start(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static void ngx_http_oauth_userinfo_done(ngx_http_oauth_fetch_t *f);
static void ngx_http_oauth_cb_save(ngx_http_request_t *r, void *data,
    const char *err);
static ngx_int_t ngx_http_oauth_lookup(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *path, ngx_str_t *value);
static ngx_int_t ngx_http_oauth_lookup_any(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *paths, ngx_str_t *value);
static void ngx_http_oauth_cb_lookups(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx);
static const char *ngx_http_oauth_conn_fill(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *account, ngx_oauth_conn_t *conn);
static const char *ngx_http_oauth_conn_save(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *account);
static const char *ngx_http_oauth_conn_account(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *account);
static ngx_int_t ngx_http_oauth_conn_scopes(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_oauth_conn_t *conn);
static ngx_int_t ngx_http_oauth_kept_check(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_oauth_conn_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_oauth_conn_t *conn);
static void ngx_http_oauth_cb_finish(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, const char *error, ngx_str_t *account);
static ngx_int_t ngx_http_oauth_result(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, const char *error, ngx_str_t *account);
static ngx_int_t ngx_http_oauth_result_popup(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, const char *error, ngx_str_t *account);
static void ngx_http_oauth_popup_page(ngx_oauth_buf_t *b,
    ngx_http_oauth_cb_ctx_t *ctx, char *nonce, const char *error,
    ngx_str_t *account);
static void ngx_http_oauth_return_url(ngx_oauth_buf_t *out,
    ngx_oauth_str_t *return_to);
static ngx_int_t ngx_http_oauth_param_value(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, char *state,
    ngx_oauth_pair_t *q);
static ngx_int_t ngx_http_oauth_pool_str(ngx_http_request_t *r,
    ngx_oauth_buf_t *b, ngx_str_t *s);
static void ngx_http_oauth_ostr(ngx_oauth_str_t *o, ngx_str_t *s);
static void ngx_http_oauth_pair_set(ngx_oauth_pair_t *pr, const char *name,
    void *value, size_t len);


ngx_int_t
ngx_http_oauth_start_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_str_t                    url;
    ngx_oauth_flow_t             flow;
    ngx_http_oauth_start_t       st;
    ngx_http_oauth_main_conf_t  *omcf;

    /* a single-page app on an allowed origin starts with fetch() */

    rc = ngx_http_oauth_cors_preflight(r, "GET, HEAD, POST");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_oauth_cors_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (ngx_http_oauth_start_parse(r, &st) != NGX_OK) {
        return st.rc;
    }

    if (ngx_http_oauth_store_ready(r, omcf) != NGX_OK) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store_unavailable",
                                         "the credential store is not "
                                         "available");
    }

    if (ngx_http_oauth_start_flow(r, &st, &flow, &url) == NGX_OK) {
        st.rc = ngx_http_oauth_start_redirect(r, &st, &flow, &url);
    }

    ngx_explicit_memzero(st.verifier, sizeof(st.verifier));
    ngx_explicit_memzero(st.cookie, sizeof(st.cookie));

    return st.rc;
}


/*
 * The authorization request's query: the protocol's parameters, then the
 * provider's own; scope is the buffer of the joined scopes.  The number
 * of parameters in q, or 0 on failure.
 */

static size_t
ngx_http_oauth_authorization_query(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, char *state,
    char *challenge, ngx_oauth_buf_t *scope, ngx_oauth_pair_t *q)
{
    size_t                  n;
    ngx_uint_t              i;
    ngx_str_t              *s;
    ngx_http_oauth_pair_t  *ap;

    n = 0;

    ngx_http_oauth_pair_set(&q[n++], "response_type", "code", 4);
    ngx_http_oauth_pair_set(&q[n++], (char *) p->client_id_param.data,
                            p->client_id.data, p->client_id.len);
    ngx_http_oauth_pair_set(&q[n++], "redirect_uri", p->redirect_uri.data,
                            p->redirect_uri.len);

    if (p->scopes && p->scopes->nelts) {
        s = p->scopes->elts;

        for (i = 0; i < p->scopes->nelts; i++) {
            if (i) {
                ngx_oauth_buf_add(scope, p->scope_separator.data,
                                  p->scope_separator.len);
            }

            ngx_oauth_buf_add(scope, s[i].data, s[i].len);
        }

        if (scope->failed) {
            return 0;
        }

        ngx_http_oauth_pair_set(&q[n++], "scope", scope->data, scope->len);
    }

    ngx_http_oauth_pair_set(&q[n++], "state", state, NGX_OAUTH_STATE_LEN);

    if (challenge) {
        ngx_http_oauth_pair_set(&q[n++], "code_challenge", challenge,
                                NGX_OAUTH_CHALLENGE_LEN);
        ngx_http_oauth_pair_set(&q[n++], "code_challenge_method", "S256",
                                4);
    }

    if (p->authorization_params) {
        ap = p->authorization_params->elts;

        for (i = 0; i < p->authorization_params->nelts && n < 16 + 16; i++) {
            q[n].name.data = ap[i].name.data;
            q[n].name.len = ap[i].name.len;
            q[n].value.data = ap[i].value.data;
            q[n].value.len = ap[i].value.len;

            /* a value may name the client (Walmart's camelCase copies) */

            if (ngx_strlchr(ap[i].value.data,
                            ap[i].value.data + ap[i].value.len, '{')
                && ngx_http_oauth_param_value(r, p, params, state, &q[n])
                   != NGX_OK)
            {
                return 0;
            }

            n++;
        }
    }

    return n;
}


/*
 * The start's request: owner, provider, return_to, mode and connection
 * params.  NGX_OK to go on; otherwise the handler returns st->rc.
 */

static ngx_int_t
ngx_http_oauth_start_parse(ngx_http_request_t *r, ngx_http_oauth_start_t *st)
{
    ngx_int_t                    rc;
    ngx_str_t                    name, bad;
    ngx_http_oauth_loc_conf_t   *olcf;
    ngx_http_oauth_main_conf_t  *omcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);
    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    st->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    rc = ngx_http_oauth_owner(r, olcf, &st->owner);

    if (rc == NGX_ERROR) {
        return NGX_DONE;
    }

    if (rc == NGX_DECLINED) {
        st->rc = ngx_http_oauth_send_error(r, NGX_HTTP_UNAUTHORIZED,
                                           "unauthenticated",
                                           "no owner for this request");
        return NGX_DONE;
    }

    if (ngx_http_complex_value(r, olcf->start, &name) != NGX_OK) {
        return NGX_DONE;
    }

    st->provider = ngx_http_oauth_provider_find(omcf, &name);

    if (st->provider == NULL
        || st->provider->kind != NGX_OAUTH_KIND_OAUTH2)
    {
        /* the name comes from the URL: the client's mistake, said at info */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: start for \"%V\": no oauth_provider of kind "
                      "oauth2 has that name", &name);

        st->rc = ngx_http_oauth_send_error(r, NGX_HTTP_NOT_FOUND,
                                           "unknown_provider",
                                           "no such OAuth provider");
        return NGX_DONE;
    }

    if (ngx_http_oauth_start_return_to(r, olcf, st) != NGX_OK) {
        st->rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_return_to",
                                           "return_to must be a relative "
                                           "path or an allowed origin");
        return NGX_DONE;
    }

    if (ngx_http_oauth_start_mode(r, st) != NGX_OK) {
        return NGX_DONE;
    }

    if (ngx_array_init(&st->params, r->pool, 4, sizeof(ngx_oauth_pair_t))
        != NGX_OK)
    {
        return NGX_DONE;
    }

    rc = ngx_http_oauth_start_params(r, st->provider, &st->params, &bad);

    if (rc == NGX_DECLINED) {
        st->rc = ngx_http_oauth_bad_param(r, &bad);
        return NGX_DONE;
    }

    return (rc == NGX_OK) ? NGX_OK : NGX_DONE;
}


/*
 * mode=redirect (the default), popup or json; NGX_OK, or NGX_DONE with
 * the answer in st->rc.
 */

static ngx_int_t
ngx_http_oauth_start_mode(ngx_http_request_t *r, ngx_http_oauth_start_t *st)
{
    ngx_int_t  rc;
    ngx_str_t  mode;

    st->mode = NGX_OAUTH_MODE_REDIRECT;

    rc = ngx_http_oauth_arg(r, "mode", st->mbuf, sizeof(st->mbuf), &mode);

    /*
     * A single-page app starts with fetch() and opens the URL itself:
     * mode=json, or a start that accepts only JSON; the callback then
     * ends as a redirect to return_to
     */

    st->json = (rc == NGX_DECLINED && ngx_http_oauth_wants_json(r));

    if (rc == NGX_OK && mode.len == 5
        && ngx_strncmp(mode.data, "popup", 5) == 0)
    {
        st->mode = NGX_OAUTH_MODE_POPUP;

    } else if (rc == NGX_OK && mode.len == 4
               && ngx_strncmp(mode.data, "json", 4) == 0)
    {
        st->json = 1;

    } else if (rc != NGX_DECLINED
               && !(rc == NGX_OK && mode.len == 8
                    && ngx_strncmp(mode.data, "redirect", 8) == 0))
    {
        st->rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_mode",
                                           "mode must be redirect, popup "
                                           "or json");
        return NGX_DONE;
    }

    return NGX_OK;
}


/* return_to: a relative path or an allowed origin, never open */

static ngx_int_t
ngx_http_oauth_start_return_to(ngx_http_request_t *r,
    ngx_http_oauth_loc_conf_t *olcf, ngx_http_oauth_start_t *st)
{
    size_t            norigins;
    ngx_int_t         rc;
    const char       *why;
    ngx_oauth_str_t  *origins;

    rc = ngx_http_oauth_arg(r, "return_to", st->rbuf, sizeof(st->rbuf),
                            &st->return_to);

    if (rc == NGX_DECLINED) {
        ngx_str_set(&st->return_to, "/");

    } else if (rc != NGX_OK) {
        return NGX_DECLINED;
    }

    origins = NULL;
    norigins = 0;

    if (olcf->allowed_origins) {
        origins = olcf->allowed_origins->elts;
        norigins = olcf->allowed_origins->nelts;
    }

    if (ngx_oauth_return_to_check(st->return_to.data, st->return_to.len,
                                  origins, norigins, &why)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: return_to refused: %s", why);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The flow's secrets (state, PKCE verifier, browser cookie) and the
 * authorization URL.  NGX_OK to go on; otherwise the handler returns
 * st->rc.
 */

static ngx_int_t
ngx_http_oauth_start_flow(ngx_http_request_t *r, ngx_http_oauth_start_t *st,
    ngx_oauth_flow_t *flow, ngx_str_t *url)
{
    size_t                       len;
    ngx_int_t                    rc;
    ngx_http_oauth_provider_t   *p;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);
    p = st->provider;

    st->rc = NGX_HTTP_INTERNAL_SERVER_ERROR;

    /* fresh 256-bit values; a generator failure is an error, not a guess */

    if (ngx_oauth_random_token(st->state) != NGX_OAUTH_OK
        || ngx_oauth_random_token(st->verifier) != NGX_OAUTH_OK
        || ngx_oauth_random_token(st->cookie) != NGX_OAUTH_OK
        || ngx_oauth_pkce_challenge(st->verifier, NGX_OAUTH_VERIFIER_LEN,
                                    st->challenge)
           != NGX_OAUTH_OK
        || ngx_oauth_sha256((u_char *) st->cookie, NGX_OAUTH_STATE_LEN,
                            st->hash)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "oauth: random generator failed");
        return NGX_DONE;
    }

    ngx_http_oauth_ostr(&flow->owner, &st->owner);
    ngx_http_oauth_ostr(&flow->provider, &p->name);
    ngx_http_oauth_ostr(&flow->return_to, &st->return_to);
    flow->mode = st->mode;
    flow->browser.len = sizeof(st->hash);
    flow->browser.data = st->hash;
    flow->created = ngx_time();
    flow->expires = flow->created + omcf->state_ttl;
    flow->nparams = st->params.nelts;
    flow->params = st->params.elts;
    flow->mem = NULL;
    flow->verifier.len = 0;
    flow->verifier.data = NULL;
    flow->verifier_aad = NGX_OAUTH_FLOW_AAD_LEGACY;

    if (p->pkce) {

        /* bound to the owner, the provider and this state */

        len = ngx_oauth_sealed_size(omcf->keyring, NGX_OAUTH_VERIFIER_LEN);

        flow->verifier.data = ngx_pnalloc(r->pool, len);
        if (flow->verifier.data == NULL) {
            return NGX_DONE;
        }

        if (ngx_oauth_flow_seal_verifier(omcf->keyring, flow, st->state,
                                         NGX_OAUTH_STATE_LEN,
                                         (u_char *) st->verifier,
                                         NGX_OAUTH_VERIFIER_LEN,
                                         flow->verifier.data,
                                         &flow->verifier.len)
            != NGX_OAUTH_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "oauth: sealing failed");
            return NGX_DONE;
        }
    }

    /*
     * The URL is built before the flow is stored: an optional connection
     * parameter that the authorization_url template needs but the user
     * left out is the user's error, and must not leave a flow behind.
     */

    rc = ngx_http_oauth_authorization_url(r, p, &st->params, st->state,
                                          p->pkce ? st->challenge : NULL,
                                          url);

    if (rc == NGX_DECLINED) {
        st->rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                           "invalid_connection_param",
                                           "a connection parameter is "
                                           "missing or invalid");
        return NGX_DONE;
    }

    return (rc == NGX_OK) ? NGX_OK : NGX_DONE;
}


/* the flow is stored, the browser bound by a cookie and sent on its way */

static ngx_int_t
ngx_http_oauth_start_redirect(ngx_http_request_t *r,
    ngx_http_oauth_start_t *st, ngx_oauth_flow_t *flow, ngx_str_t *url)
{
    int                          rc;
    size_t                       evicted;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    /* several nodes: the flow goes to PostgreSQL only */

    rc = ngx_http_oauth_shared_flow_put(r, st->state, NGX_OAUTH_STATE_LEN,
                                        flow);

    if (rc == NGX_BUSY) {
        return ngx_http_oauth_shared_unavailable(r);
    }

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {

        /*
         * An owner's pending flows are capped (oauth_max_flows_per_owner):
         * the oldest makes room, so one user cannot fill the store with
         * starts, and a user with many tabs loses only the oldest.
         */

        rc = ngx_oauth_store_flow_add(omcf->store, st->state,
                                      NGX_OAUTH_STATE_LEN, flow,
                                      omcf->max_flows, &evicted);

        if (rc == NGX_OAUTH_OK && evicted) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth: owner has %ui pending flows: the oldest "
                          "%uz dropped", omcf->max_flows, evicted);
        }

    } else {
        rc = NGX_OAUTH_OK;
    }

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: cannot store flow: %s (%s)",
                      ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(omcf->store));
        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         rc == NGX_OAUTH_FULL ? "store_full"
                                         : "store_error",
                                         "the flow could not be stored");
    }

    if (ngx_http_oauth_set_cookie(r, st->state, st->cookie, omcf->state_ttl)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "oauth start: provider \"%V\"", &st->provider->name);

    ngx_http_oauth_metrics_flow(st->provider, -1);

    if (st->json) {
        return ngx_http_oauth_start_json(r, url, flow->expires);
    }

    if (ngx_http_oauth_set_location(r, url) != NGX_OK
        || ngx_http_oauth_add_header(r, "Cache-Control", "no-store")
           != NGX_OK
        || ngx_http_discard_request_body(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* sent once the shared store has the flow, if there is one */

    return ngx_http_oauth_shared_wait(r, NGX_HTTP_MOVED_TEMPORARILY);
}


/* Accept: application/json, and no HTML */

static ngx_uint_t
ngx_http_oauth_wants_json(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    /* the first Accept header, as ngx_http_oauth_wants_html() reads it */

#if (NGX_HTTP_HEADERS)
    h = r->headers_in.accept;
#else
    h = NULL;
#endif

    return h != NULL
           && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                               (u_char *) "application/json", 16 - 1)
              != NULL
           && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                               (u_char *) "text/html", 9 - 1)
              == NULL;
}


/* 200 {"authorization_url","expires_at"}: the same flow, cookie included */

static ngx_int_t
ngx_http_oauth_start_json(ngx_http_request_t *r, ngx_str_t *url,
    time_t expires)
{
    u_char           when[sizeof("1970-01-01T00:00:00Z")];
    ngx_int_t        rc;
    ngx_tm_t         tm;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    static ngx_str_t  type = ngx_string("application/json");

    ngx_gmtime(expires, &tm);
    ngx_sprintf(when, "%4d-%02d-%02dT%02d:%02d:%02dZ%Z", tm.ngx_tm_year,
                tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                tm.ngx_tm_min, tm.ngx_tm_sec);

    ngx_oauth_buf_add_cstr(&b, "{\"authorization_url\":");
    ngx_oauth_json_add_string(&b, url->data, url->len);
    ngx_oauth_buf_add_cstr(&b, ",\"expires_at\":\"");
    ngx_oauth_buf_add_cstr(&b, (char *) when);
    ngx_oauth_buf_add_cstr(&b, "\"}\n");

    if (b.failed) {
        ngx_oauth_buf_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_oauth_send(r, NGX_HTTP_OK, &type, b.data, b.len);

    ngx_oauth_buf_free(&b);

    return rc;
}


/* the connection params the provider declares, checked against patterns */

static ngx_int_t
ngx_http_oauth_start_params(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, ngx_str_t *bad)
{
    u_char                       *buf;
    ngx_int_t                     rc;
    ngx_str_t                     value;
    ngx_uint_t                    i;
    ngx_oauth_pair_t             *kp;
    ngx_http_oauth_conn_param_t  *cp;

    if (p->connection_params == NULL) {
        return NGX_OK;
    }

    cp = p->connection_params->elts;

    for (i = 0; i < p->connection_params->nelts; i++) {

        buf = ngx_pnalloc(r->pool, NGX_HTTP_OAUTH_PARAM_MAX);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_oauth_arg(r, (char *) cp[i].name.data, buf,
                                NGX_HTTP_OAUTH_PARAM_MAX, &value);

        if (rc == NGX_DECLINED) {
            if (cp[i].required) {
                goto invalid;
            }

            continue;
        }

        /* "acme.myshopify.com" is the shop "acme" too */

        if (rc == NGX_OK && cp[i].strip.len && value.len > cp[i].strip.len
            && ngx_strncasecmp(value.data + value.len - cp[i].strip.len,
                               cp[i].strip.data, cp[i].strip.len)
               == 0)
        {
            value.len -= cp[i].strip.len;
            value.data[value.len] = '\0';
        }

        if (rc != NGX_OK
            || ngx_oauth_pattern_exec(cp[i].compiled, value.data, value.len)
               != NGX_OAUTH_OK)
        {
            goto invalid;
        }

        kp = ngx_array_push(params);
        if (kp == NULL) {
            return NGX_ERROR;
        }

        ngx_http_oauth_ostr(&kp->name, &cp[i].name);
        ngx_http_oauth_ostr(&kp->value, &value);
        continue;

    invalid:

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: connection parameter \"%V\" is missing or "
                      "invalid", &cp[i].name);

        *bad = cp[i].name;

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * One query argument, decoded.  NGX_DECLINED when absent; NGX_ERROR when
 * repeated, malformed or too long: a security parameter given twice is
 * refused rather than guessed at.
 */

/*
 * invalid_connection_param names the parameter, so that a front-end can
 * point at the field (the shop of Shopify); names are the operator's
 * connection_param names, checked to be safe in JSON.
 */

static ngx_int_t
ngx_http_oauth_bad_param(ngx_http_request_t *r, ngx_str_t *name)
{
    u_char      *msg;
    ngx_uint_t   i;

    for (i = 0; i < name->len; i++) {
        if (!(ngx_http_oauth_isalnum(name->data[i]) || name->data[i] == '_'
              || name->data[i] == '-' || name->data[i] == '.'))
        {
            break;
        }
    }

    msg = (i == name->len && name->len <= 64)
          ? ngx_pnalloc(r->pool, name->len + 64) : NULL;

    if (msg == NULL) {
        return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_connection_param",
                                         "a connection parameter is "
                                         "missing or invalid");
    }

    (void) ngx_sprintf(msg, "the connection parameter \\\"%V\\\" is "
                       "missing or invalid%Z", name);

    return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_connection_param",
                                     (const char *) msg);
}


static ngx_int_t
ngx_http_oauth_arg(ngx_http_request_t *r, const char *name, u_char *buf,
    size_t size, ngx_str_t *value)
{
    int              rc;
    size_t           count;
    ngx_oauth_str_t  v;

    rc = ngx_oauth_query_get(r->args.data, r->args.len, (u_char *) name,
                             ngx_strlen(name), buf, size, &v, &count);

    if (rc == NGX_OAUTH_NOT_FOUND) {
        return NGX_DECLINED;
    }

    if (rc != NGX_OAUTH_OK || count != 1) {
        return NGX_ERROR;
    }

    value->len = v.len;
    value->data = v.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_authorization_url(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, char *state,
    char *challenge, ngx_str_t *url)
{
    int                erc;
    size_t             n;
    ngx_int_t          rc;
    ngx_oauth_buf_t    base = ngx_oauth_buf_init;
    ngx_oauth_buf_t    out = ngx_oauth_buf_init;
    ngx_oauth_buf_t    scope = ngx_oauth_buf_init;
    ngx_oauth_pair_t   q[16 + NGX_HTTP_OAUTH_PARAMS_MAX];
    ngx_oauth_str_t    missing;

    rc = NGX_ERROR;

    erc = ngx_oauth_url_expand(&base, p->authorization_url.data,
                               p->authorization_url.len, params->elts,
                               params->nelts, &missing);

    if (erc == NGX_OAUTH_NOT_FOUND) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: provider \"%V\": authorization_url needs the "
                      "connection parameter \"%*s\"", &p->name,
                      missing.len, missing.data);
        rc = NGX_DECLINED;
        goto done;
    }

    if (erc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": cannot expand "
                      "authorization_url", &p->name);
        goto done;
    }

    n = ngx_http_oauth_authorization_query(r, p, params, state, challenge,
                                           &scope, q);
    if (n == 0) {
        goto done;
    }

    if (ngx_oauth_url_append_params(&out, base.data, base.len, q, n)
        != NGX_OAUTH_OK)
    {
        goto done;
    }

    if (ngx_http_oauth_pool_str(r, &out, url) != NGX_OK) {
        goto done;
    }

    rc = NGX_OK;

done:

    ngx_oauth_buf_free(&base);
    ngx_oauth_buf_free(&out);
    ngx_oauth_buf_free(&scope);

    return rc;
}


/*
 * An authorization_param value with placeholders: {client_id},
 * {redirect_uri}, {nonce} (the flow's state: single use, unguessable)
 * and the connection params.
 */

static ngx_int_t
ngx_http_oauth_param_value(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_array_t *params, char *state,
    ngx_oauth_pair_t *q)
{
    size_t             nv;
    ngx_int_t          rc;
    ngx_str_t          value;
    ngx_oauth_buf_t    b = ngx_oauth_buf_init;
    ngx_oauth_pair_t  *vars;

    nv = params->nelts;

    vars = ngx_palloc(r->pool, sizeof(ngx_oauth_pair_t) * (nv + 3));
    if (vars == NULL) {
        return NGX_ERROR;
    }

    if (nv) {
        ngx_memcpy(vars, params->elts, sizeof(ngx_oauth_pair_t) * nv);
    }

    ngx_http_oauth_pair_set(&vars[nv++], "client_id", p->client_id.data,
                            p->client_id.len);
    ngx_http_oauth_pair_set(&vars[nv++], "redirect_uri",
                            p->redirect_uri.data, p->redirect_uri.len);
    ngx_http_oauth_pair_set(&vars[nv++], "nonce", state,
                            NGX_OAUTH_STATE_LEN);

    rc = NGX_ERROR;

    if (ngx_oauth_template_expand(&b, q->value.data, q->value.len, vars, nv,
                                  NGX_OAUTH_TPL_RAW, NULL)
        == NGX_OAUTH_OK
        && ngx_http_oauth_pool_str(r, &b, &value) == NGX_OK)
    {
        ngx_http_oauth_ostr(&q->value, &value);
        rc = NGX_OK;
    }

    ngx_oauth_buf_free(&b);

    return rc;
}


static ngx_int_t
ngx_http_oauth_pool_str(ngx_http_request_t *r, ngx_oauth_buf_t *b,
    ngx_str_t *s)
{
    if (b->failed) {
        return NGX_ERROR;
    }

    s->len = b->len;
    s->data = ngx_pnalloc(r->pool, b->len + 1);
    if (s->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(s->data, b->data, b->len);
    s->data[b->len] = '\0';

    return NGX_OK;
}


/* core's string from nginx's: the same bytes, not a copy */

static void
ngx_http_oauth_ostr(ngx_oauth_str_t *o, ngx_str_t *s)
{
    o->len = s->len;
    o->data = s->data;
}


static void
ngx_http_oauth_pair_set(ngx_oauth_pair_t *pr, const char *name, void *value,
    size_t len)
{
    pr->name.data = (u_char *) name;
    pr->name.len = ngx_strlen(name);
    pr->value.data = value;
    pr->value.len = len;
}


/*
 * The browser-binding cookie: its value is random, only its hash is in
 * the flow; the name carries part of the state so that two tabs can run
 * two flows at once.  "__Host-": only this host over https may set it
 * (Secure, Path=/, no Domain), so a sibling subdomain cannot plant one.
 * value NULL clears it (the callback, once the flow is spent or unknown).
 */

static ngx_int_t
ngx_http_oauth_set_cookie(ngx_http_request_t *r, char *state, char *value,
    time_t ttl)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   cookie;

    len = sizeof(NGX_HTTP_OAUTH_COOKIE_PREFIX) - 1 + NGX_HTTP_OAUTH_COOKIE_ID
          + 1 + NGX_OAUTH_STATE_LEN
          + sizeof("; Max-Age=; Path=/; HttpOnly; Secure; SameSite=Lax") - 1
          + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    cookie.data = p;

    p = ngx_sprintf(p, NGX_HTTP_OAUTH_COOKIE_PREFIX "%*s=%*s; Max-Age=%T; "
                    "Path=/; HttpOnly; Secure; SameSite=Lax",
                    (size_t) NGX_HTTP_OAUTH_COOKIE_ID, state,
                    value ? (size_t) NGX_OAUTH_STATE_LEN : 0,
                    value ? value : "", value ? ttl : 0);

    cookie.len = p - cookie.data;

    if (ngx_http_oauth_push_header(r, "Set-Cookie", &cookie) == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The callback's query holds a live authorization code: error log lines
 * and the access log's $request show the path only, whatever the answer.
 * Called from the rewrite phase, before limit_req and the access checks
 * can log the request, and again by the handler; doing it twice is
 * harmless ("?..." becomes "?...").
 */

static ngx_int_t
ngx_http_oauth_callback_redact(ngx_http_request_t *r)
{
    if (r->args.len && r->request_line.len) {
        u_char  *p, *q;
        size_t   len;

        len = r->request_line.len;

        /* "?..." is longer than a query of one or two characters */

        p = ngx_pnalloc(r->pool, len + sizeof("...") - 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        q = ngx_strlchr(r->request_line.data,
                        r->request_line.data + len, '?');

        if (q) {
            u_char  *v = ngx_strlchr(q, r->request_line.data + len, ' ');

            r->request_line.len = ngx_sprintf(p, "%*s?...%*s",
                                     (size_t) (q - r->request_line.data),
                                     r->request_line.data,
                                     (size_t) (v ? r->request_line.data
                                                   + len - v : 0),
                                     v ? v : q)
                                  - p;
            r->request_line.data = p;
        }
    }

    return NGX_OK;
}


/* rewrite phase: hides the callback's code before limit_req can log it */

ngx_int_t
ngx_http_oauth_callback_redact_handler(ngx_http_request_t *r)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->handler == ngx_http_oauth_callback_handler
        && ngx_http_oauth_callback_redact(r) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_oauth_callback_handler(ngx_http_request_t *r)
{
    u_char                       sbuf[NGX_OAUTH_STATE_LEN + 2];
    ngx_int_t                    rc, taken;
    ngx_str_t                    state;
    const char                  *err;
    ngx_http_oauth_cb_ctx_t     *ctx;
    ngx_http_oauth_main_conf_t  *omcf;

    if (ngx_http_oauth_callback_redact(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    rc = ngx_http_oauth_arg(r, "state", sbuf, sizeof(sbuf), &state);

    if (rc != NGX_OK || state.len != NGX_OAUTH_STATE_LEN) {
        return ngx_http_oauth_cb_bad_state(r, NULL);
    }

    ctx = ngx_http_oauth_cb_create(r, omcf);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * code, iss and error are read before the flow is consumed: one of
     * them repeated (no first-wins or last-wins guess), malformed or too
     * long is refused without touching the store.
     */

    rc = ngx_http_oauth_cb_params(r, ctx);

    if (rc == NGX_DECLINED) {
        return ngx_http_oauth_cb_bad_params(r, ctx);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth_store_ready(r, omcf) != NGX_OK) {
        ngx_http_oauth_cb_failed(r, ctx, "store_unavailable");

        return ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store_unavailable",
                                         "the credential store is not "
                                         "available");
    }

    taken = ngx_http_oauth_cb_take(r, ctx, &state, &rc);

    if (taken == NGX_DONE) {
        return rc;
    }

    /*
     * The flow is spent, or there never was one: its binding cookie has
     * no use left, whatever the answer.  (A flow left unspent, at another
     * provider's callback path or after a store error, keeps it.)
     */

    if (ngx_http_oauth_set_cookie(r, (char *) state.data, NULL, 0)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (taken == NGX_DECLINED) {
        return ngx_http_oauth_cb_spent(r, ctx, &state);
    }

    if (ngx_http_oauth_cb_verdict(r, ctx, state.data, &err) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (err) {
        return ngx_http_oauth_result(r, ctx, err, NULL);
    }

    if (ngx_http_oauth_exchange_start(r, ctx) != NGX_OK) {
        return ngx_http_oauth_result(r, ctx, "token_request_failed", NULL);
    }

    /*
     * The fetch handler finalizes the request; a client that goes away
     * first ends the request, and freeing its pool cancels the fetch.
     */

    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_oauth_cb_bad_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth: callback with a repeated, malformed or too "
                  "long code, iss or error");

    ngx_http_oauth_cb_failed(r, ctx, "invalid_request");

    return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_request",
                                     "a callback parameter is repeated, "
                                     "malformed or too long");
}


/*
 * No unspent flow of this state.  Back, reload, a double click: a flow
 * spent here moments ago ends on its own return_to, like its other
 * errors; a state never issued (or purged) gets the 400.
 */

static ngx_int_t
ngx_http_oauth_cb_spent(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    ngx_str_t *state)
{
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    if (ngx_oauth_store_flow_spent(omcf->store, (char *) state->data,
                                   state->len, &ctx->flow)
        == NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: callback of a spent flow");
        return ngx_http_oauth_result(r, ctx, "invalid_state", NULL);
    }

    return ngx_http_oauth_cb_bad_state(r, ctx);
}


/*
 * The flow of state, taken for good (PostgreSQL for several nodes, the
 * store otherwise) and only at its own provider's callback path.
 * NGX_OK to go on, NGX_DECLINED for an unknown or used state; NGX_DONE
 * when the handler returns *rc.
 */

static ngx_int_t
ngx_http_oauth_cb_take(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    ngx_str_t *state, ngx_int_t *rc)
{
    ngx_int_t                    n;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ctx->omcf;

    /* several nodes: the flow comes from PostgreSQL, used once there */

    n = ngx_http_oauth_shared_flow_take(r, state->data, state->len);

    if (n == NGX_AGAIN) {
        *rc = NGX_DONE;
        return NGX_DONE;
    }

    if (n == NGX_BUSY) {
        ngx_http_oauth_cb_failed(r, ctx, "store_unavailable");
        *rc = ngx_http_oauth_shared_unavailable(r);
        return NGX_DONE;
    }

    if (n == NGX_ERROR) {
        *rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return NGX_DONE;
    }

    /* single use: the flow is read and deleted in one transaction */

    n = ngx_oauth_store_flow_take(omcf->store, (char *) state->data,
                                  state->len, &ctx->flow);

    if (n == NGX_OAUTH_NOT_FOUND) {
        return NGX_DECLINED;
    }

    if (n != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: cannot read flow: %s (%s)",
                      ngx_oauth_strerror(n),
                      ngx_oauth_store_error(omcf->store));
        ngx_http_oauth_cb_failed(r, ctx, "store_error");
        *rc = ngx_http_oauth_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "store_error",
                                        "the flow could not be read");
        return NGX_DONE;
    }

    /*
     * Mix-up defence (RFC 9700 section 4.4): a flow completes only at the
     * path of its own provider's redirect_uri.  Elsewhere it is put back
     * unspent, so that the right callback still works.
     */

    if (!ngx_http_oauth_cb_path_ok(r, ctx)) {
        n = ngx_oauth_store_flow_put(omcf->store, (char *) state->data,
                                     state->len, &ctx->flow);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "oauth: a flow of provider \"%V\" came back at "
                      "another callback path%s",
                      &ctx->flow.provider,
                      n == NGX_OAUTH_OK ? "" : "; it could not be kept");

        ngx_http_oauth_cb_failed(r, ctx, "wrong_callback");

        *rc = ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                        "wrong_callback",
                                        "this is not the callback of the "
                                        "flow's provider");
        return NGX_DONE;
    }

    return NGX_OK;
}


/*
 * Back, reload or a double click on "Approve": the flow is spent and its
 * return_to unknown, so a person gets a page, a script JSON.
 */

static ngx_int_t
ngx_http_oauth_cb_bad_state(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth: callback with a missing, repeated, unknown or "
                  "used state");

    ngx_http_oauth_cb_failed(r, ctx, "invalid_state");

    if (ngx_http_oauth_wants_html(r)) {
        return ngx_http_oauth_send_page(r, NGX_HTTP_BAD_REQUEST,
                                        "invalid_state",
                                        "This sign-in link was already "
                                        "used or has expired",
                                        "Nothing was changed. Go back to "
                                        "the page you came from and "
                                        "connect again.");
    }

    return ngx_http_oauth_send_error(r, NGX_HTTP_BAD_REQUEST,
                                     "invalid_state",
                                     "unknown, used or expired state");
}


/*
 * A callback that did not connect: counted by provider and reason, and
 * an audit line (a browser or owner mismatch may be someone else's
 * attempt on the flow).  The owner is the flow's, or without a known
 * flow the request's; never the code or the state.
 */

static void
ngx_http_oauth_cb_failed(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    const char *reason)
{
    ngx_str_t                    name, *provider, rowner;
    ngx_oauth_str_t              owner, *ownerp;
    ngx_http_oauth_provider_t   *p;
    ngx_http_oauth_loc_conf_t   *olcf;
    ngx_http_oauth_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_oauth_module);

    p = NULL;
    provider = NULL;
    ownerp = NULL;

    if (ctx && ctx->flow.provider.len) {
        name.len = ctx->flow.provider.len;
        name.data = ctx->flow.provider.data;
        provider = &name;

        p = ctx->provider ? ctx->provider
                          : ngx_http_oauth_provider_find(omcf, &name);
    }

    /* a spent flow's record keeps no owner: the request's then */

    if (ctx && ctx->flow.owner.len) {
        ownerp = &ctx->flow.owner;

    } else {
        olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);

        if (ngx_http_oauth_owner(r, olcf, &rowner) == NGX_OK) {
            ngx_http_oauth_ostr(&owner, &rowner);
            ownerp = &owner;
        }
    }

    ngx_http_oauth_metrics_connect_failure(p, reason);

    ngx_http_oauth_audit(omcf, r->connection->log, "connect_failed", ownerp,
                         provider, NULL, "error", reason,
                         &r->connection->addr_text);
}


/*
 * Whether the request's path is the path of the redirect_uri of the
 * flow's provider.  An unknown provider passes here: the verdict refuses
 * it with its own error.
 */

static ngx_uint_t
ngx_http_oauth_cb_path_ok(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    u_char                     *pos, *last, *q;
    ngx_str_t                   name;
    ngx_http_oauth_provider_t  *p;

    name.len = ctx->flow.provider.len;
    name.data = ctx->flow.provider.data;

    p = ngx_http_oauth_provider_find(ctx->omcf, &name);
    if (p == NULL || p->redirect_uri.len == 0) {
        return 1;
    }

    pos = p->redirect_uri.data;
    last = pos + p->redirect_uri.len;

    /* "scheme://authority/path?query": the path alone */

    q = ngx_strlcasestrn(pos, last, (u_char *) "://", 3 - 1);

    if (q != NULL) {
        pos = q + 3;

        while (pos < last && *pos != '/' && *pos != '?' && *pos != '#') {
            pos++;
        }
    }

    for (q = pos; q < last && *q != '?' && *q != '#'; q++) {
        /* void */
    }

    if (q == pos) {
        return r->uri.len == 1 && r->uri.data[0] == '/';
    }

    return (size_t) (q - pos) == r->uri.len
           && ngx_strncmp(pos, r->uri.data, r->uri.len) == 0;
}


/* the callback's ctx: the code and the tokens in it are wiped with r */

static ngx_http_oauth_cb_ctx_t *
ngx_http_oauth_cb_create(ngx_http_request_t *r,
    ngx_http_oauth_main_conf_t *omcf)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_oauth_cb_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_oauth_cb_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ctx->request = r;
    ctx->omcf = omcf;

    cln->handler = ngx_http_oauth_cb_cleanup;
    cln->data = ctx;

    return ctx;
}


/*
 * Whether the code may be exchanged: the flow's checks, the provider's
 * own refusal, a code, and the params to keep.  *error is set when not.
 */

static ngx_int_t
ngx_http_oauth_cb_verdict(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    u_char *state, const char **error)
{
    ngx_int_t  rc;

    if (ngx_http_oauth_cb_check(r, ctx, state, error) != NGX_OK) {
        return NGX_ERROR;
    }

    if (*error) {
        return NGX_OK;
    }

    /* the provider refused: its own words are never echoed */

    if (ctx->has_error) {
        if (ctx->error.len == sizeof("access_denied") - 1
            && ngx_strncmp(ctx->error.data, "access_denied", ctx->error.len)
               == 0)
        {
            *error = "access_denied";

        } else {
            *error = "provider_error";
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: provider \"%V\" returned an error: %s",
                      &ctx->provider->name, *error);

        return NGX_OK;
    }

    /* the code under the provider's own name (SP-API: spapi_oauth_code) */

    if (!ctx->has_code && ctx->provider->code_param.len) {
        rc = ngx_http_oauth_code_param(r, ctx);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            *error = "invalid_request";
            return NGX_OK;
        }
    }

    /* a client-credentials install (Wix) brings no code */

    if ((!ctx->has_code || ctx->code.len == 0)
        && !ctx->provider->client_credentials)
    {
        *error = "invalid_request";
        return NGX_OK;
    }

    rc = ngx_http_oauth_cb_keep(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        *error = "invalid_request";
    }

    return NGX_OK;
}


/*
 * The callback's security parameters, each at most once.  NGX_DECLINED
 * when one is repeated, malformed or too long.
 */

static ngx_int_t
ngx_http_oauth_cb_params(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx)
{
    u_char     *buf;
    ngx_int_t   rc;

    buf = ngx_pnalloc(r->pool, NGX_HTTP_OAUTH_CODE_MAX
                               + 2 * NGX_HTTP_OAUTH_PARAM_MAX);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_oauth_arg(r, "code", buf, NGX_HTTP_OAUTH_CODE_MAX,
                            &ctx->code);
    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    ctx->has_code = (rc == NGX_OK);
    buf += NGX_HTTP_OAUTH_CODE_MAX;

    rc = ngx_http_oauth_arg(r, "iss", buf, NGX_HTTP_OAUTH_PARAM_MAX,
                            &ctx->iss);
    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    ctx->has_iss = (rc == NGX_OK);
    buf += NGX_HTTP_OAUTH_PARAM_MAX;

    rc = ngx_http_oauth_arg(r, "error", buf, NGX_HTTP_OAUTH_PARAM_MAX,
                            &ctx->error);
    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    ctx->has_error = (rc == NGX_OK);

    return NGX_OK;
}


/* the code read under code_param: at most once, like "code" */

static ngx_int_t
ngx_http_oauth_code_param(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx)
{
    u_char     *buf;
    ngx_int_t   rc;

    buf = ngx_pnalloc(r->pool, NGX_HTTP_OAUTH_CODE_MAX);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_oauth_arg(r, (char *) ctx->provider->code_param.data, buf,
                            NGX_HTTP_OAUTH_CODE_MAX, &ctx->code);

    if (rc == NGX_ERROR) {
        return NGX_DECLINED;
    }

    ctx->has_code = (rc == NGX_OK);

    return NGX_OK;
}


static void
ngx_http_oauth_cb_cleanup(void *data)
{
    ngx_http_oauth_cb_ctx_t *ctx = data;

    if (ctx->token_parsed) {
        ngx_oauth_token_free(&ctx->token);
        ctx->token_parsed = 0;
    }

    if (ctx->userinfo) {
        ngx_oauth_json_free(ctx->userinfo);
        ctx->userinfo = NULL;
    }

    if (ctx->code.data) {
        ngx_explicit_memzero(ctx->code.data, ctx->code.len);
    }

    ngx_oauth_flow_free(&ctx->flow);
}


/*
 * What must hold before the code is exchanged: the flow is alive, was
 * started in this browser by this owner, for a provider that still
 * exists, and the response names the issuer we expect.
 */

static ngx_int_t
ngx_http_oauth_cb_check(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    u_char *state, const char **error)
{
    ngx_int_t                   rc;
    ngx_str_t                   owner, provider;
    ngx_http_oauth_loc_conf_t  *olcf;

    *error = NULL;

    provider.len = ctx->flow.provider.len;
    provider.data = ctx->flow.provider.data;

    ctx->provider = ngx_http_oauth_provider_find(ctx->omcf, &provider);

    if (ctx->provider == NULL) {
        *error = "unknown_provider";
        return NGX_OK;
    }

    if (ctx->flow.expires < ngx_time()) {
        *error = "expired_state";
        return NGX_OK;
    }

    if (!ngx_http_oauth_cb_browser_ok(r, ctx, state)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: callback from another browser than the one "
                      "that started the flow");
        *error = "browser_mismatch";
        return NGX_OK;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_oauth_module);

    rc = ngx_http_oauth_owner(r, olcf, &owner);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK
        && (owner.len != ctx->flow.owner.len
            || ngx_memcmp(owner.data, ctx->flow.owner.data, owner.len) != 0))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: callback owner differs from the flow's");
        *error = "owner_mismatch";
        return NGX_OK;
    }

    /* RFC 9207: the issuer in the response must be the one we expect */

    if (ctx->provider->issuer.len
        && (!ctx->has_iss || ctx->iss.len != ctx->provider->issuer.len
            || ngx_memcmp(ctx->iss.data, ctx->provider->issuer.data,
                          ctx->iss.len)
               != 0))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: callback issuer missing or not \"%V\"",
                      &ctx->provider->issuer);
        *error = "issuer_mismatch";
        return NGX_OK;
    }

    /* Shopify signs its redirects with the client secret */

    if (ctx->provider->callback_hmac.len
        && ngx_oauth_shopify_hmac_check(r->args.data, r->args.len,
                                        ctx->provider->client_secret.data,
                                        ctx->provider->client_secret.len)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: callback hmac missing or wrong");
        *error = "invalid_signature";
        return NGX_OK;
    }

    /*
     * Shopify's callback names the shop, signed or not: a shop other than
     * the one given at start means the flow went somewhere it was not
     * sent.  The flow is spent, like after any other failed check, so
     * that it cannot be tried again with another shop.
     */

    rc = ngx_http_oauth_cb_same_params(r, ctx);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        *error = "invalid_request";
        return NGX_OK;
    }

    return NGX_OK;
}


/*
 * A connection param the callback carries too (Shopify's shop) must be
 * there once and name what the start was given: the same suffix dropped,
 * compared without case (a shop is a host name).  NGX_DECLINED if not.
 */

static ngx_int_t
ngx_http_oauth_cb_same_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    u_char                       *buf;
    ngx_int_t                     rc;
    ngx_str_t                     value;
    ngx_uint_t                    i, j;
    ngx_oauth_str_t              *given;
    ngx_http_oauth_conn_param_t  *cp;

    if (ctx->provider->connection_params == NULL) {
        return NGX_OK;
    }

    buf = ngx_pnalloc(r->pool, NGX_HTTP_OAUTH_PARAM_MAX);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    cp = ctx->provider->connection_params->elts;

    for (i = 0; i < ctx->provider->connection_params->nelts; i++) {

        rc = ngx_http_oauth_arg(r, (char *) cp[i].name.data, buf,
                                NGX_HTTP_OAUTH_PARAM_MAX, &value);

        if (rc == NGX_DECLINED) {
            continue;
        }

        given = NULL;

        for (j = 0; rc == NGX_OK && j < ctx->flow.nparams; j++) {
            if (ctx->flow.params[j].name.len == cp[i].name.len
                && ngx_strncmp(ctx->flow.params[j].name.data,
                               cp[i].name.data, cp[i].name.len)
                   == 0)
            {
                given = &ctx->flow.params[j].value;
            }
        }

        if (given && cp[i].strip.len && value.len > cp[i].strip.len
            && ngx_strncasecmp(value.data + value.len - cp[i].strip.len,
                               cp[i].strip.data, cp[i].strip.len)
               == 0)
        {
            value.len -= cp[i].strip.len;
        }

        if (given == NULL || given->len != value.len
            || ngx_strncasecmp(given->data, value.data, value.len) != 0)
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "oauth: callback parameter \"%V\" is repeated "
                          "or differs from the one given at start",
                          &cp[i].name);
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * The browser binding: the cookie the start set, named by the state,
 * hashes to the flow's.
 */

static ngx_uint_t
ngx_http_oauth_cb_browser_ok(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, u_char *state)
{
    u_char      name[sizeof(NGX_HTTP_OAUTH_COOKIE_PREFIX)
                     + NGX_HTTP_OAUTH_COOKIE_ID];
    u_char      hash[NGX_OAUTH_SHA256_LEN];
    ngx_int_t   rc;
    ngx_str_t   cname, cookie;

    cname.data = name;
    cname.len = ngx_sprintf(name, NGX_HTTP_OAUTH_COOKIE_PREFIX "%*s",
                            (size_t) NGX_HTTP_OAUTH_COOKIE_ID, state)
                - name;

#if (nginx_version >= 1023000)
    rc = (ngx_http_parse_multi_header_lines(r, r->headers_in.cookie, &cname,
                                            &cookie) == NULL)
         ? NGX_DECLINED : NGX_OK;
#else
    rc = (ngx_http_parse_multi_header_lines(&r->headers_in.cookies, &cname,
                                            &cookie) == NGX_DECLINED)
         ? NGX_DECLINED : NGX_OK;
#endif

    if (rc != NGX_OK || cookie.len != NGX_OAUTH_STATE_LEN
        || ngx_oauth_sha256(cookie.data, cookie.len, hash) != NGX_OAUTH_OK)
    {
        return 0;
    }

    return ctx->flow.browser.len == sizeof(hash)
           && ngx_oauth_equal(hash, ctx->flow.browser.data, sizeof(hash));
}


/* connection params from the start, plus callback params to keep */

static ngx_int_t
ngx_http_oauth_cb_keep(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx)
{
    u_char                       *buf;
    ngx_int_t                     rc;
    ngx_str_t                     value;
    ngx_uint_t                    i;
    ngx_oauth_pair_t             *kp;
    ngx_http_oauth_conn_param_t  *name;

    if (ngx_array_init(&ctx->kept, r->pool, 4, sizeof(ngx_oauth_pair_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->flow.nparams; i++) {
        kp = ngx_array_push(&ctx->kept);
        if (kp == NULL) {
            return NGX_ERROR;
        }

        kp->name = ctx->flow.params[i].name;
        kp->value = ctx->flow.params[i].value;
    }

    if (ctx->provider->keep_callback_params == NULL) {
        return NGX_OK;
    }

    name = ctx->provider->keep_callback_params->elts;

    for (i = 0; i < ctx->provider->keep_callback_params->nelts; i++) {
        buf = ngx_pnalloc(r->pool, NGX_HTTP_OAUTH_PARAM_MAX);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_oauth_arg(r, (char *) name[i].name.data, buf,
                                NGX_HTTP_OAUTH_PARAM_MAX, &value);

        if (rc == NGX_DECLINED) {
            continue;
        }

        /* Zoho's accounts server is a URL: its host is what is kept */

        if (rc == NGX_OK && name[i].strip_prefix.len
            && value.len > name[i].strip_prefix.len
            && ngx_strncasecmp(value.data, name[i].strip_prefix.data,
                               name[i].strip_prefix.len)
               == 0)
        {
            value.data += name[i].strip_prefix.len;
            value.len -= name[i].strip_prefix.len;
        }

        /*
         * kept values end up in URLs and headers: plain tokens only, and
         * what the param's own pattern allows (QuickBooks: digits)
         */

        if (rc != NGX_OK
            || ngx_oauth_pattern_match("^[A-Za-z0-9._~:-]{1,256}$",
                                       value.data, value.len)
               != NGX_OAUTH_OK
            || (name[i].compiled
                && ngx_oauth_pattern_exec(name[i].compiled, value.data,
                                          value.len)
                   != NGX_OAUTH_OK))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "oauth: callback parameter \"%V\" is repeated "
                          "or does not match its pattern", &name[i].name);
            return NGX_DECLINED;
        }

        kp = ngx_array_push(&ctx->kept);
        if (kp == NULL) {
            return NGX_ERROR;
        }

        ngx_http_oauth_ostr(&kp->name, &name[i].name);
        ngx_http_oauth_ostr(&kp->value, &value);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_oauth_exchange_start(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    int                      orc;
    size_t                   vlen;
    u_char                  *verifier;
    ngx_int_t                rc;
    ngx_oauth_buf_t          body = ngx_oauth_buf_init;
    ngx_http_oauth_fetch_t  *f;

    rc = NGX_ERROR;

    if (ctx->provider->client_credentials) {
        return ngx_http_oauth_credentials_start(r, ctx);
    }

    ngx_oauth_buf_add_form_pair(&body, "grant_type", 10,
                                "authorization_code", 18);
    ngx_oauth_buf_add_form_pair(&body, "code", 4, ctx->code.data,
                                ctx->code.len);
    ngx_oauth_buf_add_form_pair(&body, "redirect_uri", 12,
                                ctx->provider->redirect_uri.data,
                                ctx->provider->redirect_uri.len);

    if (ctx->flow.verifier.len) {

        verifier = ngx_pnalloc(r->pool, ctx->flow.verifier.len);
        if (verifier == NULL) {
            goto done;
        }

        orc = ngx_oauth_flow_open_verifier(ctx->omcf->keyring, &ctx->flow,
                                           verifier, &vlen);
        if (orc != NGX_OAUTH_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "oauth: cannot open the sealed pkce: %s",
                          ngx_oauth_strerror(orc));
            goto done;
        }

        ngx_oauth_buf_add_form_pair(&body, "code_verifier", 13, verifier,
                                    vlen);

        /* the body holds the copy that goes out */
        ngx_explicit_memzero(verifier, vlen);
    }

    f = ngx_http_oauth_endpoint_token(r->pool, r->connection->log,
                                      ctx->provider, ctx->kept.elts,
                                      ctx->kept.nelts, &body);
    if (f == NULL) {
        goto done;
    }

    if (ngx_http_oauth_endpoint_start(f, ngx_http_oauth_exchange_done, ctx)
        != NGX_OK)
    {
        goto done;
    }

    ctx->fetch = f;
    rc = NGX_OK;

done:

    ngx_oauth_buf_free(&body);

    return rc;
}


/*
 * No code to exchange (token_grant client_credentials, Wix): the app's
 * own credentials and the kept instance id get the token; its answer
 * goes on in exchange_done like a code exchange's.
 */

static ngx_int_t
ngx_http_oauth_credentials_start(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    ngx_http_oauth_fetch_t  *f;

    f = ngx_http_oauth_endpoint_credentials(r->pool, r->connection->log,
                                            ctx->provider, ctx->kept.elts,
                                            ctx->kept.nelts,
                                            NGX_HTTP_OAUTH_CALL_TOKEN);
    if (f == NULL
        || ngx_http_oauth_endpoint_start(f, ngx_http_oauth_exchange_done, ctx)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->fetch = f;

    return NGX_OK;
}


static void
ngx_http_oauth_exchange_done(ngx_http_oauth_fetch_t *f)
{
    int                         rc;
    ngx_http_request_t         *r;
    ngx_http_oauth_cb_ctx_t    *ctx;
    ngx_http_oauth_provider_t  *p;

    ctx = f->data;
    r = ctx->request;
    p = ctx->provider;

    ctx->fetch = NULL;

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": token request failed: %s",
                      &p->name, ngx_http_oauth_fetch_result_name(f->result));
        ngx_http_oauth_cb_finish(r, ctx, "token_request_failed", NULL);
        return;
    }

    if (ctx->token_parsed) {

        /* the answer of exchange_url replaces the short-lived token */

        ngx_oauth_token_free(&ctx->token);
        ctx->token_parsed = 0;
    }

    rc = ngx_oauth_token_parse_at(f->response.data, f->response.len,
                                  ctx->exchanged ? NULL : p->token_path.data,
                                  ctx->exchanged ? 0 : p->token_path.len,
                                  &ctx->token);

    /*
     * a 4xx in the provider's own error shape (Wix's {"message"}) is a
     * refusal all the same, not a broken answer
     */

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": malformed token response "
                      "(HTTP %ui)", &p->name, f->status);
        ngx_http_oauth_cb_finish(r, ctx,
                                 (f->status >= 400 && f->status < 500)
                                 ? "token_error" : "invalid_token_response",
                                 NULL);
        return;
    }

    ctx->token_parsed = 1;

    if (ctx->token.error.len || f->status != 200) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": %s refused (HTTP %ui)",
                      &p->name,
                      ctx->exchanged ? "exchange_url (the long-lived token)"
                                     : "token endpoint",
                      f->status);
        ngx_http_oauth_cb_finish(r, ctx, "token_error", NULL);
        return;
    }

    /* tokens that cannot go out as bearer tokens are not kept */

    if (ngx_oauth_token_type_check(&ctx->token,
                                   p->token_types ? p->token_types->elts
                                                  : NULL,
                                   p->token_types ? p->token_types->nelts
                                                  : 0)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": token_type is not bearer "
                      "nor a \"token_type\" of the provider",
                      &p->name);
        ngx_http_oauth_cb_finish(r, ctx, "unsupported_token_type", NULL);
        return;
    }

    if (p->exchange_url.len && !ctx->exchanged) {
        if (ngx_http_oauth_exchange_long(r, ctx) != NGX_OK) {
            ngx_http_oauth_cb_finish(r, ctx, "token_request_failed", NULL);
        }

        return;
    }

    if (p->userinfo_url.len == 0) {
        ngx_http_oauth_cb_lookups(r, ctx);
        return;
    }

    ngx_http_oauth_userinfo_start(r, ctx);
}


/*
 * The account comes from the provider's userinfo endpoint, asked with the
 * token the way the provider's API wants it; its answer goes on in
 * userinfo_done.
 */

static void
ngx_http_oauth_userinfo_start(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_str_t                   credential;
    ngx_oauth_buf_t             auth = ngx_oauth_buf_init;
    ngx_http_oauth_fetch_t     *u;
    ngx_http_oauth_provider_t  *p;

    p = ctx->provider;

    ngx_oauth_buf_add(&auth, p->token_prefix.data, p->token_prefix.len);
    ngx_oauth_buf_add(&auth, ctx->token.access_token.data,
                      ctx->token.access_token.len);

    rc = ngx_http_oauth_pool_str(r, &auth, &credential);

    ngx_oauth_buf_free(&auth);

    if (rc != NGX_OK) {
        goto failed;
    }

    u = ngx_http_oauth_endpoint_userinfo(r->pool, r->connection->log, p,
                                         ctx->kept.elts, ctx->kept.nelts,
                                         &credential);
    if (u == NULL) {
        goto failed;
    }

    if (ngx_http_oauth_endpoint_start(u, ngx_http_oauth_userinfo_done, ctx)
        != NGX_OK)
    {
        goto failed;
    }

    ctx->fetch = u;

    return;

failed:

    ngx_http_oauth_cb_finish(r, ctx, "userinfo_failed", NULL);
}


/*
 * The short-lived token traded for a long-lived one (Instagram's
 * ig_exchange_token, Facebook's fb_exchange_token); its answer comes back
 * to exchange_done, which goes on from there.
 */

static ngx_int_t
ngx_http_oauth_exchange_long(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx)
{
    size_t                   n;
    ngx_oauth_pair_t        *vars;
    ngx_http_oauth_fetch_t  *f;

    n = ctx->kept.nelts;

    vars = ngx_palloc(r->pool, sizeof(ngx_oauth_pair_t) * (n + 1));
    if (vars == NULL) {
        return NGX_ERROR;
    }

    if (n) {
        ngx_memcpy(vars, ctx->kept.elts, sizeof(ngx_oauth_pair_t) * n);
    }

    ngx_http_oauth_pair_set(&vars[n++], "access_token",
                            ctx->token.access_token.data,
                            ctx->token.access_token.len);

    f = ngx_http_oauth_endpoint_get_token(r->pool, r->connection->log,
                                          ctx->provider,
                                          &ctx->provider->exchange_url,
                                          vars, n);
    if (f == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_oauth_endpoint_start(f, ngx_http_oauth_exchange_done, ctx)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->exchanged = 1;
    ctx->fetch = f;

    return NGX_OK;
}


static void
ngx_http_oauth_userinfo_done(ngx_http_oauth_fetch_t *f)
{
    ngx_http_request_t       *r;
    ngx_http_oauth_cb_ctx_t  *ctx;

    ctx = f->data;
    r = ctx->request;

    ctx->fetch = NULL;

    if (f->result != NGX_HTTP_OAUTH_FETCH_OK || f->status != 200
        || ngx_oauth_json_parse(f->response.data, f->response.len,
                                &ctx->userinfo)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": userinfo request failed: %s "
                      "(HTTP %ui)", &ctx->provider->name,
                      ngx_http_oauth_fetch_result_name(f->result),
                      f->status);
        ngx_http_oauth_cb_finish(r, ctx, "userinfo_failed", NULL);
        return;
    }

    ngx_http_oauth_cb_lookups(r, ctx);
}


/*
 * Post-connect lookups (ngx_http_oauth_lookup.c), then the save.  The
 * account is checked first: a connect that cannot be saved asks the
 * provider nothing more.
 */

static void
ngx_http_oauth_cb_lookups(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx)
{
    ngx_str_t    account;
    const char  *err;

    err = ngx_http_oauth_conn_account(r, ctx, &account);
    if (err) {
        ngx_http_oauth_cb_finish(r, ctx, err, &account);
        return;
    }

    ngx_http_oauth_lookup_run(r, ctx->provider, &ctx->token.access_token,
                              &ctx->kept, ngx_http_oauth_cb_save, ctx);
}


static void
ngx_http_oauth_cb_save(ngx_http_request_t *r, void *data, const char *err)
{
    ngx_http_oauth_cb_ctx_t *ctx = data;

    ngx_str_t  account;

    ngx_str_null(&account);

    if (err == NULL) {
        err = ngx_http_oauth_conn_save(r, ctx, &account);
    }

    ngx_http_oauth_cb_finish(r, ctx, err, &account);
}


/* a dotted path looked up in userinfo first, then in the token response */

static ngx_int_t
ngx_http_oauth_lookup(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    ngx_str_t *path, ngx_str_t *value)
{
    int                rc;
    ngx_str_t          name;
    ngx_uint_t         i, callback;
    ngx_oauth_str_t    v;
    ngx_oauth_pair_t  *kp;

    rc = NGX_OAUTH_NOT_FOUND;
    name = *path;

    /* "callback:realmId": only the callback parameter names the account */

    callback = (path->len > sizeof("callback:") - 1
                && ngx_strncmp(path->data, "callback:",
                               sizeof("callback:") - 1)
                   == 0);

    if (callback) {
        name.data += sizeof("callback:") - 1;
        name.len -= sizeof("callback:") - 1;
    }

    if (ctx->userinfo && !callback) {
        rc = ngx_oauth_json_get(ctx->userinfo, path->data, path->len, &v);
    }

    if (rc == NGX_OAUTH_NOT_FOUND && !callback) {
        rc = ngx_oauth_json_get(ctx->token.root, path->data, path->len, &v);
    }

    if (rc == NGX_OAUTH_NOT_FOUND && !callback
        && ctx->token.fields != ctx->token.root)
    {
        rc = ngx_oauth_json_get(ctx->token.fields, path->data, path->len,
                                &v);
    }

    if (rc != NGX_OAUTH_OK) {

        /* some providers name the account only in the callback */

        kp = ctx->kept.elts;

        for (i = 0; i < ctx->kept.nelts; i++) {
            if (kp[i].name.len == name.len
                && ngx_memcmp(kp[i].name.data, name.data, name.len) == 0)
            {
                value->len = kp[i].value.len;
                value->data = kp[i].value.data;
                return NGX_OK;
            }
        }

        return NGX_DECLINED;
    }

    value->len = v.len;
    value->data = ngx_pnalloc(r->pool, v.len + 1);

    if (value->data == NULL) {
        ngx_oauth_json_str_free(&v);
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, v.data, v.len);
    value->data[v.len] = '\0';
    ngx_oauth_json_str_free(&v);

    return NGX_OK;
}


/*
 * The first of "a|b" that is there: GoHighLevel names a sub-account
 * install by locationId, an agency install by companyId.
 */

static ngx_int_t
ngx_http_oauth_lookup_any(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    ngx_str_t *paths, ngx_str_t *value)
{
    u_char     *c, *end;
    ngx_int_t   rc;
    ngx_str_t   path;

    end = paths->data + paths->len;
    path.data = paths->data;
    rc = NGX_DECLINED;

    while (path.data < end) {
        c = ngx_strlchr(path.data, end, '|');
        path.len = (c ? c : end) - path.data;

        rc = ngx_http_oauth_lookup(r, ctx, &path, value);

        if (rc != NGX_DECLINED && !(rc == NGX_OK && value->len == 0)) {
            return rc;
        }

        path.data += path.len + 1;
    }

    return rc;
}


/*
 * The connection record of a finished exchange, but its tokens: owner,
 * provider, account and its name, times, granted scopes, kept values.
 * NULL, or the error code that ends the flow.
 */

static const char *
ngx_http_oauth_conn_fill(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    ngx_str_t *account, ngx_oauth_conn_t *conn)
{
    ngx_int_t                    rc;
    ngx_str_t                    name;
    const char                  *err;
    ngx_http_oauth_provider_t   *p;

    p = ctx->provider;

    err = ngx_http_oauth_conn_account(r, ctx, account);
    if (err) {
        return err;
    }

    ngx_memzero(conn, sizeof(ngx_oauth_conn_t));

    conn->owner = ctx->flow.owner;
    ngx_http_oauth_ostr(&conn->provider, &p->name);
    ngx_http_oauth_ostr(&conn->account, account);

    if (p->account_name.len
        && ngx_http_oauth_lookup(r, ctx, &p->account_name, &name) == NGX_OK)
    {
        /* shown in pages and APIs, maybe in headers: printable only */

        if (ngx_http_oauth_has_control(name.data, name.len)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "oauth: provider \"%V\": account name at \"%V\" "
                          "has a control character", &p->name,
                          &p->account_name);
            return "invalid_account";
        }

        ngx_http_oauth_ostr(&conn->account_name, &name);
    }

    conn->kind = NGX_OAUTH_KIND_OAUTH2;
    conn->status = NGX_OAUTH_STATUS_CONNECTED;
    conn->token_type = ctx->token.token_type;
    conn->updated_at = ngx_time();
    conn->created_at = conn->updated_at;
    conn->last_refresh_at = conn->updated_at;

    if (ctx->token.expires_in >= 0) {
        conn->expires_at = conn->updated_at + ctx->token.expires_in;
    }

    if (ngx_http_oauth_conn_scopes(r, ctx, conn) != NGX_OK) {
        return "internal_error";
    }

    if (ngx_http_oauth_has_control(conn->scopes.data, conn->scopes.len)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": granted scope has a "
                      "control character", &p->name);
        return "invalid_token_response";
    }

    rc = ngx_http_oauth_conn_params(r, ctx, conn);

    if (rc == NGX_DECLINED) {
        return "invalid_token_response";
    }

    if (rc != NGX_OK) {
        return "internal_error";
    }

    return NULL;
}


/* seal the tokens and store the connection; returns an error code or NULL */

static const char *
ngx_http_oauth_conn_save(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    ngx_str_t *account)
{
    int                          rc;
    u_char                      *sealed;
    const char                  *err;
    ngx_uint_t                   found;
    ngx_oauth_conn_t             conn;
    ngx_oauth_conn_t            *old;
    ngx_http_oauth_provider_t   *p;

    p = ctx->provider;

    err = ngx_http_oauth_conn_fill(r, ctx, account, &conn);
    if (err) {
        return err;
    }

    sealed = ngx_pnalloc(r->pool,
                         ngx_oauth_token_sealed_size(ctx->omcf->keyring,
                                                     &ctx->token));
    if (sealed == NULL
        || ngx_oauth_conn_seal_token(ctx->omcf->keyring, &conn, &ctx->token,
                                     sealed)
           != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "oauth: sealing failed");
        return "internal_error";
    }

    /* a reconnect replaces the tokens but keeps when it was created */

    rc = ngx_http_oauth_conn_get(r->pool, ctx->omcf->store, &conn.owner,
                                 &conn.provider, &conn.account, &old);

    found = (rc == NGX_OAUTH_OK);

    if (found) {

        /* and what the product wrote about it (label, metadata) */

        conn.created_at = old->created_at;
        conn.label = old->label;
        conn.metadata = old->metadata;
    }

    rc = ngx_http_oauth_webhook_conn_put(ctx->omcf, r->connection->log,
                                         &conn, NULL,
                                         rc == NGX_OAUTH_OK
                                         ? NGX_OAUTH_EVENT_UPDATED
                                         : NGX_OAUTH_EVENT_CREATED);

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: cannot store connection: %s (%s)",
                      ngx_oauth_strerror(rc),
                      ngx_oauth_store_error(ctx->omcf->store));
        return rc == NGX_OAUTH_FULL ? "store_full" : "store_error";
    }

    ngx_http_oauth_shared_conn_replaced(ctx->omcf, &conn);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "oauth: provider \"%V\": account connected", &p->name);

    ngx_http_oauth_audit(ctx->omcf, r->connection->log, "connected",
                         &conn.owner, &p->name, &conn.account, "ok", NULL,
                         &r->connection->addr_text);

    return NULL;
}


/* the account id, from userinfo or the token: present, short, printable */

static const char *
ngx_http_oauth_conn_account(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_str_t *account)
{
    ngx_uint_t                  i;
    ngx_http_oauth_provider_t  *p;

    p = ctx->provider;

    ngx_str_null(account);

    /*
     * "account_id single": the provider has no identity to ask for (Bing
     * Webmaster), so an owner has one connection, which a reconnect
     * replaces
     */

    if (p->account_id.len == sizeof("single") - 1
        && ngx_strncmp(p->account_id.data, "single", p->account_id.len) == 0)
    {
        ngx_str_set(account, NGX_HTTP_OAUTH_SINGLE_ACCOUNT);
        return NULL;
    }

    if (ngx_http_oauth_lookup_any(r, ctx, &p->account_id, account) != NGX_OK
        || account->len == 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": no account id at \"%V\"",
                      &p->name, &p->account_id);
        ngx_str_null(account);
        return "missing_account";
    }

    /* there is one, but it cannot be a key: say so, not "missing" */

    if (account->len > NGX_OAUTH_ACCOUNT_MAX) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "oauth: provider \"%V\": account id at \"%V\" is "
                      "longer than %d bytes", &p->name, &p->account_id,
                      NGX_OAUTH_ACCOUNT_MAX);
        ngx_str_null(account);
        return "invalid_account";
    }

    for (i = 0; i < account->len; i++) {
        if (account->data[i] < 0x20 || account->data[i] == 0x7f) {
            ngx_str_null(account);
            return "invalid_account";
        }
    }

    return NULL;
}


/* the scopes granted, or, when the provider does not say, those asked */

static ngx_int_t
ngx_http_oauth_conn_scopes(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_oauth_conn_t *conn)
{
    ngx_int_t                   rc;
    ngx_str_t                  *s, joined;
    ngx_uint_t                  i;
    ngx_oauth_buf_t             sb = ngx_oauth_buf_init;
    ngx_http_oauth_provider_t  *p;

    p = ctx->provider;

    if (ctx->token.scope.len) {
        conn->scopes = ctx->token.scope;
        return NGX_OK;
    }

    if (p->scopes == NULL || p->scopes->nelts == 0) {
        return NGX_OK;
    }

    s = p->scopes->elts;

    for (i = 0; i < p->scopes->nelts; i++) {
        if (i) {
            ngx_oauth_buf_add_byte(&sb, ' ');
        }

        ngx_oauth_buf_add(&sb, s[i].data, s[i].len);
    }

    rc = ngx_http_oauth_pool_str(r, &sb, &joined);
    ngx_oauth_buf_free(&sb);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_oauth_ostr(&conn->scopes, &joined);

    return NGX_OK;
}


/* kept params: connection and callback params, then token fields */

static ngx_int_t
ngx_http_oauth_conn_params(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, ngx_oauth_conn_t *conn)
{
    ngx_str_t                     value;
    ngx_uint_t                    i;
    ngx_oauth_pair_t             *kp;
    ngx_oauth_pair_t             *pp;
    ngx_http_oauth_provider_t    *p;
    ngx_http_oauth_keep_field_t  *kf;

    p = ctx->provider;

    kp = ngx_pnalloc(r->pool, sizeof(ngx_oauth_pair_t)
                              * (ctx->kept.nelts
                                 + (p->keep_token_fields
                                    ? p->keep_token_fields->nelts : 0)));
    if (kp == NULL) {
        return NGX_ERROR;
    }

    conn->params = kp;

    pp = ctx->kept.elts;

    for (i = 0; i < ctx->kept.nelts; i++) {
        kp[conn->nparams].name = pp[i].name;
        kp[conn->nparams].value = pp[i].value;
        conn->nparams++;
    }

    if (p->keep_token_fields == NULL) {
        return NGX_OK;
    }

    kf = p->keep_token_fields->elts;

    for (i = 0; i < p->keep_token_fields->nelts; i++) {
        if (ngx_http_oauth_lookup(r, ctx, &kf[i].path, &value) != NGX_OK
            || value.len > 1024)
        {
            continue;
        }

        if (ngx_http_oauth_kept_check(r, &kf[i].as, &value) != NGX_OK) {
            return NGX_DECLINED;
        }

        ngx_http_oauth_ostr(&kp[conn->nparams].name, &kf[i].as);
        ngx_http_oauth_ostr(&kp[conn->nparams].value, &value);
        conn->nparams++;
    }

    return NGX_OK;
}


/*
 * A token field the provider sends becomes $oauth_param_NAME, used in
 * headers (proxy_set_header) and as an upstream (proxy_pass, Salesforce's
 * instance_url): no control character, and a value that is a URL must be
 * one the module itself would send a token to (https, or http to
 * loopback), or a provider's answer could pick where the token goes.
 */

static ngx_int_t
ngx_http_oauth_kept_check(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_uint_t   i;
    const char  *reason;

    reason = NULL;

    for (i = 0; i < value->len; i++) {
        if (value->data[i] < 0x20 || value->data[i] == 0x7f) {
            reason = "a control character";
            break;
        }
    }

    if (reason == NULL
        && ngx_strlcasestrn(value->data, value->data + value->len,
                            (u_char *) "://", 3 - 1)
           != NULL
        && ngx_oauth_url_check_endpoint(value->data, value->len, 0, &reason)
           != NGX_OAUTH_OK)
    {
        /* reason says what is wrong with the URL */
    }

    if (reason == NULL) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "oauth: token field kept as \"%V\" refused: %s", name,
                  reason);

    return NGX_DECLINED;
}


/* the end of an asynchronous callback: answer and let nginx go on */

static void
ngx_http_oauth_cb_finish(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    const char *error, ngx_str_t *account)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = r->connection;

    rc = ngx_http_oauth_result(r, ctx, error, account);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_oauth_result(ngx_http_request_t *r, ngx_http_oauth_cb_ctx_t *ctx,
    const char *error, ngx_str_t *account)
{
    size_t             n;
    ngx_str_t          location;
    ngx_oauth_buf_t    out = ngx_oauth_buf_init;
    ngx_oauth_buf_t    base = ngx_oauth_buf_init;
    ngx_oauth_pair_t   q[4];

    if (error) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "oauth: flow for provider \"%V\" ended: %s",
                      &ctx->flow.provider, error);

        ngx_http_oauth_cb_failed(r, ctx, error);
    }

    ngx_http_oauth_metrics_flow(ctx->provider, error ? 1 : 0);

    if (ctx->flow.mode == NGX_OAUTH_MODE_POPUP) {
        return ngx_http_oauth_result_popup(r, ctx, error, account);
    }

    n = 0;

    q[n].name.data = (u_char *) "oauth_status";
    q[n].name.len = sizeof("oauth_status") - 1;
    q[n].value.data = (u_char *) (error ? "error" : "connected");
    q[n].value.len = ngx_strlen(q[n].value.data);
    n++;

    q[n].name.data = (u_char *) "oauth_provider";
    q[n].name.len = sizeof("oauth_provider") - 1;
    q[n].value = ctx->flow.provider;
    n++;

    if (account && account->len) {
        q[n].name.data = (u_char *) "oauth_account";
        q[n].name.len = sizeof("oauth_account") - 1;
        ngx_http_oauth_ostr(&q[n].value, account);
        n++;
    }

    if (error) {
        q[n].name.data = (u_char *) "oauth_error";
        q[n].name.len = sizeof("oauth_error") - 1;
        q[n].value.data = (u_char *) error;
        q[n].value.len = ngx_strlen(error);
        n++;
    }

    ngx_http_oauth_return_url(&base, &ctx->flow.return_to);

    if (base.failed
        || ngx_oauth_url_append_params(&out, base.data, base.len, q, n)
           != NGX_OAUTH_OK
        || ngx_http_oauth_pool_str(r, &out, &location) != NGX_OK)
    {
        ngx_oauth_buf_free(&base);
        ngx_oauth_buf_free(&out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_oauth_buf_free(&base);
    ngx_oauth_buf_free(&out);

    if (ngx_http_oauth_set_location(r, &location) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_oauth_add_header(r, "Cache-Control", "no-store") != NGX_OK
        || ngx_http_oauth_add_header(r, "Referrer-Policy", "no-referrer")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_MOVED_TEMPORARILY;
}


/*
 * return_to without any oauth_status, oauth_provider, oauth_account or
 * oauth_error of its own (a page that starts the flow again from its own
 * URL, or a crafted link): the result the page reads must be only the one
 * appended after it, never a stale or forged value that comes first.
 */

static void
ngx_http_oauth_return_url(ngx_oauth_buf_t *out, ngx_oauth_str_t *return_to)
{
    u_char      *p, *end, *q, *hash, *amp, *eq;
    u_char       name[sizeof("oauth_provider")];
    size_t       len, nlen;
    ngx_uint_t   first;

    p = return_to->data;
    end = p + return_to->len;

    hash = ngx_strlchr(p, end, '#');
    if (hash == NULL) {
        hash = end;
    }

    q = ngx_strlchr(p, hash, '?');

    if (q == NULL) {
        (void) ngx_oauth_buf_add(out, p, end - p);
        return;
    }

    (void) ngx_oauth_buf_add(out, p, q - p);

    first = 1;

    for (p = q + 1; p < hash; p = amp + 1) {

        amp = ngx_strlchr(p, hash, '&');
        if (amp == NULL) {
            amp = hash;
        }

        eq = ngx_strlchr(p, amp, '=');
        len = (eq ? eq : amp) - p;

        /* names were checked at start: they decode */

        if (len < sizeof(name)
            && ngx_oauth_url_decode(p, len, NGX_OAUTH_URL_FORM, name, &nlen)
               == NGX_OAUTH_OK)
        {
            if ((nlen == sizeof("oauth_status") - 1
                 && ngx_strncmp(name, "oauth_status", nlen) == 0)
                || (nlen == sizeof("oauth_provider") - 1
                    && ngx_strncmp(name, "oauth_provider", nlen) == 0)
                || (nlen == sizeof("oauth_account") - 1
                    && ngx_strncmp(name, "oauth_account", nlen) == 0)
                || (nlen == sizeof("oauth_error") - 1
                    && ngx_strncmp(name, "oauth_error", nlen) == 0))
            {
                continue;
            }
        }

        (void) ngx_oauth_buf_add_byte(out, first ? '?' : '&');
        (void) ngx_oauth_buf_add(out, p, amp - p);

        first = 0;
    }

    if (first) {
        /* "?" with nothing left: keep it, the results go after it */
        (void) ngx_oauth_buf_add_byte(out, '?');
    }

    (void) ngx_oauth_buf_add(out, hash, end - hash);
}


/*
 * The popup page runs one inline script, allowed by a nonce made for this
 * response, that posts the result to the opener at one origin only.
 */

static ngx_int_t
ngx_http_oauth_result_popup(ngx_http_request_t *r,
    ngx_http_oauth_cb_ctx_t *ctx, const char *error, ngx_str_t *account)
{
    char              nonce[NGX_OAUTH_STATE_LEN + 1];
    ngx_int_t         rc;
    ngx_str_t         body, type = ngx_string("text/html; charset=utf-8");
    ngx_str_t         cspv;
    ngx_oauth_buf_t   b = ngx_oauth_buf_init;
    ngx_oauth_buf_t   csp = ngx_oauth_buf_init;

    if (ngx_oauth_random_token(nonce) != NGX_OAUTH_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_oauth_popup_page(&b, ctx, nonce, error, account);

    ngx_oauth_buf_add_cstr(&csp, "default-src 'none'; script-src 'nonce-");
    ngx_oauth_buf_add_cstr(&csp, nonce);
    ngx_oauth_buf_add_cstr(&csp, "'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'");

    if (ngx_http_oauth_pool_str(r, &b, &body) != NGX_OK
        || ngx_http_oauth_pool_str(r, &csp, &cspv) != NGX_OK
        || ngx_http_oauth_push_header(r, "Content-Security-Policy", &cspv)
           == NULL)
    {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        goto done;
    }

    rc = ngx_http_oauth_send(r, NGX_HTTP_OK, &type, body.data, body.len);

done:

    ngx_oauth_buf_free(&b);
    ngx_oauth_buf_free(&csp);

    return rc;
}


/*
 * The popup's page: it posts the result to its opener at the flow's
 * origin, then closes; its one script runs by the CSP nonce.
 */

static void
ngx_http_oauth_popup_page(ngx_oauth_buf_t *b, ngx_http_oauth_cb_ctx_t *ctx,
    char *nonce, const char *error, ngx_str_t *account)
{
    char                        origin[NGX_OAUTH_ORIGIN_MAX];
    size_t                      olen;
    ngx_str_t                   name;
    const char                 *why;
    ngx_http_oauth_provider_t  *p;

    /* a spent flow's reload has no ctx->provider: it is not counted */

    name.len = ctx->flow.provider.len;
    name.data = ctx->flow.provider.data;

    p = ctx->provider ? ctx->provider
                      : ngx_http_oauth_provider_find(ctx->omcf, &name);

    /*
     * A relative return_to means the origin of our own redirect_uri.  A
     * flow whose provider a reload removed has none: the page then posts
     * nothing rather than guess a target, and the opener sees the window
     * close without a result.
     */

    if (ngx_oauth_url_origin(ctx->flow.return_to.data,
                             ctx->flow.return_to.len, origin, &olen, &why)
        != NGX_OAUTH_OK
        && (p == NULL
            || ngx_oauth_url_origin(p->redirect_uri.data,
                                    p->redirect_uri.len,
                                    origin, &olen, &why)
               != NGX_OAUTH_OK))
    {
        olen = 0;
    }

    ngx_oauth_buf_add_cstr(b, "<!DOCTYPE html>\n<html><head>"
                           "<meta charset=\"utf-8\">"
                           "<title>Connecting</title></head><body>"
                           "<p>You can close this window.</p>"
                           "<script nonce=\"");
    ngx_oauth_buf_add_cstr(b, nonce);
    ngx_oauth_buf_add_cstr(b, "\">(function(){var m={\"type\":"
                           "\"oauth:result\",\"status\":");
    ngx_oauth_json_add_string(b, (u_char *) (error ? "error" : "connected"),
                              error ? 5 : 9);
    ngx_oauth_buf_add_cstr(b, ",\"provider\":");
    ngx_oauth_json_add_string(b, ctx->flow.provider.data,
                              ctx->flow.provider.len);
    ngx_oauth_buf_add_cstr(b, ",\"account\":");

    if (account && account->len) {
        ngx_oauth_json_add_string(b, account->data, account->len);

    } else {
        ngx_oauth_buf_add_cstr(b, "null");
    }

    ngx_oauth_buf_add_cstr(b, ",\"error\":");

    if (error) {
        ngx_oauth_json_add_string(b, (u_char *) error, ngx_strlen(error));

    } else {
        ngx_oauth_buf_add_cstr(b, "null");
    }

    ngx_oauth_buf_add_cstr(b, "};");

    if (olen) {
        ngx_oauth_buf_add_cstr(b, "if(window.opener){window.opener."
                               "postMessage(m,");
        ngx_oauth_json_add_string(b, (u_char *) origin, olen);
        ngx_oauth_buf_add_cstr(b, ");}");
    }

    ngx_oauth_buf_add_cstr(b, "window.close();})();</script>"
                           "</body></html>\n");
}
