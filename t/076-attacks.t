# Items of ../shared/reference/security-tests.md, each as an attack that
# can fail (issue 9): T17 dynamic-host providers (Shopify's shop and hmac,
# QuickBooks' realmId) refused before any network I/O; T38 CR/LF and NUL
# from a provider refused at ingest, with the upstream's raw bytes read
# back; T40 an owner-keyed cache keeps owners apart; T52 key rotation.
#
# Covered elsewhere, not repeated here: a placeholder choosing an
# endpoint's host and loopback/private addresses behind it (071), control
# characters in connection params and kept token fields (073), an access
# token or account id with CR/LF (030 TESTs 12 and 13), the warnings for
# proxy_cache, mirror and a debug log (064).  Outbound attacks point the
# module at a listener (t/lib/Recorder.pm) that records whether anything
# arrived.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Recorder;
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);

add_block_preprocessor(\&OAuthKit::demo_defaults);

# the token endpoint of T17's providers: it answers 400 to whatever comes,
# so that a callback wrongly let through ends at once, and counts it
our $Evil = Recorder->start(answer => "HTTP/1.1 400 Bad Request\r\n"
    . "Content-Type: application/json\r\nContent-Length: 27\r\n"
    . "Connection: close\r\n\r\n{\"error\":\"invalid_request\"}");
$ENV{TEST_NGINX_EVIL_PORT} = $Evil->port;

# an API upstream that keeps the raw bytes it was sent (T38)
our $Api = Recorder->start(answer => "HTTP/1.1 200 OK\r\n"
    . "Content-Length: 2\r\nConnection: close\r\n\r\nok");
$ENV{TEST_NGINX_RAW_PORT} = $Api->port;

# T52's keyrings, written before nginx reads them
our %Key = (k1 => OAuthKit::random_key(), k2 => OAuthKit::random_key());
$ENV{TEST_NGINX_KEYS52} = OAuthKit::write_key_file('keys52',
                                                   "k1:$Key{k1}\n");

package T;

use Digest::SHA ();
use Time::HiRes qw(sleep time);

sub evil { $main::Evil }
sub api { $main::Api }

sub pause {
    my $until = time + shift;
    sleep 0.02 while time < $until;
}

sub unesc {
    my $s = shift // '';
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# Shopify's callback signature: HMAC-SHA256 of the other parameters,
# decoded, sorted, "k=v" joined with "&" (or in the order given: $raw)
sub shopify_hmac {
    my ($q, $raw) = @_;
    my @p = map { my ($k, $v) = split /=/, $_, 2; [unesc($k), unesc($v)] }
            split /&/, $q;
    @p = sort { $a->[0] cmp $b->[0] } @p unless $raw;
    return Digest::SHA::hmac_sha256_hex(
        join('&', map { "$_->[0]=$_->[1]" } @p), 'csecret-shop');
}

# a callback for a fresh flow started with shop=$shop; $query is built by
# $make->(state) so that the state can be signed too
sub shop_callback {
    my ($shop, $make) = @_;
    my $f = OAuthKit::start_flow(uri => "/connect/shop?shop=$shop",
                                 owner => 'alice');
    return "start $f->{status}" unless $f->{state};
    my $res = OAuthKit::callback($f, raw_query => $make->($f->{state}));
    my $r = OAuthKit::flow_result($res);
    return $r->{error} // $r->{status} // '';
}

sub qb_callback {
    my ($realm) = @_;
    my $f = OAuthKit::start_flow(uri => '/connect/qb', owner => 'alice');
    return "start $f->{status}" unless $f->{state};
    my $res = OAuthKit::callback($f, code => 'qb-1', query => "realmId=$realm");
    my $r = OAuthKit::flow_result($res);
    return $r->{error} // $r->{status} // "HTTP $res->{status}";
}

sub wait_for_conn {
    my ($rec, $n) = @_;
    return OAuthKit::wait_for(sub { $rec->connections >= $n }, 5);
}

# a reload, and the old workers gone: until they have closed their
# listening sockets they may still take a new connection, with the old
# keyring (an old worker sealing with K1 after K2 was promoted is fine: K1
# is still in every keyring until the rotation)
sub reload {
    my @old = OAuthKit::worker_pids();
    OAuthKit::reload(workers => 2) or return 0;
    return OAuthKit::wait_for(sub {
        !grep { -e "/proc/$_" && OAuthKit::slurp("/proc/$_/stat") !~ /^\d+ \(.*\) Z/ } @old
    }, 10);
}

sub cli {
    my $cli = $ENV{NGX_OAUTH_CLI} || "$FindBin::Bin/../build/ngx-oauth";
    my $out = `$cli @_ 2>&1`;
    return { rc => $? >> 8, out => $out };
}

package main;

our $Shop = <<'_EOC_';
    oauth_provider shop {
        preset             shopify;
        client_id          cid-shop;
        client_secret      csecret-shop;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        token_url          http://127.0.0.1:$TEST_NGINX_EVIL_PORT/token;
        userinfo_url       http://127.0.0.1:$TEST_NGINX_EVIL_PORT/userinfo;
        scope              read_products;
    }
_EOC_

our $Qb = <<'_EOC_';
    oauth_provider qb {
        preset             quickbooks;
        client_id          cid-qb;
        client_secret      csecret-qb;
        redirect_uri       http://localhost:$TEST_NGINX_SERVER_PORT/callback;
        token_url          http://127.0.0.1:$TEST_NGINX_EVIL_PORT/token;
        userinfo_url       http://127.0.0.1:$TEST_NGINX_EVIL_PORT/userinfo;
    }
_EOC_

run_tests();

__DATA__

=== TEST 1: T17: a shop that is not a *.myshopify.com name is refused at the start, no connection anywhere
--- http_config eval: $::Shop
--- config
--- init
my $evil = T::evil();
$evil->reset;
for my $shop ('evil.test', 'x.myshopify.com.evil.test', 'a@b.myshopify.com',
              'a%40b.myshopify.com', 'x.myshopify.com%2F.evil.test',
              'acme%0d%0aX:1', '127.0.0.1', '-acme', 'acme.myshopify.com.') {
    my $f = OAuthKit::start_flow(uri => "/connect/shop?shop=$shop",
                                 owner => 'alice');
    Test::More::is($f->{status}, 400, "shop=$shop refused at the start");
}
T::pause(0.2);
Test::More::is($evil->connections, 0, 'nothing reached the token endpoint');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 2: T17: a callback whose shop, hmac or parameters are not what was signed for the shop of /connect: refused before any network I/O
--- http_config eval: $::Shop
--- config
--- init
my $evil = T::evil();
$evil->reset;
my $ts = time;
# a callback signed right, for the shop given
my $signed = sub {
    my ($shop, $code) = @_;
    return sub {
        my $q = "code=$code&shop=$shop&state=$_[0]&timestamp=$ts";
        return "$q&hmac=" . T::shopify_hmac($q);
    };
};
my %case = (
    'hmac missing' => sub { "code=c1&shop=acme.myshopify.com&state=$_[0]&timestamp=$ts" },
    'hmac wrong' => sub { "code=c1&shop=acme.myshopify.com&state=$_[0]&timestamp=$ts&hmac=" . ('ab' x 32) },
    'hmac empty' => sub { "code=c1&shop=acme.myshopify.com&state=$_[0]&timestamp=$ts&hmac=" },
    'hmac over the parameters unsorted' => sub {
        my $q = "timestamp=$ts&state=$_[0]&shop=acme.myshopify.com&code=c1";
        return "$q&hmac=" . T::shopify_hmac($q, 1);
    },
    'a duplicated code after the signed ones' => sub {
        my $q = "code=c1&shop=acme.myshopify.com&state=$_[0]&timestamp=$ts";
        return "$q&hmac=" . T::shopify_hmac($q) . '&code=c2';
    },
    'a duplicated shop, both signed' => sub {
        my $q = "code=c1&shop=acme.myshopify.com&shop=evil.test&state=$_[0]&timestamp=$ts";
        return "$q&hmac=" . T::shopify_hmac($q);
    },
    'two hmacs' => sub {
        my $q = "code=c1&shop=acme.myshopify.com&state=$_[0]&timestamp=$ts";
        my $h = T::shopify_hmac($q);
        return "$q&hmac=$h&hmac=$h";
    },
    'another shop, signed' => $signed->('other.myshopify.com', 'c1'),
    'shop=evil.test, signed' => $signed->('evil.test', 'c1'),
    'shop=x.myshopify.com.evil.test, signed' => $signed->('x.myshopify.com.evil.test', 'c1'),
    'shop=a@b.myshopify.com, signed' => $signed->('a%40b.myshopify.com', 'c1'),
);
# a shop at the callback other than the one of /connect, even signed, or
# given twice, is refused before the exchange (T17): invalid_request
for my $name (sort keys %case) {
    $evil->reset;
    my $got = T::shop_callback('acme', $case{$name});
    Test::More::isnt($got, 'connected', "$name: not connected");
    Test::More::is($evil->connections, 0,
                   "$name: refused before the code exchange ($got)");
    Test::More::is($got, 'invalid_request', "$name: invalid_request")
        if $name =~ /signed$/;
}
$evil->reset;

# the control: a callback signed right for the shop of /connect does reach
# the token endpoint (which refuses it), so the count above means something
my $got = T::shop_callback('acme', $signed->('acme.myshopify.com', 'c1'));
Test::More::isnt($got, 'connected', "a right callback is exchanged, and refused there ($got)");
Test::More::ok(T::wait_for_conn($evil, 1), 'and reached the listener');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 3: T17: QuickBooks' realmId that is not a company id: refused at the callback, before the code exchange
--- http_config eval: $::Qb
--- config
--- init
my $evil = T::evil();
$evil->reset;
for my $realm ('12/../x', '12%2F..%2Fx', '%2F', '-1', '12%0d%0aX:1', '12%00',
               '', '1' x 10240) {
    $evil->reset;
    my $got = T::qb_callback($realm);
    my $name = length $realm > 40 ? 'realmId of 10 KiB' : "realmId=$realm";
    # the preset keeps realmId with "pattern=^[0-9]{1,32}$": "-1" too
    Test::More::isnt($got, 'connected', "$name: not connected");
    Test::More::is($evil->connections, 0,
                   "$name: refused before the code exchange ($got)");
}
$evil->reset;
my $got = T::qb_callback('123145');
Test::More::isnt($got, 'connected', "a company id is exchanged ($got)");
Test::More::ok(T::wait_for_conn($evil, 1), 'and reached the listener');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 4: T38: CR/LF and NUL in what the provider sends are refused at the connect; the upstream gets one well-formed request
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAW_PORT;
    }
--- init
my $fake = OAuthKit::fake();
my $tail = '"expires_in":3600,"refresh_token":"rt-x"';
my %case = (
    'access_token with CR/LF' => '{"access_token":"x\r\nHost: evil","token_type":"Bearer",' . $tail . ',"user":{"id":"a1"}}',
    'access_token with NUL' => '{"access_token":"x\u0000y","token_type":"Bearer",' . $tail . ',"user":{"id":"a2"}}',
    'token_type with CR/LF' => '{"access_token":"at-t","token_type":"Bearer\r\nX: 1",' . $tail . ',"user":{"id":"a3"}}',
    'account id with NUL' => '{"access_token":"at-n","token_type":"Bearer",' . $tail . ',"user":{"id":"acct\u0000x"}}',
    'account id with CR/LF' => '{"access_token":"at-c","token_type":"Bearer",' . $tail . ',"user":{"id":"acct\r\nX: 1"}}',
    'account name with CR/LF' => '{"access_token":"at-m","token_type":"Bearer",' . $tail . ',"user":{"id":"a4","name":"Ann\r\nX: 1"}}',
    'account name with NUL' => '{"access_token":"at-o","token_type":"Bearer",' . $tail . ',"user":{"id":"a5","name":"Ann\u0000"}}',
);
my $n = 0;
for my $name (sort keys %case) {
    my $owner = 'mallory' . $n++;
    $fake->reset(code_body => $case{$name});
    my $r = OAuthKit::connect_flow(owner => $owner, code => 'x');
    Test::More::ok(!$r->{ok}, "$name: the connect fails ("
                   . ($r->{error} // $r->{status} // '') . ')');
    my $list = OAuthKit::connections($owner);
    Test::More::is(ref $list eq 'ARRAY' ? scalar @$list : -1, 0,
                   "$name: nothing stored");
}
$fake->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'good-1');
T::api()->reset;
--- request
GET /api/items?x=1
--- more_headers
X-Owner: alice
Host: evil.example
--- response_body: ok
--- response_headers
!X
--- no_error_log
[crit]



=== TEST 5: T38: the raw bytes the upstream received for the well-formed connection: one request, one Host, one Authorization
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAW_PORT;
    }
--- init
OAuthKit::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'raw-1');
T::api()->reset;
my $r = OAuthKit::request('GET', '/api/items?x=1', owner => 'alice',
                          headers => { Authorization => "Bearer attacker" });
Test::More::is($r->{status}, 200, 'proxied');
my $raw = T::api()->bytes;
my @req = $raw =~ /^(GET|POST|PUT|DELETE|HEAD) /mg;
Test::More::is(scalar @req, 1, 'one request line');
my ($head) = $raw =~ /(GET .*?\r\n\r\n)/s;
$head //= '';
Test::More::like($head, qr{\AGET /api/items\?x=1 HTTP/1\.[01]\r\n}, 'the request line');
my @auth = $head =~ /^Authorization:/mgi;
Test::More::is(scalar @auth, 1, 'one Authorization header');
Test::More::like($head, qr{^Authorization: Bearer at-\d+-raw-1\r$}m, "the connection's token");
my @host = $head =~ /^Host:/mgi;
Test::More::is(scalar @host, 1, 'one Host header');
Test::More::unlike($head, qr/attacker|\r(?!\n)|\n(?<!\r\n)|\0/, 'no stray CR, LF, NUL or client credential');
--- request
GET /oauth/api/connections/demo/raw-1
--- more_headers
X-Owner: alice
--- error_code: 200



=== TEST 6: T40: a cache in front of oauth_token keyed with the owner and account never gives one owner's answer to another
--- http_config
    proxy_cache_path $TEST_NGINX_OAUTH_DIR/cache076 keys_zone=c076:1m;
--- config
    location /api/ {
        oauth_token demo;
        proxy_cache c076;
        proxy_cache_key "$http_x_owner $oauth_account $request_uri";
        proxy_cache_valid 200 10m;
        proxy_ignore_headers Cache-Control Expires Set-Cookie;
        add_header X-Cache $upstream_cache_status always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
OAuthKit::fake()->reset(expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
OAuthKit::connect_ok(owner => 'bob', code => 'bob-1');
my $a1 = OAuthKit::request('GET', '/api/cached', owner => 'alice');
my $a2 = OAuthKit::request('GET', '/api/cached', owner => 'alice');
Test::More::like($a1->{content}, qr/Bearer at-\d+-alice-1/, 'alice: her answer');
Test::More::is(OAuthKit::header($a2, 'x-cache'), 'HIT', 'alice again: from the cache');
Test::More::like($a2->{content}, qr/Bearer at-\d+-alice-1/, 'still hers');
--- request
GET /api/cached
--- more_headers
X-Owner: bob
--- response_headers
X-Cache: MISS
--- response_body_like eval
qr/\A(?=.*Bearer at-\d+-bob-1)(?!.*alice)/s
--- error_log eval
qr/\[warn\] .*"proxy_cache" in a location with "oauth_token"/



=== TEST 7: T52: key rotation: K2 added, promoted, values re-sealed; removing K1 early is reported row by row; after the rotation K1 goes
--- http_config
    oauth_key_file $TEST_NGINX_KEYS52;
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $keys = $ENV{TEST_NGINX_KEYS52};
my ($k1, $k2) = @main::Key{qw(k1 k2)};
my $store = $ENV{TEST_NGINX_OAUTH_STORE};
my $only2 = OAuthKit::write_key_file('keys52-k2', "k2:$k2\n");
OAuthKit::write_key_file($keys, "k1:$k1\n");
T::reload();
OAuthKit::fake()->reset(expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'a-1');
my $use = sub {
    my ($owner, $code, $what) = @_;
    my $r = OAuthKit::request('GET', '/api/x', owner => $owner);
    Test::More::like($r->{content}, qr/Bearer at-\d+-\Q$code\E/, "$what: the token of $owner is used");
};

# K2 as the second line: every worker can open it, nothing seals with it
OAuthKit::write_key_file($keys, "k1:$k1\nk2:$k2\n");
Test::More::ok(T::reload(), 'reload with K2 secondary');
$use->('alice', 'a-1', 'K2 secondary');

# K2 first: new writes are sealed with K2, K1 rows still open
OAuthKit::write_key_file($keys, "k2:$k2\nk1:$k1\n");
Test::More::ok(T::reload(), 'reload with K2 promoted');
OAuthKit::connect_ok(owner => 'bob', code => 'b-1');
$use->('alice', 'a-1', 'K2 promoted');
$use->('bob', 'b-1', 'K2 promoted');

# removing K1 now would break alice's connection: the check says which rows
my $c = T::cli('--store', $store, '--key-file', $only2, 'check');
Test::More::is($c->{rc}, 1, 'check without K1 before the rotation: exit 1');
Test::More::like($c->{out}, qr/^failed\talice\tdemo\ta-1\t\S+\t.*\tk1$/m,
                 "alice's row under K1 is reported");
Test::More::unlike($c->{out}, qr/^failed\tbob/m, "bob's row, written under K2, is not");
Test::More::unlike($c->{out}, qr/at-\d+-|rt-\d+-/, 'no token in the report');

# the rotation converges: nothing left under K1
$c = T::cli('--store', $store, '--key-file', $keys, 'rotate');
Test::More::is($c->{rc}, 0, 'rotate: exit 0') or Test::More::diag($c->{out});
Test::More::unlike($c->{out}, qr/at-\d+-|rt-\d+-/, 'no token in its output');
$c = T::cli('--store', $store, '--key-file', $keys, 'rotate');
Test::More::like($c->{out}, qr/^rotated 0 sealed values/, 'a second rotate finds nothing to do');
$c = T::cli('--store', $store, '--key-file', $only2, 'check');
Test::More::is($c->{rc}, 0, 'check with K2 alone: exit 0') or Test::More::diag($c->{out});

# K1 removed
OAuthKit::write_key_file($keys, "k2:$k2\n");
Test::More::ok(T::reload(), 'reload with K1 removed');
$use->('alice', 'a-1', 'K1 removed');
--- request
GET /api/x
--- more_headers
X-Owner: bob
--- response_body_like eval
qr/Bearer at-\d+-b-1/
--- no_error_log
unsealing_failed
