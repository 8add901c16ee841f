/*
 * Copyright (C) ngx_oauth_module authors
 */


#ifndef _NGX_OAUTH_RECORD_H_INCLUDED_
#define _NGX_OAUTH_RECORD_H_INCLUDED_


#include <stdint.h>
#include <time.h>

#include "ngx_oauth_core.h"


/*
 * A provider's circuit breaker as the store's meta database keeps it
 * ("circuit:" and the provider's name), in the versioned record format
 * of connections and flows.  A value that does not decode (the raw
 * struct of older versions) reads as a closed circuit and is replaced by
 * the next write.
 */
typedef struct {
    uint32_t  failures;         /* in a row */
    time_t    opened_at;        /* 0: never opened */
} ngx_oauth_circuit_t;

/* the size of an encoded circuit: header, two fields, the end */
#define NGX_OAUTH_CIRCUIT_SIZE  (3 + 5 + 4 + 5 + 8 + 5)


/*
 * Encodes c into buf (size bytes, at least NGX_OAUTH_CIRCUIT_SIZE, else
 * NGX_OAUTH_TOO_LARGE); *len gets the size.
 */
int ngx_oauth_circuit_encode(const ngx_oauth_circuit_t *c,
    unsigned char *buf, size_t size, size_t *len);

/* NGX_OAUTH_INVALID when buf is not a circuit record; c is then zeroed */
int ngx_oauth_circuit_decode(const unsigned char *buf, size_t len,
    ngx_oauth_circuit_t *c);


#endif /* _NGX_OAUTH_RECORD_H_INCLUDED_ */
