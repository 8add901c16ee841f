/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_circuit.h"
#include "ngx_oauth_record.h"


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_str_t                   *provider;
    ngx_uint_t                   ok;
} ngx_http_oauth_circuit_ctx_t;


static ngx_int_t ngx_http_oauth_circuit_get(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_oauth_circuit_t *c, char *key);
static int ngx_http_oauth_circuit_update(unsigned char *buf, size_t *len,
    size_t size, void *data);


/*
 * The half-open probe is a lease too, taken in one write transaction, so
 * that only one worker gets it; its owner has a NUL, which no request's
 * owner has (nginx refuses NUL in headers), so no connection shares it.
 */

static u_char  ngx_http_oauth_probe_owner[] = {
    '\0', 'c', 'i', 'r', 'c', 'u', 'i', 't'
};

static ngx_oauth_str_t  ngx_http_oauth_probe_who = {
    sizeof(ngx_http_oauth_probe_owner), ngx_http_oauth_probe_owner
};

static ngx_oauth_str_t  ngx_http_oauth_probe_what = {
    sizeof("probe") - 1, (u_char *) "probe"
};


/*
 * The circuit lives in the store's meta database so that every worker,
 * and the workers of a new binary, see the same one.
 */

static ngx_int_t
ngx_http_oauth_circuit_get(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_oauth_circuit_t *c, char *key)
{
    int            rc;
    size_t         len;
    unsigned char  buf[NGX_OAUTH_CIRCUIT_SIZE];

    ngx_sprintf((u_char *) key, "circuit:%V%Z", provider);

    ngx_memzero(c, sizeof(ngx_oauth_circuit_t));

    if (omcf->store == NULL) {
        return NGX_ERROR;
    }

    len = sizeof(buf);

    rc = ngx_oauth_store_meta_get(omcf->store, key, buf, &len);

    /* a value that does not decode (an older raw struct) is closed */

    if (rc == NGX_OAUTH_OK) {
        (void) ngx_oauth_circuit_decode(buf, len, c);
    }

    return (rc == NGX_OAUTH_OK || rc == NGX_OAUTH_NOT_FOUND
            || rc == NGX_OAUTH_TOO_LARGE)
           ? NGX_OK : NGX_ERROR;
}


ngx_uint_t
ngx_http_oauth_circuit_state(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider)
{
    char                 key[NGX_OAUTH_PROVIDER_MAX + 16];
    ngx_oauth_circuit_t  c;

    if (ngx_http_oauth_circuit_get(omcf, provider, &c, key) != NGX_OK
        || c.failures < omcf->circuit_failures)
    {
        return NGX_HTTP_OAUTH_CIRCUIT_CLOSED;
    }

    if (ngx_time() < c.opened_at + omcf->circuit_reset) {
        return NGX_HTTP_OAUTH_CIRCUIT_OPEN;
    }

    return NGX_HTTP_OAUTH_CIRCUIT_HALF_OPEN;
}


ngx_uint_t
ngx_http_oauth_circuit_allow(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, uint64_t holder, ngx_uint_t *probe)
{
    char                 key[NGX_OAUTH_PROVIDER_MAX + 16];
    time_t               now, deadline;
    ngx_oauth_circuit_t  c;

    *probe = 0;

    if (ngx_http_oauth_circuit_get(omcf, provider, &c, key) != NGX_OK
        || c.failures < omcf->circuit_failures)
    {
        return 1;
    }

    now = ngx_time();

    if (now < c.opened_at + omcf->circuit_reset) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "oauth circuit: provider \"%V\": open, call refused",
                       provider);
        return 0;
    }

    /*
     * half-open: one probe at a time goes through; a probe whose worker
     * died frees the way when its lease runs out
     */

    deadline = now + (time_t) (omcf->http_timeout / 1000) + 1;

    if (ngx_oauth_store_lease_take(omcf->store, &ngx_http_oauth_probe_who,
                                   (ngx_oauth_str_t *) provider,
                                   &ngx_http_oauth_probe_what, holder, now,
                                   deadline)
        != NGX_OAUTH_OK)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "oauth circuit: provider \"%V\": half-open, "
                       "probe busy", provider);
        return 0;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "oauth circuit: provider \"%V\": half-open, probe taken",
                   provider);

    *probe = 1;

    return 1;
}


/* the probe's answer is recorded: the next one may go when half-open */

void
ngx_http_oauth_circuit_probe_done(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, uint64_t holder)
{
    if (omcf->store == NULL) {
        return;
    }

    (void) ngx_oauth_store_lease_drop(omcf->store, &ngx_http_oauth_probe_who,
                                      (ngx_oauth_str_t *) provider,
                                      &ngx_http_oauth_probe_what, holder);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "oauth circuit: provider \"%V\": probe done", provider);
}


/* runs inside the store's write transaction: no I/O but a log line */

static int
ngx_http_oauth_circuit_update(unsigned char *buf, size_t *len, size_t size,
    void *data)
{
    ngx_http_oauth_circuit_ctx_t *cc = data;

    ngx_oauth_circuit_t  c;

    /* absent, or not decodable (an older raw struct): closed */

    (void) ngx_oauth_circuit_decode(buf, *len, &c);

    if (cc->ok) {
        if (c.failures == 0) {
            return 0;           /* no write on the common path */
        }

        ngx_memzero(&c, sizeof(ngx_oauth_circuit_t));

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "oauth circuit: provider \"%V\": closed",
                       cc->provider);

    } else {
        c.failures++;

        if (c.failures >= cc->omcf->circuit_failures) {
            if (c.failures == cc->omcf->circuit_failures || c.opened_at == 0
                || ngx_time() >= c.opened_at + cc->omcf->circuit_reset)
            {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "oauth: provider \"%V\": circuit open after "
                              "%uD failures", cc->provider, c.failures);
            }

            c.opened_at = ngx_time();

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "oauth circuit: provider \"%V\": open, "
                           "%uD failures", cc->provider, c.failures);
        }
    }

    if (ngx_oauth_circuit_encode(&c, buf, size, len) != NGX_OAUTH_OK) {
        return NGX_OAUTH_TOO_LARGE;
    }

    return 1;
}


/*
 * Workers failing at the same moment each count: the read, the change
 * and the write are one transaction.
 */

void
ngx_http_oauth_circuit_record(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_uint_t ok)
{
    char                          key[NGX_OAUTH_PROVIDER_MAX + 16];
    ngx_oauth_circuit_t           c;
    ngx_http_oauth_circuit_ctx_t  cc;

    if (ngx_http_oauth_circuit_get(omcf, provider, &c, key) != NGX_OK) {
        return;
    }

    /* the common path: a success with nothing to reset reads only */

    if (ok && c.failures == 0) {
        return;
    }

    cc.omcf = omcf;
    cc.provider = provider;
    cc.ok = ok;

    if (ngx_oauth_store_meta_update(omcf->store, key,
                                    ngx_http_oauth_circuit_update, &cc)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "oauth: provider \"%V\": cannot record the circuit: %s",
                      provider, ngx_oauth_store_error(omcf->store));
    }
}
