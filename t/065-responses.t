# Responses that fit nginx and browsers (issue 11, SPEC section 11): every
# 401 carries WWW-Authenticate; an error_page for a status in the location
# takes over the module's JSON body; a callback with a state the store no
# longer has shows a browser a page, not JSON; CORS preflight and headers
# for the origins of oauth_allowed_origins on oauth_api and JSON starts.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use OAuthKit;

our $Conf = <<'_EOC_';
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_KEY_FILE;

    oauth_provider demo {
        client_id          c;
        redirect_uri       http://127.0.0.1/oauth/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         id;
    }
_EOC_

our $Locations = <<'_EOC_';
    oauth_owner $http_x_owner;
    oauth_allowed_origins https://app.example;

    location = /oauth/callback {
        oauth_callback;
    }

    location = /connect/demo {
        oauth_start demo;
    }

    location /oauth/api/ {
        oauth_api;
    }

    location /demo/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/upstream/;
    }

    location /upstream/ {
        return 200 "upstream\n";
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value('http_config', $::Conf . ($block->http_config // ''));
    my $c = $block->config // '';
    $c =~ s/^\s*#LOCATIONS\n/$::Locations/m;
    $block->set_value('config', $c);
});

no_shuffle();
run_tests();

__DATA__

=== TEST 1: oauth_token with no connection: 401 with WWW-Authenticate naming the error
--- config
    #LOCATIONS
--- request
GET /demo/x
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="oauth", error="not_connected"
Content-Type: application/json
--- response_body_like: "error":"not_connected"



=== TEST 2: oauth_api without an owner: 401 with WWW-Authenticate
--- config
    #LOCATIONS
--- request
GET /oauth/api/connections
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer realm="oauth", error="unauthenticated"



=== TEST 3: error_page 401 = @connect in an oauth_token location sends "not connected" to a connect page
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
    }

    location /demo/ {
        oauth_token demo;
        error_page 401 = @connect;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/upstream/;
    }

    location @connect {
        return 302 /integrations?connect=demo;
    }
--- request
GET /demo/x
--- more_headers
X-Owner: alice
--- error_code: 302
--- response_headers_like
Location: .*/integrations\?connect=demo$
--- response_body_unlike: not_connected



=== TEST 4: error_page 400 in the callback location styles the page of a used state
--- config
    oauth_owner $http_x_owner;

    location = /oauth/callback {
        oauth_callback;
        error_page 400 /oops.html;
    }

    location = /oops.html {
        internal;
        default_type text/html;
        return 200 "<p>That link was used already</p>\n";
    }
--- request
GET /oauth/callback?state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code=x
--- error_code: 400
--- response_body
<p>That link was used already</p>



=== TEST 5: no error_page: a browser that reloads the callback gets a page, not JSON
--- config
    #LOCATIONS
--- request
GET /oauth/callback?state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code=x
--- more_headers
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8
--- error_code: 400
--- response_headers_like
Content-Type: text/html.*
Cache-Control: no-store
--- response_body_like: (?s)<!DOCTYPE html>.*already used or has expired.*invalid_state



=== TEST 6: a script's callback call still gets JSON
--- config
    #LOCATIONS
--- request
GET /oauth/callback?state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&code=x
--- error_code: 400
--- response_headers_like
Content-Type: application/json
--- response_body_like: "error":"invalid_state"



=== TEST 7: CORS preflight on oauth_api from an allowed origin
--- config
    #LOCATIONS
--- request
OPTIONS /oauth/api/connections/demo/acct
--- more_headers
Origin: https://app.example
Access-Control-Request-Method: DELETE
Access-Control-Request-Headers: content-type, x-csrf
--- error_code: 204
--- response_headers
Access-Control-Allow-Origin: https://app.example
Access-Control-Allow-Credentials: true
Access-Control-Allow-Methods: GET, HEAD, POST, PATCH, DELETE
Access-Control-Allow-Headers: content-type, x-csrf
Access-Control-Max-Age: 600
Vary: Origin
--- response_body



=== TEST 8: CORS preflight from another origin: 403, no CORS headers
--- config
    #LOCATIONS
--- request
OPTIONS /oauth/api/connections
--- more_headers
Origin: https://evil.example
Access-Control-Request-Method: POST
--- error_code: 403
--- response_headers
Access-Control-Allow-Origin:
--- response_body_like: "error":"forbidden_origin"



=== TEST 9: an API answer to an allowed origin carries CORS headers, errors too
--- config
    #LOCATIONS
--- request
GET /oauth/api/connections
--- more_headers
Origin: https://app.example
--- error_code: 401
--- response_headers
Access-Control-Allow-Origin: https://app.example
Access-Control-Allow-Credentials: true
Vary: Origin
WWW-Authenticate: Bearer realm="oauth", error="unauthenticated"



=== TEST 10: an API answer to a foreign origin has no CORS headers
--- config
    #LOCATIONS
--- request
GET /oauth/api/providers
--- more_headers
Origin: https://evil.example
X-Owner: alice
--- error_code: 200
--- response_headers
Access-Control-Allow-Origin:



=== TEST 11: the preflight of a JSON start from an allowed origin
--- config
    #LOCATIONS
--- request
OPTIONS /connect/demo?mode=json
--- more_headers
Origin: https://app.example
Access-Control-Request-Method: GET
--- error_code: 204
--- response_headers
Access-Control-Allow-Origin: https://app.example
Access-Control-Allow-Methods: GET, HEAD, POST
Access-Control-Allow-Credentials: true



=== TEST 12: a JSON start from an allowed origin carries CORS headers
--- config
    #LOCATIONS
--- request
GET /connect/demo?mode=json
--- more_headers
Origin: https://app.example
X-Owner: alice
--- error_code: 200
--- response_headers
Access-Control-Allow-Origin: https://app.example
Access-Control-Allow-Credentials: true
Vary: Origin
--- response_body_like: "authorization_url":"https://auth\.example/authorize\?
