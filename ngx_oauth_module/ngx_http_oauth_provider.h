/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_PROVIDER_H_INCLUDED_
#define _NGX_HTTP_OAUTH_PROVIDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/* the oauth_provider {} block: its own directive table */
char *ngx_http_oauth_provider_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* presets from the catalog, then every provider checked (init_main_conf) */
char *ngx_http_oauth_providers_init(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf);

/* the provider of this name, or NULL */
ngx_http_oauth_provider_t *ngx_http_oauth_provider_find(
    ngx_http_oauth_main_conf_t *omcf, ngx_str_t *name);


#endif /* _NGX_HTTP_OAUTH_PROVIDER_H_INCLUDED_ */
