/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_SOCKET_H_INCLUDED_
#define _NGX_HTTP_OAUTH_SOCKET_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/*
 * nginx connections on sockets that a library opens and closes (libcurl
 * for outbound HTTP, libpq for PostgreSQL): nginx only watches them, so
 * that the library's I/O runs on the worker's event loop.
 */


/* level-triggered read and write interest as the library asks for it */
ngx_int_t ngx_http_oauth_socket_watch(ngx_connection_t *c, ngx_uint_t read,
    ngx_uint_t write);

/*
 * Gives the connection back without closing the descriptor, which is the
 * library's: not ngx_close_connection().
 */
void ngx_http_oauth_socket_release(ngx_connection_t *c);


#endif /* _NGX_HTTP_OAUTH_SOCKET_H_INCLUDED_ */
