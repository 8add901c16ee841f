/*
 * Copyright (C) ngx_oauth_module authors
 */


#include <malloc.h>            /* malloc_usable_size(): glibc, musl */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>           /* strncasecmp() */

#include <jansson.h>
#include <openssl/crypto.h>

#include "ngx_oauth_json.h"
#include "ngx_oauth_url.h"


#define NGX_OAUTH_JSON_KEY_MAX     256
#define NGX_OAUTH_TOKEN_TYPE_MAX   64


static void ngx_oauth_json_wipe_free(void *p);
static int ngx_oauth_json_depth_ok(const unsigned char *text, size_t len);
static int ngx_oauth_token_error(json_t *root, ngx_oauth_token_t *t);
static int ngx_oauth_token_string(json_t *root, const char *key,
    size_t max, int required, ngx_oauth_str_t *s);
static int ngx_oauth_token_scope(json_t *root, ngx_oauth_str_t *s);
static int ngx_oauth_token_expires_in(json_t *root, long long *expires_in);
static void ngx_oauth_token_set(json_t *v, ngx_oauth_str_t *s);
static int ngx_oauth_json_real_text(double d, char *out, size_t size);
static int ngx_oauth_json_decimal(const char *p, size_t len, size_t max,
    unsigned long long *n);
static int ngx_oauth_json_member(json_t *v, const unsigned char *name,
    size_t len, json_t **member);
static int ngx_oauth_json_find(json_t *root, const unsigned char *path,
    size_t path_len, json_t **found);
static int ngx_oauth_json_scalar(json_t *v, char *num, size_t size,
    const char **text, size_t *len);
static int ngx_oauth_json_form_pair(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value);


static int         ngx_oauth_json_inited;
static const char  ngx_oauth_json_hex[] = "0123456789abcdef";


void
ngx_oauth_json_init(void)
{
    if (ngx_oauth_json_inited) {
        return;
    }

    /*
     * Blocks allocated before this call came from malloc() as well, so
     * freeing them with ngx_oauth_json_wipe_free() is safe.
     */

    json_set_alloc_funcs(malloc, ngx_oauth_json_wipe_free);

    ngx_oauth_json_inited = 1;
}


int
ngx_oauth_json_parse(const unsigned char *text, size_t len, void **root)
{
    json_t        *j;
    json_error_t   err;

    ngx_oauth_json_init();

    *root = NULL;

    if (len > NGX_OAUTH_JSON_MAX_SIZE) {
        return NGX_OAUTH_TOO_LARGE;
    }

    if (len == 0 || !ngx_oauth_json_depth_ok(text, len)) {
        return NGX_OAUTH_INVALID;
    }

    /*
     * Duplicate keys are refused: two access_token members must not be
     * settled by whichever one the parser happens to keep.
     */

    j = json_loadb((const char *) text, len, JSON_REJECT_DUPLICATES, &err);

    /* the error text may quote the input, which may be a token */
    OPENSSL_cleanse(&err, sizeof(err));

    if (j == NULL) {
        return NGX_OAUTH_INVALID;
    }

    *root = j;

    return NGX_OAUTH_OK;
}


void
ngx_oauth_json_free(void *root)
{
    if (root != NULL) {
        json_decref((json_t *) root);
    }
}


int
ngx_oauth_token_parse(const unsigned char *body, size_t len,
    ngx_oauth_token_t *t)
{
    return ngx_oauth_token_parse_at(body, len, NULL, 0, t);
}


/*
 * The object that holds the token fields: the document itself, the member
 * at path (objects only), or, with no path, a document that wraps its one
 * token in "data" (Meta's {"data":[{...}]}, TikTok for Business' "data").
 */

static json_t *
ngx_oauth_token_fields(json_t *root, const unsigned char *path, size_t len)
{
    json_t               *v;
    const unsigned char  *p, *end, *seg;

    if (path == NULL || len == 0) {
        if (json_object_get(root, "access_token") != NULL) {
            return root;
        }

        v = json_object_get(root, "data");

        if (json_is_array(v) && json_array_size(v) == 1) {
            v = json_array_get(v, 0);
        }

        return (json_is_object(v) && json_object_get(v, "access_token"))
               ? v : root;
    }

    v = root;
    p = path;
    end = path + len;

    while (p < end) {
        seg = p;

        while (p < end && *p != '.') {
            p++;
        }

        if (p == seg
            || ngx_oauth_json_member(v, seg, p - seg, &v) != NGX_OAUTH_OK
            || !json_is_object(v))
        {
            return NULL;
        }

        if (p < end) {
            p++;
        }
    }

    return v;
}


int
ngx_oauth_token_parse_at(const unsigned char *body, size_t len,
    const unsigned char *path, size_t path_len, ngx_oauth_token_t *t)
{
    int      rc;
    void    *doc;
    json_t  *root, *v;

    memset(t, 0, sizeof(ngx_oauth_token_t));
    t->expires_in = -1;

    rc = ngx_oauth_json_parse(body, len, &doc);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    root = doc;

    if (!json_is_object(root)) {
        rc = NGX_OAUTH_INVALID;
        goto failed;
    }

    t->root = root;

    v = json_object_get(root, "error");

    if (v != NULL && !json_is_null(v)) {
        rc = ngx_oauth_token_error(root, t);
        if (rc != NGX_OAUTH_OK) {
            goto failed;
        }

        return NGX_OAUTH_OK;
    }

    t->fields = ngx_oauth_token_fields(root, path, path_len);

    if (t->fields == NULL) {
        rc = NGX_OAUTH_INVALID;
        goto failed;
    }

    root = t->fields;

    rc = ngx_oauth_token_string(root, "access_token", NGX_OAUTH_TOKEN_MAX, 1,
                                &t->access_token);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    rc = ngx_oauth_token_string(root, "refresh_token", NGX_OAUTH_TOKEN_MAX,
                                0, &t->refresh_token);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    rc = ngx_oauth_token_string(root, "id_token", NGX_OAUTH_TOKEN_MAX, 0,
                                &t->id_token);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    rc = ngx_oauth_token_string(root, "token_type", NGX_OAUTH_TOKEN_TYPE_MAX,
                                0, &t->token_type);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    rc = ngx_oauth_token_scope(root, &t->scope);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    rc = ngx_oauth_token_expires_in(root, &t->expires_in);
    if (rc != NGX_OAUTH_OK) {
        goto failed;
    }

    return NGX_OAUTH_OK;

failed:

    t->root = doc;
    ngx_oauth_token_free(t);

    return rc;
}


void
ngx_oauth_token_free(ngx_oauth_token_t *t)
{
    size_t            i;
    ngx_oauth_str_t  *s[7];

    s[0] = &t->access_token;
    s[1] = &t->refresh_token;
    s[2] = &t->token_type;
    s[3] = &t->scope;
    s[4] = &t->id_token;
    s[5] = &t->error;
    s[6] = &t->error_description;

    /* the strings live inside root: wiped there, whatever free() does */

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (s[i]->data != NULL) {
            OPENSSL_cleanse(s[i]->data, s[i]->len);
        }
    }

    ngx_oauth_json_free(t->root);

    memset(t, 0, sizeof(ngx_oauth_token_t));
    t->expires_in = -1;
}


/*
 * The module sends every token as a bearer token (RFC 6750).  A token of
 * another type (DPoP, MAC, N_A) sent as one would be refused at best and
 * misused at worst.  No token_type at all is taken as bearer, as many
 * providers send none; a provider may name its bearer tokens otherwise
 * (Slack: "bot", "user"), given in also.
 */

int
ngx_oauth_token_type_check(const ngx_oauth_token_t *t,
    const ngx_oauth_str_t *also, size_t n)
{
    size_t  i;

    if (t->token_type.len == 0
        || (t->token_type.len == sizeof("bearer") - 1
            && strncasecmp((char *) t->token_type.data, "bearer",
                           sizeof("bearer") - 1)
               == 0))
    {
        return NGX_OAUTH_OK;
    }

    for (i = 0; i < n; i++) {
        if (also[i].len == t->token_type.len
            && strncasecmp((char *) t->token_type.data,
                           (char *) also[i].data, also[i].len)
               == 0)
        {
            return NGX_OAUTH_OK;
        }
    }

    return NGX_OAUTH_UNSUPPORTED;
}


int
ngx_oauth_json_get(void *root, const unsigned char *path, size_t path_len,
    ngx_oauth_str_t *value)
{
    int          rc;
    char         num[32];
    size_t       len;
    json_t      *v;
    const char  *text;

    value->len = 0;
    value->data = NULL;

    rc = ngx_oauth_json_find(root, path, path_len, &v);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    rc = ngx_oauth_json_scalar(v, num, sizeof(num), &text, &len);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    value->data = malloc(len + 1);
    if (value->data == NULL) {
        return NGX_OAUTH_NOMEM;
    }

    memcpy(value->data, text, len);
    value->data[len] = '\0';
    value->len = len;

    return NGX_OAUTH_OK;
}


/* the member of a dotted path: object keys and array indexes */

static int
ngx_oauth_json_find(json_t *root, const unsigned char *path, size_t path_len,
    json_t **found)
{
    size_t                len;
    json_t               *v;
    unsigned long long    index;
    const unsigned char  *p, *end, *seg;

    if (path_len == 0) {
        return NGX_OAUTH_INVALID;
    }

    v = root;
    p = path;
    end = path + path_len;

    for ( ;; ) {
        seg = p;

        while (p < end && *p != '.') {
            p++;
        }

        len = p - seg;

        if (len == 0) {
            return NGX_OAUTH_INVALID;
        }

        if (v == NULL) {
            return NGX_OAUTH_NOT_FOUND;
        }

        if (json_is_object(v)) {
            if (ngx_oauth_json_member(v, seg, len, &v) != NGX_OAUTH_OK) {
                return NGX_OAUTH_NOT_FOUND;
            }

        } else if (json_is_array(v)) {
            if (ngx_oauth_json_decimal((const char *) seg, len, 9, &index)
                != NGX_OAUTH_OK)
            {
                return NGX_OAUTH_NOT_FOUND;
            }

            v = json_array_get(v, (size_t) index);

        } else {
            return NGX_OAUTH_NOT_FOUND;
        }

        if (p == end) {
            break;
        }

        p++;
    }

    if (v == NULL) {
        return NGX_OAUTH_NOT_FOUND;
    }

    *found = v;

    return NGX_OAUTH_OK;
}


/* the text of a string, number or boolean (num: room for a number) */

static int
ngx_oauth_json_scalar(json_t *v, char *num, size_t size, const char **text,
    size_t *len)
{
    int  n;

    switch (json_typeof(v)) {

    case JSON_STRING:
        *text = json_string_value(v);
        *len = json_string_length(v);
        return NGX_OAUTH_OK;

    case JSON_INTEGER:
        n = snprintf(num, size, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));
        if (n < 0 || (size_t) n >= size) {
            return NGX_OAUTH_ERROR;
        }

        break;

    case JSON_REAL:
        n = ngx_oauth_json_real_text(json_real_value(v), num, size);
        if (n < 0) {
            return NGX_OAUTH_ERROR;
        }

        break;

    case JSON_TRUE:
        *text = "true";
        *len = 4;
        return NGX_OAUTH_OK;

    case JSON_FALSE:
        *text = "false";
        *len = 5;
        return NGX_OAUTH_OK;

    default:
        return NGX_OAUTH_NOT_FOUND;
    }

    *text = num;
    *len = n;

    return NGX_OAUTH_OK;
}


/* 1 to max decimal digits and nothing else */

static int
ngx_oauth_json_decimal(const char *p, size_t len, size_t max,
    unsigned long long *n)
{
    size_t  i;

    if (len == 0 || len > max) {
        return NGX_OAUTH_INVALID;
    }

    *n = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return NGX_OAUTH_INVALID;
        }

        *n = *n * 10 + (unsigned long long) (p[i] - '0');
    }

    return NGX_OAUTH_OK;
}


/*
 * An object's member (*member NULL if there is none) by a name that is
 * not NUL-terminated; NGX_OAUTH_NOT_FOUND for a name no key can have
 */

static int
ngx_oauth_json_member(json_t *v, const unsigned char *name, size_t len,
    json_t **member)
{
    char  key[NGX_OAUTH_JSON_KEY_MAX];

    if (len >= sizeof(key) || memchr(name, '\0', len) != NULL) {
        return NGX_OAUTH_NOT_FOUND;
    }

    memcpy(key, name, len);
    key[len] = '\0';

    *member = json_object_get(v, key);

    return NGX_OAUTH_OK;
}


void
ngx_oauth_json_str_free(ngx_oauth_str_t *s)
{
    if (s->data != NULL) {
        OPENSSL_cleanse(s->data, s->len);
        free(s->data);
    }

    s->data = NULL;
    s->len = 0;
}


int
ngx_oauth_json_add_string(ngx_oauth_buf_t *b, const void *p, size_t len)
{
    int                   rc;
    size_t                i;
    unsigned char        *d, c;
    const unsigned char  *s;

    s = p;

    if (!ngx_oauth_utf8_valid(s, len)) {
        return NGX_OAUTH_INVALID;
    }

    if (len > NGX_OAUTH_BUF_MAX / 6) {
        b->failed = 1;
        return NGX_OAUTH_TOO_LARGE;
    }

    /* at worst every byte becomes "\u00XX" */

    rc = ngx_oauth_buf_reserve(b, len * 6 + 2);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    d = b->data + b->len;
    *d++ = '"';

    for (i = 0; i < len; i++) {
        c = s[i];

        switch (c) {

        case '"':
        case '\\':
            *d++ = '\\';
            *d++ = c;
            continue;

        case '<':
        case '>':
        case '&':
        case '\'':
            break;

        case 0xe2:
            /* U+2028 and U+2029 end a line in JavaScript before ES2019 */

            if (i + 2 < len && s[i + 1] == 0x80
                && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
            {
                memcpy(d, "\\u202", 5);
                d += 5;
                *d++ = (s[i + 2] == 0xa8) ? '8' : '9';
                i += 2;
                continue;
            }

            *d++ = c;
            continue;

        default:
            if (c >= 0x20 && c != 0x7f) {
                *d++ = c;
                continue;
            }

            break;
        }

        memcpy(d, "\\u00", 4);
        d += 4;
        *d++ = ngx_oauth_json_hex[c >> 4];
        *d++ = ngx_oauth_json_hex[c & 0x0f];
    }

    *d++ = '"';

    b->len = d - b->data;
    b->data[b->len] = '\0';

    return NGX_OAUTH_OK;
}


int
ngx_oauth_utf8_valid(const unsigned char *p, size_t len)
{
    size_t         i, n, k;
    unsigned       cp, min;
    unsigned char  c;

    for (i = 0; i < len; /* void */) {
        c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }

        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
            min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
            min = 0x800;

        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
            min = 0x10000;

        } else {
            return 0;
        }

        if (len - i <= n) {
            return 0;
        }

        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (p[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }

        i += n + 1;
    }

    return 1;
}


static void
ngx_oauth_json_wipe_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        free(p);
    }
}


/*
 * jansson recurses once per nesting level: deep documents are refused
 * before it sees them, by counting brackets outside strings.
 */

static int
ngx_oauth_json_depth_ok(const unsigned char *text, size_t len)
{
    int            in_string;
    size_t         i, depth;
    unsigned char  c;

    depth = 0;
    in_string = 0;

    for (i = 0; i < len; i++) {
        c = text[i];

        if (in_string) {
            if (c == '\\') {
                i++;

            } else if (c == '"') {
                in_string = 0;
            }

            continue;
        }

        switch (c) {

        case '"':
            in_string = 1;
            break;

        case '[':
        case '{':
            if (++depth > NGX_OAUTH_JSON_MAX_DEPTH) {
                return 0;
            }

            break;

        case ']':
        case '}':
            if (depth) {
                depth--;
            }

            break;

        default:
            break;
        }
    }

    return 1;
}


/*
 * RFC 6749 5.2, and Facebook's {"error":{"message":..,"type":..}}: the
 * object is replaced by its type (or code) so that .error is a string.
 */

static int
ngx_oauth_token_error(json_t *root, ngx_oauth_token_t *t)
{
    int          rc;
    char         code[32];
    json_t      *v, *e, *d;
    const char  *type;

    v = json_object_get(root, "error");

    if (json_is_object(v)) {
        d = json_object_get(v, "message");

        if (json_is_string(d)
            && json_object_get(root, "error_description") == NULL)
        {
            if (json_object_set(root, "error_description", d) != 0) {
                return NGX_OAUTH_NOMEM;
            }
        }

        type = "oauth_error";
        e = json_object_get(v, "type");

        if (json_is_string(e) && json_string_length(e) > 0) {
            type = json_string_value(e);

        } else {
            e = json_object_get(v, "code");

            if (json_is_integer(e)) {
                rc = snprintf(code, sizeof(code), "%" JSON_INTEGER_FORMAT,
                              json_integer_value(e));
                if (rc > 0 && (size_t) rc < sizeof(code)) {
                    type = code;
                }

            } else if (json_is_string(e) && json_string_length(e) > 0) {
                type = json_string_value(e);
            }
        }

        e = json_string(type);
        if (e == NULL) {
            return NGX_OAUTH_INVALID;
        }

        /* frees the object "type" pointed into: e is a copy */
        if (json_object_set_new(root, "error", e) != 0) {
            return NGX_OAUTH_NOMEM;
        }

        v = e;
    }

    if (!json_is_string(v) || json_string_length(v) == 0) {
        return NGX_OAUTH_INVALID;
    }

    ngx_oauth_token_set(v, &t->error);

    d = json_object_get(root, "error_description");

    if (json_is_string(d)) {
        ngx_oauth_token_set(d, &t->error_description);
    }

    return NGX_OAUTH_OK;
}


/*
 * A credential goes into headers and form bodies: visible ASCII only,
 * which keeps CR, LF, NUL and spaces out of any request built with it.
 * An empty optional string ("refresh_token":"") counts as absent.
 */

static int
ngx_oauth_token_string(json_t *root, const char *key, size_t max,
    int required, ngx_oauth_str_t *s)
{
    size_t                i, len;
    json_t               *v;
    const unsigned char  *p;

    v = json_object_get(root, key);

    if (v == NULL || json_is_null(v)) {
        return required ? NGX_OAUTH_INVALID : NGX_OAUTH_OK;
    }

    if (!json_is_string(v)) {
        return NGX_OAUTH_INVALID;
    }

    len = json_string_length(v);
    p = (const unsigned char *) json_string_value(v);

    if (len == 0) {
        return required ? NGX_OAUTH_INVALID : NGX_OAUTH_OK;
    }

    if (len > max) {
        return NGX_OAUTH_INVALID;
    }

    for (i = 0; i < len; i++) {
        if (p[i] <= 0x20 || p[i] >= 0x7f) {
            return NGX_OAUTH_INVALID;
        }
    }

    ngx_oauth_token_set(v, s);

    return NGX_OAUTH_OK;
}


static int
ngx_oauth_token_scope(json_t *root, ngx_oauth_str_t *s)
{
    int              rc;
    size_t           i, k, len;
    json_t          *v, *e;
    const char      *p;
    ngx_oauth_buf_t  b = ngx_oauth_buf_init;

    v = json_object_get(root, "scope");

    if (v == NULL || json_is_null(v)) {
        return NGX_OAUTH_OK;
    }

    if (json_is_array(v)) {
        /* some providers list scopes as an array: joined as RFC 6749 has */

        for (i = 0; i < json_array_size(v); i++) {
            e = json_array_get(v, i);

            if (!json_is_string(e)) {
                rc = NGX_OAUTH_INVALID;
                goto exit;
            }

            if (i) {
                (void) ngx_oauth_buf_add_byte(&b, ' ');
            }

            (void) ngx_oauth_buf_add(&b, json_string_value(e),
                                     json_string_length(e));
        }

        if (b.failed) {
            rc = NGX_OAUTH_NOMEM;
            goto exit;
        }

        e = json_stringn(b.data ? (const char *) b.data : "", b.len);
        if (e == NULL || json_object_set_new(root, "scope", e) != 0) {
            rc = NGX_OAUTH_NOMEM;
            goto exit;
        }

        v = e;
    }

    if (!json_is_string(v)) {
        rc = NGX_OAUTH_INVALID;
        goto exit;
    }

    p = json_string_value(v);
    len = json_string_length(v);

    for (k = 0; k < len; k++) {
        if ((unsigned char) p[k] < 0x20 || p[k] == 0x7f) {
            rc = NGX_OAUTH_INVALID;
            goto exit;
        }
    }

    ngx_oauth_token_set(v, s);
    rc = NGX_OAUTH_OK;

exit:

    ngx_oauth_buf_free(&b);

    return rc;
}


static int
ngx_oauth_token_expires_in(json_t *root, long long *expires_in)
{
    double               d;
    json_t              *v;
    long long            n;
    unsigned long long   u;

    v = json_object_get(root, "expires_in");

    if (v == NULL || json_is_null(v)) {
        *expires_in = -1;
        return NGX_OAUTH_OK;
    }

    if (json_is_integer(v)) {
        n = json_integer_value(v);

    } else if (json_is_real(v)) {
        d = json_real_value(v);

        if (!isfinite(d) || d < 0 || d > (double) NGX_OAUTH_EXPIRES_IN_MAX) {
            return NGX_OAUTH_INVALID;
        }

        n = (long long) d;

    } else if (json_is_string(v)) {
        /* "3600", as some providers send it; nothing else in the string */

        if (ngx_oauth_json_decimal(json_string_value(v),
                                   json_string_length(v), 12, &u)
            != NGX_OAUTH_OK)
        {
            return NGX_OAUTH_INVALID;
        }

        n = (long long) u;

    } else {
        return NGX_OAUTH_INVALID;
    }

    if (n < 0 || n > NGX_OAUTH_EXPIRES_IN_MAX) {
        return NGX_OAUTH_INVALID;
    }

    *expires_in = n;

    return NGX_OAUTH_OK;
}


static void
ngx_oauth_token_set(json_t *v, ngx_oauth_str_t *s)
{
    s->data = (unsigned char *) json_string_value(v);
    s->len = json_string_length(v);
}


/* the shortest text that reads back as the same double */

static int
ngx_oauth_json_real_text(double d, char *out, size_t size)
{
    int  n, prec;

    if (!isfinite(d)) {
        return -1;
    }

    for (prec = 1; prec <= 17; prec++) {
        n = snprintf(out, size, "%.*g", prec, d);
        if (n < 0 || (size_t) n >= size) {
            return -1;
        }

        if (strtod(out, NULL) == d) {
            return n;
        }
    }

    return n;
}


static int
ngx_oauth_json_form_pair(void *data, const ngx_oauth_str_t *name,
    const ngx_oauth_str_t *value)
{
    int               rc;
    ngx_oauth_buf_t  *out = data;

    /* the opening brace comes with the first pair */

    (void) ngx_oauth_buf_add_byte(out, out->len ? ',' : '{');

    rc = ngx_oauth_json_add_string(out, name->data, name->len);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    (void) ngx_oauth_buf_add_byte(out, ':');

    return ngx_oauth_json_add_string(out, value->data, value->len);
}


int
ngx_oauth_json_from_form(ngx_oauth_buf_t *out, const unsigned char *form,
    size_t len)
{
    int  rc;

    ngx_oauth_buf_reset(out);

    rc = ngx_oauth_query_foreach(form, len, ngx_oauth_json_form_pair, out);
    if (rc != NGX_OAUTH_OK) {
        return rc;
    }

    if (out->len == 0) {
        (void) ngx_oauth_buf_add_byte(out, '{');
    }

    (void) ngx_oauth_buf_add_byte(out, '}');

    return out->failed ? NGX_OAUTH_NOMEM : NGX_OAUTH_OK;
}
