# oauth_start: the redirect to the provider, the browser-binding cookie,
# the checks made before any flow is stored (owner, provider, mode,
# connection parameters) and return_to, which must never be an open
# redirect (security-tests.md T10-T14, T42, T70, T73).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use OAuthKit api_prefix => '/api/';

our $Store = <<'_EOC_';
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
_EOC_

# The provider most blocks use; endpoints are never called at start.
our $Demo = <<'_EOC_';
    oauth_provider demo {
        client_id          demo-client;
        client_secret      demo-secret;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          https://auth.example/token;
        account_id         user.id;
    }
_EOC_

our $Locations = <<'_EOC_';
    oauth_owner $http_x_owner;

    location ~ ^/connect/(?<p>[^/]+)$ {
        oauth_start $p;
    }

    location = /callback {
        oauth_callback;
    }

    location /api/ {
        oauth_api;
    }
_EOC_

# return_to values that would take the user off the site (T12, T13); the
# blocks below allow https://app.example and https://admin.example:8443.
# Each is sent url-escaped, as a browser sends a form value, so the module
# sees exactly this text once the query is decoded.
our @OpenRedirects = (
    # protocol-relative and backslash forms browsers read as "//"
    '//evil.example', '///evil.example', '////evil.example/',
    '/\\evil.example', '\\/evil.example', '\\\\evil.example',
    '/\\/evil.example', '\\evil.example',
    # the same, encoded once more (the module decodes again and looks)
    '/%5cevil.example', '/%5Cevil.example', '/%2f%2fevil.example',
    '/%2F/evil.example', '%2f%2fevil.example', '/%252f%252fevil.example',
    '/%255cevil.example',
    # whitespace browsers strip, raw and encoded
    "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
    '/ /evil.example', ' //evil.example', '/%09/evil.example',
    '/%0a/evil.example', '/%0d%0a/evil.example', '/%20/evil.example',
    "\t//evil.example", '%09//evil.example', '/%00/evil.example',
    '/%250d%250aSet-Cookie:%20x=1',
    # dot segments that resolve to "//"
    '/.//evil.example', '/..//evil.example', '/./..//evil.example',
    '/%2e//evil.example',
    # schemes
    'https://evil.example', 'http://evil.example/', 'https:evil.example',
    'https:/evil.example', 'https:\\\\evil.example', 'javascript:alert(1)',
    'JaVaScRiPt:alert(1)', ' javascript:alert(1)', "java\tscript:alert(1)",
    'data:text/html,<script>alert(1)</script>', 'vbscript:msgbox(1)',
    'ftp://app.example/', '/javascript:alert(1)', '/https:evil.example',
    # userinfo and "@" tricks around the allowed origin
    'https://app.example@evil.example/', 'https://app.example:443@evil.example/',
    'https://user:pass@app.example/', 'https://app.example\\@evil.example/',
    'https://app.example%40evil.example/', '@evil.example',
    # suffix and look-alike hosts (dot-boundary, exact host)
    'https://app.example.evil.example/', 'https://evilapp.example/',
    'https://app.example%2eevil.example/', 'https://app.examplE.evil/',
    'https://APP.EXAMPLE./', 'https://app.example../x',
    'https://xn--pp-ska.example/', "https://\x{0430}pp.example/",
    # port and scheme must match exactly
    'https://app.example:8443/', 'http://app.example/',
    'https://admin.example/', 'https://admin.example:443/',
    'https://admin.example:84430/', 'https://app.example:0/',
    # not a URL at all, or too long
    '', 'evil.example', 'evil.example/path', '.', '?x=1', '#frag',
    '/' . ('a' x 5000),
    # non-ASCII look-alikes of "/"
    "/\x{3031}evil.example", "\x{ff0f}\x{ff0f}evil.example",
    # HTML/header breakers
    '/"><script>alert(1)</script>', '/`x`', '/<x>',
);

our @SafeReturns = (
    '/', '/settings/integrations', '/a/b?tab=1&x=%20y', '/back#done',
    '/./settings', '/..', '/%7Euser/page',
    'https://app.example/back', 'https://APP.example/back?x=1',
    'https://app.example:443/back', 'https://admin.example:8443/x',
);

sub utf8_escape {
    my $s = shift;
    utf8::encode($s);
    return url_escape($s);
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: happy path: the authorization URL has every parameter, in order
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider demo {
        client_id            "demo client";
        client_secret        demo-secret;
        redirect_uri         https://app.example/callback;
        authorization_url    https://auth.example/authorize;
        token_url            https://auth.example/token;
        account_id           user.id;
        scope                read write:all openid;
        scope_separator      ",";
        authorization_param  access_type offline;
        authorization_param  prompt consent;
    }
_EOC_
--- config eval: $::Locations
--- request
GET /connect/demo
--- more_headers
X-Owner: alice
--- error_code: 302
--- response_headers_like
Location: ^https://auth\.example/authorize\?response_type=code&client_id=demo\+client&redirect_uri=https%3A%2F%2Fapp\.example%2Fcallback&scope=read%2Cwrite%3Aall%2Copenid&state=[A-Za-z0-9_-]{43}&code_challenge=[A-Za-z0-9_-]{43}&code_challenge_method=S256&access_type=offline&prompt=consent$
Set-Cookie: ^__Host-oauth_flow_[A-Za-z0-9_-]{12}=[A-Za-z0-9_-]{43}; Max-Age=600; Path=/; HttpOnly; Secure; SameSite=Lax$
Cache-Control: no-store
--- no_error_log
[error]
[crit]



=== TEST 2: the cookie is named after the state, every start mints fresh values, a planted cookie is ignored
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- init
package main;
my %seen;
for my $i (1 .. 5) {
    my $f = start_flow(owner => 'alice');
    is($f->{status}, 302, "start $i redirects");
    like($f->{state}, qr/^[A-Za-z0-9_-]{43}\z/, "state $i is 256 bits of base64url");
    my ($name, $value) = split /=/, $f->{cookie}, 2;
    is($name, '__Host-oauth_flow_' . substr($f->{state}, 0, 12),
       "cookie $i is named after the first 12 characters of the state");
    like($value, qr/^[A-Za-z0-9_-]{43}\z/, "cookie $i value is random");
    isnt($value, $f->{state}, "cookie $i value is not the state");
    ok(!$seen{$f->{state}}++, "state $i is new");
    ok(!$seen{$value}++, "cookie value $i is new");
    ok(!$seen{$f->{q}{code_challenge}}++, "PKCE challenge $i is new");
}

# T10: a pre-planted state or cookie changes nothing.
my $res = http_get('/connect/demo?state=planted-state-value',
                   'X-Owner' => 'alice',
                   Cookie => '__Host-oauth_flow_plantedstate=planted-cookie-value');
is($res->{status}, 302, 'start with planted values still redirects');
my $q = query_params($res->{headers}{location});
like($q->{state}, qr/^[A-Za-z0-9_-]{43}\z/, 'state is minted, not taken from the query');
isnt($q->{state}, 'planted-state-value', 'planted state ignored');
unlike($res->{headers}{'set-cookie'}, qr/planted/, 'planted cookie ignored');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 3: pkce off: no code_challenge at all
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider plain {
        client_id          c1;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize?audience=api;
        token_url          https://auth.example/token;
        account_id         sub;
        scope              a b;
        pkce               off;
    }
_EOC_
--- config eval: $::Locations
--- request
GET /connect/plain?mode=popup&return_to=%2Fdone
--- more_headers
X-Owner: bob
--- error_code: 302
--- response_headers_like
Location: ^https://auth\.example/authorize\?audience=api&response_type=code&client_id=c1&redirect_uri=https%3A%2F%2Fapp\.example%2Fcallback&scope=a\+b&state=[A-Za-z0-9_-]{43}$



=== TEST 4: no owner: 401 before anything else, also for an empty owner
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- request eval
["GET /connect/demo", "GET /connect/demo", "GET /connect/nosuch?mode=bad"]
--- more_headers eval
["", "X-Owner: ", "X-Other: alice"]
--- error_code eval
[401, 401, 401]
--- response_body eval
[qq({"error":"unauthenticated","message":"no owner for this request"}\n),
 qq({"error":"unauthenticated","message":"no owner for this request"}\n),
 qq({"error":"unauthenticated","message":"no owner for this request"}\n)]
--- response_headers eval
[("!Set-Cookie\n!Location\nContent-Type: application/json\nCache-Control: no-store\n") x 3]



=== TEST 5: unknown provider, or a provider that has no flow (api_key): 404
--- http_config eval
$::Store . $::Demo . <<'_EOC_'
    oauth_provider keyed {
        kind          api_key;
        api_base_url  https://api.keyed.example;
    }
_EOC_
--- config eval: $::Locations
--- request eval
["GET /connect/nosuch", "GET /connect/keyed", "GET /connect/Demo"]
--- more_headers eval
["X-Owner: alice", "X-Owner: alice", "X-Owner: alice"]
--- error_code eval
[404, 404, 404]
--- response_body eval
[qq({"error":"unknown_provider","message":"no such OAuth provider"}\n),
 qq({"error":"unknown_provider","message":"no such OAuth provider"}\n),
 qq({"error":"unknown_provider","message":"no such OAuth provider"}\n)]
--- response_headers eval
[("!Set-Cookie\n") x 3]



=== TEST 6: mode: redirect or popup, anything else (or twice) is 400
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- request eval
["GET /connect/demo?mode=redirect",
 "GET /connect/demo?mode=popup",
 "GET /connect/demo?mode=window",
 "GET /connect/demo?mode=",
 "GET /connect/demo?mode=Popup",
 "GET /connect/demo?mode=popup&mode=popup",
 "GET /connect/demo?mode=%70opup"]
--- more_headers eval
[("X-Owner: alice") x 7]
--- error_code eval
[302, 302, 400, 400, 400, 400, 302]
--- response_body_like eval
["", "", ("invalid_mode") x 4, ""]



=== TEST 7: connection params: required, pattern, duplicates; templated into authorization_url
--- http_config eval
$::Store . <<'_EOC_'
    oauth_provider shop {
        client_id          shop-client;
        redirect_uri       https://app.example/callback;
        authorization_url  "https://{shop}.shops.example/admin/authorize?region={region}";
        token_url          "https://{shop}.shops.example/admin/token";
        account_id         shop.id;
        connection_param   shop required "pattern=^[a-z0-9][a-z0-9-]{0,30}$";
        connection_param   region;
    }
_EOC_
--- config eval: $::Locations
--- init
package main;
my @bad = (
    ''                                        => 'shop missing',
    'shop='                                   => 'shop empty',
    'shop=Shop-1'                             => 'upper case (pattern)',
    'shop=evil.example%2F'                    => 'slash (pattern)',
    'shop=a.evil.example'                     => 'dots (pattern)',
    'shop=a%40b'                              => '"@" (pattern)',
    'shop=x.shops.example.evil'               => 'host suffix (pattern)',
    'shop=' . ('a' x 40)                      => 'too long for the pattern',
    'shop=' . ('a' x 600)                     => 'longer than any parameter',
    'shop=one&shop=two'                       => 'shop twice',
    'shop=one&shop=one'                       => 'shop twice, same value',
    'shop=one&region=eu&region=us'            => 'optional param twice',
    'shop=one&region=e%2Fu'                   => 'optional param, default pattern',
    'shop=%00one'                             => 'NUL byte',
    'shop=one%0d%0aX:1'                       => 'CRLF',
    'shop=on%zze'                             => 'malformed escape',
);
while (my ($query, $why) = splice @bad, 0, 2) {
    my $res = http_get("/connect/shop?$query", 'X-Owner' => 'alice');
    is($res->{status}, 400, "$why: 400");
    like($res->{content}, qr/"error":"invalid_connection_param"/, "$why: error code");
    my $param = $query =~ /region=/ && $why =~ /optional/ ? 'region' : 'shop';
    like($res->{content}, qr/"message":"the connection parameter \\"\Q$param\E\\" is missing or invalid"/,
         "$why: the message names $param");
    ok(!$res->{headers}{'set-cookie'}, "$why: no cookie, no flow");
}

my $f = start_flow(uri => '/connect/shop?shop=acme-1&region=eu', owner => 'alice');
is($f->{status}, 302, 'valid params: redirect');
like($f->{location}, qr{^https://acme-1\.shops\.example/admin/authorize\?region=eu&response_type=code&},
     'params templated into the authorization URL');

# region is optional, but the template needs it: the user's error, no flow
$f = start_flow(uri => '/connect/shop?shop=acme-1', owner => 'alice');
is($f->{status}, 400, 'an optional param the template needs, left out: 400');
like($f->{res}{content}, qr/"error":"invalid_connection_param"/, 'invalid_connection_param');
ok(!$f->{cookie}, 'no cookie, no flow');
--- request
GET /connect/shop?shop=acme-2&region=us-1&unrelated=x
--- more_headers
X-Owner: alice
--- error_code: 302
--- response_headers_like
Location: ^https://acme-2\.shops\.example/admin/authorize\?region=us-1&response_type=code&client_id=shop-client&.*
--- error_log
authorization_url needs the connection parameter "region"
--- no_error_log
[error]



=== TEST 8: return_to: every open-redirect class is refused before a flow exists
--- http_config eval: $::Store . $::Demo
--- config eval
$::Locations . <<'_EOC_'
    oauth_allowed_origins https://app.example https://admin.example:8443;
_EOC_
--- init
package main;
for my $p (@::OpenRedirects) {
    my $shown = $p;
    $shown =~ s/([^\x21-\x7e])/sprintf '\\x{%x}', ord $1/ge;
    $shown = substr($shown, 0, 40) . '...' if length $shown > 40;
    my $res = http_get('/connect/demo?return_to=' . utf8_escape($p),
                       'X-Owner' => 'alice');
    is($res->{status}, 400, "return_to '$shown' refused");
    like($res->{content}, qr/^\{"error":"invalid_return_to"/, "return_to '$shown': error code");
    ok(!$res->{headers}{'set-cookie'} && !$res->{headers}{location},
       "return_to '$shown': no cookie, no redirect");
}

# Sent raw, not escaped: what a hand-made link holds.
for my $raw ('//evil.example', '/\\evil.example', '%2F%2Fevil.example',
             '/%5Cevil.example', 'https://evil.example', '/%09/evil.example',
             'https%3A%2F%2Fevil.example')
{
    my $res = http_get("/connect/demo?return_to=$raw", 'X-Owner' => 'alice');
    is($res->{status}, 400, "raw return_to '$raw' refused");
}

my $res = http_get('/connect/demo?return_to=%2Fa&return_to=%2Fb', 'X-Owner' => 'alice');
is($res->{status}, 400, 'return_to given twice refused');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[error]



=== TEST 9: return_to: relative paths and allowed origins are accepted
--- http_config eval: $::Store . $::Demo
--- config eval
$::Locations . <<'_EOC_'
    oauth_allowed_origins https://app.example https://admin.example:8443;
_EOC_
--- init
package main;
for my $p (@::SafeReturns) {
    my $f = start_flow(uri => '/connect/demo?return_to=' . url_escape($p), owner => 'alice');
    is($f->{status}, 302, "return_to '$p' accepted");
    like($f->{location}, qr{^https://auth\.example/authorize\?}, "return_to '$p': redirect to the provider");
}
--- request
GET /connect/demo
--- more_headers
X-Owner: alice
--- error_code: 302



=== TEST 10: without oauth_allowed_origins, absolute return_to is refused even to the redirect_uri's host
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- request eval
["GET /connect/demo?return_to=https%3A%2F%2Fapp.example%2Fback",
 "GET /connect/demo?return_to=%2Fback"]
--- more_headers eval
["X-Owner: alice", "X-Owner: alice"]
--- error_code eval
[400, 302]



=== TEST 11: the redirect_uri is the configured one whatever Host the request names (T14)
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- request
GET /connect/demo
--- more_headers
Host: evil.test
X-Forwarded-Host: evil.test
Forwarded: host=evil.test
X-Owner: alice
--- error_code: 302
--- response_headers_like
Location: ^https://auth\.example/authorize\?response_type=code&client_id=demo-client&redirect_uri=https%3A%2F%2Fapp\.example%2Fcallback&state=.*



=== TEST 12: POST starts a flow too; other methods do not
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- request eval
["POST /connect/demo?return_to=%2Fx\nignored=body", "PUT /connect/demo", "DELETE /connect/demo"]
--- more_headers eval
["X-Owner: alice", "X-Owner: alice", "X-Owner: alice"]
--- error_code eval
[302, 405, 405]



=== TEST 13: oversized and malformed inputs get a fast 4xx, never a flow (T70)
--- http_config eval: $::Store . $::Demo
--- config eval: $::Locations
--- init
package main;
my @cases = (
    [ '/connect/demo?return_to=%2F' . ('a' x 4200), 400, 'return_to over 4 KiB' ],
    [ '/connect/demo?return_to=%zz', 400, 'malformed escape in return_to' ],
    [ '/connect/demo?return_to=%2F%00', 400, 'NUL in return_to' ],
    [ '/connect/demo?' . join('&', map { "p$_=1" } 1 .. 800), 302, 'many unrelated params' ],
);
for my $c (@cases) {
    my ($uri, $status, $why) = @$c;
    my $res = http_get($uri, 'X-Owner' => 'alice');
    is($res->{status}, $status, "$why: $status");
}
my $res = http_get('/connect/demo?return_to=%2F' . ('a' x 20000), 'X-Owner' => 'alice');
ok($res->{status} == 414 || $res->{status} == 400, "20 KiB URI: $res->{status}");
my $long_owner = 'o' x 300;
$res = http_get('/connect/demo', 'X-Owner' => $long_owner);
is($res->{status}, 401, 'an owner over 256 bytes is no owner');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
--- no_error_log
[alert]
[crit]
