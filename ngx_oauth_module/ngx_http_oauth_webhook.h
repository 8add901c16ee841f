/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_WEBHOOK_H_INCLUDED_
#define _NGX_HTTP_OAUTH_WEBHOOK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_oauth_event.h"


/* no event for this change */
#define NGX_HTTP_OAUTH_EVENT_NONE  -1


typedef struct ngx_http_oauth_webhook_s  ngx_http_oauth_webhook_t;

struct ngx_http_oauth_webhook_s {
    ngx_str_t                    url;
    ngx_str_t                    secret;     /* wiped with the config */
    ngx_uint_t                   events;     /* bit per NGX_OAUTH_EVENT_* */
    time_t                       retry;      /* how long an event is tried */
    ngx_uint_t                   max_events; /* the outbox cap */
    ngx_shm_zone_t              *zone;       /* counters */
};


/* oauth_webhook URL [secret_file=FILE] [events=LIST] ... */
char *ngx_http_oauth_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/*
 * ngx_oauth_store_conn_put() and _delete() that also write the event of
 * the change into the outbox, in the same transaction, when a webhook
 * wants that type; same return codes.
 */
int ngx_http_oauth_webhook_conn_put(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log, ngx_oauth_conn_t *conn, const uint64_t *expect,
    ngx_int_t type);
int ngx_http_oauth_webhook_conn_delete(ngx_http_oauth_main_conf_t *omcf,
    ngx_log_t *log, ngx_oauth_str_t *owner, ngx_oauth_str_t *provider,
    ngx_oauth_str_t *account);

/* PostgreSQL took a change with its event (oauth_shared_store) */
void ngx_http_oauth_webhook_written(ngx_http_oauth_main_conf_t *omcf);

/* the delivery timer of a worker, from init_process and exit_process */
ngx_int_t ngx_http_oauth_webhook_init_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf);
void ngx_http_oauth_webhook_exit_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf);

/* the webhook's lines of the metrics page, at most this long */
#define NGX_HTTP_OAUTH_WEBHOOK_METRICS_LEN  2048

u_char *ngx_http_oauth_webhook_metrics(ngx_http_oauth_main_conf_t *omcf,
    u_char *p);


#endif /* _NGX_HTTP_OAUTH_WEBHOOK_H_INCLUDED_ */
