/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_API_H_INCLUDED_
#define _NGX_HTTP_OAUTH_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/* oauth_api: the content handler of the JSON management API */
ngx_int_t ngx_http_oauth_api_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_OAUTH_API_H_INCLUDED_ */
