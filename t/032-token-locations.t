# oauth_token across locations: like auth_request, it is inherited by
# nested locations and "if" blocks (with its account=), and "oauth_token
# off" stops it; one location has one content handler, so oauth_start next
# to another content directive is refused in either order.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
add_block_preprocessor(\&OAuthKit::demo_defaults);

run_tests();

__DATA__

=== TEST 1: a nested location inherits oauth_token
--- config
    location /api/ {
        oauth_token demo;

        location /api/inner/ {
            proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        }
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/inner/items
--- more_headers
X-Owner: alice
--- response_body_like eval
qr{\AGET\ /api/inner/items\ HTTP/1\.[01]\r\n
   (?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)}msx
--- no_error_log
[error]



=== TEST 2: an "if" block inherits oauth_token
--- config
    location /api/ {
        oauth_token demo;

        if ($arg_x) {
            proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        }
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/items?x=1
--- more_headers
X-Owner: alice
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-1-alice-1\r$)}msx



=== TEST 3: "oauth_token off" in a nested location injects nothing
--- config
    location /api/ {
        oauth_token demo;

        location /api/open/ {
            oauth_token off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        }
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request
GET /api/open/items
--- more_headers
X-Owner: alice
--- response_body_like eval
qr{\AGET\ /api/open/items\ HTTP/1\.[01]\r\n(?!(?i).*^authorization:)}ms



=== TEST 4: account= is inherited with oauth_token
--- config
    location /api/ {
        oauth_token demo account=$arg_account;

        location /api/inner/ {
            proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        }
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
OAuthKit::connect_ok(owner => 'alice', code => 'alice-2');
--- request
GET /api/inner/items?account=alice-2
--- more_headers
X-Owner: alice
--- response_body_like eval
qr{\A(?=.*^Authorization:\ Bearer\ at-\d+-alice-2\r$)}msx



=== TEST 5: without account= a nested location with two accounts answers 409
--- config
    location /api/ {
        oauth_token demo;

        location /api/inner/ {
            proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        }
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
OAuthKit::connect_ok(owner => 'alice', code => 'alice-2');
--- request
GET /api/inner/items
--- more_headers
X-Owner: alice
--- error_code: 409
--- response_body_like: "error":"account_required"



=== TEST 6: oauth_start after oauth_api is a duplicate content handler
--- config
    location /x {
        oauth_api;
        oauth_start demo;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_start" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 7: oauth_api after oauth_start is a duplicate content handler
--- config
    location /x {
        oauth_start demo;
        oauth_api;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_api" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 8: oauth_start after proxy_pass is a duplicate content handler
--- config
    location /x {
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
        oauth_start demo;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_start" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 9: oauth_token twice in a location, "off" included, is a duplicate
--- config
    location /x {
        oauth_token demo;
        oauth_token off;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*"oauth_token" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 10: a provider cannot be named "off" (oauth_token off means none)
--- http_config
    oauth_provider off {
        kind  api_key;
    }
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth_provider name "off" is reserved/
