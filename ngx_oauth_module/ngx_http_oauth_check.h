/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_CHECK_H_INCLUDED_
#define _NGX_HTTP_OAUTH_CHECK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * Mistakes that only show once the whole http block is read: a location
 * naming a provider that does not exist or cannot do what is asked, a
 * location without an owner, a redirect_uri no oauth_callback serves.
 * Each is said at "nginx -t" with the file:line of its directive.
 */


#define NGX_HTTP_OAUTH_USE_START     0
#define NGX_HTTP_OAUTH_USE_CALLBACK  1
#define NGX_HTTP_OAUTH_USE_TOKEN     2
#define NGX_HTTP_OAUTH_USE_API       3


/* a location directive, remembered with where it was written */
ngx_int_t ngx_http_oauth_check_note(ngx_conf_t *cf, ngx_uint_t use,
    ngx_http_complex_value_t *provider);

/* from postconfiguration: all locations are merged by then */
ngx_int_t ngx_http_oauth_check_locations(ngx_conf_t *cf,
    ngx_http_oauth_main_conf_t *omcf);


#endif /* _NGX_HTTP_OAUTH_CHECK_H_INCLUDED_ */
