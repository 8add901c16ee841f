/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_PG_H_INCLUDED_
#define _NGX_HTTP_OAUTH_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <libpq-fe.h>


/*
 * One PostgreSQL connection per worker, driven by libpq's asynchronous
 * API on nginx's events: queries wait in a queue and run one at a time,
 * each with a deadline; notifications go to one handler.  Nothing here
 * ever blocks the worker.
 */

#define NGX_HTTP_OAUTH_PG_PARAMS_MAX  10

/* query flags */
#define NGX_HTTP_OAUTH_PG_SETUP       0x01  /* runs before ready, at head */
#define NGX_HTTP_OAUTH_PG_QUEUE_DOWN  0x02  /* waits out a backoff */


typedef struct ngx_http_oauth_pg_query_s  ngx_http_oauth_pg_query_t;

/*
 * res is NULL on failure (err says why, never a secret); the handler
 * must not keep res, which is cleared after it returns.
 */
typedef void (*ngx_http_oauth_pg_done_pt)(void *data, PGresult *res,
    const char *err);
typedef void (*ngx_http_oauth_pg_notify_pt)(const char *channel,
    const char *payload, void *data);
/* the connection is up (again): issue SETUP queries, then call ready */
typedef void (*ngx_http_oauth_pg_up_pt)(void *data);


typedef struct {
    ngx_str_t                    conninfo;     /* null-terminated */
    ngx_msec_t                   timeout;      /* per query */
    ngx_http_oauth_pg_up_pt      up;
    ngx_http_oauth_pg_notify_pt  notify;
    void                        *data;
} ngx_http_oauth_pg_conf_t;


ngx_int_t ngx_http_oauth_pg_init_process(ngx_cycle_t *cycle,
    ngx_http_oauth_pg_conf_t *conf);
void ngx_http_oauth_pg_exit_process(ngx_cycle_t *cycle);

/* the SETUP queries are done: ordinary queries may run */
void ngx_http_oauth_pg_ready(void);

/* connected and set up */
ngx_uint_t ngx_http_oauth_pg_up(void);

/*
 * Queues a query with text parameters (values are copied; a NULL value
 * is SQL NULL; lens[i] < 0 takes strlen) and binary results.  NULL when
 * it cannot be queued: the store is down (backing off) or no memory; *err
 * says which.  Otherwise done runs later, from the event loop, exactly
 * once unless cancelled first.
 */
ngx_http_oauth_pg_query_t *ngx_http_oauth_pg_query(const char *sql,
    ngx_uint_t n, const u_char **values, const ssize_t *lens,
    ngx_uint_t flags, ngx_http_oauth_pg_done_pt done, void *data,
    const char **err);

/* done will not run; the query itself may still run to its end */
void ngx_http_oauth_pg_cancel(ngx_http_oauth_pg_query_t *q);

/*
 * At a worker's exit only, before ngx_http_oauth_pg_exit_process(), when
 * the worker serves nothing any more: one statement (values are
 * null-terminated text) is sent and waited for, the query on the wire
 * first, for at most timeout ms in all; the only place where this
 * module waits on PostgreSQL, bounded, so that an exit is never held up
 * for long.  NGX_OK when the statement ran.
 */
ngx_int_t ngx_http_oauth_pg_exit_query(const char *sql, ngx_uint_t n,
    const char **values, ngx_msec_t timeout);


#endif /* _NGX_HTTP_OAUTH_PG_H_INCLUDED_ */
