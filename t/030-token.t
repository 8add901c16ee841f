# oauth_token: the owner's connection is found and its credential injected
# into the proxied request; the client's own credentials and cookies never
# reach the provider; bad provider data cannot inject headers; one owner
# never uses another's connection (security-tests.md T33, T34, T36, T38).
#
# Connections are made by a real connect flow (OAuthKit::connect) against
# the scripted fake provider (t/lib/FakeProvider.pm), whose API endpoint
# answers with the raw request head it received: what the provider sees.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

master_on();
workers(4);
worker_connections(256);
add_block_preprocessor(\&OAuthKit::demo_defaults);

run_tests();

__DATA__

=== TEST 1: "oauth_token" with "proxy_pass" alone sends the owner's token, once
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/items?page=2
--- more_headers
X-Owner: alice
--- response_headers
X-Token-Valid: yes
--- response_body_like eval
qr{\AGET\ /api/items\?page=2\ HTTP/1\.[01]\r\n
   (?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)
   (?!(?i).*^authorization:.*^authorization:)}msx
--- no_error_log
[error]
[alert]



=== TEST 2: the client's Authorization, Proxy-Authorization and Cookie never reach upstream
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/items
--- more_headers
X-Owner: alice
Authorization: Bearer attacker-token
Proxy-Authorization: Basic YXR0YWNrZXI6eA==
Cookie: session=our-session-secret
Cookie: theme=dark
X-Keep: kept
--- response_headers
X-Token-Valid: yes
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)
   (?=.*^X-Keep:\ kept\r$)
   (?!(?i).*^authorization:.*^authorization:)
   (?!(?i).*attacker)
   (?!(?i).*^proxy-authorization:)
   (?!(?i).*^cookie:)
   (?!.*our-session-secret)
   (?!.*theme=dark)}msx



=== TEST 3: a lower-case "authorization" from the client is dropped too
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/items
--- more_headers
X-Owner: alice
authorization: Bearer attacker-token
cookie: session=our-session-secret
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)
   (?!(?i).*^authorization:.*^authorization:)
   (?!(?i).*attacker)
   (?!(?i).*^cookie:)}msx



=== TEST 4: an upper-case "AUTHORIZATION" and "PROXY-AUTHORIZATION" are dropped too
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/items
--- more_headers
X-Owner: alice
AUTHORIZATION: Bearer attacker-token
PROXY-AUTHORIZATION: Bearer attacker-proxy
COOKIE: session=our-session-secret
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)
   (?!(?i).*^authorization:.*^authorization:)
   (?!(?i).*attacker)
   (?!(?i).*^cookie:)}msx



=== TEST 5: token_header X-Api-Key: the client's X_Api_Key (underscores on), x-api-key and Authorization are dropped
--- http_config
    underscores_in_headers on;
    oauth_provider keyed {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        account_id         user.id;
        token_header       X-Api-Key "";
    }
--- config
    location /api/ {
        oauth_token keyed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', uri => '/connect/keyed',
                      code => 'alice-1');
--- request
GET /api/items
--- more_headers
X-Owner: alice
X_Api_Key: attacker-underscore
x-api-key: attacker-lower
X-API-KEY: attacker-upper
x_API-key: attacker-mixed
Authorization: Bearer attacker-token
--- response_headers
X-Token-Valid: yes
--- response_body_like eval
qr{\A(?=.*^X-Api-Key:\ at-1-alice-1\r$)
   (?!(?i).*^x[-_]api[-_]key:.*^x[-_]api[-_]key:)
   (?!(?i).*attacker)
   (?!(?i).*^authorization:)}msx



=== TEST 6: Shopify style: custom header with an empty prefix, $oauth_param_shop and a templated $oauth_api_base_url
--- http_config
    oauth_provider shop {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$TEST_NGINX_FAKE_PORT/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_FAKE_PORT/token;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        account_id         user.id;
        connection_param   shop required "pattern=^[a-z0-9-]{1,40}$";
        api_base_url       "http://127.0.0.1:$TEST_NGINX_FAKE_PORT/api/shops/{shop}/admin";
        token_header       X-Shopify-Access-Token "";
    }
--- config
    location /shopify/ {
        oauth_token shop;
        proxy_pass $oauth_api_base_url/products.json;
    }
    location = /vars {
        oauth_token shop;
        echo "provider=$oauth_provider account=$oauth_account shop=$oauth_param_shop";
        echo "base=$oauth_api_base_url";
        echo "authorization=[$oauth_authorization] token=[$oauth_access_token]";
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', uri => '/connect/shop',
                      start_args => 'shop=acme', code => 'acme-store');
--- request eval
["GET /shopify/anything", "GET /vars"]
--- more_headers
X-Owner: alice
Authorization: Bearer attacker-token
--- response_body_like eval
[qr{\AGET\ /api/shops/acme/admin/products\.json\ HTTP/1\.[01]\r\n
    (?=.*^X-Shopify-Access-Token:\ at-1-acme-store\r$)
    (?!(?i).*^authorization:)
    (?!(?i).*attacker)}msx,
 qr{\Aprovider=shop\ account=acme-store\ shop=acme\n
    base=http://127\.0\.0\.1:\d+/api/shops/acme/admin\n
    authorization=\[at-1-acme-store\]\ token=\[at-1-acme-store\]\n\z}x]



=== TEST 7: variables with the default header, usable in add_header of the proxied response
--- config
    location /api/ {
        oauth_token demo;
        add_header X-Acct $oauth_account;
        add_header X-Prov $oauth_provider;
        add_header X-Base $oauth_api_base_url;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
    location = /vars {
        oauth_token demo;
        echo "[$oauth_authorization] [$oauth_access_token] [$oauth_param_shop]";
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /api/x", "GET /vars"]
--- more_headers
X-Owner: alice
--- response_headers_like eval
["X-Acct: alice-1\nX-Prov: demo\nX-Base: http://127\\.0\\.0\\.1:\\d+/api", ""]
--- response_body_like eval
[qr{^Authorization: Bearer at-1-alice-1\r$}m,
 qr{\A\[Bearer at-1-alice-1\] \[at-1-alice-1\] \[\]\n\z}]



=== TEST 8: no owner: 401 unauthenticated, and the provider's API is never called
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /api/x", "GET /_counts"]
--- more_headers
Authorization: Bearer attacker-token
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/\A\{"error":"unauthenticated","message":"[^"]+"\}\n\z/, qr/^api=0$/m]



=== TEST 9: an owner without a connection: 401 not_connected, the API is never called
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /api/x", "GET /_counts"]
--- more_headers
X-Owner: bob
--- error_code eval
[401, 200]
--- response_headers eval
["Content-Type: application/json\nCache-Control: no-store", ""]
--- response_body_like eval
[qr/\A\{"error":"not_connected","message":"[^"]+"\}\n\z/, qr/^api=0$/m]



=== TEST 10: two accounts: 409 account_required; account=$arg_account picks one, decoded once
--- config
    location /api/ {
        oauth_token demo account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
OAuthKit::connect_ok(owner => 'alice', code => 'alice-2');
--- request eval
["GET /api/x", "GET /api/x?account=alice-2", "GET /api/x?account=alice-1",
 "GET /api/x?account=alice%2D1", "GET /api/x?account=nobody",
 "GET /_counts"]
--- more_headers
X-Owner: alice
--- error_code eval
[409, 200, 200, 200, 401, 200]
--- response_body_like eval
[qr/\A\{"error":"account_required","message":"[^"]+"\}\n\z/,
 qr/^Authorization: Bearer at-2-alice-2\r$/m,
 qr/^Authorization: Bearer at-1-alice-1\r$/m,
 qr/^Authorization: Bearer at-1-alice-1\r$/m,
 qr/"error":"not_connected"/,
 qr/^api=3$/m]



=== TEST 11: bob never gets alice's connection, even for the same provider account (T33)
--- config
    location /api/ {
        oauth_token demo account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset;
# both connect the same account at the provider: two grants, two tokens
OAuthKit::connect_ok(owner => 'alice', code => 'shared-1');
OAuthKit::connect_ok(owner => 'bob', code => 'shared-1');

my $r = OAuthKit::request('GET', '/api/me', owner => 'alice');
Test::More::like($r->{content}, qr/^Authorization: Bearer at-1-shared-1\r$/m,
                 'alice gets her token');
$r = OAuthKit::request('GET', '/api/me', owner => 'bob');
Test::More::like($r->{content}, qr/^Authorization: Bearer at-2-shared-1\r$/m,
                 'bob gets his own token');

# bob disconnects his: alice's stays, bob has none
my $st = OAuthKit::api('DELETE', 'connections/demo/shared-1', owner => 'bob')->{status};
Test::More::is($st, 200, 'bob disconnects his own connection');
$r = OAuthKit::request('GET', '/api/me', owner => 'bob');
Test::More::is($r->{status}, 401, 'bob: not connected any more');
Test::More::like($r->{content}, qr/"not_connected"/, 'bob: not_connected');
$r = OAuthKit::request('GET', '/api/me?account=shared-1', owner => 'bob');
Test::More::is($r->{status}, 401, "bob naming alice's account: 401");
$r = OAuthKit::request('GET', '/api/me', owner => 'alice');
Test::More::like($r->{content}, qr/^Authorization: Bearer at-1-shared-1\r$/m,
                 "alice's connection is untouched");

# carol has nothing: neither the list nor the proxy shows alice's
my $list = OAuthKit::api('GET', 'connections', owner => 'carol')->{json};
Test::More::is_deeply($list, [], 'carol lists no connections');
my $api = $fake->count('api');
$r = OAuthKit::request('GET', '/api/me?account=shared-1', owner => 'carol');
Test::More::is($r->{status}, 401, "carol naming alice's account: 401");
Test::More::is($fake->count('api'), $api, 'the API was not called for carol');
--- request
GET /api/me?account=shared-1
--- more_headers
X-Owner: alice
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-1-shared-1\r$)(?!.*at-2-shared-1)}ms



=== TEST 12: an access token with CR/LF from the provider never becomes a header (T38)
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset(code_body => '{"access_token":"evil\r\nX-Injected: 1",'
    . '"token_type":"Bearer","expires_in":3600,"refresh_token":"rt-x",'
    . '"user":{"id":"crlf-1"}}');
my $r = OAuthKit::connect_flow(owner => 'alice', code => 'crlf-1');
Test::More::is($fake->count('code'), 1, 'the code was exchanged');
my $list = OAuthKit::api('GET', 'connections', owner => 'alice')->{json};
if ($r->{ok}) {
    # stored: then it must be refused at use (the request below)
    Test::More::is(scalar @$list, 1, 'stored, to be refused at use');
} else {
    Test::More::is_deeply($list, [], 'refused at connect: nothing stored');
}
--- request eval
["GET /api/x", "GET /_counts"]
--- more_headers
X-Owner: alice
--- error_code_like eval
[qr/^(?:401|502)$/, qr/^200$/]
--- response_headers eval
["!X-Injected", "!X-Injected"]
--- response_body_like eval
[qr/\A\{"error":"(?:not_connected|invalid_credential)"/, qr/^api=0$/m]



=== TEST 13: an account id with CR/LF from the provider is refused at connect (T38)
--- config
    location /api/ {
        oauth_token demo;
        add_header X-Acct $oauth_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset(code_body => '{"access_token":"at-ok","token_type":"Bearer",'
    . '"expires_in":3600,"refresh_token":"rt-x",'
    . '"user":{"id":"acct\r\nX-Injected: 1"}}');
my $r = OAuthKit::connect_flow(owner => 'alice', code => 'x');
Test::More::ok(!$r->{ok}, 'the connect fails');
my $list = OAuthKit::api('GET', 'connections', owner => 'alice')->{json};
Test::More::is_deeply($list, [], 'nothing stored');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_headers
!X-Injected
!X-Acct
--- response_body_like: "error":"not_connected"



=== TEST 14: "satisfy any" with allow: the token is still injected, the client's header dropped
--- config
    location /api/ {
        satisfy any;
        allow 127.0.0.1;
        deny all;
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/x
--- more_headers
X-Owner: alice
Authorization: Bearer attacker-token
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)(?!.*attacker)}ms



=== TEST 15: "satisfy any" with "allow all" does not let a request without owner or connection through
--- config
    location /api/ {
        satisfy any;
        allow all;
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = OAuthKit::fake();
$fake->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my $r = OAuthKit::request('GET', '/api/x', owner => 'bob',
                       headers => { Authorization => 'Bearer attacker' });
Test::More::is($r->{status}, 401, 'satisfy any: bob is still not connected');
Test::More::like($r->{content}, qr/"not_connected"/, 'not_connected');
$r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::like($r->{content}, qr/^Authorization: Bearer at-1-alice-1\r$/m,
                 'satisfy any: alice gets her token');
--- request eval
["GET /api/x", "GET /_counts"]
--- more_headers
Authorization: Bearer attacker-token
--- error_code eval
[401, 200]
--- response_body_like eval
[qr/"error":"unauthenticated"/, qr/^api=1$/m]



=== TEST 16: after an internal redirect (error_page) the credential does not go on to another location's upstream
--- config
    location /missing/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        proxy_intercept_errors on;
        error_page 404 = /echo/fallback;
    }
    location /echo/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /missing/x", "GET /_counts"]
--- more_headers
X-Owner: alice
Authorization: Bearer attacker-token
Cookie: session=our-session-secret
--- response_body_like eval
[qr{\AGET\ /echo/fallback\ HTTP/1\.[01]\r\n
    (?!(?i).*^authorization:)
    (?!.*at-1-alice-1)
    (?!.*attacker)
    (?!(?i).*^cookie:)}msx,
 qr/\A(?=.*^missing=1$)(?=.*^echo=1$)(?=.*^api=0$)/ms]



=== TEST 17: an X-Accel-Redirect from the provider's answer does not carry the credential to the next location
--- config
    location /accel/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
    location /echo/ {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /accel/x", "GET /_counts"]
--- more_headers
X-Owner: alice
--- response_body_like eval
[qr{\AGET\ /echo/accel\ HTTP/1\.[01]\r\n
    (?!(?i).*^authorization:)
    (?!.*at-1-alice-1)}msx,
 qr/\A(?=.*^accel=1$)(?=.*^echo=1$)/ms]



=== TEST 18: logs never see the injected credential, nor the client's dropped ones
--- http_config
    log_format creds 'creds:$http_authorization|$http_cookie|$http_proxy_authorization|$oauth_access_token|$oauth_authorization|$oauth_account';
--- config
    location /api/ {
        oauth_token demo;
        access_log logs/creds.log creds;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my $r = OAuthKit::request('GET', '/api/x', owner => 'alice',
                       headers => { Authorization => 'Bearer attacker-token',
                                    Cookie => 'session=our-session-secret',
                                    'Proxy-Authorization' => 'Basic eA==' });
Test::More::like($r->{content}, qr/^Authorization: Bearer at-1-alice-1\r$/m,
                 'the token was injected');
my $file = "$ENV{TEST_NGINX_SERVER_ROOT}/logs/creds.log";
my $log = OAuthKit::wait_for(sub {
    open my $fh, '<', $file or return '';
    local $/;
    my $s = <$fh> // '';
    return $s =~ /\n/ ? $s : '';
}, 5);
Test::More::is($log, "creds:-|-|-|-|-|alice-1\n",
               'the log shows no credential, the account it may');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-1-alice-1\r$/m



=== TEST 19: oauth_token runs after the access checks: the owner comes from auth_request, the auth call never sees the token, deny answers 403
--- config
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/whoami;
    }

    location = /whoami {
        add_header X-Who "$http_x_login";
        add_header X-Auth-Seen "[$http_authorization]";
        return 200;
    }

    location /authed/ {
        auth_request /_auth;
        auth_request_set $who $upstream_http_x_who;
        auth_request_set $seen $upstream_http_x_auth_seen;
        add_header X-Seen $seen always;
        oauth_owner $who;
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT/api/;
    }

    location /denied/ {
        deny all;
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /authed/x", "GET /denied/x"]
--- more_headers
X-Login: alice
X-Owner: alice
--- error_code eval
[200, 403]
--- response_headers_like eval
["X-Seen: \\[\\]", ""]
--- response_body_like eval
[qr/^Authorization: Bearer at-1-alice-1\r$/m, qr/403 Forbidden/]
