/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_STORE_H_INCLUDED_
#define _NGX_OAUTH_STORE_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_event.h"


/* the format of the file; a file with another tag is refused, not wiped */
#define NGX_OAUTH_STORE_VERSION    1

#define NGX_OAUTH_OWNER_MAX        256
#define NGX_OAUTH_PROVIDER_MAX     64
#define NGX_OAUTH_ACCOUNT_MAX      128

/* record codec limits: a decoded record never exceeds these */
#define NGX_OAUTH_PARAMS_MAX       64
#define NGX_OAUTH_PARAM_NAME_MAX   128
#define NGX_OAUTH_RECORD_MAX       (256 * 1024)

/* the store key of a flow: sha256 of its state */
#define NGX_OAUTH_FLOW_KEY_LEN     32

/* flow->verifier_aad: what the PKCE verifier is bound to */
#define NGX_OAUTH_FLOW_AAD_LEGACY  0      /* owner and provider only */
#define NGX_OAUTH_FLOW_AAD_STATE   1      /* and sha256(state) */

#define NGX_OAUTH_MODE_REDIRECT    0
#define NGX_OAUTH_MODE_POPUP       1

#define NGX_OAUTH_KIND_OAUTH2      0
#define NGX_OAUTH_KIND_API_KEY     1
#define NGX_OAUTH_KIND_BASIC       2
#define NGX_OAUTH_KIND_HEADER      3
#define NGX_OAUTH_KIND_AWS_SIGV4   4      /* AWS access keys, SigV4 */

#define NGX_OAUTH_STATUS_CONNECTED 0
#define NGX_OAUTH_STATUS_EXPIRED   1
#define NGX_OAUTH_STATUS_ERROR     2
#define NGX_OAUTH_STATUS_REVOKED   3

/* conn flags */
#define NGX_OAUTH_CONN_REFRESH_DUE 0x01   /* the API said 401: refresh */
#define NGX_OAUTH_CONN_AFTER_401   0x02   /* token refreshed for a 401 */


typedef struct ngx_oauth_store_s  ngx_oauth_store_t;


/* a started authorization flow, stored under sha256(state) */
typedef struct {
    ngx_oauth_str_t     owner;
    ngx_oauth_str_t     provider;
    ngx_oauth_str_t     verifier;       /* sealed PKCE verifier, may be empty */
    ngx_oauth_str_t     return_to;
    ngx_oauth_str_t     browser;        /* sha256 of the binding cookie */
    unsigned            mode;           /* NGX_OAUTH_MODE_* */
    time_t              created;
    time_t              expires;
    size_t              nparams;
    ngx_oauth_pair_t   *params;         /* connection params given at start */
    unsigned            verifier_aad;   /* NGX_OAUTH_FLOW_AAD_* */
    void               *mem;            /* owns every pointer above */

    /* the key the flow is stored under: set when read, never encoded */
    unsigned char       state_hash[NGX_OAUTH_FLOW_KEY_LEN];
} ngx_oauth_flow_t;


/* a connected account: (owner, provider, account) is the key */
typedef struct {
    ngx_oauth_str_t     owner;
    ngx_oauth_str_t     provider;
    ngx_oauth_str_t     account;
    ngx_oauth_str_t     account_name;
    unsigned            kind;           /* NGX_OAUTH_KIND_* */
    unsigned            status;         /* NGX_OAUTH_STATUS_* */
    unsigned            flags;          /* NGX_OAUTH_CONN_* */
    ngx_oauth_str_t     scopes;         /* space separated */
    ngx_oauth_str_t     token_type;
    size_t              nparams;
    ngx_oauth_pair_t   *params;         /* kept params and token fields */
    time_t              created_at;
    time_t              updated_at;
    time_t              expires_at;     /* 0: unknown or never */
    time_t              last_refresh_at;
    time_t              retry_at;       /* backoff: no refresh before */
    uint32_t            failures;       /* consecutive refresh failures */
    uint64_t            version;        /* set by put: previous + 1 */
    ngx_oauth_str_t     last_error;
    ngx_oauth_str_t     access;         /* sealed, field "access" */
    ngx_oauth_str_t     refresh;        /* sealed, field "refresh" */
    ngx_oauth_str_t     secret;         /* sealed, field "credentials" */
    ngx_oauth_str_t     label;          /* the product's, plaintext */
    ngx_oauth_str_t     metadata;       /* a JSON object, plaintext */
    void               *mem;            /* owns every pointer above */
} ngx_oauth_conn_t;


/* connection metadata set through the API: never a secret, plaintext */
#define NGX_OAUTH_LABEL_MAX      256
#define NGX_OAUTH_METADATA_MAX   4096


typedef struct {
    const char         *path;           /* the LMDB file itself */
    size_t              max_size;       /* map size */
    unsigned            sync;           /* 0: MDB_NOSYNC-free fast mode */
    unsigned            max_readers;
} ngx_oauth_store_conf_t;


typedef int (*ngx_oauth_conn_iter_pt)(const ngx_oauth_conn_t *conn,
    void *data);


/*
 * Opens (creating with mode 0600) the file, checks or writes the version
 * tag, clears stale reader slots (*stale gets how many, may be NULL).
 * A handle belongs to the process that opened it: LMDB environments must
 * not be used across fork(), so each process (each nginx worker, in
 * init_process) opens its own; a handle used in a forked child fails.
 */
int ngx_oauth_store_open(ngx_oauth_store_t **st,
    const ngx_oauth_store_conf_t *conf, int *stale, char *err,
    size_t errlen);
void ngx_oauth_store_close(ngx_oauth_store_t *st);

/* the most recent LMDB error text, for logs */
const char *ngx_oauth_store_error(ngx_oauth_store_t *st);

/* clears reader slots left by dead processes, for a periodic timer */
int ngx_oauth_store_reader_check(ngx_oauth_store_t *st, int *stale);

int ngx_oauth_store_flow_put(ngx_oauth_store_t *st, const char *state,
    size_t len, const ngx_oauth_flow_t *flow);
/*
 * flow_put for a new flow of flow->owner, who may have at most max
 * pending flows (0: no limit): the oldest ones beyond max - 1 are deleted
 * in the same transaction, *evicted (may be NULL) says how many.
 */
int ngx_oauth_store_flow_add(ngx_oauth_store_t *st, const char *state,
    size_t len, const ngx_oauth_flow_t *flow, size_t max, size_t *evicted);

/*
 * What the map holds, in bytes: its size, the pages in use (the LMDB
 * free list counted as free) and the reserve.  New flows and new
 * connections get NGX_OAUTH_FULL once they would eat into the reserve;
 * changes of stored connections (refreshes), deletes and purges may use
 * it, so that they commit when starts have filled the store.
 */
typedef struct {
    size_t              size;
    size_t              used;
    size_t              reserve;
} ngx_oauth_store_usage_t;

int ngx_oauth_store_usage(ngx_oauth_store_t *st, ngx_oauth_store_usage_t *u);
/* reads and deletes in one write transaction: a state works once */
int ngx_oauth_store_flow_take(ngx_oauth_store_t *st, const char *state,
    size_t len, ngx_oauth_flow_t *flow);
int ngx_oauth_store_flow_purge(ngx_oauth_store_t *st, time_t now,
    size_t *purged);
/*
 * A taken flow's spent record (provider, return_to, mode, created and
 * expires only; no owner or secret), kept until the flow would have
 * expired, so that a reload of its callback can go back to return_to.
 * NGX_OAUTH_NOT_FOUND when there is none.  Free with ngx_oauth_flow_free.
 */
int ngx_oauth_store_flow_spent(ngx_oauth_store_t *st, const char *state,
    size_t len, ngx_oauth_flow_t *flow);
void ngx_oauth_flow_free(ngx_oauth_flow_t *flow);

typedef int (*ngx_oauth_flow_iter_pt)(const ngx_oauth_flow_t *flow,
    void *data);

/*
 * Calls iter for each stored flow inside one read transaction (for the
 * ngx-oauth tool's check); iter returns non-zero to stop and must not call
 * the store.  Records that do not decode make the result INVALID.
 */
int ngx_oauth_store_flow_each(ngx_oauth_store_t *st,
    ngx_oauth_flow_iter_pt iter, void *data);

/*
 * Key rotation of flows: one write transaction over every flow; fn may
 * point flow->verifier at new bytes (which it keeps owning) and returns
 * 1 to have the flow written back under the same key, 0 to leave it, or
 * a negative NGX_OAUTH_* code to abort the whole transaction.
 */
typedef int (*ngx_oauth_flow_rewrite_pt)(ngx_oauth_flow_t *flow,
    void *data);
int ngx_oauth_store_flow_rewrite(ngx_oauth_store_t *st,
    ngx_oauth_flow_rewrite_pt fn, void *data);

int ngx_oauth_store_conn_get(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, ngx_oauth_conn_t *conn);
/*
 * The owner's only connection to provider, in one read: NGX_OAUTH_OK,
 * NGX_OAUTH_NOT_FOUND when there is none, NGX_OAUTH_CONFLICT when there
 * are several or the first does not decode (conn_each tells which), or
 * another error.  conn is set only on NGX_OAUTH_OK.
 */
int ngx_oauth_store_conn_only(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    ngx_oauth_conn_t *conn);
/*
 * Stores conn with version = stored version + 1 (1 when new) and writes
 * the new version back into conn->version.  With expect non-NULL the put
 * is refused with NGX_OAUTH_CONFLICT unless the stored version equals
 * *expect (0: must not exist).
 */
int ngx_oauth_store_conn_put(ngx_oauth_store_t *st, ngx_oauth_conn_t *conn,
    const uint64_t *expect);
/*
 * Stores a copy of a record kept elsewhere (the fleet's PostgreSQL) with
 * conn->version as it is.  With newer set the put is refused with
 * NGX_OAUTH_CONFLICT when the stored version is higher.
 */
int ngx_oauth_store_conn_put_version(ngx_oauth_store_t *st,
    ngx_oauth_conn_t *conn, int newer);
int ngx_oauth_store_conn_delete(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account);
/*
 * Calls iter for each connection of owner (all when NULL), of provider
 * when not NULL, in key order, inside one read transaction: iter must not
 * block nor call the store.  iter returns non-zero to stop.  Records that
 * do not decode are skipped and make the result NGX_OAUTH_INVALID.
 */
int ngx_oauth_store_conn_each(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    ngx_oauth_conn_iter_pt iter, void *data);
void ngx_oauth_conn_free(ngx_oauth_conn_t *conn);

/*
 * Refresh leases: one holder per connection across processes.  take
 * succeeds when the lease is free, expired (deadline < now) or already
 * held by holder; NGX_OAUTH_BUSY otherwise.  No transaction stays open.
 * drop releases only the holder's lease: NGX_OAUTH_BUSY when another
 * holds it, NGX_OAUTH_NOT_FOUND when none is held.
 */
int ngx_oauth_store_lease_take(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, uint64_t holder, time_t now,
    time_t deadline);

/* lease flags */
#define NGX_OAUTH_LEASE_CALLING     0x01  /* a provider call may be out */
#define NGX_OAUTH_LEASE_TAKEN_OVER  0x100 /* *taken: not free, not ours */

/*
 * take, with flags stored in the lease.  The high 32 bits of a holder are
 * its process id: a lease whose process is gone is free at once, not only
 * at its deadline.  *taken (may be NULL) gets NGX_OAUTH_LEASE_TAKEN_OVER
 * and the flags of the lease when it was another holder's (expired, or
 * its process gone), 0 when it was free or already the holder's: a taken
 * over NGX_OAUTH_LEASE_CALLING lease means a provider call may have been
 * answered to a process that died before it could store the answer.
 */
int ngx_oauth_store_lease_claim(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, uint64_t holder, time_t now,
    time_t deadline, unsigned flags, unsigned *taken);
int ngx_oauth_store_lease_drop(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, uint64_t holder);

/*
 * Small shared values (circuit state, counters): NGX_OAUTH_NOT_FOUND.
 * get: *len is the size of buf, then of the value; NGX_OAUTH_TOO_LARGE
 * (with *len set) when buf is too small.  The key "version" is reserved.
 */
int ngx_oauth_store_meta_get(ngx_oauth_store_t *st, const char *key,
    unsigned char *buf, size_t *len);
int ngx_oauth_store_meta_put(ngx_oauth_store_t *st, const char *key,
    const unsigned char *buf, size_t len);

/*
 * Read-modify-write of a small meta value in one write transaction, so
 * that processes updating it at once do not lose each other's changes.
 * fn gets the current value in buf (*len bytes, 0 when absent; buf holds
 * size bytes) and returns 1 to write buf back (*len bytes), 0 to leave
 * it, or a negative NGX_OAUTH_* code.
 */
typedef int (*ngx_oauth_meta_update_pt)(unsigned char *buf, size_t *len,
    size_t size, void *data);
int ngx_oauth_store_meta_update(ngx_oauth_store_t *st, const char *key,
    ngx_oauth_meta_update_pt fn, void *data);

/*
 * The same put and delete with an event for the webhook outbox written in
 * the same transaction (add NULL: none): no change without its event, no
 * event without its change.  A delete of nothing writes no event.
 */
int ngx_oauth_store_conn_put_event(ngx_oauth_store_t *st,
    ngx_oauth_conn_t *conn, const uint64_t *expect,
    ngx_oauth_event_add_t *add);
int ngx_oauth_store_conn_delete_event(ngx_oauth_store_t *st,
    const ngx_oauth_str_t *owner, const ngx_oauth_str_t *provider,
    const ngx_oauth_str_t *account, ngx_oauth_event_add_t *add);

/*
 * The outbox.  next: the first event due at now whose connection has no
 * earlier event waiting (NGX_OAUTH_NOT_FOUND: none); free it with
 * ngx_oauth_outbox_free().  settle: retry 0 deletes the event, otherwise
 * sets its next_at and attempts; NGX_OAUTH_NOT_FOUND when the event with
 * that seq and id is gone.  each: in outbox order, read-only, strings
 * valid during the call.  stat: how many and when the oldest was written.
 */
typedef int (*ngx_oauth_outbox_iter_pt)(const ngx_oauth_outbox_rec_t *rec,
    void *data);

int ngx_oauth_store_outbox_next(ngx_oauth_store_t *st, time_t now,
    ngx_oauth_outbox_rec_t *rec);
int ngx_oauth_store_outbox_settle(ngx_oauth_store_t *st, uint64_t seq,
    const ngx_oauth_str_t *id, int retry, time_t next_at, uint32_t attempts);
int ngx_oauth_store_outbox_each(ngx_oauth_store_t *st,
    ngx_oauth_outbox_iter_pt iter, void *data);
int ngx_oauth_store_outbox_stat(ngx_oauth_store_t *st, size_t *count,
    time_t *oldest);

/* consistent compacted copy for backups: dest must not exist, mode 0600 */
int ngx_oauth_store_copy(ngx_oauth_store_t *st, const char *dest);


/* record codec (ngx_oauth_record.c), versioned, exposed for fuzzing */
int ngx_oauth_flow_encode(const ngx_oauth_flow_t *flow, unsigned char **out,
    size_t *len);
int ngx_oauth_flow_decode(const unsigned char *buf, size_t len,
    ngx_oauth_flow_t *flow);
int ngx_oauth_conn_encode(const ngx_oauth_conn_t *conn, unsigned char **out,
    size_t *len);
int ngx_oauth_conn_decode(const unsigned char *buf, size_t len,
    ngx_oauth_conn_t *conn);

const char *ngx_oauth_status_name(unsigned status);

/*
 * The status a connection has for its users (API, metrics, ngx-oauth):
 * the stored one, except that a "connected" token past its expiry that
 * cannot be refreshed now (no refresh token, or a backoff until later
 * than now) is NGX_OAUTH_STATUS_EXPIRED.
 */
unsigned ngx_oauth_conn_status(const ngx_oauth_conn_t *conn, time_t now);
const char *ngx_oauth_kind_name(unsigned kind);


#endif /* _NGX_OAUTH_STORE_H_INCLUDED_ */
