/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_record.h"
#include "ngx_oauth_store.h"


/*
 * A record is 'O', its type ('F' flow, 'C' connection, 'B' circuit
 * breaker), the format
 * version, then fields: a tag (1 byte), a length (4 bytes, big endian)
 * and the value.  The end tag, with length 0, comes last, so a truncated
 * record never decodes.  Fields come in any order; a known tag may appear
 * once (params repeat), and unknown tags are skipped so that a later
 * version can add fields without breaking older readers.
 */

#define NGX_OAUTH_RECORD_MAGIC      'O'
#define NGX_OAUTH_RECORD_FLOW       'F'
#define NGX_OAUTH_RECORD_CONN       'C'
#define NGX_OAUTH_RECORD_CIRCUIT    'B'
#define NGX_OAUTH_RECORD_VERSION    1
#define NGX_OAUTH_RECORD_HEADER     3
#define NGX_OAUTH_RECORD_FIELD      5
#define NGX_OAUTH_RECORD_END        0

/* the seen-once bitmap is a uint32_t */
#define NGX_OAUTH_RECORD_FIELDS_MAX 32


typedef enum {
    NGX_OAUTH_FIELD_STR = 0,     /* ngx_oauth_str_t */
    NGX_OAUTH_FIELD_UINT,        /* unsigned, 4 bytes */
    NGX_OAUTH_FIELD_U32,         /* uint32_t, 4 bytes */
    NGX_OAUTH_FIELD_U64,         /* uint64_t, 8 bytes */
    NGX_OAUTH_FIELD_TIME,        /* time_t, 8 bytes, two's complement */
    NGX_OAUTH_FIELD_PARAMS       /* one field per ngx_oauth_pair_t */
} ngx_oauth_field_type_e;


typedef struct {
    unsigned                       tag;
    ngx_oauth_field_type_e         type;
    size_t                         offset;
    size_t                         count;     /* params: offset of count */
    uint64_t                       max;       /* longest, or largest */
} ngx_oauth_record_field_t;


typedef struct {
    unsigned                       type;
    size_t                         size;      /* of the struct */
    size_t                         mem;       /* offset of ->mem */
    const ngx_oauth_record_field_t *fields;
    size_t                         nfields;
} ngx_oauth_record_type_t;


typedef struct {
    const unsigned char           *data;
    size_t                         len;
} ngx_oauth_record_span_t;


/* what the first pass of a decode found */
typedef struct {
    uint64_t                       nums[NGX_OAUTH_RECORD_FIELDS_MAX];
    ngx_oauth_record_span_t        strs[NGX_OAUTH_RECORD_FIELDS_MAX];
    ngx_oauth_record_span_t        names[NGX_OAUTH_PARAMS_MAX];
    ngx_oauth_record_span_t        values[NGX_OAUTH_PARAMS_MAX];
    size_t                         nparams;
    size_t                         size;      /* of the memory block */
} ngx_oauth_record_scan_t;


static int ngx_oauth_record_encode(const ngx_oauth_record_type_t *rt,
    const void *rec, unsigned char **out, size_t *len);
static int ngx_oauth_record_size(const ngx_oauth_record_type_t *rt,
    const void *rec, size_t *size);
static unsigned char *ngx_oauth_record_field(unsigned char *p,
    unsigned tag, const void *value, size_t len);
static int ngx_oauth_record_decode(const ngx_oauth_record_type_t *rt,
    const unsigned char *buf, size_t len, void *rec);
static int ngx_oauth_record_header(unsigned type, const unsigned char *buf,
    size_t len, const unsigned char **pos);
static int ngx_oauth_record_next(const unsigned char **pos,
    const unsigned char *last, unsigned *tag, const unsigned char **value,
    size_t *len);
static int ngx_oauth_record_scan(const ngx_oauth_record_type_t *rt,
    const unsigned char *buf, size_t len, ngx_oauth_record_scan_t *sc);
static int ngx_oauth_record_scan_param(const ngx_oauth_record_field_t *f,
    const unsigned char *value, size_t flen, ngx_oauth_record_scan_t *sc);
static int ngx_oauth_record_scan_value(const ngx_oauth_record_field_t *f,
    const unsigned char *value, size_t flen, uint64_t *num,
    ngx_oauth_record_span_t *str);
static int ngx_oauth_record_fill(const ngx_oauth_record_type_t *rt,
    ngx_oauth_record_scan_t *sc, void *rec);
static unsigned char *ngx_oauth_record_copy(unsigned char *p,
    const ngx_oauth_record_span_t *span);
static void ngx_oauth_record_set_num(const ngx_oauth_record_field_t *f,
    unsigned char *base, uint64_t v);
static time_t ngx_oauth_record_time(uint64_t v);
static void ngx_oauth_record_free(const ngx_oauth_record_type_t *rt,
    void *rec);
static const ngx_oauth_record_field_t *ngx_oauth_record_find(
    const ngx_oauth_record_type_t *rt, unsigned tag, size_t *index);
static void ngx_oauth_record_put32(unsigned char *p, uint32_t v);
static void ngx_oauth_record_put64(unsigned char *p, uint64_t v);
static uint32_t ngx_oauth_record_get32(const unsigned char *p);
static uint64_t ngx_oauth_record_get64(const unsigned char *p);


static const ngx_oauth_record_field_t  ngx_oauth_flow_fields[] = {

    { 1, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_flow_t, owner), 0,
      NGX_OAUTH_OWNER_MAX },

    { 2, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_flow_t, provider), 0,
      NGX_OAUTH_PROVIDER_MAX },

    { 3, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_flow_t, verifier), 0,
      NGX_OAUTH_RECORD_MAX },

    { 4, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_flow_t, return_to), 0,
      NGX_OAUTH_RECORD_MAX },

    { 5, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_flow_t, browser), 0,
      NGX_OAUTH_RECORD_MAX },

    { 6, NGX_OAUTH_FIELD_UINT, offsetof(ngx_oauth_flow_t, mode), 0,
      NGX_OAUTH_MODE_POPUP },

    { 7, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_flow_t, created), 0, 0 },

    { 8, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_flow_t, expires), 0, 0 },

    { 9, NGX_OAUTH_FIELD_PARAMS, offsetof(ngx_oauth_flow_t, params),
      offsetof(ngx_oauth_flow_t, nparams), NGX_OAUTH_PARAMS_MAX },

    /* absent in records of older versions: the legacy binding, 0 */
    { 10, NGX_OAUTH_FIELD_UINT, offsetof(ngx_oauth_flow_t, verifier_aad), 0,
      NGX_OAUTH_FLOW_AAD_STATE }
};


static const ngx_oauth_record_field_t  ngx_oauth_conn_fields[] = {

    { 1, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, owner), 0,
      NGX_OAUTH_OWNER_MAX },

    { 2, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, provider), 0,
      NGX_OAUTH_PROVIDER_MAX },

    { 3, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, account), 0,
      NGX_OAUTH_ACCOUNT_MAX },

    { 4, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, account_name), 0,
      NGX_OAUTH_RECORD_MAX },

    { 5, NGX_OAUTH_FIELD_UINT, offsetof(ngx_oauth_conn_t, kind), 0,
      NGX_OAUTH_KIND_AWS_SIGV4 },

    { 6, NGX_OAUTH_FIELD_UINT, offsetof(ngx_oauth_conn_t, status), 0,
      NGX_OAUTH_STATUS_REVOKED },

    /* flags are not capped: a later version may add some */
    { 7, NGX_OAUTH_FIELD_UINT, offsetof(ngx_oauth_conn_t, flags), 0,
      UINT32_MAX },

    { 8, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, scopes), 0,
      NGX_OAUTH_RECORD_MAX },

    { 9, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, token_type), 0,
      NGX_OAUTH_RECORD_MAX },

    { 10, NGX_OAUTH_FIELD_PARAMS, offsetof(ngx_oauth_conn_t, params),
      offsetof(ngx_oauth_conn_t, nparams), NGX_OAUTH_PARAMS_MAX },

    { 11, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_conn_t, created_at), 0,
      0 },

    { 12, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_conn_t, updated_at), 0,
      0 },

    { 13, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_conn_t, expires_at), 0,
      0 },

    { 14, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_conn_t, last_refresh_at),
      0, 0 },

    { 15, NGX_OAUTH_FIELD_TIME, offsetof(ngx_oauth_conn_t, retry_at), 0,
      0 },

    { 16, NGX_OAUTH_FIELD_U32, offsetof(ngx_oauth_conn_t, failures), 0,
      UINT32_MAX },

    { 17, NGX_OAUTH_FIELD_U64, offsetof(ngx_oauth_conn_t, version), 0,
      UINT64_MAX },

    { 18, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, last_error), 0,
      NGX_OAUTH_RECORD_MAX },

    { 19, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, access), 0,
      NGX_OAUTH_RECORD_MAX },

    { 20, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, refresh), 0,
      NGX_OAUTH_RECORD_MAX },

    { 21, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, secret), 0,
      NGX_OAUTH_RECORD_MAX },

    /* absent in records of older versions: no label, no metadata */
    { 22, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, label), 0,
      NGX_OAUTH_LABEL_MAX },

    { 23, NGX_OAUTH_FIELD_STR, offsetof(ngx_oauth_conn_t, metadata), 0,
      NGX_OAUTH_METADATA_MAX }
};


static const ngx_oauth_record_type_t  ngx_oauth_flow_record = {
    NGX_OAUTH_RECORD_FLOW,
    sizeof(ngx_oauth_flow_t),
    offsetof(ngx_oauth_flow_t, mem),
    ngx_oauth_flow_fields,
    sizeof(ngx_oauth_flow_fields) / sizeof(ngx_oauth_flow_fields[0])
};


static const ngx_oauth_record_type_t  ngx_oauth_conn_record = {
    NGX_OAUTH_RECORD_CONN,
    sizeof(ngx_oauth_conn_t),
    offsetof(ngx_oauth_conn_t, mem),
    ngx_oauth_conn_fields,
    sizeof(ngx_oauth_conn_fields) / sizeof(ngx_oauth_conn_fields[0])
};


static const char  *ngx_oauth_status_names[] = {
    "connected", "expired", "error", "revoked"
};


static const char  *ngx_oauth_kind_names[] = {
    "oauth2", "api_key", "basic", "header", "aws_sigv4"
};


int
ngx_oauth_flow_encode(const ngx_oauth_flow_t *flow, unsigned char **out,
    size_t *len)
{
    return ngx_oauth_record_encode(&ngx_oauth_flow_record, flow, out, len);
}


int
ngx_oauth_flow_decode(const unsigned char *buf, size_t len,
    ngx_oauth_flow_t *flow)
{
    return ngx_oauth_record_decode(&ngx_oauth_flow_record, buf, len, flow);
}


void
ngx_oauth_flow_free(ngx_oauth_flow_t *flow)
{
    ngx_oauth_record_free(&ngx_oauth_flow_record, flow);
}


int
ngx_oauth_conn_encode(const ngx_oauth_conn_t *conn, unsigned char **out,
    size_t *len)
{
    return ngx_oauth_record_encode(&ngx_oauth_conn_record, conn, out, len);
}


int
ngx_oauth_conn_decode(const unsigned char *buf, size_t len,
    ngx_oauth_conn_t *conn)
{
    return ngx_oauth_record_decode(&ngx_oauth_conn_record, buf, len, conn);
}


void
ngx_oauth_conn_free(ngx_oauth_conn_t *conn)
{
    ngx_oauth_record_free(&ngx_oauth_conn_record, conn);
}


const char *
ngx_oauth_status_name(unsigned status)
{
    if (status >= sizeof(ngx_oauth_status_names) / sizeof(char *)) {
        return "unknown";
    }

    return ngx_oauth_status_names[status];
}


unsigned
ngx_oauth_conn_status(const ngx_oauth_conn_t *conn, time_t now)
{
    if (conn->status == NGX_OAUTH_STATUS_CONNECTED
        && conn->expires_at != 0
        && conn->expires_at <= now
        && (conn->refresh.len == 0 || conn->retry_at > now))
    {
        return NGX_OAUTH_STATUS_EXPIRED;
    }

    return conn->status;
}


const char *
ngx_oauth_kind_name(unsigned kind)
{
    if (kind >= sizeof(ngx_oauth_kind_names) / sizeof(char *)) {
        return "unknown";
    }

    return ngx_oauth_kind_names[kind];
}


/*
 * The circuit record has two fixed-size fields and is read on every
 * refresh: coded here without the allocation of the generic codec.
 */

int
ngx_oauth_circuit_encode(const ngx_oauth_circuit_t *c, unsigned char *buf,
    size_t size, size_t *len)
{
    unsigned char  *p, num[8];

    if (size < NGX_OAUTH_CIRCUIT_SIZE) {
        return NGX_OAUTH_TOO_LARGE;
    }

    p = buf;
    *p++ = NGX_OAUTH_RECORD_MAGIC;
    *p++ = NGX_OAUTH_RECORD_CIRCUIT;
    *p++ = NGX_OAUTH_RECORD_VERSION;

    ngx_oauth_record_put32(num, c->failures);
    p = ngx_oauth_record_field(p, 1, num, 4);

    ngx_oauth_record_put64(num, (uint64_t) (int64_t) c->opened_at);
    p = ngx_oauth_record_field(p, 2, num, 8);

    p = ngx_oauth_record_field(p, NGX_OAUTH_RECORD_END, NULL, 0);

    *len = (size_t) (p - buf);

    return NGX_OAUTH_OK;
}


int
ngx_oauth_circuit_decode(const unsigned char *buf, size_t len,
    ngx_oauth_circuit_t *c)
{
    int                   rc;
    size_t                flen;
    unsigned              tag, seen;
    const unsigned char  *pos, *value;

    memset(c, 0, sizeof(ngx_oauth_circuit_t));

    rc = ngx_oauth_record_header(NGX_OAUTH_RECORD_CIRCUIT, buf, len, &pos);

    for (seen = 0; rc == NGX_OAUTH_OK; /* void */) {

        rc = ngx_oauth_record_next(&pos, buf + len, &tag, &value, &flen);

        if (rc != NGX_OAUTH_OK || tag == NGX_OAUTH_RECORD_END) {
            break;
        }

        if (tag > 2) {
            continue;           /* a field of a later version */
        }

        if ((seen & (1u << tag)) || flen != (tag == 1 ? 4 : 8)) {
            rc = NGX_OAUTH_INVALID;
            break;
        }

        seen |= 1u << tag;

        if (tag == 1) {
            c->failures = ngx_oauth_record_get32(value);

        } else {
            c->opened_at = ngx_oauth_record_time(
                                             ngx_oauth_record_get64(value));
        }
    }

    if (rc != NGX_OAUTH_OK) {
        memset(c, 0, sizeof(ngx_oauth_circuit_t));
    }

    return rc;
}


static int
ngx_oauth_record_encode(const ngx_oauth_record_type_t *rt, const void *rec,
    unsigned char **out, size_t *len)
{
    int                              rc;
    size_t                           i, j, n, size;
    time_t                           t;
    uint64_t                         v;
    unsigned char                   *buf, *p, *q, num[8];
    const unsigned char             *base;
    const ngx_oauth_str_t           *s;
    const ngx_oauth_pair_t          *params;
    const ngx_oauth_record_field_t  *f;

    *out = NULL;
    *len = 0;

    rc = ngx_oauth_record_size(rt, rec, &size);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    buf = malloc(size);
    if (buf == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    base = rec;

    p = buf;
    *p++ = NGX_OAUTH_RECORD_MAGIC;
    *p++ = (unsigned char) rt->type;
    *p++ = NGX_OAUTH_RECORD_VERSION;

    for (i = 0; i < rt->nfields; i++) {
        f = &rt->fields[i];

        switch (f->type) {

        case NGX_OAUTH_FIELD_STR:
            s = (const ngx_oauth_str_t *) (base + f->offset);
            p = ngx_oauth_record_field(p, f->tag, s->data, s->len);
            break;

        case NGX_OAUTH_FIELD_UINT:
            v = *(const unsigned *) (base + f->offset);
            ngx_oauth_record_put32(num, (uint32_t) v);
            p = ngx_oauth_record_field(p, f->tag, num, 4);
            break;

        case NGX_OAUTH_FIELD_U32:
            v = *(const uint32_t *) (base + f->offset);
            ngx_oauth_record_put32(num, (uint32_t) v);
            p = ngx_oauth_record_field(p, f->tag, num, 4);
            break;

        case NGX_OAUTH_FIELD_U64:
            v = *(const uint64_t *) (base + f->offset);
            ngx_oauth_record_put64(num, v);
            p = ngx_oauth_record_field(p, f->tag, num, 8);
            break;

        case NGX_OAUTH_FIELD_TIME:
            t = *(const time_t *) (base + f->offset);
            ngx_oauth_record_put64(num, (uint64_t) (int64_t) t);
            p = ngx_oauth_record_field(p, f->tag, num, 8);
            break;

        case NGX_OAUTH_FIELD_PARAMS:
            n = *(const size_t *) (base + f->count);
            params = *(ngx_oauth_pair_t * const *) (base + f->offset);

            for (j = 0; j < n; j++) {
                q = p;
                p = ngx_oauth_record_field(p, f->tag, NULL,
                                           2 + params[j].name.len
                                           + params[j].value.len);

                q += NGX_OAUTH_RECORD_FIELD;
                q[0] = (unsigned char) (params[j].name.len >> 8);
                q[1] = (unsigned char) params[j].name.len;
                q += 2;

                if (params[j].name.len) {
                    memcpy(q, params[j].name.data, params[j].name.len);
                    q += params[j].name.len;
                }

                if (params[j].value.len) {
                    memcpy(q, params[j].value.data, params[j].value.len);
                }
            }

            break;
        }
    }

    p = ngx_oauth_record_field(p, NGX_OAUTH_RECORD_END, NULL, 0);

    *out = buf;
    *len = (size_t) (p - buf);

    return NGX_OAUTH_OK;
}


/* validates what will be written and sums up the record size */

static int
ngx_oauth_record_size(const ngx_oauth_record_type_t *rt, const void *rec,
    size_t *size)
{
    size_t                           i, j, n, total;
    uint64_t                         v;
    const unsigned char             *base;
    const ngx_oauth_str_t           *s;
    const ngx_oauth_pair_t          *params;
    const ngx_oauth_record_field_t  *f;

    if (rec == NULL) {
        return NGX_OAUTH_INVALID;
    }

    base = rec;
    total = NGX_OAUTH_RECORD_HEADER + NGX_OAUTH_RECORD_FIELD;

    /*
     * every length is checked against NGX_OAUTH_RECORD_MAX before it is
     * added, so the sum cannot wrap around
     */

    for (i = 0; i < rt->nfields; i++) {
        f = &rt->fields[i];

        switch (f->type) {

        case NGX_OAUTH_FIELD_STR:
            s = (const ngx_oauth_str_t *) (base + f->offset);

            if (s->len && s->data == NULL) {
                return NGX_OAUTH_INVALID;
            }

            if (s->len > f->max) {
                return (f->max < NGX_OAUTH_RECORD_MAX) ? NGX_OAUTH_INVALID
                                                       : NGX_OAUTH_TOO_LARGE;
            }

            total += NGX_OAUTH_RECORD_FIELD + s->len;
            break;

        case NGX_OAUTH_FIELD_UINT:
            v = *(const unsigned *) (base + f->offset);

            if (v > f->max) {
                return NGX_OAUTH_INVALID;
            }

            total += NGX_OAUTH_RECORD_FIELD + 4;
            break;

        case NGX_OAUTH_FIELD_U32:
            total += NGX_OAUTH_RECORD_FIELD + 4;
            break;

        case NGX_OAUTH_FIELD_U64:
        case NGX_OAUTH_FIELD_TIME:
            total += NGX_OAUTH_RECORD_FIELD + 8;
            break;

        case NGX_OAUTH_FIELD_PARAMS:
            n = *(const size_t *) (base + f->count);
            params = *(ngx_oauth_pair_t * const *) (base + f->offset);

            if (n > f->max) {
                return NGX_OAUTH_TOO_LARGE;
            }

            if (n && params == NULL) {
                return NGX_OAUTH_INVALID;
            }

            for (j = 0; j < n; j++) {
                if (params[j].name.len == 0
                    || params[j].name.len > NGX_OAUTH_PARAM_NAME_MAX
                    || params[j].name.data == NULL
                    || (params[j].value.len && params[j].value.data == NULL))
                {
                    return NGX_OAUTH_INVALID;
                }

                if (params[j].value.len > NGX_OAUTH_RECORD_MAX) {
                    return NGX_OAUTH_TOO_LARGE;
                }

                total += NGX_OAUTH_RECORD_FIELD + 2 + params[j].name.len
                         + params[j].value.len;

                if (total > NGX_OAUTH_RECORD_MAX) {
                    return NGX_OAUTH_TOO_LARGE;
                }
            }

            break;
        }

        if (total > NGX_OAUTH_RECORD_MAX) {
            return NGX_OAUTH_TOO_LARGE;
        }
    }

    *size = total;

    return NGX_OAUTH_OK;
}


static unsigned char *
ngx_oauth_record_field(unsigned char *p, unsigned tag, const void *value,
    size_t len)
{
    *p++ = (unsigned char) tag;
    ngx_oauth_record_put32(p, (uint32_t) len);
    p += 4;

    /* without a value the caller fills it in */

    if (value != NULL && len) {
        memcpy(p, value, len);
    }

    return p + len;
}


static int
ngx_oauth_record_decode(const ngx_oauth_record_type_t *rt,
    const unsigned char *buf, size_t len, void *rec)
{
    int                      rc;
    size_t                   i;
    ngx_oauth_record_scan_t  sc;

    if (rec == NULL) {
        return NGX_OAUTH_INVALID;
    }

    memset(rec, 0, rt->size);

    if (rt->nfields > NGX_OAUTH_RECORD_FIELDS_MAX) {
        return NGX_OAUTH_INVALID;
    }

    rc = ngx_oauth_record_scan(rt, buf, len, &sc);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    /* every string, absent ones too, gets a terminating zero */

    for (i = 0; i < rt->nfields; i++) {
        if (rt->fields[i].type == NGX_OAUTH_FIELD_STR) {
            sc.size += sc.strs[i].len + 1;
        }
    }

    return ngx_oauth_record_fill(rt, &sc, rec);
}


/*
 * The header of a record of type: 'O', the type and the format version;
 * *pos is set to the first field.
 */

static int
ngx_oauth_record_header(unsigned type, const unsigned char *buf, size_t len,
    const unsigned char **pos)
{
    if (buf == NULL
        || len < NGX_OAUTH_RECORD_HEADER + NGX_OAUTH_RECORD_FIELD
        || len > NGX_OAUTH_RECORD_MAX)
    {
        return NGX_OAUTH_INVALID;
    }

    if (buf[0] != NGX_OAUTH_RECORD_MAGIC
        || buf[1] != type
        || buf[2] != NGX_OAUTH_RECORD_VERSION)
    {
        return NGX_OAUTH_INVALID;
    }

    *pos = buf + NGX_OAUTH_RECORD_HEADER;

    return NGX_OAUTH_OK;
}


/*
 * The field at *pos, which moves past it.  The end tag must be last and
 * empty: a truncated record or one with bytes after its end is INVALID.
 */

static int
ngx_oauth_record_next(const unsigned char **pos, const unsigned char *last,
    unsigned *tag, const unsigned char **value, size_t *len)
{
    size_t               flen;
    const unsigned char  *p;

    p = *pos;

    if ((size_t) (last - p) < NGX_OAUTH_RECORD_FIELD) {
        return NGX_OAUTH_INVALID;
    }

    *tag = p[0];
    flen = ngx_oauth_record_get32(p + 1);
    p += NGX_OAUTH_RECORD_FIELD;

    if (flen > (size_t) (last - p)) {
        return NGX_OAUTH_INVALID;
    }

    *value = p;
    *len = flen;
    *pos = p + flen;

    if (*tag == NGX_OAUTH_RECORD_END && (flen != 0 || *pos != last)) {
        return NGX_OAUTH_INVALID;
    }

    return NGX_OAUTH_OK;
}


/* the first pass checks everything and sizes the memory block */

static int
ngx_oauth_record_scan(const ngx_oauth_record_type_t *rt,
    const unsigned char *buf, size_t len, ngx_oauth_record_scan_t *sc)
{
    int                              rc;
    size_t                           i, flen;
    unsigned                         tag;
    uint32_t                         seen;
    const unsigned char             *pos, *last, *value;
    const ngx_oauth_record_field_t  *f;

    rc = ngx_oauth_record_header(rt->type, buf, len, &pos);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    memset(sc->nums, 0, sizeof(sc->nums));
    memset(sc->strs, 0, sizeof(sc->strs));
    sc->nparams = 0;
    sc->size = 0;

    seen = 0;
    last = buf + len;

    for ( ;; ) {
        rc = ngx_oauth_record_next(&pos, last, &tag, &value, &flen);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }

        if (tag == NGX_OAUTH_RECORD_END) {
            return NGX_OAUTH_OK;
        }

        f = ngx_oauth_record_find(rt, tag, &i);
        if (f == NULL) {
            /* a field of a later version */
            continue;
        }

        if (f->type == NGX_OAUTH_FIELD_PARAMS) {
            rc = ngx_oauth_record_scan_param(f, value, flen, sc);
            if (rc != NGX_OAUTH_OK) {
                return rc;
            }

            continue;
        }

        if (seen & ((uint32_t) 1 << i)) {
            return NGX_OAUTH_INVALID;
        }

        seen |= (uint32_t) 1 << i;

        rc = ngx_oauth_record_scan_value(f, value, flen, &sc->nums[i],
                                         &sc->strs[i]);
        if (rc != NGX_OAUTH_OK) {
            return rc;
        }
    }
}


/* one param: a name length (2 bytes), the name and the value */

static int
ngx_oauth_record_scan_param(const ngx_oauth_record_field_t *f,
    const unsigned char *value, size_t flen, ngx_oauth_record_scan_t *sc)
{
    size_t  n;

    if (sc->nparams == f->max || sc->nparams == NGX_OAUTH_PARAMS_MAX
        || flen < 2)
    {
        return NGX_OAUTH_INVALID;
    }

    n = ((size_t) value[0] << 8) | value[1];

    if (n == 0 || n > NGX_OAUTH_PARAM_NAME_MAX || n > flen - 2) {
        return NGX_OAUTH_INVALID;
    }

    sc->names[sc->nparams].data = value + 2;
    sc->names[sc->nparams].len = n;
    sc->values[sc->nparams].data = value + 2 + n;
    sc->values[sc->nparams].len = flen - 2 - n;
    sc->nparams++;

    /* flen is 2 + name + value: room for both and their zeros */
    sc->size += sizeof(ngx_oauth_pair_t) + flen;

    return NGX_OAUTH_OK;
}


/* a string is kept as a span, a number is read and checked */

static int
ngx_oauth_record_scan_value(const ngx_oauth_record_field_t *f,
    const unsigned char *value, size_t flen, uint64_t *num,
    ngx_oauth_record_span_t *str)
{
    switch (f->type) {

    case NGX_OAUTH_FIELD_STR:
        if (flen > f->max) {
            return NGX_OAUTH_INVALID;
        }

        str->data = value;
        str->len = flen;
        break;

    case NGX_OAUTH_FIELD_UINT:
    case NGX_OAUTH_FIELD_U32:
        if (flen != 4) {
            return NGX_OAUTH_INVALID;
        }

        *num = ngx_oauth_record_get32(value);

        if (*num > f->max) {
            return NGX_OAUTH_INVALID;
        }

        break;

    default: /* NGX_OAUTH_FIELD_U64, NGX_OAUTH_FIELD_TIME */
        if (flen != 8) {
            return NGX_OAUTH_INVALID;
        }

        *num = ngx_oauth_record_get64(value);
        break;
    }

    return NGX_OAUTH_OK;
}


/* the second pass: one memory block for the strings and params */

static int
ngx_oauth_record_fill(const ngx_oauth_record_type_t *rt,
    ngx_oauth_record_scan_t *sc, void *rec)
{
    size_t                           i;
    unsigned char                   *base, *mem, *p;
    ngx_oauth_str_t                 *s;
    ngx_oauth_pair_t                *params;
    const ngx_oauth_record_field_t  *f;

    base = rec;

    mem = malloc(sc->size);
    if (mem == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    params = (ngx_oauth_pair_t *) mem;
    p = mem + sc->nparams * sizeof(ngx_oauth_pair_t);

    for (i = 0; i < sc->nparams; i++) {
        params[i].name.data = p;
        params[i].name.len = sc->names[i].len;
        p = ngx_oauth_record_copy(p, &sc->names[i]);

        params[i].value.data = p;
        params[i].value.len = sc->values[i].len;
        p = ngx_oauth_record_copy(p, &sc->values[i]);
    }

    for (i = 0; i < rt->nfields; i++) {
        f = &rt->fields[i];

        switch (f->type) {

        case NGX_OAUTH_FIELD_STR:
            s = (ngx_oauth_str_t *) (base + f->offset);
            s->data = p;
            s->len = sc->strs[i].len;
            p = ngx_oauth_record_copy(p, &sc->strs[i]);
            break;

        case NGX_OAUTH_FIELD_PARAMS:
            *(size_t *) (base + f->count) = sc->nparams;
            *(ngx_oauth_pair_t **) (base + f->offset) = sc->nparams ? params
                                                                    : NULL;
            break;

        default:
            ngx_oauth_record_set_num(f, base, sc->nums[i]);
            break;
        }
    }

    *(void **) (base + rt->mem) = mem;

    return NGX_OAUTH_OK;
}


/* a span and its terminating zero at p; returns the end */

static unsigned char *
ngx_oauth_record_copy(unsigned char *p, const ngx_oauth_record_span_t *span)
{
    if (span->len) {
        memcpy(p, span->data, span->len);
        p += span->len;
    }

    *p++ = '\0';

    return p;
}


static void
ngx_oauth_record_set_num(const ngx_oauth_record_field_t *f,
    unsigned char *base, uint64_t v)
{
    switch (f->type) {

    case NGX_OAUTH_FIELD_UINT:
        *(unsigned *) (base + f->offset) = (unsigned) v;
        break;

    case NGX_OAUTH_FIELD_U32:
        *(uint32_t *) (base + f->offset) = (uint32_t) v;
        break;

    case NGX_OAUTH_FIELD_U64:
        *(uint64_t *) (base + f->offset) = v;
        break;

    case NGX_OAUTH_FIELD_TIME:
        *(time_t *) (base + f->offset) = ngx_oauth_record_time(v);
        break;

    default:
        break;
    }
}


static time_t
ngx_oauth_record_time(uint64_t v)
{
    int64_t  t;

    /* two's complement back to signed without overflow */

    t = (v > INT64_MAX) ? -(int64_t) (~v) - 1 : (int64_t) v;

    return (time_t) t;
}


/* the memory block of a decoded record; the record is left zeroed */

static void
ngx_oauth_record_free(const ngx_oauth_record_type_t *rt, void *rec)
{
    if (rec == NULL) {
        return;
    }

    free(*(void **) ((unsigned char *) rec + rt->mem));
    memset(rec, 0, rt->size);
}


static const ngx_oauth_record_field_t *
ngx_oauth_record_find(const ngx_oauth_record_type_t *rt, unsigned tag,
    size_t *index)
{
    size_t  i;

    for (i = 0; i < rt->nfields; i++) {
        if (rt->fields[i].tag == tag) {
            *index = i;
            return &rt->fields[i];
        }
    }

    return NULL;
}


static void
ngx_oauth_record_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


static void
ngx_oauth_record_put64(unsigned char *p, uint64_t v)
{
    ngx_oauth_record_put32(p, (uint32_t) (v >> 32));
    ngx_oauth_record_put32(p + 4, (uint32_t) v);
}


static uint32_t
ngx_oauth_record_get32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | (uint32_t) p[3];
}


static uint64_t
ngx_oauth_record_get64(const unsigned char *p)
{
    return ((uint64_t) ngx_oauth_record_get32(p) << 32)
           | ngx_oauth_record_get32(p + 4);
}
