/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_HOUSEKEEPING_H_INCLUDED_
#define _NGX_HTTP_OAUTH_HOUSEKEEPING_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * One timer per worker, from init_process: it purges expired flows,
 * watches the store file, and, with oauth_background_refresh, starts the
 * refreshes that are due.
 */
ngx_int_t ngx_http_oauth_housekeeping_init(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf);


#endif /* _NGX_HTTP_OAUTH_HOUSEKEEPING_H_INCLUDED_ */
