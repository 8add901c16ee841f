/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_EVENT_H_INCLUDED_
#define _NGX_OAUTH_EVENT_H_INCLUDED_


#include "ngx_oauth_core.h"
#include "ngx_oauth_buf.h"


/*
 * Connection events for webhooks: the record, its JSON body, its
 * signature, and its form in the store's outbox.  An event names a
 * connection and what happened to it; it never holds a token, a refresh
 * token, a code, a secret or a key.
 */

#define NGX_OAUTH_EVENT_CREATED          0
#define NGX_OAUTH_EVENT_UPDATED          1
#define NGX_OAUTH_EVENT_REFRESH_FAILED   2
#define NGX_OAUTH_EVENT_REAUTH           3
#define NGX_OAUTH_EVENT_DELETED          4
#define NGX_OAUTH_EVENT_CREDENTIALS_SET  5
#define NGX_OAUTH_EVENT_TYPES            6

/* "evt_" and 32 hex digits of random */
#define NGX_OAUTH_EVENT_ID_LEN           36

/* "t=" 20 digits ",v1=" 64 hex digits */
#define NGX_OAUTH_EVENT_SIG_LEN          (2 + 20 + 4 + 64)

#define NGX_OAUTH_EVENT_ERROR_MAX        64
#define NGX_OAUTH_EVENT_BODY_MAX         4096


typedef struct {
    unsigned            type;           /* NGX_OAUTH_EVENT_* */
    char                id[NGX_OAUTH_EVENT_ID_LEN + 1];
    time_t              time;
    ngx_oauth_str_t     owner;
    ngx_oauth_str_t     provider;
    ngx_oauth_str_t     account;
    const char         *status;         /* "connected", ..., "deleted" */
    ngx_oauth_str_t     error;          /* a short code, may be empty */
} ngx_oauth_event_t;


/*
 * A pending event as the outbox keeps it.  body is the JSON sent, fixed
 * when the event was written, so that every retry sends the same bytes.
 * Decoded records own their strings through mem (ngx_oauth_outbox_free).
 */
typedef struct {
    uint64_t            seq;            /* its key: the outbox order */
    time_t              created;
    time_t              next_at;        /* not sent before */
    uint32_t            attempts;
    ngx_oauth_str_t     owner;
    ngx_oauth_str_t     provider;
    ngx_oauth_str_t     account;
    ngx_oauth_str_t     id;
    ngx_oauth_str_t     type;
    ngx_oauth_str_t     body;
    void               *mem;
} ngx_oauth_outbox_rec_t;


/*
 * An event to write in the transaction of a connection change: max caps
 * the outbox (0: no cap), the oldest events are dropped to make room and
 * counted in dropped; seq gets the new event's key.
 */
typedef struct {
    const ngx_oauth_event_t  *event;
    size_t                    max;
    size_t                    dropped;
    uint64_t                  seq;
} ngx_oauth_event_add_t;


const char *ngx_oauth_event_type_name(unsigned type);

/* the type of a name, or -1 */
int ngx_oauth_event_type_parse(const unsigned char *name, size_t len);

/* a fresh random id, the type and the time; the rest is the caller's */
int ngx_oauth_event_init(ngx_oauth_event_t *ev, unsigned type, time_t now);

/*
 * {"id","type","time","owner","provider","account","status","error"}:
 * time in RFC 3339 UTC, error null when empty.  A value that is not
 * UTF-8 is sent as "?" (as in the audit log), never as something else.
 */
int ngx_oauth_event_json(const ngx_oauth_event_t *ev, ngx_oauth_buf_t *out);

/*
 * The X-OAuth-Signature value "t=T,v1=HEX(HMAC-SHA256(secret, T.body))",
 * NUL-terminated into out (at least NGX_OAUTH_EVENT_SIG_LEN + 1 bytes).
 */
int ngx_oauth_event_sign(const unsigned char *secret, size_t slen, time_t t,
    const unsigned char *body, size_t blen, char *out, size_t outlen);

/* the outbox value of an event (its body built here); free() it */
int ngx_oauth_outbox_encode(const ngx_oauth_event_t *ev, unsigned char **out,
    size_t *len);

/*
 * Decodes an outbox value; with copy 0 the strings point into buf (valid
 * while buf is) and nothing needs freeing.
 */
int ngx_oauth_outbox_decode(const unsigned char *buf, size_t len,
    ngx_oauth_outbox_rec_t *rec, int copy);
void ngx_oauth_outbox_free(ngx_oauth_outbox_rec_t *rec);

/* rewrites next_at and attempts of an encoded value in place */
int ngx_oauth_outbox_reschedule(unsigned char *buf, size_t len,
    time_t next_at, uint32_t attempts);


#endif /* _NGX_OAUTH_EVENT_H_INCLUDED_ */
