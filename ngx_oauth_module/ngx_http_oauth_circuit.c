/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_oauth_circuit.h"
#include "ngx_http_oauth_pg.h"
#include "ngx_http_oauth_shared.h"
#include "ngx_oauth_record.h"


typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_str_t                   *provider;
    ngx_uint_t                   ok;
    ngx_uint_t                   changed;    /* opened or closed: shared */
    ngx_oauth_circuit_t          result;     /* what was written */
} ngx_http_oauth_circuit_ctx_t;


/* a circuit as another node made it, merged into this node's record */

typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_oauth_circuit_t          in;
    time_t                       at;         /* when it was made */
    ngx_uint_t                   changed;
} ngx_http_oauth_circuit_merge_t;


/*
 * The fleet's half-open probe as this node holds it: the store's meta
 * value "circuit-probe:" and the name, shared by the node's workers.
 */

typedef struct {
    int64_t                      granted_until;
    int64_t                      asked_until;
} ngx_http_oauth_circuit_grant_t;


/* a claim of the fleet's probe in flight */

typedef struct {
    ngx_http_oauth_main_conf_t  *omcf;
    ngx_str_t                    provider;
} ngx_http_oauth_circuit_claim_t;


static ngx_int_t ngx_http_oauth_circuit_get(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, ngx_oauth_circuit_t *c, char *key);
static int ngx_http_oauth_circuit_update(unsigned char *buf, size_t *len,
    size_t size, void *data);
static ngx_uint_t ngx_http_oauth_circuit_fleet_probe(
    ngx_http_oauth_main_conf_t *omcf, ngx_str_t *provider, time_t now);
static void ngx_http_oauth_circuit_claim_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_circuit_grant(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, time_t until);
static void ngx_http_oauth_circuit_share(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, const ngx_oauth_circuit_t *c);
static void ngx_http_oauth_circuit_share_done(void *data, PGresult *res,
    const char *err);
static void ngx_http_oauth_circuit_merge(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, const ngx_oauth_circuit_t *in, time_t at);
static int ngx_http_oauth_circuit_merge_update(unsigned char *buf,
    size_t *len, size_t size, void *data);
static void ngx_http_oauth_circuit_revalidate_done(void *data, PGresult *res,
    const char *err);
static ngx_int_t ngx_http_oauth_circuit_row(PGresult *res, int row,
    ngx_oauth_circuit_t *c);
static ngx_int_t ngx_http_oauth_circuit_unhex(u_char *dst, size_t size,
    const u_char *src, size_t len);


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
 * In a fleet a change of state goes to oauth_circuits and is notified
 * ("NODE FAILURES OPENED_AT AT HEX(provider)"); it ends the fleet's
 * probe (a row of oauth_leases with an empty owner, which no connection
 * has), so that the next half-open round can claim it again.
 */

static const char  ngx_http_oauth_circuit_share_sql[] =
    "WITH c AS (INSERT INTO oauth_circuits (provider, state) "
      "VALUES ($1::text, decode($2::text, 'hex')) "
      "ON CONFLICT (provider) DO UPDATE "
      "SET state = EXCLUDED.state, updated_at = now() RETURNING 1), "
    "l AS (DELETE FROM oauth_leases WHERE owner = '' "
      "AND provider = $1::text AND account = 'circuit-probe') "
    "SELECT pg_notify('" NGX_HTTP_OAUTH_CIRCUIT_CHANNEL "', $3::text) "
    "FROM c";

/* the half-open probe, once across the fleet: a row back, this node's */

static const char  ngx_http_oauth_circuit_claim_sql[] =
    "INSERT INTO oauth_leases "
      "(owner, provider, account, holder, lease_until) "
    "VALUES ('', $1::text, 'circuit-probe', $2::text, "
      "now() + $3::text::int * interval '1 s') "
    "ON CONFLICT (owner, provider, account) DO UPDATE "
    "SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until "
    "WHERE oauth_leases.lease_until < now() RETURNING 1";

static const char  ngx_http_oauth_circuit_revalidate_sql[] =
    "SELECT provider, encode(state, 'hex'), "
      "extract(epoch FROM updated_at)::bigint::text FROM oauth_circuits";


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

    if (!ngx_http_oauth_circuit_fleet_probe(omcf, provider, now)) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "oauth circuit: provider \"%V\": half-open, "
                       "the fleet's probe is not this node's", provider);
        return 0;
    }

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

    /* the next half-open round claims the fleet's probe again */

    if (omcf->shared) {
        ngx_http_oauth_circuit_grant(omcf, provider, 0);
    }

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

        cc->changed = (c.failures >= cc->omcf->circuit_failures);

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

                cc->changed = 1;
            }

            c.opened_at = ngx_time();

            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                           "oauth circuit: provider \"%V\": open, "
                           "%uD failures", cc->provider, c.failures);
        }
    }

    if (ngx_oauth_circuit_encode(&c, buf, size, len) != NGX_OAUTH_OK) {
        cc->changed = 0;
        return NGX_OAUTH_TOO_LARGE;
    }

    cc->result = c;

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
    cc.changed = 0;

    if (ngx_oauth_store_meta_update(omcf->store, key,
                                    ngx_http_oauth_circuit_update, &cc)
        != NGX_OAUTH_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "oauth: provider \"%V\": cannot record the circuit: %s",
                      provider, ngx_oauth_store_error(omcf->store));
        return;
    }

    /* opened or closed here: on every node of the fleet */

    if (cc.changed && omcf->shared) {
        ngx_http_oauth_circuit_share(omcf, provider, &cc.result);
    }
}


/*
 * Half-open in a fleet: the node that holds the fleet's probe lets its
 * probe through; the others answer as open.  A node without it asks
 * PostgreSQL once (its workers share the question through the store)
 * and answers as open meanwhile.  PostgreSQL away: per node.
 */

static ngx_uint_t
ngx_http_oauth_circuit_fleet_probe(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, time_t now)
{
    char                            key[NGX_OAUTH_PROVIDER_MAX + 16];
    u_char                          secs[NGX_INT_T_LEN];
    size_t                          len;
    ssize_t                         lens[3];
    const char                     *err;
    const u_char                   *values[3];
    ngx_http_oauth_circuit_claim_t *cl;
    ngx_http_oauth_circuit_grant_t  g;

    if (omcf->shared == NULL || !ngx_http_oauth_pg_up()) {
        return 1;
    }

    ngx_sprintf((u_char *) key, "circuit-probe:%V%Z", provider);

    len = sizeof(g);

    if (ngx_oauth_store_meta_get(omcf->store, key, (u_char *) &g, &len)
        != NGX_OAUTH_OK || len != sizeof(g))
    {
        ngx_memzero(&g, sizeof(g));
    }

    if (g.granted_until >= now) {
        return 1;
    }

    if (g.asked_until >= now) {
        return 0;
    }

    g.asked_until = now + (time_t) (omcf->http_timeout / 1000) + 1;

    if (ngx_oauth_store_meta_put(omcf->store, key, (u_char *) &g, sizeof(g))
        != NGX_OAUTH_OK)
    {
        return 0;
    }

    cl = ngx_alloc(sizeof(ngx_http_oauth_circuit_claim_t) + provider->len,
                   ngx_cycle->log);
    if (cl == NULL) {
        return 0;
    }

    cl->omcf = omcf;
    cl->provider.len = provider->len;
    cl->provider.data = (u_char *) cl + sizeof(ngx_http_oauth_circuit_claim_t);
    ngx_memcpy(cl->provider.data, provider->data, provider->len);

    values[0] = provider->data;
    lens[0] = provider->len;
    values[1] = ngx_http_oauth_shared_node(omcf);
    lens[1] = NGX_HTTP_OAUTH_SHARED_NODE_LEN;
    values[2] = secs;
    lens[2] = ngx_sprintf(secs, "%M", omcf->http_timeout / 1000 + 1) - secs;

    if (ngx_http_oauth_pg_query(ngx_http_oauth_circuit_claim_sql, 3, values,
                                lens, 0, ngx_http_oauth_circuit_claim_done,
                                cl, &err)
        == NULL)
    {
        ngx_free(cl);
    }

    return 0;
}


static void
ngx_http_oauth_circuit_claim_done(void *data, PGresult *res, const char *err)
{
    ngx_http_oauth_circuit_claim_t *cl = data;

    ngx_http_oauth_main_conf_t  *omcf;

    omcf = cl->omcf;

    if (res && PQntuples(res) == 1 && omcf->store) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "oauth circuit: provider \"%V\": the fleet's probe "
                       "is this node's", &cl->provider);

        ngx_http_oauth_circuit_grant(omcf, &cl->provider,
                                     ngx_time()
                                     + (time_t) (omcf->http_timeout / 1000)
                                     + 1);
    }

    ngx_free(cl);
}


/* until 0: the node no longer holds the fleet's probe */

static void
ngx_http_oauth_circuit_grant(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, time_t until)
{
    char                            key[NGX_OAUTH_PROVIDER_MAX + 16];
    ngx_http_oauth_circuit_grant_t  g;

    if (omcf->store == NULL) {
        return;
    }

    ngx_sprintf((u_char *) key, "circuit-probe:%V%Z", provider);

    g.granted_until = until;
    g.asked_until = until;

    (void) ngx_oauth_store_meta_put(omcf->store, key, (u_char *) &g,
                                    sizeof(g));
}


/* best effort: PostgreSQL away, the circuit stays this node's */

static void
ngx_http_oauth_circuit_share(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, const ngx_oauth_circuit_t *c)
{
    u_char         *p, buf[NGX_OAUTH_CIRCUIT_SIZE];
    u_char          state[2 * NGX_OAUTH_CIRCUIT_SIZE];
    u_char          payload[NGX_HTTP_OAUTH_SHARED_NODE_LEN
                            + 3 * NGX_INT64_LEN + 4
                            + 2 * NGX_OAUTH_PROVIDER_MAX];
    size_t          len;
    ssize_t         lens[3];
    const char     *err;
    const u_char   *node, *values[3];

    node = ngx_http_oauth_shared_node(omcf);

    if (node == NULL || provider->len > NGX_OAUTH_PROVIDER_MAX
        || ngx_oauth_circuit_encode(c, buf, sizeof(buf), &len)
           != NGX_OAUTH_OK)
    {
        return;
    }

    ngx_http_oauth_circuit_grant(omcf, provider, 0);

    values[0] = provider->data;
    lens[0] = provider->len;
    values[1] = state;
    lens[1] = ngx_hex_dump(state, buf, len) - state;

    p = ngx_sprintf(payload, "%*s %uD %T %T ",
                    (size_t) NGX_HTTP_OAUTH_SHARED_NODE_LEN, node,
                    c->failures, c->opened_at, ngx_time());
    p = ngx_hex_dump(p, provider->data, provider->len);

    values[2] = payload;
    lens[2] = p - payload;

    if (ngx_http_oauth_pg_query(ngx_http_oauth_circuit_share_sql, 3, values,
                                lens, 0, ngx_http_oauth_circuit_share_done,
                                NULL, &err)
        == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "oauth: provider \"%V\": circuit kept on this node: "
                      "%s", provider, err);
    }
}


static void
ngx_http_oauth_circuit_share_done(void *data, PGresult *res,
    const char *err)
{
    if (res == NULL) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "oauth: a circuit was not shared: %s",
                      err ? err : "failed");
    }
}


/* "NODE FAILURES OPENED_AT AT HEX(provider)" from another node */

void
ngx_http_oauth_circuit_notified(ngx_http_oauth_main_conf_t *omcf,
    const u_char *node, const char *payload)
{
    u_char               *p, *f[5], name[NGX_OAUTH_PROVIDER_MAX];
    size_t                len[5];
    time_t                at;
    ngx_int_t             failures;
    ngx_str_t             provider;
    ngx_uint_t            i;
    ngx_oauth_circuit_t   c;

    p = (u_char *) payload;

    for (i = 0; i < 5; i++) {
        f[i] = p;

        while (*p && *p != ' ') {
            p++;
        }

        len[i] = p - f[i];

        if (*p == ' ') {
            p++;
        }
    }

    if (len[0] != NGX_HTTP_OAUTH_SHARED_NODE_LEN
        || ngx_strncmp(f[0], node, NGX_HTTP_OAUTH_SHARED_NODE_LEN) == 0)
    {
        return;
    }

    failures = ngx_atoi(f[1], len[1]);
    c.opened_at = ngx_atotm(f[2], len[2]);
    at = ngx_atotm(f[3], len[3]);

    if (failures == NGX_ERROR || c.opened_at == NGX_ERROR
        || at == NGX_ERROR
        || ngx_http_oauth_circuit_unhex(name, sizeof(name), f[4], len[4])
           != NGX_OK)
    {
        return;
    }

    c.failures = (uint32_t) failures;
    provider.data = name;
    provider.len = len[4] / 2;

    ngx_http_oauth_circuit_merge(omcf, &provider, &c, at);
}


static ngx_int_t
ngx_http_oauth_circuit_unhex(u_char *dst, size_t size, const u_char *src,
    size_t len)
{
    size_t     i;
    ngx_int_t  hi, lo;

    if (len == 0 || len % 2 || len / 2 > size) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i += 2) {
        hi = ngx_hextoi((u_char *) &src[i], 1);
        lo = ngx_hextoi((u_char *) &src[i + 1], 1);

        if (hi < 0 || lo < 0) {
            return NGX_ERROR;
        }

        dst[i / 2] = (u_char) (hi * 16 + lo);
    }

    return NGX_OK;
}


/* another node's circuit, for a provider of this configuration */

static void
ngx_http_oauth_circuit_merge(ngx_http_oauth_main_conf_t *omcf,
    ngx_str_t *provider, const ngx_oauth_circuit_t *in, time_t at)
{
    char                             key[NGX_OAUTH_PROVIDER_MAX + 16];
    ngx_uint_t                       i;
    ngx_http_oauth_provider_t       *pr;
    ngx_http_oauth_circuit_merge_t   m;

    if (omcf->store == NULL || provider->len > NGX_OAUTH_PROVIDER_MAX) {
        return;
    }

    pr = omcf->providers.elts;

    for (i = 0; i < omcf->providers.nelts; i++) {
        if (pr[i].name.len == provider->len
            && ngx_memcmp(pr[i].name.data, provider->data, provider->len)
               == 0)
        {
            break;
        }
    }

    if (i == omcf->providers.nelts) {
        return;
    }

    ngx_sprintf((u_char *) key, "circuit:%V%Z", provider);

    m.omcf = omcf;
    m.in = *in;
    m.at = at;
    m.changed = 0;

    if (ngx_oauth_store_meta_update(omcf->store, key,
                                    ngx_http_oauth_circuit_merge_update, &m)
        != NGX_OAUTH_OK || !m.changed)
    {
        return;
    }

    ngx_http_oauth_circuit_grant(omcf, provider, 0);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "oauth: provider \"%V\": circuit %s by another node",
                  provider,
                  in->failures >= omcf->circuit_failures ? "opened"
                                                         : "closed");
}


/* runs inside the store's write transaction: no I/O */

static int
ngx_http_oauth_circuit_merge_update(unsigned char *buf, size_t *len,
    size_t size, void *data)
{
    ngx_http_oauth_circuit_merge_t *m = data;

    ngx_uint_t           open;
    ngx_oauth_circuit_t  c;

    (void) ngx_oauth_circuit_decode(buf, *len, &c);

    open = (c.failures >= m->omcf->circuit_failures);

    if (m->in.failures >= m->omcf->circuit_failures) {

        /* opened elsewhere: open here, unless opened here since */

        if (open && c.opened_at >= m->in.opened_at) {
            return 0;
        }

        c.failures = ngx_max(c.failures, m->in.failures);
        c.opened_at = m->in.opened_at;

    } else {

        /* closed elsewhere: closed here, unless opened here since */

        if (c.failures == 0 || (open && c.opened_at > m->at)) {
            return 0;
        }

        ngx_memzero(&c, sizeof(ngx_oauth_circuit_t));
    }

    if (ngx_oauth_circuit_encode(&c, buf, size, len) != NGX_OAUTH_OK) {
        return NGX_OAUTH_TOO_LARGE;
    }

    m->changed = 1;

    return 1;
}


/*
 * A worker that (re)connects may have missed notifications: it takes
 * the fleet's circuits, then shares the ones its node opened while
 * PostgreSQL was away.
 */

void
ngx_http_oauth_circuit_revalidate(ngx_http_oauth_main_conf_t *omcf)
{
    const char  *err;

    if (omcf->shared == NULL || omcf->store == NULL) {
        return;
    }

    if (ngx_http_oauth_pg_query(ngx_http_oauth_circuit_revalidate_sql, 0,
                                NULL, NULL, 0,
                                ngx_http_oauth_circuit_revalidate_done, omcf,
                                &err)
        == NULL)
    {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "oauth: circuits not checked: %s", err);
    }
}


static void
ngx_http_oauth_circuit_revalidate_done(void *data, PGresult *res,
    const char *err)
{
    ngx_http_oauth_main_conf_t *omcf = data;

    int                         i, n;
    char                        key[NGX_OAUTH_PROVIDER_MAX + 16];
    time_t                      at;
    ngx_str_t                   name;
    ngx_uint_t                  k;
    ngx_oauth_circuit_t         c, row;
    ngx_http_oauth_provider_t  *pr;

    if (res == NULL || omcf->store == NULL) {
        return;
    }

    n = PQntuples(res);

    for (i = 0; i < n; i++) {
        at = ngx_atotm((u_char *) PQgetvalue(res, i, 2),
                       PQgetlength(res, i, 2));

        if (at == NGX_ERROR
            || ngx_http_oauth_circuit_row(res, i, &row) != NGX_OK)
        {
            continue;
        }

        name.data = (u_char *) PQgetvalue(res, i, 0);
        name.len = PQgetlength(res, i, 0);

        ngx_http_oauth_circuit_merge(omcf, &name, &row, at);
    }

    pr = omcf->providers.elts;

    for (k = 0; k < omcf->providers.nelts; k++) {
        if (ngx_http_oauth_circuit_get(omcf, &pr[k].name, &c, key) != NGX_OK
            || c.failures < omcf->circuit_failures)
        {
            continue;
        }

        for (i = 0; i < n; i++) {
            if ((size_t) PQgetlength(res, i, 0) == pr[k].name.len
                && ngx_memcmp(PQgetvalue(res, i, 0), pr[k].name.data,
                              pr[k].name.len) == 0)
            {
                break;
            }
        }

        if (i < n && ngx_http_oauth_circuit_row(res, i, &row) == NGX_OK
            && row.failures >= omcf->circuit_failures
            && row.opened_at >= c.opened_at)
        {
            continue;
        }

        ngx_http_oauth_circuit_share(omcf, &pr[k].name, &c);
    }
}


static ngx_int_t
ngx_http_oauth_circuit_row(PGresult *res, int row, ngx_oauth_circuit_t *c)
{
    u_char  buf[NGX_OAUTH_CIRCUIT_SIZE];
    size_t  len;

    len = PQgetlength(res, row, 1);

    if (ngx_http_oauth_circuit_unhex(buf, sizeof(buf),
                                     (u_char *) PQgetvalue(res, row, 1), len)
        != NGX_OK
        || ngx_oauth_circuit_decode(buf, len / 2, c) != NGX_OAUTH_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
