/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_oauth_store.h"


/*
 * A record is 'O', its type ('F' flow, 'C' connection), the format
 * version, then fields: a tag (1 byte), a length (4 bytes, big endian)
 * and the value.  The end tag, with length 0, comes last, so a truncated
 * record never decodes.  Fields come in any order; a known tag may appear
 * once (params repeat), and unknown tags are skipped so that a later
 * version can add fields without breaking older readers.
 */

#define NGX_OAUTH_RECORD_MAGIC      'O'
#define NGX_OAUTH_RECORD_FLOW       'F'
#define NGX_OAUTH_RECORD_CONN       'C'
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


static int ngx_oauth_record_encode(const ngx_oauth_record_type_t *rt,
    const void *rec, unsigned char **out, size_t *len);
static int ngx_oauth_record_size(const ngx_oauth_record_type_t *rt,
    const void *rec, size_t *size);
static unsigned char *ngx_oauth_record_field(unsigned char *p,
    unsigned tag, const void *value, size_t len);
static int ngx_oauth_record_decode(const ngx_oauth_record_type_t *rt,
    const unsigned char *buf, size_t len, void *rec);
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
      NGX_OAUTH_KIND_HEADER },

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
    "oauth2", "api_key", "basic", "header"
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
    if (flow == NULL) {
        return;
    }

    free(flow->mem);
    memset(flow, 0, sizeof(ngx_oauth_flow_t));
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
    if (conn == NULL) {
        return;
    }

    free(conn->mem);
    memset(conn, 0, sizeof(ngx_oauth_conn_t));
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
    size_t                           i, n, flen, size, nparams;
    int64_t                          t;
    uint32_t                         seen;
    uint64_t                         v;
    unsigned char                   *base, *mem, *p;
    ngx_oauth_str_t                 *s;
    ngx_oauth_pair_t                *params;
    const unsigned char             *pos, *last, *value;
    const ngx_oauth_record_field_t  *f;
    uint64_t                         nums[NGX_OAUTH_RECORD_FIELDS_MAX];
    ngx_oauth_record_span_t          strs[NGX_OAUTH_RECORD_FIELDS_MAX];
    ngx_oauth_record_span_t          names[NGX_OAUTH_PARAMS_MAX];
    ngx_oauth_record_span_t          values[NGX_OAUTH_PARAMS_MAX];

    if (rec == NULL) {
        return NGX_OAUTH_INVALID;
    }

    base = rec;
    memset(base, 0, rt->size);

    if (buf == NULL
        || len < NGX_OAUTH_RECORD_HEADER + NGX_OAUTH_RECORD_FIELD
        || len > NGX_OAUTH_RECORD_MAX
        || rt->nfields > NGX_OAUTH_RECORD_FIELDS_MAX)
    {
        return NGX_OAUTH_INVALID;
    }

    if (buf[0] != NGX_OAUTH_RECORD_MAGIC
        || buf[1] != rt->type
        || buf[2] != NGX_OAUTH_RECORD_VERSION)
    {
        return NGX_OAUTH_INVALID;
    }

    memset(nums, 0, sizeof(nums));
    memset(strs, 0, sizeof(strs));

    seen = 0;
    nparams = 0;
    size = 0;

    pos = buf + NGX_OAUTH_RECORD_HEADER;
    last = buf + len;

    /* the first pass checks everything and sizes the memory block */

    for ( ;; ) {

        if ((size_t) (last - pos) < NGX_OAUTH_RECORD_FIELD) {
            return NGX_OAUTH_INVALID;
        }

        n = pos[0];
        flen = ngx_oauth_record_get32(pos + 1);
        pos += NGX_OAUTH_RECORD_FIELD;

        if (flen > (size_t) (last - pos)) {
            return NGX_OAUTH_INVALID;
        }

        value = pos;
        pos += flen;

        if (n == NGX_OAUTH_RECORD_END) {
            if (flen != 0 || pos != last) {
                return NGX_OAUTH_INVALID;
            }

            break;
        }

        f = ngx_oauth_record_find(rt, (unsigned) n, &i);
        if (f == NULL) {
            /* a field of a later version */
            continue;
        }

        if (f->type == NGX_OAUTH_FIELD_PARAMS) {
            if (nparams == f->max || nparams == NGX_OAUTH_PARAMS_MAX
                || flen < 2)
            {
                return NGX_OAUTH_INVALID;
            }

            n = ((size_t) value[0] << 8) | value[1];

            if (n == 0 || n > NGX_OAUTH_PARAM_NAME_MAX || n > flen - 2) {
                return NGX_OAUTH_INVALID;
            }

            names[nparams].data = value + 2;
            names[nparams].len = n;
            values[nparams].data = value + 2 + n;
            values[nparams].len = flen - 2 - n;
            nparams++;

            /* flen is 2 + name + value: room for both and their zeros */
            size += sizeof(ngx_oauth_pair_t) + flen;
            continue;
        }

        if (seen & ((uint32_t) 1 << i)) {
            return NGX_OAUTH_INVALID;
        }

        seen |= (uint32_t) 1 << i;

        switch (f->type) {

        case NGX_OAUTH_FIELD_STR:
            if (flen > f->max) {
                return NGX_OAUTH_INVALID;
            }

            strs[i].data = value;
            strs[i].len = flen;
            break;

        case NGX_OAUTH_FIELD_UINT:
        case NGX_OAUTH_FIELD_U32:
            if (flen != 4) {
                return NGX_OAUTH_INVALID;
            }

            nums[i] = ngx_oauth_record_get32(value);

            if (nums[i] > f->max) {
                return NGX_OAUTH_INVALID;
            }

            break;

        default: /* NGX_OAUTH_FIELD_U64, NGX_OAUTH_FIELD_TIME */
            if (flen != 8) {
                return NGX_OAUTH_INVALID;
            }

            nums[i] = ngx_oauth_record_get64(value);
            break;
        }
    }

    /* every string, absent ones too, gets a terminating zero */

    for (i = 0; i < rt->nfields; i++) {
        if (rt->fields[i].type == NGX_OAUTH_FIELD_STR) {
            size += strs[i].len + 1;
        }
    }

    mem = malloc(size);
    if (mem == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    params = (ngx_oauth_pair_t *) mem;
    p = mem + nparams * sizeof(ngx_oauth_pair_t);

    for (i = 0; i < nparams; i++) {
        params[i].name.data = p;
        params[i].name.len = names[i].len;
        memcpy(p, names[i].data, names[i].len);
        p += names[i].len;
        *p++ = '\0';

        params[i].value.data = p;
        params[i].value.len = values[i].len;

        if (values[i].len) {
            memcpy(p, values[i].data, values[i].len);
            p += values[i].len;
        }

        *p++ = '\0';
    }

    for (i = 0; i < rt->nfields; i++) {
        f = &rt->fields[i];
        v = nums[i];

        switch (f->type) {

        case NGX_OAUTH_FIELD_STR:
            s = (ngx_oauth_str_t *) (base + f->offset);
            s->data = p;
            s->len = strs[i].len;

            if (strs[i].len) {
                memcpy(p, strs[i].data, strs[i].len);
                p += strs[i].len;
            }

            *p++ = '\0';
            break;

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
            /* two's complement back to signed without overflow */
            t = (v > INT64_MAX) ? -(int64_t) (~v) - 1 : (int64_t) v;
            *(time_t *) (base + f->offset) = (time_t) t;
            break;

        case NGX_OAUTH_FIELD_PARAMS:
            *(size_t *) (base + f->count) = nparams;
            *(ngx_oauth_pair_t **) (base + f->offset) = nparams ? params
                                                                 : NULL;
            break;
        }
    }

    *(void **) (base + rt->mem) = mem;

    return NGX_OAUTH_OK;
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
