/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_HTTP_OAUTH_CIRCUIT_H_INCLUDED_
#define _NGX_HTTP_OAUTH_CIRCUIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_module.h"


/*
 * The per-provider circuit breaker, shared by the workers through the
 * store: oauth_circuit_breaker failures in a row open it for the reset
 * time; then one probe at a time is let through (half-open), and its
 * answer closes the circuit or opens it again.
 */

#define NGX_HTTP_OAUTH_CIRCUIT_CLOSED     0
#define NGX_HTTP_OAUTH_CIRCUIT_OPEN       1
#define NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN  2


/* NGX_HTTP_OAUTH_CIRCUIT_*, for the API and the metrics; never writes */
ngx_uint_t ngx_http_oauth_circuit_state(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider);

/*
 * Whether a call to the provider may go now.  When half-open, the one
 * call let through is the probe: *probe is set, and the caller ends it
 * with ngx_http_oauth_circuit_probe_done() (holder is the caller's lease
 * holder id, see ngx_oauth_store_lease_take()).
 */
ngx_uint_t ngx_http_oauth_circuit_allow(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, uint64_t holder, ngx_uint_t *probe);
void ngx_http_oauth_circuit_probe_done(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, uint64_t holder);

/* the provider answered (ok) or failed: counted by every worker at once */
void ngx_http_oauth_circuit_record(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_uint_t ok);

/*
 * In a fleet (oauth_shared_store) a circuit that opens or closes on one
 * node does so on every node: the change goes to oauth_circuits with a
 * NOTIFY on this channel, which ngx_http_oauth_shared.c hands to
 * _notified() (node: this node's id, to skip its own); a worker that
 * (re)connects calls _revalidate().  PostgreSQL away: per node.
 */

#define NGX_HTTP_OAUTH_CIRCUIT_CHANNEL  "oauth_circuit"

void ngx_http_oauth_circuit_notified(ngx_http_oauth_main_conf_t *omcf,
    const u_char *node, const char *payload);
void ngx_http_oauth_circuit_revalidate(ngx_http_oauth_main_conf_t *omcf);


#endif /* _NGX_HTTP_OAUTH_CIRCUIT_H_INCLUDED_ */
