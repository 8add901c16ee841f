/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_LOOKUP_H_INCLUDED_
#define _NGX_HTTP_OAUTH_LOOKUP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * Post-connect lookups: after the code exchange and the account lookup,
 * each "lookup" line of the provider GETs its URL with the new token and
 * keeps one value of the JSON answer as a connection param (Atlassian's
 * cloudId, an Amazon Ads profile, a Supabase project).
 */

/* err: NULL when every required lookup gave its value, else "lookup_failed" */
typedef void (*ngx_http_oauth_lookup_done_pt)(ngx_http_request_t *r,
    void *data, const char *err);

/*
 * "lookup NAME URL PATH [header=NAME:VALUE ...] [optional];" or
 * "lookup NAME off;" (a preset's lookup dropped), in oauth_provider;
 * conf is the provider.
 */
char *ngx_http_oauth_lookup_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * With the whole provider known: "off" lines dropped, every name apart
 * from the params kept otherwise, header templates naming only client_id
 * and kept params.  The URLs' placeholders are checked by the provider.
 */
ngx_int_t ngx_http_oauth_lookup_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p);

/*
 * Whether name is a value a lookup keeps (templates of api_header and
 * of the lookups may use it).
 */
ngx_uint_t ngx_http_oauth_lookup_has(ngx_http_oauth_provider_t *p,
    u_char *name, size_t len);

/*
 * The check of a header template (a lookup's header=, api_header): only
 * client_id and kept params, never a secret or a token.  stored 1: token
 * fields and lookups too, as they are there once connected.
 */
ngx_int_t ngx_http_oauth_lookup_template_check(ngx_conf_t *cf,
    ngx_http_oauth_provider_t *p, const char *what, ngx_str_t *tpl,
    ngx_uint_t stored);

/*
 * Runs p's lookups one after the other with token (the new access token),
 * each value found pushed onto kept (ngx_oauth_pair_t, in r's pool), then
 * calls done, maybe before this returns: call it from an event handler
 * (a fetch's).  The fetches live in r's pool: a request that goes away
 * cancels them, and done does not run.
 */
void ngx_http_oauth_lookup_run(ngx_http_request_t *r,
    ngx_http_oauth_provider_t *p, ngx_oauth_str_t *token, ngx_array_t *kept,
    ngx_http_oauth_lookup_done_pt done, void *data);


#endif /* _NGX_HTTP_OAUTH_LOOKUP_H_INCLUDED_ */
