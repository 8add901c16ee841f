/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_CATALOG_H_INCLUDED_
#define _NGX_OAUTH_CATALOG_H_INCLUDED_


#include "ngx_oauth_core.h"


/* ngx_oauth_catalog_entry_t.token_auth */
#define NGX_OAUTH_TOKEN_AUTH_BASIC   0    /* client_secret_basic */
#define NGX_OAUTH_TOKEN_AUTH_POST    1    /* client_secret_post */

/* kind, token_auth, refresh_token_auth, pkce, refresh: not given */
#define NGX_OAUTH_CATALOG_UNSET      -1

/* the plain string fields: ngx_oauth_catalog_strs[] */
#define NGX_OAUTH_CATALOG_NSTRS      28


typedef struct ngx_oauth_catalog_s  ngx_oauth_catalog_t;


/*
 * connection_params[]: {"name": ..., "pattern": ..., "required": ...,
 * "strip_suffix": ...}
 */
typedef struct {
    ngx_oauth_str_t            name;
    ngx_oauth_str_t            pattern;       /* len 0: any value */
    ngx_oauth_str_t            strip_suffix;  /* data NULL: none */
    unsigned                   required;
} ngx_oauth_catalog_param_t;


/* keep_token_fields[]: {"path": ..., "as": ...}, "as" defaults to path */
typedef struct {
    ngx_oauth_str_t            path;
    ngx_oauth_str_t            as;
} ngx_oauth_catalog_keep_t;


/*
 * lookups[]: each an array of the arguments of a "lookup" line of the
 * block ("NAME", "URL", "PATH", "header=NAME:VALUE", "optional")
 */
typedef struct {
    size_t                     nargs;
    ngx_oauth_str_t           *args;
} ngx_oauth_catalog_line_t;


/*
 * One preset, validated.  Strings are NUL-terminated and live as long as
 * the catalog; an absent string has data NULL.
 */
typedef struct {
    ngx_oauth_str_t            name;        /* the preset's key */

    int                        kind;        /* NGX_OAUTH_KIND_* or UNSET */
    int                        token_auth;  /* NGX_OAUTH_TOKEN_AUTH_* */
    int                        refresh_token_auth;  /* or UNSET: as above */
    int                        pkce;        /* 0, 1 or UNSET */
    int                        refresh;     /* 0, 1 or UNSET */

    ngx_oauth_str_t            token_header;          /* "name" */
    ngx_oauth_str_t            token_prefix;          /* "prefix" */
    unsigned                   token_header_set;

    size_t                     nscopes;
    ngx_oauth_str_t           *scopes;
    size_t                     nauthorization_params;
    ngx_oauth_pair_t          *authorization_params;
    size_t                     ntoken_params;
    ngx_oauth_pair_t          *token_params;
    size_t                     nconnection_params;
    ngx_oauth_catalog_param_t *connection_params;
    size_t                     nkeep_callback_params;
    ngx_oauth_str_t           *keep_callback_params;
    ngx_oauth_str_t           *keep_callback_patterns;  /* len 0: none */
    ngx_oauth_str_t           *keep_callback_strips;    /* len 0: none */
    size_t                     nkeep_token_fields;
    ngx_oauth_catalog_keep_t  *keep_token_fields;
    size_t                     nrequires;
    ngx_oauth_str_t           *requires;
    size_t                     ntoken_types;
    ngx_oauth_str_t           *token_types;
    size_t                     nscope_required;
    ngx_oauth_str_t           *scope_required;
    size_t                     ntoken_headers;
    ngx_oauth_pair_t          *token_headers;
    size_t                     napi_headers;
    ngx_oauth_pair_t          *api_headers;
    size_t                     nlookups;
    ngx_oauth_catalog_line_t  *lookups;

    /* the plain string fields, in the order of ngx_oauth_catalog_strs */
    ngx_oauth_str_t            strs[NGX_OAUTH_CATALOG_NSTRS];
} ngx_oauth_catalog_entry_t;


/*
 * The JSON keys of the plain string fields of an entry, NULL-terminated:
 * the provider block's string directives of the same names.  A JSON
 * null there counts as absent.
 */
extern const char  *ngx_oauth_catalog_strs[NGX_OAUTH_CATALOG_NSTRS + 1];


/*
 * Parses a catalog text (a JSON object of presets) and validates every
 * entry: an unknown key, a value of the wrong type, an unknown "kind"
 * ("oauth2", "api_key", "basic", "header", "aws_sigv4") or "token_auth"
 * ("basic",
 * "post"), an empty name, a connection_param pattern that does not
 * compile: NGX_OAUTH_INVALID and a message in err naming the entry and
 * the key.  With *cat NULL a catalog is created; otherwise the entries of
 * text are added to it, replacing those of the same name (a site's own
 * catalog over the built-in one).  On error *cat is left as it was.
 */
int ngx_oauth_catalog_load(ngx_oauth_catalog_t **cat,
    const unsigned char *text, size_t len, char *err, size_t errlen);

/* NGX_OAUTH_NOT_FOUND when there is no preset of that name */
int ngx_oauth_catalog_get(const ngx_oauth_catalog_t *cat,
    const unsigned char *name, size_t len,
    const ngx_oauth_catalog_entry_t **entry);

size_t ngx_oauth_catalog_count(const ngx_oauth_catalog_t *cat);
const ngx_oauth_catalog_entry_t *ngx_oauth_catalog_at(
    const ngx_oauth_catalog_t *cat, size_t i);

/* the plain string field of that JSON key: NULL if absent or unknown */
const ngx_oauth_str_t *ngx_oauth_catalog_str(
    const ngx_oauth_catalog_entry_t *entry, const char *key);

void ngx_oauth_catalog_free(ngx_oauth_catalog_t *cat);


#endif /* _NGX_OAUTH_CATALOG_H_INCLUDED_ */
