/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_SHARED_H_INCLUDED_
#define _NGX_HTTP_OAUTH_SHARED_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"
#include "ngx_http_oauth_refresh.h"
#include "ngx_oauth_event.h"


/*
 * The fleet store (oauth_shared_store): PostgreSQL holds flows,
 * connections and refresh leases for every node; each node's LMDB store
 * is its cache.  Every function here returns at once: NGX_DECLINED when
 * there is no shared store (or nothing to do: go on as one node),
 * NGX_AGAIN when the answer comes later, NGX_BUSY when the shared store
 * is unavailable (the caller answers 503).
 */

typedef void (*ngx_http_oauth_shared_resume_pt)(ngx_http_request_t *r);


char *ngx_http_oauth_shared_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_oauth_shared_init_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf);
void ngx_http_oauth_shared_exit_process(ngx_cycle_t *cycle,
    ngx_http_oauth_main_conf_t *omcf);

/*
 * This node's id (NGX_HTTP_OAUTH_SHARED_NODE_LEN hex characters, the
 * same in every worker; NULL without a shared store): the notifications
 * a node sends carry it, so that it can tell its own.
 */
#define NGX_HTTP_OAUTH_SHARED_NODE_LEN  16

const u_char *ngx_http_oauth_shared_node(ngx_http_oauth_main_conf_t *omcf);

/* the 503 for NGX_BUSY */
ngx_int_t ngx_http_oauth_shared_unavailable(ngx_http_request_t *r);

/*
 * A start's flow goes to PostgreSQL instead of LMDB.  NGX_AGAIN: the
 * caller prepares its answer (status) and returns
 * ngx_http_oauth_shared_wait(r), which sends it once the flow is stored.
 */
ngx_int_t ngx_http_oauth_shared_flow_put(ngx_http_request_t *r,
    const char *state, size_t len, const ngx_oauth_flow_t *flow);
ngx_int_t ngx_http_oauth_shared_wait(ngx_http_request_t *r,
    ngx_int_t status);

/*
 * A callback's flow is taken from PostgreSQL (DELETE ... RETURNING) into
 * this node's LMDB; NGX_AGAIN: the callback handler runs again then.
 */
ngx_int_t ngx_http_oauth_shared_flow_take(ngx_http_request_t *r,
    const u_char *state, size_t len);

/*
 * oauth_token found nothing in the cache: the connections of owner and
 * provider (of account, when not NULL) are fetched into it, then the
 * phases run again.  NGX_DECLINED also when this request fetched once.
 */
ngx_int_t ngx_http_oauth_shared_miss(ngx_http_request_t *r,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);

/*
 * The management API is about to read the owner's connections: those
 * PostgreSQL has are fetched into the cache first.  NGX_AGAIN: the
 * request is held (its count taken) and resume(r) runs once they are
 * there, and must finalize it; NGX_BUSY: the caller answers with
 * ngx_http_oauth_shared_unavailable().  The database known down: the
 * cache as it is (NGX_DECLINED), or NGX_BUSY when strict.
 */
ngx_int_t ngx_http_oauth_shared_owner(ngx_http_request_t *r,
    const ngx_str_t *owner, ngx_uint_t strict,
    ngx_http_oauth_shared_resume_pt resume);

/* a connection was written to or deleted from this node's LMDB */
void ngx_http_oauth_shared_conn_saved(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn);
/* a new connect or credentials: replaces what PostgreSQL has */
void ngx_http_oauth_shared_conn_replaced(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_conn_t *conn);
void ngx_http_oauth_shared_conn_deleted(ngx_http_oauth_main_conf_t *omcf,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);

/*
 * The webhook event of the change: the next _conn_saved(), _replaced()
 * or _deleted() writes it into oauth_events in the same statement (so
 * the same transaction) as the change, and only if PostgreSQL takes the
 * change.  Set by ngx_http_oauth_webhook_conn_put() and _delete() just
 * before their caller reports the change here, which must be of the
 * event's connection; NULL clears it.
 */
void ngx_http_oauth_shared_event(const ngx_oauth_event_t *ev,
    const ngx_str_t *type, const ngx_str_t *body);

/*
 * Expired flows purged from PostgreSQL, by one worker of the fleet per
 * interval (seconds); from the housekeeping timer, never waits.
 */
void ngx_http_oauth_shared_flow_purge(ngx_http_oauth_main_conf_t *omcf,
    time_t interval);

/*
 * The fleet's refresh lease, after the node's: conn is the record read
 * under the node's lease (the refresh's pool frees it).  NGX_AGAIN: the
 * refresh steps again later (rf->wait), leased or having waited.
 */
ngx_int_t ngx_http_oauth_shared_lease(ngx_http_oauth_refresh_t *rf,
    ngx_oauth_conn_t *conn);
void ngx_http_oauth_shared_lease_drop(ngx_http_oauth_refresh_t *rf);


#endif /* _NGX_HTTP_OAUTH_SHARED_H_INCLUDED_ */
