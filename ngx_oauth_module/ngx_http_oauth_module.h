/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_MODULE_H_INCLUDED_
#define _NGX_HTTP_OAUTH_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_oauth_core.h"
#include "ngx_oauth_crypto.h"
#include "ngx_oauth_pattern.h"
#include "ngx_oauth_store.h"


#define ngx_http_oauth_isalnum(c)                                          \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z')               \
     || ((c) >= '0' && (c) <= '9'))


#define NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC   0
#define NGX_HTTP_OAUTH_TOKEN_AUTH_POST    1

/* the account of every connection of an "account_id single" provider */
#define NGX_HTTP_OAUTH_SINGLE_ACCOUNT     "default"


typedef struct {
    ngx_str_t                    name;
    ngx_str_t                    value;
} ngx_http_oauth_pair_t;


typedef struct {
    ngx_str_t                    name;
    ngx_str_t                    pattern;    /* POSIX ERE, anchored */
    ngx_str_t                    strip;      /* suffix dropped first */
    ngx_str_t                    strip_prefix;  /* kept: prefix dropped */
    ngx_flag_t                   required;
    ngx_oauth_pattern_t         *compiled;   /* at config time */
    unsigned                     explicit_pattern:1;  /* not the default */
} ngx_http_oauth_conn_param_t;


typedef struct {
    ngx_str_t                    path;       /* dotted path in the token */
    ngx_str_t                    as;         /* kept under this name */
} ngx_http_oauth_keep_field_t;


/* api_header lines of a provider: oauth_token's room beside the token */
#define NGX_HTTP_OAUTH_API_HEADERS        4


/* a post-connect lookup (ngx_http_oauth_lookup.c): "lookup" lines */
typedef struct {
    ngx_str_t                    name;       /* kept as this param */
    ngx_str_t                    url;        /* templated, kept params */
    ngx_str_t                    path;       /* dotted path in the answer */
    ngx_array_t                 *headers;    /* pair, templated */
    unsigned                     optional:1; /* absent when it fails */
    unsigned                     off:1;      /* "lookup NAME off" */
} ngx_http_oauth_lookup_t;


typedef struct {
    ngx_str_t                    name;
    ngx_str_t                    preset;
    ngx_str_t                    display_name;
    ngx_uint_t                   kind;       /* NGX_OAUTH_KIND_* */

    ngx_str_t                    client_id;
    ngx_str_t                    client_secret;  /* never logged */
    ngx_str_t                    client_secret_file;
    ngx_str_t                    redirect_uri;

    ngx_str_t                    authorization_url;
    ngx_str_t                    token_url;
    ngx_str_t                    revocation_url;
    ngx_str_t                    userinfo_url;
    ngx_str_t                    issuer;
    ngx_str_t                    account_id;
    ngx_str_t                    account_name;
    ngx_str_t                    api_base_url;

    ngx_array_t                 *scopes;     /* ngx_str_t */
    ngx_str_t                    scope_separator;
    ngx_flag_t                   pkce;
    ngx_uint_t                   token_auth;
    ngx_uint_t                   refresh_token_auth;  /* default: above */
    ngx_flag_t                   refresh;
    /* a templated host may resolve to loopback, private, link-local */
    ngx_flag_t                   allow_private_hosts;

    ngx_array_t                 *authorization_params;  /* pair */
    ngx_array_t                 *token_params;          /* pair */
    ngx_array_t                 *connection_params;     /* conn_param */
    ngx_array_t                 *keep_callback_params;  /* conn_param */
    ngx_array_t                 *keep_token_fields;     /* keep_field */
    ngx_array_t                 *token_types;  /* ngx_str_t, also bearer */

    ngx_str_t                    token_header;
    ngx_str_t                    token_prefix;
    ngx_flag_t                   token_prefix_set;

    /* provider quirks, kept as data (README "Provider quirks") */
    ngx_str_t                    code_param;       /* default "code" */
    ngx_str_t                    client_id_param;  /* default "client_id" */
    ngx_str_t                    user_agent;
    ngx_str_t                    token_path;       /* token fields' object */
    ngx_str_t                    exchange_url;     /* long-lived token, GET */
    ngx_str_t                    refresh_url;      /* own refresh, GET */
    ngx_str_t                    token_grant;  /* "client_credentials" */
    ngx_str_t                    token_body;       /* template */
    ngx_uint_t                   client_credentials;  /* from token_grant */
    ngx_str_t                    token_encoding;   /* "form" or "json" */
    ngx_uint_t                   token_json;   /* from token_encoding */
    ngx_str_t                    revocation_method;
    ngx_str_t                    revocation_auth;
    ngx_str_t                    revocation_body;  /* template */
    ngx_str_t                    callback_hmac;    /* "shopify" */
    ngx_array_t                 *token_headers;    /* pair, templated */
    ngx_array_t                 *required_scopes;  /* ngx_str_t */
    ngx_array_t                 *lookups;          /* lookup_t */
    ngx_array_t                 *api_headers;      /* pair, templated */

    /* kind aws_sigv4: the scope of the signature, and whether the body
     * goes unhashed ("UNSIGNED-PAYLOAD", S3 only) */
    ngx_str_t                    aws_region;
    ngx_str_t                    aws_service;
    ngx_flag_t                   aws_unsigned_payload;

    ngx_uint_t                   index;      /* in the providers array */

    u_char                      *file;       /* where it was defined */
    ngx_uint_t                   line;
} ngx_http_oauth_provider_t;


typedef struct {
    ngx_str_t                    store_path;
    size_t                       store_max_size;
    ngx_flag_t                   store_sync;

    ngx_str_t                    key_file;
    ngx_oauth_keyring_t         *keyring;

    ngx_array_t                  providers;  /* ngx_http_oauth_provider_t */
    ngx_str_t                    catalog_file;

    time_t                       state_ttl;
    ngx_uint_t                   max_flows;  /* pending, per owner */
    time_t                       refresh_ahead;
    ngx_flag_t                   background_refresh;
    ngx_msec_t                   http_timeout;
    ngx_str_t                    trusted_certificate;
    ngx_open_file_t             *audit_log;

    ngx_uint_t                   circuit_failures;
    time_t                       circuit_reset;

    ngx_flag_t                   enabled;    /* set by init_main_conf */
    ngx_flag_t                   locations;  /* a location uses the module */
    ngx_array_t                 *uses;       /* ngx_http_oauth_check.c's */
    ngx_uint_t                   max_readers;

    ngx_oauth_store_t           *store;      /* this worker's, or NULL */
    ngx_file_uniq_t              store_uniq; /* its inode when opened */
    ngx_flag_t                   store_gone; /* said once */

    void                        *shared;     /* oauth_shared_store, NULL */
    struct ngx_http_oauth_webhook_s  *webhook;  /* oauth_webhook, or NULL */
} ngx_http_oauth_main_conf_t;


typedef struct {
    ngx_http_complex_value_t    *owner;
    ngx_array_t                 *allowed_origins;  /* ngx_str_t */

    ngx_http_complex_value_t    *start;      /* oauth_start provider */
    ngx_http_complex_value_t    *token;      /* oauth_token provider */
    ngx_http_complex_value_t    *token_account;
} ngx_http_oauth_loc_conf_t;


extern ngx_module_t  ngx_http_oauth_module;


/* results counted for oauth_token */
#define NGX_HTTP_OAUTH_INJECT_OK             0
#define NGX_HTTP_OAUTH_INJECT_UNAUTH         1
#define NGX_HTTP_OAUTH_INJECT_NOT_CONNECTED  2
#define NGX_HTTP_OAUTH_INJECT_ACCOUNT        3
#define NGX_HTTP_OAUTH_INJECT_REAUTH         4
#define NGX_HTTP_OAUTH_INJECT_UNAVAILABLE    5
#define NGX_HTTP_OAUTH_INJECT_ERROR          6
#define NGX_HTTP_OAUTH_INJECT_LAST           7

/* outbound calls timed by provider and endpoint */
#define NGX_HTTP_OAUTH_CALL_TOKEN            0
#define NGX_HTTP_OAUTH_CALL_REFRESH          1
#define NGX_HTTP_OAUTH_CALL_EXCHANGE         2
#define NGX_HTTP_OAUTH_CALL_USERINFO         3
#define NGX_HTTP_OAUTH_CALL_REVOKE           4
#define NGX_HTTP_OAUTH_CALL_LOOKUP           5
#define NGX_HTTP_OAUTH_CALL_LAST             6

/* metrics (ngx_http_oauth_metrics.c); a flow event < 0 is a start */
ngx_int_t ngx_http_oauth_metrics_zone(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf);
void ngx_http_oauth_metrics_flow(ngx_http_oauth_provider_t *p,
    ngx_int_t event);
void ngx_http_oauth_metrics_refresh(ngx_http_oauth_provider_t *p,
    ngx_uint_t result);
void ngx_http_oauth_metrics_inject(ngx_http_oauth_provider_t *p,
    ngx_uint_t result);
void ngx_http_oauth_metrics_fetch(ngx_http_oauth_provider_t *p,
    ngx_uint_t call, ngx_msec_t elapsed);
/* a callback that did not connect: reason is its oauth_error code */
void ngx_http_oauth_metrics_connect_failure(ngx_http_oauth_provider_t *p,
    const char *reason);
ngx_int_t ngx_http_oauth_metrics_handler(ngx_http_request_t *r);

/* handlers (ngx_http_oauth_flow.c) */
ngx_int_t ngx_http_oauth_start_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_oauth_callback_handler(ngx_http_request_t *r);

/* rewrite phase: hides the callback's code before limit_req can log it */
ngx_int_t ngx_http_oauth_callback_redact_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_OAUTH_MODULE_H_INCLUDED_ */
