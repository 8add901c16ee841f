# The seed platforms with their real presets (endpoints pointed at the
# scripted fake, t/lib/FakeProvider.pm and its named quirks in
# t/lib/FakeQuirks.pm): each connects (two accounts where the platform has
# several), is used, refreshed and disconnected the platform's own way.
# Also: every preset of the catalog loads, preset lists merge, and an
# upstream 401 ends in "revoked" or "reauthorization_required".

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

add_block_preprocessor(\&OAuthKit::demo_defaults);

package T;

use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use MIME::Base64 qw(decode_base64);

sub fake { OAuthKit::fake() }

sub esc {
    my $s = shift;
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub unesc {
    my $s = shift // '';
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

sub qparams {
    my $url = shift // '';
    my ($q) = $url =~ /\?(.*)$/;
    return { map { my ($k, $v) = split /=/, $_, 2; (unesc($k), unesc($v)) }
             split /&/, $q // '' };
}

# the start: { status, location, query (of the authorization URL), state,
# cookie }
sub start {
    my ($owner, $provider, %params) = @_;
    my $q = join '&', map { "$_=" . esc($params{$_}) } sort keys %params;
    my $r = OAuthKit::request('GET', "/connect/$provider" . ($q ? "?$q" : ''),
                           owner => $owner);
    my $loc = $r->{headers}{location} // '';
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($cookie) = $sc =~ /^([^;]+)/;
    my $query = qparams($loc);
    return { status => $r->{status}, location => $loc, query => $query,
             state => $query->{state}, cookie => $cookie,
             body => $r->{content} };
}

# the callback with these query parameters (state added): the result of
# the redirect, { status, result, account, error }
sub callback {
    my ($owner, $st, $query, %o) = @_;
    my $q = join '&', map { "$_=" . esc($query->{$_}) } sort keys %$query;
    $q .= '&state=' . esc($st->{state});
    $q = $o{sign}->($q) if $o{sign};
    my $r = OAuthKit::request('GET', "/callback?$q", owner => $owner,
                           headers => { Cookie => $st->{cookie} });
    my $p = qparams($r->{headers}{location});
    return { status => $r->{status}, result => $p->{oauth_status} // '',
             account => $p->{oauth_account}, error => $p->{oauth_error} };
}

sub connect {
    my ($owner, $provider, $query, %o) = @_;
    my $st = start($owner, $provider, %{ $o{params} // {} });
    return { result => 'start ' . $st->{status} } unless $st->{state};
    return callback($owner, $st, $query, %o);
}

sub connect_ok {
    my ($owner, $provider, $query, %o) = @_;
    my $r = T::connect($owner, $provider, $query, %o);
    Test::More::is($r->{result}, 'connected',
                   "$provider: $owner connects")
        or Test::More::diag(join ', ', map { "$_=" . ($r->{$_} // '') }
                                       sort keys %$r);
    return $r;
}

sub conns {
    my ($owner, $provider) = @_;
    my $l = OAuthKit::api('GET', "connections?provider=$provider", owner => $owner)->{json};
    return ref $l eq 'ARRAY' ? @$l : ();
}

sub last_request {
    my (%f) = @_;
    my @r = fake()->requests(%f);
    return $r[-1];
}

sub header {
    my ($req, $name) = @_;
    my ($v) = map { $_->[1] } grep { lc $_->[0] eq lc $name }
              @{ $req->{headers} // [] };
    return $v;
}

sub basic_user {
    my $req = shift;
    my $a = header($req, 'authorization') // '';
    return $a =~ /^Basic (\S+)$/ ? decode_base64($1) : '';
}

# an oauth_provider block of a preset whose endpoints are the fake's
sub block {
    my ($name, $preset, $extra) = @_;
    my $f = 'http://127.0.0.1:$TEST_NGINX_FAKE_PORT';
    return <<"_EOC_";
    oauth_provider $name {
        preset            $preset;
        client_id         cid-$name;
        client_secret     csecret-$name;
        redirect_uri      http://localhost:\$TEST_NGINX_SERVER_PORT/callback;
        authorization_url $f/authorize;
        token_url         $f/token;
$extra    }
_EOC_
}

# every preset of the catalog in one configuration, with what each one
# says the operator must add
sub all_presets_config {
    my $file = "$FindBin::Bin/../ngx_oauth_module/providers.json";
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    my $cat = JSON::PP->new->decode(<$fh>);
    close $fh;
    my $conf = '';
    my $n = 0;
    for my $key (sort keys %$cat) {
        my $e = $cat->{$key};
        (my $name = "p_$key") =~ tr/-/_/;
        $conf .= "    oauth_provider $name {\n        preset $key;\n";
        if (($e->{kind} // 'oauth2') eq 'oauth2') {
            $conf .= "        client_id id-$n;\n"
                   . "        client_secret secret-$n;\n"
                   . "        redirect_uri https://app.example/callback;\n";
        }
        if (($e->{kind} // '') eq 'aws_sigv4') {
            # the signature's scope and Host are the operator's
            $conf .= "        aws_region us-east-1;\n"
                   . "        aws_service s3;\n"
                   . "        api_base_url https://s3.us-east-1.amazonaws.com;\n";
        }
        for my $need (@{ $e->{requires} // [] }) {
            $conf .= "        user_agent \"web:app.example:v1 (by /u/ops)\";\n"
                if $need eq 'user_agent';
            $conf .= "        authorization_param $1 amzn1.sp.solution.x;\n"
                if $need =~ /^authorization_param:(.+)$/;
            $conf .= "        scope read;\n" if $need eq 'scope';
        }
        $conf .= "    }\n";
        $n++;
    }
    $ENV{TEST_NGINX_PRESETS} = $n;
    return $conf;
}

package main;

run_tests();

__DATA__

=== TEST 1: every preset of the catalog loads, with what it says the operator must add
--- http_config eval
T::all_presets_config()
--- init
my $p = OAuthKit::api('GET', 'providers', owner => 'alice')->{json};
Test::More::is(scalar @$p, $ENV{TEST_NGINX_PRESETS} + 1,
               'every preset is a provider (and demo)');
my %k = map { $_->{name} => $_ } @$p;
Test::More::ok($k{$_}, "$_ is there")
    for qw(p_x p_zoho p_zoho_eu p_slack_user p_amazon_sp_api_vendor
           p_google_drive p_quickbooks p_walmart p_instagram p_tiktok
           p_reddit p_shopify p_wix);
--- request
GET /oauth/api/providers
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"name":"p_amazon_sp_api_vendor_fe"/



=== TEST 2: preset lists merge: an added authorization_param keeps the preset's, "NAME off" removes one, a block's scope keeps the scopes the account lookup needs
--- http_config
    oauth_provider gd {
        preset               google-drive;
        client_id            cid;
        client_secret        cs;
        redirect_uri         http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        authorization_param  include_granted_scopes true;
        authorization_param  prompt off;
        scope                https://www.googleapis.com/auth/drive.readonly;
    }
--- init
my $st = T::start('alice', 'gd');
my $q = $st->{query};
Test::More::is($st->{status}, 302, 'redirect');
Test::More::is($q->{access_type}, 'offline', "the preset's access_type stays");
Test::More::is($q->{include_granted_scopes}, 'true', "the block's param is added");
Test::More::ok(!exists $q->{prompt}, '"prompt off" removed the preset\'s prompt');
Test::More::is(join(' ', sort split / /, $q->{scope}),
               'email https://www.googleapis.com/auth/drive.readonly openid',
               "the block's scope, plus openid and email for the account lookup");
--- request
GET /oauth/api/providers
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"name":"gd"/



=== TEST 3: Amazon SP-API: the code comes as spapi_oauth_code, the account is selling_partner_id; two sellers of one owner coexist; application_id is in the consent URL
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('spapi', 'amazon-sp-api',
         "        authorization_param application_id amzn1.sp.solution.abc;\n"
         . "        authorization_param version beta;\n")
--- init
T::fake()->reset;
my $st = T::start('alice', 'spapi');
Test::More::is($st->{query}{application_id}, 'amzn1.sp.solution.abc', 'application_id');
Test::More::is($st->{query}{version}, 'beta', 'version=beta for a draft app');
my $r = T::callback('alice', $st, { spapi_oauth_code => 'seller-1',
                                    selling_partner_id => 'A1SELLER' });
Test::More::is($r->{result}, 'connected', 'connected');
Test::More::is($r->{account}, 'A1SELLER', 'the account is selling_partner_id');
my $tok = T::last_request(path => '/token');
Test::More::is($tok->{form}{code}, 'seller-1', 'the code went to the token endpoint');
T::connect_ok('alice', 'spapi', { spapi_oauth_code => 'seller-2',
                                  selling_partner_id => 'A2SELLER' });
Test::More::is(scalar(() = T::conns('alice', 'spapi')), 2, 'two sellers');
$r = T::connect('alice', 'spapi', { selling_partner_id => 'A3' });
Test::More::is($r->{error}, 'invalid_request', 'no code at all: invalid_request');
--- request
GET /oauth/api/connections/spapi/A1SELLER
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"params":\{"selling_partner_id":"A1SELLER"\}/



=== TEST 4: Walmart: camelCase authorization params, WM_ headers on the token requests (exchange and refresh), the seller is the account
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('walmart', 'walmart', '')
--- config
    location /api/ {
        oauth_token walmart;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::fake()->reset(expires_in => 900);
my $st = T::start('alice', 'walmart');
my $q = $st->{query};
Test::More::is($q->{clientId}, 'cid-walmart', 'clientId');
Test::More::like($q->{redirectUri}, qr{/callback$}, 'redirectUri');
Test::More::is($q->{responseType}, 'code', 'responseType');
Test::More::is($q->{clientType}, 'seller', 'clientType');
Test::More::is($q->{nonce}, $q->{state}, 'a single-use nonce');
my $r = T::callback('alice', $st, { code => 'w-1', sellerId => '10001',
                                    type => 'auth', clientId => 'cid-walmart' });
Test::More::is($r->{account}, '10001', 'the seller is the account');
my $tok = T::last_request(path => '/token');
Test::More::is(T::header($tok, 'WM_PARTNER.ID'), '10001', 'WM_PARTNER.ID');
Test::More::is(T::header($tok, 'WM_SVC.NAME'), 'Walmart Marketplace', 'WM_SVC.NAME');
Test::More::like(T::header($tok, 'WM_QOS.CORRELATION_ID') // '',
                 qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
                 'a fresh correlation id');
Test::More::is(T::basic_user($tok), 'cid-walmart:csecret-walmart', 'Basic client auth');
my $s = OAuthKit::api('POST', 'connections/walmart/10001/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'refreshed');
my $ref = T::last_request(path => '/token', grant_type => 'refresh_token');
Test::More::is(T::header($ref, 'WM_PARTNER.ID'), '10001', 'WM_PARTNER.ID on refresh too');
Test::More::isnt(T::header($ref, 'WM_QOS.CORRELATION_ID'),
                 T::header($tok, 'WM_QOS.CORRELATION_ID'), 'a new correlation id');
--- request
GET /api/items
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/WM_SEC.ACCESS_TOKEN: at-2-w-1/



=== TEST 5: QuickBooks: the company (realmId) is the account, so a second company of the same Intuit user does not overwrite the first; disconnect revokes with Intuit's JSON body
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('qb', 'quickbooks',
         "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        revocation_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke;\n")
--- init
T::fake()->reset;
my $r = T::connect_ok('alice', 'qb', { code => 'intuit-user', realmId => '111' });
Test::More::is($r->{account}, '111', 'realm 111');
T::connect_ok('alice', 'qb', { code => 'intuit-user', realmId => '222' });
my @c = T::conns('alice', 'qb');
Test::More::is(join(',', sort map { $_->{account} } @c), '111,222',
               'both companies are connected');
my ($s, $d) = @{ OAuthKit::api('DELETE', 'connections/qb/111', owner => 'alice') }{qw(status json)};
Test::More::is($s, 200, 'disconnected');
Test::More::ok($d->{revoked}, 'revoked at the provider');
my $rv = T::last_request(path => '/q/revoke');
Test::More::is(T::header($rv, 'content-type'), 'application/json', 'a JSON body');
Test::More::like($rv->{body}, qr/^\{"token":"at-\d+-intuit-user"\}$/, 'the token in it');
Test::More::is(T::basic_user($rv), 'cid-qb:csecret-qb', 'Basic client auth');
Test::More::is(T::fake()->count('q_revoke'), 1, 'one call');
--- request
GET /oauth/api/connections?provider=qb
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^\[\{"provider":"qb","account":"222"/



=== TEST 6: TikTok: client_key instead of client_id, at the authorization URL, the token endpoint and the revocation
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('tiktok', 'tiktok',
         "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        revocation_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke;\n")
--- init
T::fake()->reset;
my $st = T::start('alice', 'tiktok');
Test::More::is($st->{query}{client_key}, 'cid-tiktok', 'client_key');
Test::More::ok(!exists $st->{query}{client_id}, 'no client_id');
my $r = T::callback('alice', $st, { code => 'tt-1' });
Test::More::is($r->{account}, 'tt-1', 'connected as the open_id');
my $tok = T::last_request(path => '/token');
Test::More::is($tok->{form}{client_key}, 'cid-tiktok', 'client_key at the token endpoint');
Test::More::is($tok->{form}{client_secret}, 'csecret-tiktok', 'client_secret in the body');
my ($s, $d) = @{ OAuthKit::api('DELETE', 'connections/tiktok/tt-1', owner => 'alice') }{qw(status json)};
Test::More::ok($d->{revoked}, 'revoked');
my $rv = T::last_request(path => '/q/revoke');
Test::More::is($rv->{form}{client_key}, 'cid-tiktok', 'client_key at the revocation');
--- request
GET /oauth/api/connections?provider=tiktok
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 7: Reddit: the operator's User-Agent on every call to Reddit; the preset refuses to load without one
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('reddit', 'reddit',
         "        user_agent     \"web:app.example:v1.2 (by /u/ops)\";\n"
         . "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        revocation_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke;\n")
--- init
T::fake()->reset;
my $st = T::start('alice', 'reddit');
Test::More::is($st->{query}{duration}, 'permanent', 'duration=permanent');
T::connect_ok('alice', 'reddit', { code => 'r-1' });
for my $path ('/token', '/q/userinfo') {
    Test::More::is(T::header(T::last_request(path => $path), 'user-agent'),
                   'web:app.example:v1.2 (by /u/ops)', "User-Agent at $path");
}
OAuthKit::api('DELETE', 'connections/reddit/r-1', owner => 'alice');
Test::More::is(T::header(T::last_request(path => '/q/revoke'), 'user-agent'),
               'web:app.example:v1.2 (by /u/ops)', 'User-Agent at the revocation');
--- request
GET /oauth/api/providers
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"name":"reddit"/



=== TEST 8: Instagram: the wrapped short-lived token is exchanged for a 60-day one (ig_exchange_token), refreshed with ig_refresh_token; two Instagram accounts of one owner
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('ig', 'instagram',
         "        userinfo_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        exchange_url \"http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/ig/access_token?grant_type=ig_exchange_token&client_secret={client_secret}&access_token={access_token}\";\n"
         . "        refresh_url  \"http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/ig/refresh_access_token?grant_type=ig_refresh_token&access_token={access_token}\";\n")
--- config
    location /api/ {
        oauth_token ig account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 3600, code_shape => 'meta_wrapped');
T::connect_ok('alice', 'ig', { code => '1784-a' });
T::connect_ok('alice', 'ig', { code => '1784-b' });
Test::More::is($fake->count('ig_exchange'), 2, 'each short-lived token was exchanged');
my $c = OAuthKit::connection('alice', 'ig', '1784-a');
Test::More::cmp_ok(OAuthKit::epoch($c->{expires_at}) - time, '>', 5000000,
                   'the stored token lives 60 days');
my $s = OAuthKit::api('POST', 'connections/ig/1784-a/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'refreshed');
Test::More::is($fake->count('ig_refresh'), 1, 'with ig_refresh_token');
Test::More::is($fake->count('refresh'), 0, 'never with a refresh_token grant');
--- request
GET /api/media?account=1784-a
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/Authorization: Bearer at-5-1784-a/



=== TEST 9: GitHub: disconnect deletes the grant (DELETE /applications/{client_id}/grant, Basic, JSON); a token revoked at GitHub shows "revoked" after the next failing use
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('gh', 'github',
         "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        revocation_url \"http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke/applications/{client_id}/grant\";\n")
--- config
    location /api/ {
        oauth_token gh account=$arg_account;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(code_shape => 'no_refresh', q_revoke_status => 204);
T::connect_ok('alice', 'gh', { code => 'octo-1' });
T::connect_ok('alice', 'gh', { code => 'octo-2' });
my ($s, $d) = @{ OAuthKit::api('DELETE', 'connections/gh/octo-1', owner => 'alice') }{qw(status json)};
Test::More::ok($d->{revoked}, 'revoked (204)');
my $rv = T::last_request(path => qr{^/q/revoke});
Test::More::is("$rv->{method} $rv->{path}",
               'DELETE /q/revoke/applications/cid-gh/grant', 'DELETE of the grant');
Test::More::like($rv->{body}, qr/^\{"access_token":"at-1-octo-1"\}$/, 'JSON body');
Test::More::is(T::basic_user($rv), 'cid-gh:csecret-gh', 'Basic client auth');
# the user revokes octo-2 at GitHub: the API answers 401 and nothing can refresh
$fake->set(api_401 => 1);
my $r = OAuthKit::request('GET', '/api/user?account=octo-2', owner => 'alice');
Test::More::is($r->{status}, 401, "GitHub's 401");
--- request
GET /oauth/api/connections/gh/octo-2
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"status":"revoked".*"last_error":"revoked"/



=== TEST 10: Dropbox revokes with the token as Bearer; Stripe deauthorizes with stripe_user_id and the secret key
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('dbx', 'dropbox',
         "        revocation_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke/dropbox;\n"
         . "        account_id     user.id;\n")
. T::block('stripe', 'stripe',
         "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        revocation_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke/stripe;\n")
--- init
my $fake = T::fake();
$fake->reset;
T::connect_ok('alice', 'dbx', { code => 'dbid-1' });
my ($s, $d) = @{ OAuthKit::api('DELETE', 'connections/dbx/dbid-1', owner => 'alice') }{qw(status json)};
Test::More::ok($d->{revoked}, 'dropbox: revoked');
my $rv = T::last_request(path => '/q/revoke/dropbox');
Test::More::is(T::header($rv, 'authorization'), 'Bearer at-1-dbid-1', 'the token as Bearer');
Test::More::is($rv->{body}, 'null', 'no arguments');
$fake->set(code_shape => 'no_refresh');
T::connect_ok('alice', 'stripe', { code => 'st-1' });
($s, $d) = @{ OAuthKit::api('DELETE', 'connections/stripe/st-1', owner => 'alice') }{qw(status json)};
Test::More::ok($d->{revoked}, 'stripe: deauthorized');
$rv = T::last_request(path => '/q/revoke/stripe');
Test::More::is($rv->{form}{stripe_user_id}, 'acct_st-1', 'stripe_user_id');
Test::More::is($rv->{form}{client_id}, 'cid-stripe', 'client_id');
Test::More::is(T::header($rv, 'authorization'), 'Bearer csecret-stripe',
               'the platform secret key');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 11: Shopify: "acme.myshopify.com" is the shop "acme" too; the callback's hmac is verified; two shops of one owner
--- http_config eval
T::block('shopify', 'shopify',
         "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n")
--- init
my $fake = T::fake();
$fake->reset;
my $sign = sub {
    my $q = shift;
    my %p = map { my ($k, $v) = split /=/, $_, 2; (T::unesc($k), T::unesc($v)) }
            split /&/, $q;
    my $msg = join '&', map { "$_=$p{$_}" } sort keys %p;
    return "$q&hmac=" . Digest::SHA::hmac_sha256_hex($msg, 'csecret-shopify');
};
my $st = T::start('alice', 'shopify', shop => 'acme.myshopify.com');
Test::More::is($st->{status}, 302, 'the full domain is accepted');
Test::More::like($st->{location}, qr{^http://127\.0\.0\.1:\d+/authorize\?}, 'start');
my $r = T::callback('alice', $st, { code => 'acme', shop => 'acme.myshopify.com',
                                    timestamp => '1337178173' });
Test::More::is($r->{error}, 'invalid_signature', 'no hmac: refused');
$st = T::start('alice', 'shopify', shop => 'acme');
$r = T::callback('alice', $st, { code => 'acme', shop => 'acme.myshopify.com',
                                 timestamp => '1337178173' },
                 sign => sub { my $q = $sign->(shift); $q =~ s/timestamp=1337178173/timestamp=1337178174/; $q });
Test::More::is($r->{error}, 'invalid_signature', 'a changed parameter: refused');
$st = T::start('alice', 'shopify', shop => 'acme');
$r = T::callback('alice', $st, { code => 'acme', shop => 'acme.myshopify.com',
                                 timestamp => '1337178173' }, sign => $sign);
Test::More::is($r->{account}, 'acme.myshopify.com', 'signed: connected');
$st = T::start('alice', 'shopify', shop => 'Beta.MyShopify.com');
$r = T::callback('alice', $st, { code => 'beta', shop => 'beta.myshopify.com',
                                 timestamp => '1337178173' }, sign => $sign);
Test::More::is($r->{account}, 'beta.myshopify.com', 'a second shop');
$st = T::start('alice', 'shopify', shop => 'evil.example.com');
Test::More::is($st->{status}, 400, 'another domain is refused');
--- request
GET /oauth/api/connections/shopify/acme.myshopify.com
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"params":\{"shop":"acme"\}/



=== TEST 12: Slack user-token installs (authed_user); GoHighLevel agency installs (companyId); WordPress.com tokens per blog
--- http_config eval
"    oauth_background_refresh off;\n"
. T::block('slacku', 'slack-user', "        scope chat:write;\n")
. T::block('ghl', 'gohighlevel', '')
. T::block('wp', 'wordpress-com',
           "        userinfo_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n")
--- init
my $fake = T::fake();
$fake->reset(code_shape => 'slack_user');
my $r = T::connect_ok('alice', 'slacku', { code => 'U1' });
Test::More::is($r->{account}, 'U1', 'the user is the account');
$fake->set(code_shape => 'ghl_company');
$r = T::connect_ok('alice', 'ghl', { code => 'comp-1' });
Test::More::is($r->{account}, 'comp-1', 'the agency (companyId) is the account');
$fake->set(code_shape => 'plain');
$r = T::connect_ok('alice', 'wp', { code => 'wpuser' });
Test::More::is($r->{account}, 'blog-wpuser', 'the blog is the account');
--- request
GET /oauth/api/connections/slacku/U1
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"params":\{"team_id":"T-U1","user_id":"U1"\}/



=== TEST 13: a token refreshed because of an upstream 401 that is refused again: error / reauthorization_required in the API and the metrics
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
    location = /metrics { oauth_metrics; }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
$fake->set(api_401 => 1);
Test::More::is(OAuthKit::request('GET', '/api/a', owner => 'alice')->{status}, 401, 'a 401');
Test::More::is(OAuthKit::connection('alice', 'demo', 'alice-1')->{status},
               'connected', 'still connected: a refresh may fix it');
$fake->set(api_401 => 1);
Test::More::is(OAuthKit::request('GET', '/api/b', owner => 'alice')->{status}, 401,
               'a 401 again, on the refreshed token');
Test::More::is($fake->count('refresh'), 1, 'one refresh');
my $c = OAuthKit::connection('alice', 'demo', 'alice-1');
Test::More::is($c->{status}, 'error', 'status error');
Test::More::is($c->{last_error}, 'reauthorization_required', 'last_error');
my $m = OAuthKit::request('GET', '/metrics')->{content};
Test::More::like($m, qr/status="error"[^\n]*\} 1$/m, 'the metrics count it');
--- request
GET /api/c
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_body_like eval
qr/"error":"reauthorization_required"/



=== TEST 14: mode=json (or Accept: application/json): 200 with the authorization URL and its expiry, the same cookie and flow; the callback then redirects to return_to
--- init
my $fake = T::fake();
$fake->reset;
for my $how ('mode', 'accept') {
    my $r = $how eq 'mode'
        ? OAuthKit::request('GET', '/connect/demo?mode=json&return_to=/done', owner => 'alice')
        : OAuthKit::request('GET', '/connect/demo?return_to=/done', owner => 'alice',
                         headers => { Accept => 'application/json' });
    Test::More::is($r->{status}, 200, "$how: 200");
    Test::More::like($r->{headers}{'content-type'}, qr{^application/json}, "$how: JSON");
    my $d = JSON::PP->new->decode($r->{content});
    Test::More::like($d->{authorization_url}, qr{^http://127\.0\.0\.1:\d+/authorize\?}, "$how: the URL");
    my $exp = OAuthKit::epoch($d->{expires_at});
    Test::More::ok($exp > time + 500 && $exp <= time + 601, "$how: expires with the flow");
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($cookie) = $sc =~ /^([^;]+)/;
    my $q = T::qparams($d->{authorization_url});
    my $cb = T::callback('alice', { state => $q->{state}, cookie => $cookie },
                         { code => "json-$how" });
    Test::More::is($cb->{result}, 'connected', "$how: the callback completes");
}
my $r = OAuthKit::request('GET', '/connect/demo', owner => 'alice',
                       headers => { Accept => 'text/html,application/json' });
Test::More::is($r->{status}, 302, 'a browser still gets the redirect');
--- request
GET /connect/demo?mode=json
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^\{"authorization_url":"http:\/\/127\.0\.0\.1:\d+\/authorize\?response_type=code\\u0026client_id=test-client\\u0026/



=== TEST 15: PATCH sets a connection's label and metadata (plaintext, at most 4 KiB), kept across a refresh and a reconnect; DELETE connections removes all of the caller's, each revoked
--- http_config eval
"    oauth_background_refresh off;\n" . T::block('qb', 'quickbooks',
         "        userinfo_url   http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/userinfo;\n"
         . "        revocation_url http://127.0.0.1:\$TEST_NGINX_FAKE_PORT/q/revoke;\n")
--- init
my $fake = T::fake();
$fake->reset;
T::connect_ok('alice', 'qb', { code => 'u1', realmId => '111' });
T::connect_ok('alice', 'qb', { code => 'u1', realmId => '222' });
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
OAuthKit::connect_ok(owner => 'bob', code => 'bob-1');
my ($s, $d) = @{ OAuthKit::api('PATCH', 'connections/qb/111', owner => 'alice',
                             json => { label => 'Main company',
                                       metadata => { region => 'us',
                                                     checks => [1, 2] } }) }{qw(status json)};
Test::More::is($s, 200, 'PATCH: 200');
Test::More::is($d->{label}, 'Main company', 'the label');
Test::More::is_deeply($d->{metadata}, { region => 'us', checks => [1, 2] }, 'the metadata');
($s, $d) = @{ OAuthKit::api('PATCH', 'connections/qb/111', owner => 'alice',
                          json => { metadata => { big => 'x' x 5000 } }) }{qw(status json)};
Test::More::is($s, 413, 'metadata over 4 KiB: 413');
($s, $d) = @{ OAuthKit::api('PATCH', 'connections/qb/111', owner => 'alice',
                          json => { token => 'x' }) }{qw(status json)};
Test::More::is($s, 400, 'anything else: 400');
$s = OAuthKit::api('PATCH', 'connections/qb/111', owner => 'bob',
                      json => { label => 'x' })->{status};
Test::More::is($s, 404, "another owner's connection: 404");
$s = OAuthKit::api('POST', 'connections/qb/111/refresh', owner => 'alice')->{status};
Test::More::is($s, 200, 'refreshed');
T::connect_ok('alice', 'qb', { code => 'u1', realmId => '111' });
$d = OAuthKit::connection('alice', 'qb', '111');
Test::More::is($d->{label}, 'Main company', 'the label stays across a refresh and a reconnect');
Test::More::is($d->{metadata}{region}, 'us', 'so does the metadata');
($s, $d) = @{ OAuthKit::api('PATCH', 'connections/qb/111', owner => 'alice',
                          json => { label => undef }) }{qw(status json)};
Test::More::is($d->{label}, undef, 'null clears the label');
Test::More::is($d->{metadata}{region}, 'us', 'and leaves the metadata');
($s, $d) = @{ OAuthKit::api('DELETE', 'connections', owner => 'alice') }{qw(status json)};
Test::More::is($s, 200, 'DELETE connections: 200');
Test::More::is($d->{deleted}, 3, 'three deleted');
Test::More::is($d->{revoking}, 2, 'the two QuickBooks grants revoked');
$fake->wait_for(sub { $fake->count('q_revoke') >= 2 });
Test::More::is($fake->count('q_revoke'), 2, 'both revocations reached the provider');
Test::More::is(scalar(() = T::conns('bob', 'demo')), 1, "bob's connection stays");
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
