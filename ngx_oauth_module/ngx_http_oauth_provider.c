/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_provider.h"
#include "ngx_http_oauth_lookup.h"
#include "ngx_http_oauth_util.h"
#include "ngx_oauth_catalog.h"
#include "ngx_oauth_url.h"
#include "ngx_oauth_pattern.h"


/*
 * oauth_provider blocks.  Every line of the block goes through the setter
 * of its directive in ngx_http_oauth_provider_cmds; then what the block
 * left unset comes from the preset in the catalog, whose values are turned
 * into lines for the same setters, so a preset is held to the block's
 * rules; then the whole provider is checked.  A field is unset while its
 * data is NULL.
 */


#if (NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC != NGX_OAUTH_TOKEN_AUTH_BASIC           \
     || NGX_HTTP_OAUTH_TOKEN_AUTH_POST != NGX_OAUTH_TOKEN_AUTH_POST)
#error "the catalog's token_auth values must be the module's"
#endif


typedef struct ngx_http_oauth_provider_cmd_s  ngx_http_oauth_provider_cmd_t;

/* the catalog entry's value of a directive, given as lines of the block */
typedef ngx_int_t (*ngx_http_oauth_preset_pt)(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);


struct ngx_http_oauth_provider_cmd_s {
    ngx_command_t                cmd;
    const char                  *key;      /* in a catalog entry, or NULL */
    ngx_http_oauth_preset_pt     preset;
    size_t                       value;    /* the entry's field */
    size_t                       count;    /* the entry's count of it */
};


/* cf->ctx while the block's lines or a preset's values are set */
typedef struct {
    ngx_http_oauth_provider_t   *provider;
    ngx_str_t                   *preset;   /* NULL: the block's own line */
    const char                  *key;      /* the preset's key being set */
    ngx_log_t                    log;      /* names the preset and key */
} ngx_http_oauth_provider_ctx_t;


extern const u_char  ngx_http_oauth_catalog[];
extern const size_t  ngx_http_oauth_catalog_len;


static char *ngx_http_oauth_provider_line(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_oauth_provider_set(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc);
static char *ngx_http_oauth_provider_error(ngx_conf_t *cf,
    const char *fmt);
static char *ngx_http_oauth_provider_invalid(ngx_conf_t *cf, ngx_uint_t i);
static char *ngx_http_oauth_provider_exclusive(ngx_conf_t *cf);
static char *ngx_http_oauth_provider_nonempty(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth_provider_url(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth_provider_pair(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_oauth_provider_secret(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_enum(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_scope(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_token_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_keep_field(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_conn_param(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_oauth_provider_keep_param(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_oauth_preset_kept_params(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_opt(ngx_conf_t *cf, ngx_str_t *arg,
    const char *name, const ngx_oauth_str_t *value);

static ngx_int_t ngx_http_oauth_catalog_open(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf, ngx_oauth_catalog_t **cat);
static ngx_int_t ngx_http_oauth_provider_preset(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, ngx_oauth_catalog_t *cat);
static ngx_int_t ngx_http_oauth_preset_block(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_line(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, ngx_str_t *args, ngx_uint_t n);
static void ngx_http_oauth_preset_arg(ngx_str_t *arg,
    const ngx_oauth_str_t *s);
static ngx_array_t *ngx_http_oauth_preset_list(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc);
static u_char *ngx_http_oauth_preset_log(ngx_log_t *log, u_char *buf,
    size_t len);
static ngx_int_t ngx_http_oauth_preset_str(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_flag(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_enum(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_strs(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_token_header(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_pairs(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_kept(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_keep_fields(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_conn_params(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_int_t ngx_http_oauth_preset_lookups(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e);
static ngx_uint_t ngx_http_oauth_list_has(ngx_array_t *list, size_t off,
    u_char *name, size_t len);
static void *ngx_http_oauth_provider_push(ngx_conf_t *cf, ngx_array_t **list,
    size_t size);

static ngx_int_t ngx_http_oauth_provider_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static void ngx_http_oauth_provider_defaults(ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_provider_aws(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static void ngx_http_oauth_pairs_off(ngx_array_t *list);
static ngx_uint_t ngx_http_oauth_api_header_framing(ngx_str_t *name);
static ngx_int_t ngx_http_oauth_provider_api(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_provider_quirks(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_provider_encoding(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_provider_grant(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);
static ngx_int_t ngx_http_oauth_pattern_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, ngx_http_oauth_conn_param_t *cp);
static ngx_int_t ngx_http_oauth_host_suffix(u_char *name, u_char *close,
    u_char *host_end);
static ngx_http_oauth_conn_param_t *ngx_http_oauth_kept_param(
    ngx_http_oauth_provider_t *p, ngx_uint_t scope, u_char *name,
    size_t len);
static ngx_int_t ngx_http_oauth_placeholders(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const char *what, ngx_str_t *url,
    ngx_uint_t scope);
static void ngx_http_oauth_pattern_cleanup(void *data);


/* the values "kind" and "token_auth" take, in the block and in a preset */

static ngx_conf_enum_t  ngx_http_oauth_kinds[] = {
    { ngx_string("oauth2"), NGX_OAUTH_KIND_OAUTH2 },
    { ngx_string("api_key"), NGX_OAUTH_KIND_API_KEY },
    { ngx_string("basic"), NGX_OAUTH_KIND_BASIC },
    { ngx_string("header"), NGX_OAUTH_KIND_HEADER },
    { ngx_string("aws_sigv4"), NGX_OAUTH_KIND_AWS_SIGV4 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_oauth_token_auths[] = {
    { ngx_string("basic"), NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC },
    { ngx_string("post"), NGX_HTTP_OAUTH_TOKEN_AUTH_POST },
    { ngx_null_string, 0 }
};


static ngx_conf_post_t  ngx_http_oauth_provider_nonempty_post =
    { ngx_http_oauth_provider_nonempty };

static ngx_conf_post_t  ngx_http_oauth_provider_url_post =
    { ngx_http_oauth_provider_url };

static ngx_conf_post_t  ngx_http_oauth_provider_pair_post =
    { ngx_http_oauth_provider_pair };


/*
 * The directives of the block, each with the key of a catalog entry that
 * gives the same value.  A plain string directive's key is its name (and
 * ngx_oauth_catalog_str() finds it); lists have a key of their own.  The
 * name-value lists are ngx_keyval_t arrays, which ngx_http_oauth_pair_t
 * mirrors.
 */

#define ngx_http_oauth_p(member)  offsetof(ngx_http_oauth_provider_t, member)
#define ngx_http_oauth_e(member)  offsetof(ngx_oauth_catalog_entry_t, member)

static ngx_http_oauth_provider_cmd_t  ngx_http_oauth_provider_cmds[] = {

    { { ngx_string("preset"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(preset), &ngx_http_oauth_provider_nonempty_post },
      NULL, NULL, 0, 0 },

    { { ngx_string("display_name"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(display_name),
        &ngx_http_oauth_provider_nonempty_post },
      "display_name", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("kind"), NGX_CONF_TAKE1, ngx_http_oauth_provider_enum, 0,
        ngx_http_oauth_p(kind), ngx_http_oauth_kinds },
      "kind", ngx_http_oauth_preset_enum, ngx_http_oauth_e(kind), 0 },

    { { ngx_string("client_id"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(client_id), &ngx_http_oauth_provider_nonempty_post },
      "client_id", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("client_secret"), NGX_CONF_TAKE1,
        ngx_http_oauth_provider_secret, 0, ngx_http_oauth_p(client_secret),
        &ngx_http_oauth_provider_nonempty_post },
      "client_secret", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("client_secret_file"), NGX_CONF_TAKE1,
        ngx_http_oauth_provider_secret_file, 0,
        ngx_http_oauth_p(client_secret_file), NULL },
      NULL, NULL, 0, 0 },

    { { ngx_string("redirect_uri"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(redirect_uri), &ngx_http_oauth_provider_url_post },
      "redirect_uri", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("authorization_url"), NGX_CONF_TAKE1,
        ngx_conf_set_str_slot, 0, ngx_http_oauth_p(authorization_url),
        &ngx_http_oauth_provider_url_post },
      "authorization_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("token_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(token_url), &ngx_http_oauth_provider_url_post },
      "token_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("revocation_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(revocation_url),
        &ngx_http_oauth_provider_url_post },
      "revocation_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("userinfo_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(userinfo_url), &ngx_http_oauth_provider_url_post },
      "userinfo_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("api_base_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(api_base_url), &ngx_http_oauth_provider_url_post },
      "api_base_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("exchange_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(exchange_url), &ngx_http_oauth_provider_url_post },
      "exchange_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("refresh_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(refresh_url), &ngx_http_oauth_provider_url_post },
      "refresh_url", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("issuer"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(issuer), &ngx_http_oauth_provider_nonempty_post },
      "issuer", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("account_id"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(account_id), &ngx_http_oauth_provider_nonempty_post },
      "account_id", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("account_name"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(account_name),
        &ngx_http_oauth_provider_nonempty_post },
      "account_name", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("scope"), NGX_CONF_1MORE, ngx_http_oauth_provider_scope, 0,
        ngx_http_oauth_p(scopes), NULL },
      "scope", ngx_http_oauth_preset_strs, ngx_http_oauth_e(scopes),
      ngx_http_oauth_e(nscopes) },

    { { ngx_string("scope_separator"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(scope_separator),
        &ngx_http_oauth_provider_nonempty_post },
      "scope_separator", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("pkce"), NGX_CONF_TAKE1, ngx_conf_set_flag_slot, 0,
        ngx_http_oauth_p(pkce), NULL },
      "pkce", ngx_http_oauth_preset_flag, ngx_http_oauth_e(pkce), 0 },

    { { ngx_string("token_auth"), NGX_CONF_TAKE1,
        ngx_http_oauth_provider_enum, 0, ngx_http_oauth_p(token_auth),
        ngx_http_oauth_token_auths },
      "token_auth", ngx_http_oauth_preset_enum,
      ngx_http_oauth_e(token_auth), 0 },

    { { ngx_string("refresh_token_auth"), NGX_CONF_TAKE1,
        ngx_http_oauth_provider_enum, 0,
        ngx_http_oauth_p(refresh_token_auth), ngx_http_oauth_token_auths },
      "refresh_token_auth", ngx_http_oauth_preset_enum,
      ngx_http_oauth_e(refresh_token_auth), 0 },

    { { ngx_string("refresh"), NGX_CONF_TAKE1, ngx_conf_set_flag_slot, 0,
        ngx_http_oauth_p(refresh), NULL },
      "refresh", ngx_http_oauth_preset_flag, ngx_http_oauth_e(refresh), 0 },

    { { ngx_string("token_header"), NGX_CONF_TAKE12,
        ngx_http_oauth_provider_token_header, 0,
        ngx_http_oauth_p(token_header), NULL },
      "token_header", ngx_http_oauth_preset_token_header, 0, 0 },

    { { ngx_string("authorization_param"), NGX_CONF_TAKE2,
        ngx_conf_set_keyval_slot, 0, ngx_http_oauth_p(authorization_params),
        &ngx_http_oauth_provider_pair_post },
      "authorization_params", ngx_http_oauth_preset_pairs,
      ngx_http_oauth_e(authorization_params),
      ngx_http_oauth_e(nauthorization_params) },

    { { ngx_string("token_param"), NGX_CONF_TAKE2, ngx_conf_set_keyval_slot,
        0, ngx_http_oauth_p(token_params),
        &ngx_http_oauth_provider_pair_post },
      "token_params", ngx_http_oauth_preset_pairs,
      ngx_http_oauth_e(token_params), ngx_http_oauth_e(ntoken_params) },

    { { ngx_string("token_header_param"), NGX_CONF_TAKE2,
        ngx_conf_set_keyval_slot, 0, ngx_http_oauth_p(token_headers),
        &ngx_http_oauth_provider_pair_post },
      "token_headers", ngx_http_oauth_preset_pairs,
      ngx_http_oauth_e(token_headers), ngx_http_oauth_e(ntoken_headers) },

    { { ngx_string("connection_param"), NGX_CONF_1MORE,
        ngx_http_oauth_provider_conn_param, 0,
        ngx_http_oauth_p(connection_params), NULL },
      "connection_params", ngx_http_oauth_preset_conn_params, 0, 0 },

    { { ngx_string("keep_callback_param"), NGX_CONF_TAKE123,
        ngx_http_oauth_provider_keep_param, 0,
        ngx_http_oauth_p(keep_callback_params), NULL },
      "keep_callback_params", ngx_http_oauth_preset_kept_params, 0, 0 },

    { { ngx_string("keep_token_field"), NGX_CONF_TAKE13,
        ngx_http_oauth_provider_keep_field, 0,
        ngx_http_oauth_p(keep_token_fields), NULL },
      "keep_token_fields", ngx_http_oauth_preset_keep_fields, 0, 0 },

    { { ngx_string("lookup"), NGX_CONF_2MORE, ngx_http_oauth_lookup_conf,
        0, ngx_http_oauth_p(lookups), NULL },
      "lookups", ngx_http_oauth_preset_lookups, 0, 0 },

    { { ngx_string("api_header"), NGX_CONF_TAKE2, ngx_conf_set_keyval_slot,
        0, ngx_http_oauth_p(api_headers),
        &ngx_http_oauth_provider_pair_post },
      "api_headers", ngx_http_oauth_preset_pairs,
      ngx_http_oauth_e(api_headers), ngx_http_oauth_e(napi_headers) },

    { { ngx_string("token_type"), NGX_CONF_TAKE1,
        ngx_conf_set_str_array_slot, 0, ngx_http_oauth_p(token_types),
        &ngx_http_oauth_provider_nonempty_post },
      "token_types", ngx_http_oauth_preset_kept,
      ngx_http_oauth_e(token_types), ngx_http_oauth_e(ntoken_types) },

    { { ngx_string("code_param"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(code_param), &ngx_http_oauth_provider_nonempty_post },
      "code_param", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("client_id_param"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(client_id_param),
        &ngx_http_oauth_provider_nonempty_post },
      "client_id_param", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("user_agent"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(user_agent), &ngx_http_oauth_provider_nonempty_post },
      "user_agent", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("token_path"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(token_path), &ngx_http_oauth_provider_nonempty_post },
      "token_path", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("token_encoding"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(token_encoding),
        &ngx_http_oauth_provider_nonempty_post },
      "token_encoding", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("token_grant"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(token_grant),
        &ngx_http_oauth_provider_nonempty_post },
      "token_grant", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("token_body"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(token_body),
        &ngx_http_oauth_provider_nonempty_post },
      "token_body", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("revocation_method"), NGX_CONF_TAKE1,
        ngx_conf_set_str_slot, 0, ngx_http_oauth_p(revocation_method),
        &ngx_http_oauth_provider_nonempty_post },
      "revocation_method", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("revocation_auth"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(revocation_auth),
        &ngx_http_oauth_provider_nonempty_post },
      "revocation_auth", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("revocation_body"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(revocation_body),
        &ngx_http_oauth_provider_nonempty_post },
      "revocation_body", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("allow_private_hosts"), NGX_CONF_TAKE1,
        ngx_conf_set_flag_slot, 0, ngx_http_oauth_p(allow_private_hosts),
        NULL },
      NULL, NULL, 0, 0 },

    { { ngx_string("callback_hmac"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(callback_hmac),
        &ngx_http_oauth_provider_nonempty_post },
      "callback_hmac", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("aws_region"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
        ngx_http_oauth_p(aws_region), &ngx_http_oauth_provider_nonempty_post },
      "aws_region", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("aws_service"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
        0, ngx_http_oauth_p(aws_service),
        &ngx_http_oauth_provider_nonempty_post },
      "aws_service", ngx_http_oauth_preset_str, 0, 0 },

    { { ngx_string("aws_unsigned_payload"), NGX_CONF_TAKE1,
        ngx_conf_set_flag_slot, 0, ngx_http_oauth_p(aws_unsigned_payload),
        NULL },
      NULL, NULL, 0, 0 },

    { ngx_null_command, NULL, NULL, 0, 0 }
};


/* what cmd->type allows, by the number of arguments */

static ngx_uint_t  ngx_http_oauth_provider_argn[] = {
    NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE2, NGX_CONF_TAKE3,
    NGX_CONF_TAKE4, NGX_CONF_TAKE5, NGX_CONF_TAKE6, NGX_CONF_TAKE7
};


char *
ngx_http_oauth_provider_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_oauth_main_conf_t *omcf = conf;

    char                           *rv;
    u_char                         *c;
    ngx_str_t                      *value;
    ngx_conf_t                      save;
    ngx_http_oauth_provider_t      *p;
    ngx_http_oauth_provider_ctx_t   ctx;

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].len > NGX_OAUTH_PROVIDER_MAX) {
        return "needs a name of 1 to 64 characters";
    }

    for (c = value[1].data; c < value[1].data + value[1].len; c++) {
        if (!(ngx_http_oauth_isalnum(*c)
              || *c == '_' || *c == '-' || *c == '.'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid provider name \"%V\": use letters, "
                               "digits, \"_\", \"-\" and \".\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "oauth_provider name \"off\" is reserved: "
                           "\"oauth_token off\" means no provider");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_oauth_provider_find(omcf, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate oauth_provider \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    p = ngx_array_push(&omcf->providers);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(p, sizeof(ngx_http_oauth_provider_t));

    p->name = value[1];
    p->kind = NGX_CONF_UNSET_UINT;
    p->pkce = NGX_CONF_UNSET;
    p->token_auth = NGX_CONF_UNSET_UINT;
    p->refresh_token_auth = NGX_CONF_UNSET_UINT;
    p->refresh = NGX_CONF_UNSET;
    p->allow_private_hosts = NGX_CONF_UNSET;
    p->aws_unsigned_payload = NGX_CONF_UNSET;
    p->keep_callback_params = NGX_CONF_UNSET_PTR;
    p->token_types = NGX_CONF_UNSET_PTR;
    p->file = cf->conf_file->file.name.data;
    p->line = cf->conf_file->line;

    ngx_memzero(&ctx, sizeof(ngx_http_oauth_provider_ctx_t));
    ctx.provider = p;

    save = *cf;
    cf->ctx = &ctx;
    cf->handler = ngx_http_oauth_provider_line;
    cf->handler_conf = conf;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    return rv;
}


static char *
ngx_http_oauth_provider_line(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_http_oauth_provider_ctx_t *ctx = cf->ctx;

    ngx_str_t                      *name;
    ngx_http_oauth_provider_cmd_t  *pc;

    name = cf->args->elts;

    for (pc = ngx_http_oauth_provider_cmds; pc->cmd.name.len; pc++) {
        if (pc->cmd.name.len == name->len
            && ngx_strncmp(pc->cmd.name.data, name->data, name->len) == 0)
        {
            return ngx_http_oauth_provider_set(cf, pc);
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in oauth_provider \"%V\"",
                       name, &ctx->provider->name);
    return NGX_CONF_ERROR;
}


/*
 * One line, of the block or made from a preset: the number of arguments
 * checked as nginx checks a directive's, then its setter.  A preset's
 * value that the block already set is left to the block.
 */

static char *
ngx_http_oauth_provider_set(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc)
{
    ngx_http_oauth_provider_ctx_t *ctx = cf->ctx;

    char        *rv;
    ngx_str_t   *name;
    ngx_uint_t   n, type;

    name = cf->args->elts;
    n = cf->args->nelts - 1;
    type = pc->cmd.type;

    if ((type & NGX_CONF_1MORE) ? n < 1
        : (type & NGX_CONF_2MORE) ? n < 2
        : n >= sizeof(ngx_http_oauth_provider_argn) / sizeof(ngx_uint_t)
          || !(type & ngx_http_oauth_provider_argn[n]))
    {
        return ngx_http_oauth_provider_error(cf,
                                     "invalid number of arguments in \"%V\" "
                                     "of oauth_provider \"%V\"");
    }

    rv = pc->cmd.set(cf, &pc->cmd, ctx->provider);

    if (rv == NGX_CONF_OK || rv == NGX_CONF_ERROR) {
        return rv;
    }

    if (ctx->preset && ngx_strcmp(rv, "is duplicate") == 0) {
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" %s in oauth_provider \"%V\"", name, rv,
                       &ctx->provider->name);
    return NGX_CONF_ERROR;
}


/* fmt takes the directive's name and the provider's */

static char *
ngx_http_oauth_provider_error(ngx_conf_t *cf, const char *fmt)
{
    ngx_http_oauth_provider_ctx_t *ctx = cf->ctx;

    ngx_str_t  *value;

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, fmt, &value[0],
                       &ctx->provider->name);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_oauth_provider_invalid(ngx_conf_t *cf, ngx_uint_t i)
{
    ngx_http_oauth_provider_ctx_t *ctx = cf->ctx;

    ngx_str_t  *value;

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\" of oauth_provider "
                       "\"%V\"", &value[i], &value[0], &ctx->provider->name);
    return NGX_CONF_ERROR;
}


/* the post handler of the string directives: no empty values */

static char *
ngx_http_oauth_provider_nonempty(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *s = data;

    ngx_str_t  *value;

    if (s->len) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" must not be empty",
                       &value[0]);
    return NGX_CONF_ERROR;
}


/*
 * An endpoint: https://, or http:// to a loopback host, and for
 * redirect_uri an absolute URL without placeholders; the placeholders of
 * the others are checked with the whole provider.
 */

static char *
ngx_http_oauth_provider_url(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *url = data;

    ngx_str_t                      *name;
    ngx_uint_t                      redirect;
    const char                     *why;
    ngx_http_oauth_provider_ctx_t  *ctx;

    if (ngx_http_oauth_provider_nonempty(cf, post, data) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    ctx = cf->ctx;
    name = cf->args->elts;

    redirect = (name->len == sizeof("redirect_uri") - 1
                && ngx_strncmp(name->data, "redirect_uri", name->len) == 0);

    if (redirect && ngx_strlcasestrn(url->data, url->data + url->len,
                                     (u_char *) "://", 3 - 1)
                    == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"redirect_uri\" \"%V\" of oauth_provider \"%V\" "
                           "must be an absolute https:// URL", url,
                           &ctx->provider->name);
        return NGX_CONF_ERROR;
    }

    if (ngx_oauth_url_check_endpoint(url->data, url->len,
                                     redirect ? 0 : NGX_OAUTH_URL_TEMPLATE,
                                     &why)
        != NGX_OAUTH_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" \"%V\" in oauth_provider \"%V\": "
                           "%s", name, url, &ctx->provider->name, why);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a name-value line: the name goes into a request, so it is not empty */

static char *
ngx_http_oauth_provider_pair(ngx_conf_t *cf, void *post, void *data)
{
    ngx_keyval_t  *kv = data;

    if (kv->key.len == 0) {
        return ngx_http_oauth_provider_invalid(cf, 1);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_oauth_provider_exclusive(ngx_conf_t *cf)
{
    ngx_http_oauth_provider_ctx_t *ctx = cf->ctx;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"client_secret\" and \"client_secret_file\" are "
                       "mutually exclusive in oauth_provider \"%V\"",
                       &ctx->provider->name);
    return NGX_CONF_ERROR;
}


/* client_secret_file fills client_secret: not a duplicate, a conflict */

static char *
ngx_http_oauth_provider_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_http_oauth_provider_ctx_t  *ctx;

    ctx = cf->ctx;

    if (p->client_secret_file.data && ctx->preset == NULL) {
        return ngx_http_oauth_provider_exclusive(cf);
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


static char *
ngx_http_oauth_provider_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_str_t  *value;

    if (p->client_secret_file.data) {
        return "is duplicate";
    }

    if (p->client_secret.data) {
        return ngx_http_oauth_provider_exclusive(cf);
    }

    value = cf->args->elts;

    p->client_secret_file = value[1];

    if (ngx_http_oauth_read_secret(cf, &value[1], &p->client_secret)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ngx_conf_set_enum_slot(), with the block's message */

static char *
ngx_http_oauth_provider_enum(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_uint_t       *np;
    ngx_str_t        *value;
    ngx_conf_enum_t  *e;

    np = (ngx_uint_t *) ((char *) conf + cmd->offset);

    if (*np != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (e = cmd->post; e->name.len; e++) {
        if (e->name.len == value[1].len
            && ngx_strncmp(e->name.data, value[1].data, value[1].len) == 0)
        {
            *np = e->value;
            return NGX_CONF_OK;
        }
    }

    return ngx_http_oauth_provider_invalid(cf, 1);
}


static char *
ngx_http_oauth_provider_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (p->scopes) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p->scopes = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                 sizeof(ngx_str_t));
    if (p->scopes == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        s = ngx_array_push(p->scopes);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* token_header NAME [PREFIX]: without a prefix, the kind's default */

static char *
ngx_http_oauth_provider_token_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (p->token_header.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 0; i < value[1].len; i++) {
        if (!(ngx_http_oauth_isalnum(value[1].data[i])
              || value[1].data[i] == '-' || value[1].data[i] == '_'
              || value[1].data[i] == '.'))
        {
            return ngx_http_oauth_provider_invalid(cf, 1);
        }
    }

    if (value[1].len == 0) {
        return ngx_http_oauth_provider_invalid(cf, 1);
    }

    p->token_header = value[1];

    if (cf->args->nelts == 3) {
        p->token_prefix = value[2];
        p->token_prefix_set = 1;
    }

    return NGX_CONF_OK;
}


/* keep_token_field PATH [as NAME] */

static char *
ngx_http_oauth_provider_keep_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_str_t                    *value;
    ngx_http_oauth_keep_field_t  *kf;

    value = cf->args->elts;

    if (value[1].len == 0) {
        return ngx_http_oauth_provider_invalid(cf, 1);
    }

    if (cf->args->nelts == 4
        && (ngx_strcmp(value[2].data, "as") != 0 || value[3].len == 0))
    {
        return ngx_http_oauth_provider_invalid(cf, 2);
    }

    kf = ngx_http_oauth_provider_push(cf, &p->keep_token_fields,
                                      sizeof(ngx_http_oauth_keep_field_t));
    if (kf == NULL) {
        return NGX_CONF_ERROR;
    }

    kf->path = value[1];
    kf->as = (cf->args->nelts == 4) ? value[3] : value[1];

    return NGX_CONF_OK;
}


/* connection_param NAME [required] [pattern=RE] [strip_suffix=SUFFIX] */

static char *
ngx_http_oauth_provider_conn_param(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_str_t                    *value, *opt;
    ngx_uint_t                    i;
    ngx_http_oauth_conn_param_t  *cp;

    value = cf->args->elts;

    if (cf->args->nelts > 5 || value[1].len == 0) {
        return ngx_http_oauth_provider_error(cf,
                                     "invalid number of arguments in \"%V\" "
                                     "of oauth_provider \"%V\"");
    }

    cp = ngx_http_oauth_provider_push(cf, &p->connection_params,
                                      sizeof(ngx_http_oauth_conn_param_t));
    if (cp == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(cp, sizeof(ngx_http_oauth_conn_param_t));
    cp->name = value[1];

    for (i = 2; i < cf->args->nelts; i++) {
        opt = &value[i];

        if (ngx_strcmp(opt->data, "required") == 0) {
            cp->required = 1;
            continue;
        }

        if (ngx_strncmp(opt->data, "pattern=", 8) == 0) {
            cp->pattern.len = opt->len - 8;
            cp->pattern.data = opt->data + 8;

            /* checked here, where the error can name this line */

            if (ngx_http_oauth_pattern_check(cf, NULL, cp) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(opt->data, "strip_suffix=", 13) == 0
            && opt->len > 13)
        {
            cp->strip.len = opt->len - 13;
            cp->strip.data = opt->data + 13;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in "
                           "\"connection_param\"", opt);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * keep_callback_param NAME [pattern=RE] [strip_prefix=PREFIX]: PREFIX
 * (Zoho's "https://" before its accounts server) is dropped first, then
 * the value must match RE as well as the rule every kept callback value
 * meets (the flow's plain-token check); connection_param's pattern
 * checker compiles RE.
 */

static char *
ngx_http_oauth_provider_keep_param(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_oauth_provider_t *p = conf;

    ngx_str_t                    *value;
    ngx_uint_t                    i;
    ngx_http_oauth_conn_param_t  *kp;

    value = cf->args->elts;

    if (value[1].len == 0) {
        return ngx_http_oauth_provider_error(cf,
                                     "empty value in \"%V\" of "
                                     "oauth_provider \"%V\"");
    }

    kp = ngx_http_oauth_provider_push(cf, &p->keep_callback_params,
                                      sizeof(ngx_http_oauth_conn_param_t));
    if (kp == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(kp, sizeof(ngx_http_oauth_conn_param_t));
    kp->name = value[1];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "pattern=", 8) == 0
            && kp->pattern.data == NULL)
        {
            kp->pattern.len = value[i].len - 8;
            kp->pattern.data = value[i].data + 8;
            kp->explicit_pattern = 1;

            if (ngx_http_oauth_pattern_check(cf, NULL, kp) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "strip_prefix=", 13) == 0
            && value[i].len > 13 && kp->strip_prefix.len == 0)
        {
            kp->strip_prefix.len = value[i].len - 13;
            kp->strip_prefix.data = value[i].data + 13;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" in "
                           "\"keep_callback_param\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_oauth_providers_init(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf)
{
    char                       *rv;
    ngx_uint_t                  i;
    ngx_oauth_catalog_t        *cat;
    ngx_http_oauth_provider_t  *p;

    if (ngx_http_oauth_catalog_open(cf, omcf, &cat) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_OK;
    p = omcf->providers.elts;

    for (i = 0; i < omcf->providers.nelts; i++) {
        p[i].index = i;

        if ((p[i].preset.data
             && ngx_http_oauth_provider_preset(cf, &p[i], cat) != NGX_OK)
            || ngx_http_oauth_provider_check(cf, &p[i]) != NGX_OK)
        {
            rv = NGX_CONF_ERROR;
            break;
        }
    }

    ngx_oauth_catalog_free(cat);

    return rv;
}


/* the built-in catalog, and the operator's over it */

static ngx_int_t
ngx_http_oauth_catalog_open(ngx_conf_t *cf, ngx_http_oauth_main_conf_t *omcf,
    ngx_oauth_catalog_t **cat)
{
    int               rc;
    char              err[256];
    u_char           *text;
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    *cat = NULL;

    if (ngx_oauth_catalog_load(cat, ngx_http_oauth_catalog,
                               ngx_http_oauth_catalog_len, err, sizeof(err))
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth: the built-in provider catalog is invalid: %s",
                      err);
        return NGX_ERROR;
    }

    if (omcf->catalog_file.len == 0) {
        return NGX_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &omcf->catalog_file, 1) != NGX_OK) {
        goto failed;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = omcf->catalog_file;
    file.log = cf->log;

    file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN,
                            0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "oauth: \"oauth_provider_catalog\" \"%V\": "
                      ngx_open_file_n " failed", &file.name);
        goto failed;
    }

    n = NGX_ERROR;
    text = NULL;

    if (ngx_fd_info(file.fd, &fi) != NGX_FILE_ERROR) {
        text = ngx_pnalloc(cf->temp_pool, ngx_file_size(&fi) + 1);
    }

    if (text) {
        n = ngx_read_file(&file, text, ngx_file_size(&fi), 0);
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &file.name);
    }

    if (n == NGX_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "oauth: \"oauth_provider_catalog\" \"%V\": cannot be "
                      "read", &file.name);
        goto failed;
    }

    /* the operator's entries add to or replace built-in ones */

    rc = ngx_oauth_catalog_load(cat, text, n, err, sizeof(err));

    if (rc != NGX_OAUTH_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth: \"oauth_provider_catalog\" \"%V\": %s",
                      &file.name, err);
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_oauth_catalog_free(*cat);
    *cat = NULL;

    return NGX_ERROR;
}


/*
 * The preset's values as lines of the block, through the same setters;
 * errors name the provider's block and, through the log, the preset and
 * the key.
 */

static ngx_int_t
ngx_http_oauth_provider_preset(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    ngx_oauth_catalog_t *cat)
{
    void                              *save_ctx;
    ngx_int_t                          rc;
    ngx_log_t                         *save_log;
    ngx_array_t                       *save_args;
    ngx_conf_file_t                   *save_file, here;
    ngx_http_oauth_provider_ctx_t      ctx;
    ngx_http_oauth_provider_cmd_t     *pc;
    const ngx_oauth_catalog_entry_t   *e;

    if (ngx_oauth_catalog_get(cat, p->preset.data, p->preset.len, &e)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown preset \"%V\" in oauth_provider \"%V\" "
                      "in %s:%ui", &p->preset, &p->name, p->file, p->line);
        return NGX_ERROR;
    }

    if (ngx_http_oauth_preset_block(cf, p, e) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&ctx, sizeof(ngx_http_oauth_provider_ctx_t));

    ctx.provider = p;
    ctx.preset = &p->preset;
    ctx.log = *cf->log;
    ctx.log.handler = ngx_http_oauth_preset_log;
    ctx.log.data = &ctx;

    here = *cf->conf_file;
    here.file.name.data = p->file;
    here.file.name.len = ngx_strlen(p->file);
    here.line = p->line;

    save_ctx = cf->ctx;
    save_log = cf->log;
    save_file = cf->conf_file;
    save_args = cf->args;

    cf->args = ngx_array_create(cf->temp_pool, 8, sizeof(ngx_str_t));
    if (cf->args == NULL) {
        cf->args = save_args;
        return NGX_ERROR;
    }

    cf->ctx = &ctx;
    cf->log = &ctx.log;
    cf->conf_file = &here;

    rc = NGX_OK;

    for (pc = ngx_http_oauth_provider_cmds; pc->cmd.name.len; pc++) {
        if (pc->preset == NULL) {
            continue;
        }

        ctx.key = pc->key;

        rc = pc->preset(cf, pc, e);
        if (rc != NGX_OK) {
            break;
        }
    }

    cf->ctx = save_ctx;
    cf->log = save_log;
    cf->conf_file = save_file;
    cf->args = save_args;

    return rc;
}


static u_char *
ngx_http_oauth_preset_log(ngx_log_t *log, u_char *buf, size_t len)
{
    ngx_http_oauth_provider_ctx_t *ctx = log->data;

    return ngx_snprintf(buf, len, " while setting \"%s\" of preset \"%V\"",
                        ctx->key, ctx->preset);
}


/* one line of the block, made of the directive's name and args */

static ngx_int_t
ngx_http_oauth_preset_line(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    ngx_str_t *args, ngx_uint_t n)
{
    ngx_str_t   *value;
    ngx_uint_t   i;

    cf->args->nelts = 0;

    value = ngx_array_push_n(cf->args, n + 1);
    if (value == NULL) {
        return NGX_ERROR;
    }

    value[0] = pc->cmd.name;

    /* NUL-terminated copies: the catalog goes, the setters keep them */

    for (i = 0; i < n; i++) {
        value[i + 1].len = args[i].len;
        value[i + 1].data = ngx_pnalloc(cf->pool, args[i].len + 1);
        if (value[i + 1].data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(value[i + 1].data, args[i].data, args[i].len);
        value[i + 1].data[args[i].len] = '\0';
    }

    if (ngx_http_oauth_provider_set(cf, pc) != NGX_CONF_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_oauth_preset_arg(ngx_str_t *arg, const ngx_oauth_str_t *s)
{
    arg->data = s->data;
    arg->len = s->len;
}


/* the block's list a list directive adds to */

static ngx_array_t *
ngx_http_oauth_preset_list(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc)
{
    ngx_http_oauth_provider_ctx_t *ctx = cf->ctx;

    return *(ngx_array_t **) ((u_char *) ctx->provider + pc->cmd.offset);
}


static ngx_int_t
ngx_http_oauth_preset_str(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    const ngx_oauth_catalog_entry_t *e)
{
    ngx_str_t               arg;
    const ngx_oauth_str_t  *s;

    s = ngx_oauth_catalog_str(e, pc->key);
    if (s == NULL) {
        return NGX_OK;
    }

    ngx_http_oauth_preset_arg(&arg, s);

    return ngx_http_oauth_preset_line(cf, pc, &arg, 1);
}


static ngx_int_t
ngx_http_oauth_preset_flag(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    const ngx_oauth_catalog_entry_t *e)
{
    int        v;
    ngx_str_t  arg;

    v = *(int *) ((u_char *) e + pc->value);

    if (v == NGX_OAUTH_CATALOG_UNSET) {
        return NGX_OK;
    }

    if (v) {
        ngx_str_set(&arg, "on");

    } else {
        ngx_str_set(&arg, "off");
    }

    return ngx_http_oauth_preset_line(cf, pc, &arg, 1);
}


/* the catalog has the value: the line has its name */

static ngx_int_t
ngx_http_oauth_preset_enum(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    const ngx_oauth_catalog_entry_t *e)
{
    int               v;
    ngx_conf_enum_t  *en;

    v = *(int *) ((u_char *) e + pc->value);

    if (v == NGX_OAUTH_CATALOG_UNSET) {
        return NGX_OK;
    }

    for (en = pc->cmd.post; en->name.len; en++) {
        if (en->value == (ngx_uint_t) v) {
            return ngx_http_oauth_preset_line(cf, pc, &en->name, 1);
        }
    }

    return NGX_ERROR;
}


/* scope: all of the preset's on one line, unless the block has its own */

static ngx_int_t
ngx_http_oauth_preset_strs(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    const ngx_oauth_catalog_entry_t *e)
{
    size_t            i, n;
    ngx_str_t        *args;
    ngx_oauth_str_t  *a;

    a = *(ngx_oauth_str_t **) ((u_char *) e + pc->value);
    n = *(size_t *) ((u_char *) e + pc->count);

    if (n == 0) {
        return NGX_OK;
    }

    args = ngx_palloc(cf->temp_pool, n * sizeof(ngx_str_t));
    if (args == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_http_oauth_preset_arg(&args[i], &a[i]);
    }

    return ngx_http_oauth_preset_line(cf, pc, args, n);
}


static ngx_int_t
ngx_http_oauth_preset_token_header(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e)
{
    ngx_str_t  args[2];

    if (!e->token_header_set) {
        return NGX_OK;
    }

    ngx_http_oauth_preset_arg(&args[0], &e->token_header);

    /* a preset's header without a prefix sends the token bare */

    if (e->token_prefix.data) {
        ngx_http_oauth_preset_arg(&args[1], &e->token_prefix);

    } else {
        ngx_str_set(&args[1], "");
    }

    return ngx_http_oauth_preset_line(cf, pc, args, 2);
}


/*
 * Name-value lists merge (SPEC section 11, "Preset lists merge"): the
 * block's line of a name replaces the preset's ("NAME off" removes it,
 * see ngx_http_oauth_pairs_off()), the others are added.
 */

static ngx_int_t
ngx_http_oauth_preset_pairs(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    const ngx_oauth_catalog_entry_t *e)
{
    size_t             i, n;
    ngx_str_t          args[2];
    ngx_array_t       *list;
    ngx_oauth_pair_t  *a;

    a = *(ngx_oauth_pair_t **) ((u_char *) e + pc->value);
    n = *(size_t *) ((u_char *) e + pc->count);

    for (i = 0; i < n; i++) {
        list = ngx_http_oauth_preset_list(cf, pc);

        if (ngx_http_oauth_list_has(list, offsetof(ngx_keyval_t, key),
                                    a[i].name.data, a[i].name.len))
        {
            continue;
        }

        ngx_http_oauth_preset_arg(&args[0], &a[i].name);
        ngx_http_oauth_preset_arg(&args[1], &a[i].value);

        if (ngx_http_oauth_preset_line(cf, pc, args, 2) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* what to keep adds to the preset's, as name-value lists do */

static ngx_int_t
ngx_http_oauth_preset_kept(ngx_conf_t *cf, ngx_http_oauth_provider_cmd_t *pc,
    const ngx_oauth_catalog_entry_t *e)
{
    size_t            i, n;
    ngx_str_t         arg;
    ngx_oauth_str_t  *a;

    a = *(ngx_oauth_str_t **) ((u_char *) e + pc->value);
    n = *(size_t *) ((u_char *) e + pc->count);

    for (i = 0; i < n; i++) {
        if (ngx_http_oauth_list_has(ngx_http_oauth_preset_list(cf, pc), 0,
                                    a[i].data, a[i].len))
        {
            continue;
        }

        ngx_http_oauth_preset_arg(&arg, &a[i]);

        if (ngx_http_oauth_preset_line(cf, pc, &arg, 1) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a kept callback param the block names itself is the block's */

static ngx_int_t
ngx_http_oauth_preset_kept_params(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e)
{
    size_t            i, n;
    ngx_str_t         args[3];
    ngx_oauth_str_t  *pat, *strip;

    for (i = 0; i < e->nkeep_callback_params; i++) {
        if (ngx_http_oauth_list_has(ngx_http_oauth_preset_list(cf, pc), 0,
                                    e->keep_callback_params[i].data,
                                    e->keep_callback_params[i].len))
        {
            continue;
        }

        ngx_http_oauth_preset_arg(&args[0], &e->keep_callback_params[i]);
        n = 1;

        pat = &e->keep_callback_patterns[i];
        strip = &e->keep_callback_strips[i];

        if (pat->len
            && ngx_http_oauth_preset_opt(cf, &args[n++], "pattern=", pat)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (strip->len
            && ngx_http_oauth_preset_opt(cf, &args[n++], "strip_prefix=",
                                         strip)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_http_oauth_preset_line(cf, pc, args, n) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "NAME=VALUE", an option of a preset's line, in the temporary pool */

static ngx_int_t
ngx_http_oauth_preset_opt(ngx_conf_t *cf, ngx_str_t *arg, const char *name,
    const ngx_oauth_str_t *value)
{
    size_t  len;

    len = ngx_strlen(name);

    arg->len = len + value->len;
    arg->data = ngx_pnalloc(cf->temp_pool, arg->len + 1);
    if (arg->data == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(ngx_cpymem(arg->data, name, len), value->data, value->len)
        = '\0';

    return NGX_OK;
}


/* a field the block keeps under the same name is the block's */

static ngx_int_t
ngx_http_oauth_preset_keep_fields(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e)
{
    size_t                     i;
    ngx_str_t                  args[3];
    ngx_oauth_catalog_keep_t  *kf;

    for (i = 0; i < e->nkeep_token_fields; i++) {
        kf = &e->keep_token_fields[i];

        if (ngx_http_oauth_list_has(ngx_http_oauth_preset_list(cf, pc),
                                    offsetof(ngx_http_oauth_keep_field_t, as),
                                    kf->as.data, kf->as.len))
        {
            continue;
        }

        ngx_http_oauth_preset_arg(&args[0], &kf->path);
        ngx_str_set(&args[1], "as");
        ngx_http_oauth_preset_arg(&args[2], &kf->as);

        if (ngx_http_oauth_preset_line(cf, pc, args, 3) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the block's connection params replace all of the preset's */

static ngx_int_t
ngx_http_oauth_preset_conn_params(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e)
{
    size_t                      i;
    ngx_str_t                   args[4];
    ngx_uint_t                  n;
    ngx_oauth_catalog_param_t  *cp;

    if (ngx_http_oauth_preset_list(cf, pc) != NULL) {
        return NGX_OK;
    }

    for (i = 0; i < e->nconnection_params; i++) {
        cp = &e->connection_params[i];

        ngx_http_oauth_preset_arg(&args[0], &cp->name);
        n = 1;

        if (cp->required) {
            ngx_str_set(&args[n], "required");
            n++;
        }

        if (cp->pattern.len) {
            args[n].len = sizeof("pattern=") - 1 + cp->pattern.len;
            args[n].data = ngx_pnalloc(cf->temp_pool, args[n].len);
            if (args[n].data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(ngx_cpymem(args[n].data, "pattern=",
                                  sizeof("pattern=") - 1),
                       cp->pattern.data, cp->pattern.len);
            n++;
        }

        if (cp->strip_suffix.data) {
            args[n].len = sizeof("strip_suffix=") - 1 + cp->strip_suffix.len;
            args[n].data = ngx_pnalloc(cf->temp_pool, args[n].len);
            if (args[n].data == NULL) {
                return NGX_ERROR;
            }

            ngx_memcpy(ngx_cpymem(args[n].data, "strip_suffix=",
                                  sizeof("strip_suffix=") - 1),
                       cp->strip_suffix.data, cp->strip_suffix.len);
            n++;
        }

        if (ngx_http_oauth_preset_line(cf, pc, args, n) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a preset's lookups: each a line of arguments; the block's name wins */

static ngx_int_t
ngx_http_oauth_preset_lookups(ngx_conf_t *cf,
    ngx_http_oauth_provider_cmd_t *pc, const ngx_oauth_catalog_entry_t *e)
{
    size_t                           i, k;
    ngx_str_t                        args[8];
    const ngx_oauth_catalog_line_t  *line;

    for (i = 0; i < e->nlookups; i++) {
        line = &e->lookups[i];

        if (line->nargs > sizeof(args) / sizeof(ngx_str_t)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "a lookup of the preset has too many "
                               "arguments");
            return NGX_ERROR;
        }

        if (ngx_http_oauth_list_has(ngx_http_oauth_preset_list(cf, pc),
                                    offsetof(ngx_http_oauth_lookup_t, name),
                                    line->args[0].data, line->args[0].len))
        {
            continue;
        }

        for (k = 0; k < line->nargs; k++) {
            ngx_http_oauth_preset_arg(&args[k], &line->args[k]);
        }

        if (ngx_http_oauth_preset_line(cf, pc, args, line->nargs) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* whether the list has an element whose ngx_str_t at off is name */

static ngx_uint_t
ngx_http_oauth_list_has(ngx_array_t *list, size_t off, u_char *name,
    size_t len)
{
    u_char      *elt;
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (list == NULL || list == NGX_CONF_UNSET_PTR) {
        return 0;
    }

    elt = list->elts;

    for (i = 0; i < list->nelts; i++, elt += list->size) {
        s = (ngx_str_t *) (elt + off);

        if (s->len == len && ngx_strncmp(s->data, name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* an element more in one of the provider's lists, created at need */

static void *
ngx_http_oauth_provider_push(ngx_conf_t *cf, ngx_array_t **list, size_t size)
{
    if (*list == NULL || *list == NGX_CONF_UNSET_PTR) {
        *list = ngx_array_create(cf->pool, 2, size);
        if (*list == NULL) {
            return NULL;
        }
    }

    return ngx_array_push(*list);
}


/*
 * What the preset asks of the block, before its values come in: the
 * lines the operator must write ("requires": "user_agent" for Reddit,
 * "scope" for Slack, "authorization_param:NAME" for the SP-API's
 * application_id), said at "nginx -t" rather than at the first connect;
 * a "token_header" of the preset's name without the preset's prefix; and
 * the scopes the module itself needs ("scope_required"), which stay asked
 * for when the block's "scope" replaces the preset's.
 */

static ngx_int_t
ngx_http_oauth_preset_block(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    const ngx_oauth_catalog_entry_t *e)
{
    size_t            i;
    ngx_str_t        *s;
    ngx_uint_t        found;
    ngx_oauth_str_t  *need;

    for (i = 0; i < e->nrequires; i++) {
        need = &e->requires[i];

        if (ngx_strcmp(need->data, "user_agent") == 0) {
            found = (p->user_agent.data != NULL);

        } else if (ngx_strcmp(need->data, "scope") == 0) {
            found = (p->scopes != NULL && p->scopes->nelts > 0);

        } else if (ngx_strncmp(need->data, "authorization_param:",
                               sizeof("authorization_param:") - 1)
                   == 0)
        {
            found = ngx_http_oauth_list_has(p->authorization_params,
                        offsetof(ngx_keyval_t, key),
                        need->data + sizeof("authorization_param:") - 1,
                        need->len - (sizeof("authorization_param:") - 1));

        } else {
            found = 1;
        }

        if (!found) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: preset \"%V\" "
                          "needs \"%s\" in the block", &p->name, p->file,
                          p->line, &p->preset, need->data);
            return NGX_ERROR;
        }
    }

    if (p->token_header.data && !p->token_prefix_set && e->token_header_set
        && e->token_prefix.len
        && e->token_header.len == p->token_header.len
        && ngx_strncasecmp(p->token_header.data, e->token_header.data,
                           p->token_header.len)
           == 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: \"token_header %V\" "
                      "has no prefix, but preset \"%V\" sends \"%s\" before "
                      "the token: write token_header %V \"%s\"; (or \"\" for "
                      "none)", &p->name, p->file, p->line, &p->token_header,
                      &p->preset, e->token_prefix.data, &p->token_header,
                      e->token_prefix.data);
        return NGX_ERROR;
    }

    for (i = 0; p->scopes && i < e->nscope_required; i++) {
        if (ngx_http_oauth_list_has(p->scopes, 0, e->scope_required[i].data,
                                    e->scope_required[i].len))
        {
            continue;
        }

        s = ngx_array_push(p->scopes);
        if (s == NULL) {
            return NGX_ERROR;
        }

        s->len = e->scope_required[i].len;
        s->data = ngx_pnalloc(cf->pool, s->len + 1);
        if (s->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(s->data, e->scope_required[i].data, s->len + 1);
    }

    return NGX_OK;
}


/* "NAME off" lines have done their work: they are not sent */

static void
ngx_http_oauth_pairs_off(ngx_array_t *list)
{
    ngx_uint_t              i, n;
    ngx_http_oauth_pair_t  *pair;

    if (list == NULL) {
        return;
    }

    pair = list->elts;
    n = 0;

    for (i = 0; i < list->nelts; i++) {
        if (pair[i].value.len == 3
            && ngx_strncmp(pair[i].value.data, "off", 3) == 0)
        {
            continue;
        }

        pair[n++] = pair[i];
    }

    list->nelts = n;
}


static void
ngx_http_oauth_pattern_cleanup(void *data)
{
    ngx_oauth_pattern_free(data);
}


/*
 * connection_param patterns are POSIX EREs compiled once, here, and freed
 * with the configuration; one that does not compile must fail "nginx -t".
 * With p NULL the error is about the directive being parsed, else about a
 * pattern a preset gave.
 */

static ngx_int_t
ngx_http_oauth_pattern_check(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    ngx_http_oauth_conn_param_t *cp)
{
    int                  rc;
    char                 err[128];
    u_char              *c;
    ngx_pool_cleanup_t  *cln;

    if (cp->compiled) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    c = ngx_pnalloc(cf->pool, cp->pattern.len + 1);
    if (c == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(c, cp->pattern.data, cp->pattern.len);
    c[cp->pattern.len] = '\0';

    cp->pattern.data = c;

    err[0] = '\0';

    if (cp->pattern.len) {
        rc = ngx_oauth_pattern_compile(&cp->compiled, (const char *) c, err,
                                       sizeof(err));

        if (rc == NGX_OAUTH_OK) {
            cln->handler = ngx_http_oauth_pattern_cleanup;
            cln->data = cp->compiled;
            return NGX_OK;
        }

        cp->compiled = NULL;

        if (rc != NGX_OAUTH_INVALID) {
            return NGX_ERROR;
        }

    } else {
        ngx_cpystrn((u_char *) err, (u_char *) "empty pattern", sizeof(err));
    }

    if (p == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid pattern \"%V\" in \"connection_param\" "
                           "\"%V\": %s", &cp->pattern, &cp->name, err);

    } else {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "invalid pattern \"%V\" of \"connection_param\" "
                      "\"%V\" in oauth_provider \"%V\" in %s:%ui: %s",
                      &cp->pattern, &cp->name, &p->name, p->file, p->line,
                      err);
    }

    return NGX_ERROR;
}


/*
 * The {NAME} placeholders of a URL template must name something the
 * module will have when it expands the URL, or every flow would fail at
 * request time: at start only connection params exist; the token and
 * userinfo calls also have the params kept from the callback; revocation
 * and the API base URL also have the fields kept from the token response.
 */

#define NGX_HTTP_OAUTH_PH_START     0
#define NGX_HTTP_OAUTH_PH_CALLBACK  1
#define NGX_HTTP_OAUTH_PH_STORED    2

/*
 * A placeholder in the host of an endpoint chooses where the client secret,
 * the code and the PKCE verifier go.  It is allowed only as the leftmost
 * label in front of a fixed suffix of at least two labels
 * ("{shop}.myshopify.com"): whatever the value, the host stays under the
 * suffix.  Anywhere else in the authority (the whole host, a port) only a
 * connection_param whose pattern the operator wrote may fill it.
 */

static ngx_int_t
ngx_http_oauth_host_suffix(u_char *name, u_char *close, u_char *host_end)
{
    u_char      *c;
    ngx_uint_t   labels, len;

    if (*(name - 2) != '/' || close + 1 >= host_end || close[1] != '.') {
        return 0;
    }

    labels = 0;
    len = 0;

    for (c = close + 2; c < host_end; c++) {
        if (*c == '.') {
            if (len == 0) {
                return 0;
            }

            labels++;
            len = 0;
            continue;
        }

        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
              || (*c >= '0' && *c <= '9') || *c == '-'))
        {
            return 0;
        }

        len++;
    }

    if (len) {
        labels++;
    }

    return labels >= 2 && len > 0;
}


static ngx_int_t
ngx_http_oauth_placeholders(ngx_conf_t *cf, ngx_http_oauth_provider_t *p,
    const char *what, ngx_str_t *url, ngx_uint_t scope)
{
    u_char                       *c, *end, *name, *host, *host_end;
    size_t                        len;
    ngx_uint_t                    i, found, conn, in_host, fixed;
    ngx_http_oauth_conn_param_t  *cp, *kept;

    end = url->data + url->len;

    /* the authority: from after "://" to the first "/", "?" or "#" */

    host = ngx_strlcasestrn(url->data, end, (u_char *) "://", 3 - 1);
    host = host ? host + 3 : end;

    for (host_end = host; host_end < end; host_end++) {
        if (*host_end == '/' || *host_end == '?' || *host_end == '#') {
            break;
        }
    }

    for (c = url->data; c < end; c++) {

        if (*c != '{') {
            continue;
        }

        name = c + 1;

        for (c = name; c < end && *c != '}'; c++) { /* void */ }

        len = c - name;

        /* the client's own id: GitHub's DELETE /applications/{client_id} */

        found = (len == sizeof("client_id") - 1
                 && ngx_strncmp(name, "client_id", len) == 0);

        in_host = (name > host && name < host_end);
        fixed = in_host && ngx_http_oauth_host_suffix(name, c, host_end);

        if (p->connection_params) {
            cp = p->connection_params->elts;

            for (i = 0; !found && i < p->connection_params->nelts; i++) {
                found = (cp[i].name.len == len
                         && ngx_strncmp(cp[i].name.data, name, len) == 0);

                if (found && in_host && !fixed && !cp[i].explicit_pattern) {
                    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                                  "oauth_provider \"%V\" in %s:%ui: \"%s\" "
                                  "lets \"{%*s}\" choose the host: put it "
                                  "in front of a fixed domain "
                                  "(\"{%*s}.example.com\") or give the "
                                  "connection_param a pattern= that allows "
                                  "only your hosts", &p->name, p->file,
                                  p->line, what, len, name, len, name);
                    return NGX_ERROR;
                }
            }
        }

        conn = found;

        /*
         * a kept callback value in the host (Zoho's accounts server) only
         * with the operator's pattern, which lists the hosts it may be
         */

        kept = found ? NULL
                     : ngx_http_oauth_kept_param(p, scope, name, len);

        found = found || kept != NULL
                || (scope >= NGX_HTTP_OAUTH_PH_STORED
                    && ngx_http_oauth_list_has(p->keep_token_fields,
                           offsetof(ngx_http_oauth_keep_field_t, as),
                           name, len))
                || (scope >= NGX_HTTP_OAUTH_PH_STORED
                    && ngx_http_oauth_lookup_has(p, name, len));

        if (found && !conn && in_host
            && (kept == NULL || !kept->explicit_pattern))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"%s\" uses "
                          "\"{%*s}\" in the host: only a connection_param "
                          "may choose a host, or a keep_callback_param "
                          "whose pattern= allows only the provider's "
                          "hosts; never a token field",
                          &p->name, p->file, p->line, what, len, name);
            return NGX_ERROR;
        }

        if (!found) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"%s\" uses "
                          "\"{%*s}\", which is not a %s", &p->name, p->file,
                          p->line, what, len, name,
                          scope == NGX_HTTP_OAUTH_PH_START
                          ? "connection_param"
                          : scope == NGX_HTTP_OAUTH_PH_CALLBACK
                          ? "connection_param or keep_callback_param"
                          : "connection_param, keep_callback_param, "
                            "keep_token_field or lookup");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * token_encoding: the token and refresh requests as a form (RFC 6749) or
 * as a JSON object of the same fields (Notion and Atlassian document
 * only JSON).  A token_body template says its own encoding.
 */

static ngx_int_t
ngx_http_oauth_provider_encoding(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    if (p->token_encoding.len == 0
        || ngx_strcmp(p->token_encoding.data, "form") == 0)
    {
        return NGX_OK;
    }

    if (ngx_strcmp(p->token_encoding.data, "json") != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: invalid "
                      "\"token_encoding\" \"%V\" (form or json)",
                      &p->name, p->file, p->line, &p->token_encoding);
        return NGX_ERROR;
    }

    p->token_json = 1;

    return NGX_OK;
}


/*
 * token_grant: authorization_code (the default), or client_credentials
 * (Wix apps: the callback brings no code, only the site's instance id,
 * and the app's own credentials get the token).  With no refresh token
 * to spend, a refresh repeats that request: refresh_url defaults to
 * token_url, so that the refresh paths see a provider's own refresh.
 */

static ngx_int_t
ngx_http_oauth_provider_grant(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    if (ngx_http_oauth_provider_encoding(cf, p) != NGX_OK) {
        return NGX_ERROR;
    }

    if (p->token_grant.len == 0
        || ngx_strcmp(p->token_grant.data, "authorization_code") == 0)
    {
        if (p->token_body.len) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: \"token_body\" "
                          "needs \"token_grant client_credentials\"",
                          &p->name, p->file, p->line);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_strcmp(p->token_grant.data, "client_credentials") != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: invalid "
                      "\"token_grant\" \"%V\"", &p->name, p->file, p->line,
                      &p->token_grant);
        return NGX_ERROR;
    }

    if (p->exchange_url.len || p->code_param.len) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: \"token_grant "
                      "client_credentials\" has no code to exchange: no "
                      "\"code_param\" or \"exchange_url\"",
                      &p->name, p->file, p->line);
        return NGX_ERROR;
    }

    p->client_credentials = 1;

    if (p->refresh_url.len == 0) {
        p->refresh_url = p->token_url;
    }

    return NGX_OK;
}


/* the keep_callback_param NAME, if the URL's scope has callback values */

static ngx_http_oauth_conn_param_t *
ngx_http_oauth_kept_param(ngx_http_oauth_provider_t *p, ngx_uint_t scope,
    u_char *name, size_t len)
{
    ngx_uint_t                    i;
    ngx_http_oauth_conn_param_t  *kp;

    if (scope < NGX_HTTP_OAUTH_PH_CALLBACK || p->keep_callback_params == NULL
        || p->keep_callback_params == NGX_CONF_UNSET_PTR)
    {
        return NULL;
    }

    kp = p->keep_callback_params->elts;

    for (i = 0; i < p->keep_callback_params->nelts; i++) {
        if (kp[i].name.len == len
            && ngx_strncmp(kp[i].name.data, name, len) == 0)
        {
            return &kp[i];
        }
    }

    return NULL;
}


/*
 * The quirk fields: names that go into requests are plain tokens, the
 * revocation style is one the module knows, and an account taken from a
 * callback parameter is a kept one.
 */

static ngx_int_t
ngx_http_oauth_provider_quirks(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    u_char                       *c;
    ngx_str_t                    *s, name;
    ngx_uint_t                    i, k;
    const char                   *bad;
    ngx_http_oauth_pair_t        *h;
    ngx_http_oauth_conn_param_t  *kp;

    bad = NULL;

    for (i = 0; bad == NULL && i < 3; i++) {
        s = (i == 0) ? &p->code_param
            : (i == 1) ? &p->client_id_param : &p->revocation_method;

        for (k = 0; k < s->len; k++) {
            if (!(ngx_http_oauth_isalnum(s->data[k]) || s->data[k] == '_'
                  || s->data[k] == '-' || s->data[k] == '.'))
            {
                bad = (i == 0) ? "code_param"
                      : (i == 1) ? "client_id_param" : "revocation_method";
                break;
            }
        }
    }

    for (c = p->user_agent.data;
         bad == NULL && c && c < p->user_agent.data + p->user_agent.len;
         c++)
    {
        if (*c < 0x20 || *c == 0x7f) {
            bad = "user_agent";
        }
    }

    if (p->callback_hmac.len
        && ngx_strcmp(p->callback_hmac.data, "shopify") != 0)
    {
        bad = "callback_hmac";
    }

    if (bad == NULL && p->revocation_auth.len
        && ngx_strcmp(p->revocation_auth.data, "client") != 0
        && ngx_strcmp(p->revocation_auth.data, "basic") != 0
        && ngx_strcmp(p->revocation_auth.data, "bearer") != 0
        && ngx_strcmp(p->revocation_auth.data, "secret") != 0
        && ngx_strcmp(p->revocation_auth.data, "none") != 0)
    {
        bad = "revocation_auth";
    }

    if (p->token_headers) {
        h = p->token_headers->elts;

        for (i = 0; bad == NULL && i < p->token_headers->nelts; i++) {
            for (k = 0; k < h[i].name.len; k++) {
                if (!(ngx_http_oauth_isalnum(h[i].name.data[k])
                      || h[i].name.data[k] == '-' || h[i].name.data[k] == '_'
                      || h[i].name.data[k] == '.'))
                {
                    bad = "token_header_param";
                    break;
                }
            }
        }
    }

    if (bad) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: invalid \"%s\"",
                      &p->name, p->file, p->line, bad);
        return NGX_ERROR;
    }

    if (p->client_id_param.data == NULL) {
        ngx_str_set(&p->client_id_param, "client_id");
    }

    /* "account_id callback:realmId": the parameter must be kept */

    if (p->account_id.len > sizeof("callback:") - 1
        && ngx_strncmp(p->account_id.data, "callback:",
                       sizeof("callback:") - 1)
           == 0)
    {
        name.data = p->account_id.data + sizeof("callback:") - 1;
        name.len = p->account_id.len - (sizeof("callback:") - 1);

        if (ngx_http_oauth_list_has(p->keep_callback_params, 0, name.data,
                                    name.len))
        {
            return NGX_OK;
        }

        kp = ngx_http_oauth_provider_push(cf, &p->keep_callback_params,
                                    sizeof(ngx_http_oauth_conn_param_t));
        if (kp == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(kp, sizeof(ngx_http_oauth_conn_param_t));
        kp->name = name;
    }

    return NGX_OK;
}


/* what neither the block nor the preset gave */

static void
ngx_http_oauth_provider_defaults(ngx_http_oauth_provider_t *p)
{
    ngx_conf_init_uint_value(p->kind, NGX_OAUTH_KIND_OAUTH2);
    ngx_conf_init_value(p->pkce, 1);
    ngx_conf_init_value(p->refresh, 1);
    ngx_conf_init_value(p->allow_private_hosts, 0);
    ngx_conf_init_value(p->aws_unsigned_payload, 0);
    ngx_conf_init_uint_value(p->token_auth, NGX_HTTP_OAUTH_TOKEN_AUTH_BASIC);
    ngx_conf_init_uint_value(p->refresh_token_auth, p->token_auth);
    ngx_conf_init_ptr_value(p->keep_callback_params, NULL);
    ngx_conf_init_ptr_value(p->token_types, NULL);

    if (p->display_name.data == NULL) {
        p->display_name = p->name;
    }

    if (p->scope_separator.data == NULL) {
        ngx_str_set(&p->scope_separator, " ");
    }

    if (p->token_header.data == NULL) {
        ngx_str_set(&p->token_header, "Authorization");
    }

    if (p->token_prefix_set) {
        return;
    }

    if (p->kind == NGX_OAUTH_KIND_BASIC) {
        ngx_str_set(&p->token_prefix, "Basic ");

    } else if (p->kind == NGX_OAUTH_KIND_OAUTH2
               || (p->kind == NGX_OAUTH_KIND_API_KEY
                   && p->token_header.len == sizeof("Authorization") - 1
                   && ngx_strncasecmp(p->token_header.data,
                                      (u_char *) "Authorization",
                                      p->token_header.len)
                      == 0))
    {
        /* an API key in Authorization is a bearer credential */

        ngx_str_set(&p->token_prefix, "Bearer ");

    } else {
        ngx_str_set(&p->token_prefix, "");
    }
}


/*
 * The whole provider, block and preset together.  Every endpoint was
 * checked by its directive's setter; the {NAME} placeholders need the
 * connection and kept params, which are known only now.
 */

static ngx_int_t
ngx_http_oauth_provider_check(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    ngx_uint_t                    i;
    const char                   *what;
    ngx_http_oauth_conn_param_t  *cp;

    ngx_http_oauth_provider_defaults(p);

    ngx_http_oauth_pairs_off(p->authorization_params);
    ngx_http_oauth_pairs_off(p->token_params);
    ngx_http_oauth_pairs_off(p->token_headers);
    ngx_http_oauth_pairs_off(p->api_headers);

    if (ngx_http_oauth_provider_quirks(cf, p) != NGX_OK
        || ngx_http_oauth_provider_grant(cf, p) != NGX_OK
        || ngx_http_oauth_lookup_check(cf, p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (p->connection_params) {
        cp = p->connection_params->elts;

        for (i = 0; i < p->connection_params->nelts; i++) {
            if (cp[i].pattern.len == 0) {
                ngx_str_set(&cp[i].pattern, "^[A-Za-z0-9._-]{1,128}$");

            } else {
                cp[i].explicit_pattern = 1;
            }

            if (ngx_http_oauth_pattern_check(cf, p, &cp[i]) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    if (p->kind == NGX_OAUTH_KIND_OAUTH2) {
        what = p->client_id.data == NULL ? "client_id"
               : p->redirect_uri.data == NULL ? "redirect_uri"
               : p->authorization_url.data == NULL ? "authorization_url"
               : p->token_url.data == NULL ? "token_url"
               : p->account_id.data == NULL ? "account_id"
               : NULL;

        if (what) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui needs \"%s\"",
                          &p->name, p->file, p->line, what);
            return NGX_ERROR;
        }

        if (p->client_secret.data == NULL) {
            ngx_str_set(&p->client_secret, "");
        }
    }

    if (p->kind == NGX_OAUTH_KIND_AWS_SIGV4
        && ngx_http_oauth_provider_aws(cf, p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if ((p->authorization_url.data
         && ngx_http_oauth_placeholders(cf, p, "authorization_url",
                                        &p->authorization_url,
                                        NGX_HTTP_OAUTH_PH_START)
            != NGX_OK)
        || (p->token_url.data
            && ngx_http_oauth_placeholders(cf, p, "token_url", &p->token_url,
                                           NGX_HTTP_OAUTH_PH_CALLBACK)
               != NGX_OK)
        || (p->userinfo_url.data
            && ngx_http_oauth_placeholders(cf, p, "userinfo_url",
                                           &p->userinfo_url,
                                           NGX_HTTP_OAUTH_PH_CALLBACK)
               != NGX_OK)
        || (p->revocation_url.data
            && ngx_http_oauth_placeholders(cf, p, "revocation_url",
                                           &p->revocation_url,
                                           NGX_HTTP_OAUTH_PH_STORED)
               != NGX_OK)
        || (p->api_base_url.data
            && ngx_http_oauth_placeholders(cf, p, "api_base_url",
                                           &p->api_base_url,
                                           NGX_HTTP_OAUTH_PH_STORED)
               != NGX_OK)
        || ngx_http_oauth_provider_api(cf, p) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Headers that say where and how the request travels are proxy_pass's:
 * an api_header of one of them would send a second, conflicting line.
 */

static ngx_uint_t
ngx_http_oauth_api_header_framing(ngx_str_t *name)
{
    ngx_uint_t  i;

    static ngx_str_t  framing[] = {
        ngx_string("host"), ngx_string("connection"),
        ngx_string("content-length"), ngx_string("transfer-encoding"),
        ngx_string("te"), ngx_string("upgrade"), ngx_string("keep-alive")
    };

    for (i = 0; i < sizeof(framing) / sizeof(ngx_str_t); i++) {
        if (name->len == framing[i].len
            && ngx_strncasecmp(name->data, framing[i].data, name->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The lookups' URLs take the values kept at the callback, which passed
 * their patterns; api_header lines are plain names, at most as many as
 * oauth_token has room for, their values templates of kept params.
 */

static ngx_int_t
ngx_http_oauth_provider_api(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    ngx_uint_t                i, k;
    ngx_http_oauth_pair_t    *h;
    ngx_http_oauth_lookup_t  *lk;

    for (i = 0; p->lookups && i < p->lookups->nelts; i++) {
        lk = p->lookups->elts;

        if (ngx_http_oauth_placeholders(cf, p, "lookup", &lk[i].url,
                                        NGX_HTTP_OAUTH_PH_CALLBACK)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (p->api_headers == NULL || p->api_headers->nelts == 0) {
        return NGX_OK;
    }

    if (p->kind == NGX_OAUTH_KIND_AWS_SIGV4
        || p->api_headers->nelts > NGX_HTTP_OAUTH_API_HEADERS)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: at most %d "
                      "\"api_header\" lines, and none with kind aws_sigv4",
                      &p->name, p->file, p->line,
                      NGX_HTTP_OAUTH_API_HEADERS);
        return NGX_ERROR;
    }

    h = p->api_headers->elts;

    for (i = 0; i < p->api_headers->nelts; i++) {
        for (k = 0; k < h[i].name.len; k++) {
            if (!(ngx_http_oauth_isalnum(h[i].name.data[k])
                  || h[i].name.data[k] == '-' || h[i].name.data[k] == '_'
                  || h[i].name.data[k] == '.'))
            {
                break;
            }
        }

        if (k < h[i].name.len || ngx_http_oauth_api_header_framing(&h[i].name)
            || (h[i].name.len == p->token_header.len
                && ngx_strncasecmp(h[i].name.data, p->token_header.data,
                                   h[i].name.len)
                   == 0)
            || ngx_http_oauth_has_control(h[i].value.data, h[i].value.len))
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "oauth_provider \"%V\" in %s:%ui: invalid "
                          "\"api_header %V\" (a plain name other than "
                          "token_header's and the framing headers Host, "
                          "Connection, Content-Length, Transfer-Encoding, "
                          "TE, Upgrade, Keep-Alive; a value without "
                          "control characters)", &p->name, p->file, p->line,
                          &h[i].name);
            return NGX_ERROR;
        }

        if (ngx_http_oauth_lookup_template_check(cf, p, "api_header",
                                                 &h[i].value, 1)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Kind aws_sigv4: the signature's scope, and the Host it covers, which
 * api_base_url gives (proxy_pass to it sends that Host).  The stored keys
 * go nowhere but into the signature: no userinfo call may carry them.
 */

static ngx_int_t
ngx_http_oauth_provider_aws(ngx_conf_t *cf, ngx_http_oauth_provider_t *p)
{
    const char  *what;

    what = p->aws_region.data == NULL ? "aws_region"
           : p->aws_service.data == NULL ? "aws_service"
           : p->api_base_url.data == NULL ? "api_base_url"
           : NULL;

    if (what) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: kind aws_sigv4 "
                      "needs \"%s\"", &p->name, p->file, p->line, what);
        return NGX_ERROR;
    }

    if (p->userinfo_url.data) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "oauth_provider \"%V\" in %s:%ui: kind aws_sigv4 "
                      "cannot have a \"userinfo_url\" (the keys only sign)",
                      &p->name, p->file, p->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_http_oauth_provider_t *
ngx_http_oauth_provider_find(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_oauth_provider_t  *p;

    p = omcf->providers.elts;

    for (i = 0; i < omcf->providers.nelts; i++) {
        if (p[i].name.len == name->len
            && ngx_strncmp(p[i].name.data, name->data, name->len) == 0)
        {
            return &p[i];
        }
    }

    return NULL;
}
