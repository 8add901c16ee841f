/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_oauth_crypto.h"
#include "ngx_oauth_event.h"
#include "ngx_oauth_json.h"


/*
 * An outbox value: 'E', the format version, created (8 bytes), next_at
 * (8), attempts (4), then six strings, each a length (4 bytes) and the
 * bytes: owner, provider, account, id, type, body.  Numbers are big
 * endian; the fixed head lets a retry rewrite next_at and attempts in
 * place.
 */

#define NGX_OAUTH_OUTBOX_MAGIC      'E'
#define NGX_OAUTH_OUTBOX_VERSION    1
#define NGX_OAUTH_OUTBOX_NEXT_AT    10
#define NGX_OAUTH_OUTBOX_ATTEMPTS   18
#define NGX_OAUTH_OUTBOX_HEAD       22
#define NGX_OAUTH_OUTBOX_STRS       6


static void ngx_oauth_event_field(ngx_oauth_buf_t *b, const char *name,
    const unsigned char *value, size_t len);
static void ngx_oauth_outbox_put(unsigned char *p, uint64_t v, int n);
static uint64_t ngx_oauth_outbox_get(const unsigned char *p, int n);


static const char  *ngx_oauth_event_names[NGX_OAUTH_EVENT_TYPES] = {
    "connection.created",
    "connection.updated",
    "connection.refresh_failed",
    "connection.reauthorization_required",
    "connection.deleted",
    "credentials.set"
};


const char *
ngx_oauth_event_type_name(unsigned type)
{
    return type < NGX_OAUTH_EVENT_TYPES ? ngx_oauth_event_names[type]
                                        : "unknown";
}


int
ngx_oauth_event_type_parse(const unsigned char *name, size_t len)
{
    int  i;

    for (i = 0; i < NGX_OAUTH_EVENT_TYPES; i++) {
        if (strlen(ngx_oauth_event_names[i]) == len
            && memcmp(ngx_oauth_event_names[i], name, len) == 0)
        {
            return i;
        }
    }

    return -1;
}


int
ngx_oauth_event_init(ngx_oauth_event_t *ev, unsigned type, time_t now)
{
    unsigned char   rnd[16];

    if (type >= NGX_OAUTH_EVENT_TYPES) {
        return NGX_OAUTH_INVALID;
    }

    memset(ev, 0, sizeof(ngx_oauth_event_t));

    if (ngx_oauth_random(rnd, sizeof(rnd)) != NGX_OAUTH_OK) {
        return NGX_OAUTH_ERROR;
    }

    memcpy(ev->id, "evt_", 4);
    ngx_oauth_hex_encode(rnd, sizeof(rnd), ev->id + 4);

    ev->id[NGX_OAUTH_EVENT_ID_LEN] = '\0';
    ev->type = type;
    ev->time = now;
    ev->status = "connected";

    return NGX_OAUTH_OK;
}


int
ngx_oauth_event_json(const ngx_oauth_event_t *ev, ngx_oauth_buf_t *out)
{
    char        tbuf[sizeof("1970-01-01T00:00:00Z")];
    struct tm   tm;
    const char  *type;

    if (gmtime_r(&ev->time, &tm) == NULL
        || strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    {
        return NGX_OAUTH_INVALID;
    }

    type = ngx_oauth_event_type_name(ev->type);

    ngx_oauth_buf_add_byte(out, '{');
    ngx_oauth_event_field(out, "id", (const unsigned char *) ev->id,
                          strlen(ev->id));
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "type", (const unsigned char *) type,
                          strlen(type));
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "time", (const unsigned char *) tbuf,
                          strlen(tbuf));
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "owner", ev->owner.data, ev->owner.len);
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "provider", ev->provider.data,
                          ev->provider.len);
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "account", ev->account.data,
                          ev->account.len);
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "status",
                          (const unsigned char *) ev->status,
                          ev->status ? strlen(ev->status) : 0);
    ngx_oauth_buf_add_byte(out, ',');
    ngx_oauth_event_field(out, "error", ev->error.data,
                          ev->error.len > NGX_OAUTH_EVENT_ERROR_MAX
                          ? NGX_OAUTH_EVENT_ERROR_MAX : ev->error.len);
    ngx_oauth_buf_add_byte(out, '}');

    return out->failed ? NGX_OAUTH_NOMEM : NGX_OAUTH_OK;
}


static void
ngx_oauth_event_field(ngx_oauth_buf_t *b, const char *name,
    const unsigned char *value, size_t len)
{
    ngx_oauth_buf_add_byte(b, '"');
    ngx_oauth_buf_add_cstr(b, name);
    ngx_oauth_buf_add_cstr(b, "\":");

    if (value == NULL || len == 0) {
        ngx_oauth_buf_add_cstr(b, "null");
        return;
    }

    if (ngx_oauth_json_add_string(b, value, len) != NGX_OAUTH_OK) {
        ngx_oauth_buf_add_cstr(b, "\"?\"");
    }
}


int
ngx_oauth_event_sign(const unsigned char *secret, size_t slen, time_t t,
    const unsigned char *body, size_t blen, char *out, size_t outlen)
{
    int             n, ret;
    char            ts[24];
    unsigned int    mlen;
    unsigned char  *msg, mac[EVP_MAX_MD_SIZE];

    if (outlen < NGX_OAUTH_EVENT_SIG_LEN + 1 || secret == NULL || slen == 0
        || slen > 4096 || blen > NGX_OAUTH_JSON_MAX_SIZE)
    {
        return NGX_OAUTH_INVALID;
    }

    n = snprintf(ts, sizeof(ts), "%lld", (long long) t);
    if (n <= 0 || (size_t) n >= sizeof(ts)) {
        return NGX_OAUTH_INVALID;
    }

    /* the signed text is "t.body": a replayed body needs its old t */

    msg = malloc((size_t) n + 1 + blen);
    if (msg == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    memcpy(msg, ts, (size_t) n);
    msg[n] = '.';

    if (blen) {
        memcpy(msg + n + 1, body, blen);
    }

    ret = NGX_OAUTH_ERROR;
    mlen = 0;

    if (HMAC(EVP_sha256(), secret, (int) slen, msg, (size_t) n + 1 + blen,
             mac, &mlen)
        == NULL
        || mlen != 32)
    {
        goto done;
    }

    n = snprintf(out, outlen, "t=%s,v1=", ts);
    if (n <= 0 || (size_t) n + 2 * mlen + 1 > outlen) {
        ret = NGX_OAUTH_INVALID;
        goto done;
    }

    ngx_oauth_hex_encode(mac, mlen, out + n);
    out[n + 2 * mlen] = '\0';
    ret = NGX_OAUTH_OK;

done:

    ngx_oauth_wipe(mac, sizeof(mac));
    free(msg);

    return ret;
}


int
ngx_oauth_outbox_encode(const ngx_oauth_event_t *ev, unsigned char **out,
    size_t *len)
{
    int                    i, ret;
    size_t                 n;
    const char            *type;
    unsigned char         *p;
    ngx_oauth_buf_t        body = ngx_oauth_buf_init;
    ngx_oauth_str_t        s[NGX_OAUTH_OUTBOX_STRS];

    *out = NULL;
    *len = 0;

    ret = ngx_oauth_event_json(ev, &body);
    if (ret != NGX_OAUTH_OK) {
        goto done;
    }

    if (body.len > NGX_OAUTH_EVENT_BODY_MAX) {
        ret = NGX_OAUTH_TOO_LARGE;
        goto done;
    }

    type = ngx_oauth_event_type_name(ev->type);

    s[0] = ev->owner;
    s[1] = ev->provider;
    s[2] = ev->account;
    s[3].len = strlen(ev->id);
    s[3].data = (unsigned char *) ev->id;
    s[4].len = strlen(type);
    s[4].data = (unsigned char *) type;
    s[5].len = body.len;
    s[5].data = body.data;

    n = NGX_OAUTH_OUTBOX_HEAD;

    for (i = 0; i < NGX_OAUTH_OUTBOX_STRS; i++) {
        n += 4 + s[i].len;
    }

    p = malloc(n);
    if (p == NULL) {
        ret = NGX_OAUTH_NOMEM;
        goto done;
    }

    *out = p;
    *len = n;

    *p++ = NGX_OAUTH_OUTBOX_MAGIC;
    *p++ = NGX_OAUTH_OUTBOX_VERSION;
    ngx_oauth_outbox_put(p, (uint64_t) ev->time, 8);
    p += 8;
    ngx_oauth_outbox_put(p, 0, 8);          /* next_at: due now */
    p += 8;
    ngx_oauth_outbox_put(p, 0, 4);          /* attempts */
    p += 4;

    for (i = 0; i < NGX_OAUTH_OUTBOX_STRS; i++) {
        ngx_oauth_outbox_put(p, s[i].len, 4);
        p += 4;

        if (s[i].len) {
            memcpy(p, s[i].data, s[i].len);
            p += s[i].len;
        }
    }

    ret = NGX_OAUTH_OK;

done:

    ngx_oauth_buf_free(&body);

    return ret;
}


int
ngx_oauth_outbox_decode(const unsigned char *buf, size_t len,
    ngx_oauth_outbox_rec_t *rec, int copy)
{
    int                    i;
    size_t                 n, off;
    uint64_t               v;
    unsigned char         *mem;
    ngx_oauth_str_t       *s[NGX_OAUTH_OUTBOX_STRS];

    memset(rec, 0, sizeof(ngx_oauth_outbox_rec_t));

    if (buf == NULL || len < NGX_OAUTH_OUTBOX_HEAD
        || buf[0] != NGX_OAUTH_OUTBOX_MAGIC
        || buf[1] != NGX_OAUTH_OUTBOX_VERSION)
    {
        return NGX_OAUTH_INVALID;
    }

    s[0] = &rec->owner;
    s[1] = &rec->provider;
    s[2] = &rec->account;
    s[3] = &rec->id;
    s[4] = &rec->type;
    s[5] = &rec->body;

    off = NGX_OAUTH_OUTBOX_HEAD;

    for (i = 0; i < NGX_OAUTH_OUTBOX_STRS; i++) {
        if (len - off < 4) {
            return NGX_OAUTH_INVALID;
        }

        n = (size_t) ngx_oauth_outbox_get(buf + off, 4);
        off += 4;

        if (n > len - off) {
            return NGX_OAUTH_INVALID;
        }

        s[i]->len = n;
        s[i]->data = (unsigned char *) buf + off;
        off += n;
    }

    if (off != len || rec->id.len == 0 || rec->body.len == 0) {
        return NGX_OAUTH_INVALID;
    }

    v = ngx_oauth_outbox_get(buf + 2, 8);
    rec->created = (time_t) (int64_t) v;
    v = ngx_oauth_outbox_get(buf + NGX_OAUTH_OUTBOX_NEXT_AT, 8);
    rec->next_at = (time_t) (int64_t) v;
    rec->attempts = (uint32_t) ngx_oauth_outbox_get(
                                   buf + NGX_OAUTH_OUTBOX_ATTEMPTS, 4);

    if (!copy) {
        return NGX_OAUTH_OK;
    }

    /* one block for every string, NUL-terminated each */

    mem = malloc(len + NGX_OAUTH_OUTBOX_STRS);
    if (mem == NULL) {
        memset(rec, 0, sizeof(ngx_oauth_outbox_rec_t));
        return NGX_OAUTH_NOMEM;
    }

    rec->mem = mem;

    for (i = 0; i < NGX_OAUTH_OUTBOX_STRS; i++) {
        if (s[i]->len) {
            memcpy(mem, s[i]->data, s[i]->len);
        }

        s[i]->data = mem;
        mem += s[i]->len;
        *mem++ = '\0';
    }

    return NGX_OAUTH_OK;
}


void
ngx_oauth_outbox_free(ngx_oauth_outbox_rec_t *rec)
{
    free(rec->mem);
    memset(rec, 0, sizeof(ngx_oauth_outbox_rec_t));
}


int
ngx_oauth_outbox_reschedule(unsigned char *buf, size_t len, time_t next_at,
    uint32_t attempts)
{
    if (buf == NULL || len < NGX_OAUTH_OUTBOX_HEAD
        || buf[0] != NGX_OAUTH_OUTBOX_MAGIC)
    {
        return NGX_OAUTH_INVALID;
    }

    ngx_oauth_outbox_put(buf + NGX_OAUTH_OUTBOX_NEXT_AT,
                         (uint64_t) (int64_t) next_at, 8);
    ngx_oauth_outbox_put(buf + NGX_OAUTH_OUTBOX_ATTEMPTS, attempts, 4);

    return NGX_OAUTH_OK;
}


static void
ngx_oauth_outbox_put(unsigned char *p, uint64_t v, int n)
{
    int  i;

    for (i = n - 1; i >= 0; i--) {
        p[i] = (unsigned char) v;
        v >>= 8;
    }
}


static uint64_t
ngx_oauth_outbox_get(const unsigned char *p, int n)
{
    int       i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}
