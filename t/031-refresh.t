# Refresh on use, once across all workers (security-tests.md T24, T26, T28,
# T30): storms of concurrent requests on an expired token, rotating refresh
# tokens that a strict fake provider revokes on reuse, provider failures
# and the circuit breaker, the background refresher, an upstream 401, a
# reload and a disconnect while a refresh is in flight.
#
# The fake provider (t/lib/FakeProvider.pm) counts every call; "reuse" is a
# spent refresh token presented again, which must never happen.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

master_on();
workers(4);
worker_connections(512);
add_block_preprocessor(\&OAuthKit::demo_defaults);

# Shared by the blocks' init code (which runs in another package under the
# real framework, hence the full names).
package T;

use Time::HiRes qw(sleep time);

sub fake { OAuthKit::fake() }

sub conn {
    my ($owner, $account) = @_;
    return OAuthKit::connection($owner // 'alice', 'demo',
                                 $account // "${\($owner // 'alice')}-1");
}

# until the connection's token is past its expires_at (as the API shows
# it: the API still says "connected" while a refresh can fix it)
sub wait_expired {
    my ($owner, $account) = @_;
    my $c = conn($owner, $account);
    my $exp = $c ? OAuthKit::epoch($c->{expires_at}) : undef;
    Test::More::ok($exp && $exp - time < 10,
                   "the token of $owner expires soon");
    return unless $exp;
    sleep 0.05 while time < $exp + 0.05;
}

# a fixed wait, where the test needs time to pass rather than a condition
# (absence of a call, or the order of events in a choreography)
sub pause {
    my $until = time + shift;
    sleep 0.02 while time < $until;
}

# the bearer token the provider's API received, from its echo
sub bearer {
    my $body = shift // '';
    return $body =~ /^Authorization: Bearer (\S+)\r$/m ? $1 : '';
}

# refresh_token values of the refresh calls the fake received
sub refresh_tokens_sent {
    return map { $_->{form}{refresh_token} }
           fake()->requests(path => '/token', grant_type => 'refresh_token');
}

# what a storm got, grouped: "200 at-2-alice-1 x20, 503 provider_unavailable x1"
sub summary {
    my %n;
    for my $r (@_) {
        my $what = $r->{body} =~ /^\{"error":"([a-z_]+)"/ ? $1
                 : bearer($r->{body}) || $r->{error} || '?';
        $n{"$r->{status} $what"}++;
    }
    return join ', ', map { "$_ x$n{$_}" } sort keys %n;
}

sub no_reuse {
    Test::More::is(fake()->count('reuse'), 0,
                   'no refresh token was ever used twice');
    Test::More::is(fake()->count('unknown_refresh_token'), 0,
                   'no unknown refresh token was sent');
}

package main;

run_tests();

__DATA__

=== TEST 1: a storm on an expired token across 4 workers: exactly one refresh, all succeed with the new token (T24)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::wait_expired('alice');

# the refreshed token lives long; the answer is held so that the storm
# really waits on it
$fake->set(expires_in => 3600, delay => 0.5);
my @r = OAuthKit::storm(60, '/api/storm');

Test::More::is(T::summary(@r), '200 at-2-alice-1 x60',
               'all 60 requests succeed with the new token');
my %workers = map { ($_->{worker} // '') => 1 } @r;
Test::More::cmp_ok(scalar keys %workers, '>=', 2,
                   'the storm was served by several workers');
Test::More::is($fake->count('refresh'), 1, 'exactly one refresh call');
T::no_reuse();
my $c = T::conn('alice');
Test::More::is($c->{status}, 'connected', 'connected');
Test::More::cmp_ok(OAuthKit::epoch($c->{expires_at}) - time, '>', 3000,
                   'expires_at is the new one');
--- request
GET /api/after
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-2-alice-1\r$/m



=== TEST 2: rotating refresh tokens over many rounds: one refresh per round, never a reuse (T24, T28)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');

my $rounds = 4;
for my $round (1 .. $rounds) {
    T::wait_expired('alice');
    $fake->set(delay => 0.2);
    my @r = OAuthKit::storm(20, '/api/round');
    Test::More::is(T::summary(@r), '200 at-' . ($round + 1) . '-alice-1 x20',
                   "round $round: all succeed with the token of this round");
    Test::More::is($fake->count('refresh'), $round,
                   "round $round: one refresh call");
}

# each round presented the token the previous one issued
Test::More::is_deeply([T::refresh_tokens_sent()],
                      [map { "rt-$_-alice-1" } 1 .. $rounds],
                      'each refresh sent the latest refresh token');
T::no_reuse();
Test::More::is_deeply([$fake->live_refresh_tokens],
                      ['rt-' . ($rounds + 1) . '-alice-1'],
                      'the grant is alive with the last token');
--- request
GET /api/after
--- more_headers
X-Owner: alice
--- response_headers
X-Token-Valid: yes



=== TEST 3: a refresh answer without refresh_token keeps the old one; a new one replaces it (T28)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1, rotate => 0);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');

for my $round (1 .. 2) {
    T::wait_expired('alice');
    my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    Test::More::is(T::bearer($r->{content}), 'at-' . ($round + 1) . '-alice-1',
                   "round $round: refreshed without a new refresh token");
}

# now the provider rotates again
$fake->set(rotate => 1);
for my $round (3 .. 4) {
    T::wait_expired('alice');
    my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    Test::More::is(T::bearer($r->{content}), 'at-' . ($round + 1) . '-alice-1',
                   "round $round: refreshed");
}

Test::More::is_deeply([T::refresh_tokens_sent()],
                      [qw(rt-1-alice-1 rt-1-alice-1 rt-1-alice-1 rt-4-alice-1)],
                      'the old refresh token was kept until a new one came');
T::no_reuse();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-5-alice-1\r$/m



=== TEST 4: 5xx during refresh of a still-valid token: the token is used, nothing lost, backoff, then the refresh works (T26)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');

# the provider's API says the token no longer works: due for a refresh
$fake->set(api_401 => 1, refresh_mode => 'error', refresh_status => 503);
my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is($r->{status}, 401, "the API's 401 reaches the client");

$r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is($r->{status}, 200, 'refresh failed: the request still works');
Test::More::is(T::bearer($r->{content}), 'at-1-alice-1',
               'with the still-valid token');
Test::More::is($fake->count('refresh_error'), 1, 'one failed refresh');
my $c = T::conn('alice');
Test::More::is($c->{status}, 'connected', 'still connected');
Test::More::is($c->{last_error}, 'provider_unavailable', 'last_error');

# the next attempt waits for the backoff; then a second failure doubles it
my $n = 0;
OAuthKit::wait_for(sub {
    $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    $n++ if T::bearer($r->{content}) eq 'at-1-alice-1';
    return $fake->count('refresh') >= 2;
}, 5);
Test::More::is($fake->count('refresh'), 2, 'retried after the backoff');
Test::More::cmp_ok($n, '>=', 1, 'requests meanwhile used the old token');
for (1 .. 5) {
    $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
}
Test::More::is($r->{status}, 200, 'still served during the backoff');
Test::More::is($fake->count('refresh'), 2,
               'no call to the provider during the (longer) backoff');

$fake->set(refresh_mode => 'ok');
OAuthKit::wait_for(sub {
    $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    return T::bearer($r->{content}) eq 'at-2-alice-1';
}, 8);
Test::More::is(T::bearer($r->{content}), 'at-2-alice-1',
               'the provider is back: refreshed');
Test::More::is_deeply([T::refresh_tokens_sent()],
                      [('rt-1-alice-1') x 3],
                      'the refresh token was kept through the failures');
T::no_reuse();
$c = T::conn('alice');
Test::More::is($c->{last_error}, undef, 'last_error cleared');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-2-alice-1\r$/m



=== TEST 5: expired token and the provider down: 503 provider_unavailable for a whole storm, tokens kept, then recovery (T26)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::wait_expired('alice');

$fake->set(expires_in => 3600, refresh_mode => 'error', refresh_status => 502,
           delay => 0.5);
my @r = OAuthKit::storm(20, '/api/down');
Test::More::is(T::summary(@r), '503 provider_unavailable x20',
               'all 20 get 503 provider_unavailable');
Test::More::is($fake->count('refresh'), 1, 'one refresh call for all');
Test::More::is($fake->count('api'), 0, 'nothing reached the API');
my $c = T::conn('alice');
Test::More::is($c->{status}, 'expired', 'status expired');
Test::More::is($c->{last_error}, 'provider_unavailable', 'last_error');

# a connection that is dropped without an answer counts the same
$fake->set(refresh_mode => 'drop', delay => 0);
my $r;
OAuthKit::wait_for(sub {
    $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    return $fake->count('refresh') >= 2;
}, 5);
Test::More::is($r->{status}, 503, 'network error: 503');

$fake->set(refresh_mode => 'ok');
OAuthKit::wait_for(sub {
    $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    return $r->{status} == 200;
}, 8);
Test::More::is(T::bearer($r->{content}), 'at-2-alice-1',
               'the provider is back: refreshed');
Test::More::is_deeply([T::refresh_tokens_sent()],
                      [('rt-1-alice-1') x 3],
                      'the refresh token was kept through the failures');
T::no_reuse();
--- request
GET /oauth/api/connections/demo/alice-1
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"status":"connected"/



=== TEST 6: invalid_grant: 401 reauthorization_required for a storm, status error with last_error; a new connect repairs it (T26)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::wait_expired('alice');

$fake->set(refresh_mode => 'invalid_grant', delay => 0.3);
my @r = OAuthKit::storm(12, '/api/x');
Test::More::is(T::summary(@r), '401 reauthorization_required x12',
               'all 12 get 401 reauthorization_required');
Test::More::is($fake->count('refresh'), 1, 'one refresh call');

my $c = T::conn('alice');
Test::More::is($c->{status}, 'error', 'status error');
Test::More::is($c->{last_error}, 'invalid_grant', 'last_error invalid_grant');

my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is($r->{status}, 401, 'still 401 later');
Test::More::is($fake->count('refresh'), 1, 'without calling the provider');
Test::More::is($fake->count('api'), 0, 'nothing reached the API');

# the user connects again: the same account works again
$fake->set(refresh_mode => 'ok', delay => 0, expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
--- request eval
["GET /api/x", "GET /oauth/api/connections"]
--- more_headers
X-Owner: alice
--- response_body_like eval
[qr/^Authorization: Bearer at-2-alice-1\r$/m,
 qr/\A\[\{(?=.*"account":"alice-1")(?=.*"status":"connected")(?=.*"last_error":null)/]



=== TEST 7: the circuit opens after 2 failures, stops calls, lets one probe through when half-open, and closes
--- http_config
    oauth_background_refresh off;
    oauth_circuit_breaker failures=2 reset=2s;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
my @users = qw(alice bob carol dave erin frank);
for my $o (@users) {
    OAuthKit::connect_ok(owner => $o, code => "$o-1");
}
T::wait_expired('frank');

sub circuit {
    my $p = OAuthKit::api('GET', 'providers', owner => 'alice')->{json} // [];
    my ($demo) = grep { $_->{name} eq 'demo' } @$p;
    return $demo ? $demo->{circuit} : 'none';
}

Test::More::is(circuit(), 'closed', 'closed at first');

$fake->set(expires_in => 3600, refresh_mode => 'error');
for my $o (qw(alice bob)) {
    my $r = OAuthKit::request('GET', '/api/x', owner => $o);
    Test::More::is($r->{status}, 503, "$o: 503 while the provider fails");
}
Test::More::is($fake->count('refresh'), 2, 'two failed calls');
Test::More::is(circuit(), 'open', 'the circuit is open');

for my $o (qw(carol alice bob)) {
    my $r = OAuthKit::request('GET', '/api/x', owner => $o);
    Test::More::is($r->{status}, 503, "$o: 503 while the circuit is open");
    Test::More::like($r->{content}, qr/"provider_unavailable"/, 'provider_unavailable');
}
Test::More::is($fake->count('refresh'), 2,
               'the provider is not called while the circuit is open');

# healthy again; after the reset one probe goes through (held 1 s), even
# when four connections of four owners want a refresh at the same moment
$fake->set(refresh_mode => 'ok', delay => 1);
Test::More::ok(OAuthKit::wait_for(sub { circuit() eq 'half_open' }, 5),
               'half-open after the reset time');

my @r = OAuthKit::storm(12, '/api/x', owners => [qw(carol dave erin frank)]);
Test::More::is($fake->count('refresh'), 3, 'only one probe was let through');
Test::More::like(T::summary(@r),
                 qr/^200 at-7-(carol|dave|erin|frank)-1 x3, 503 provider_unavailable x9$/,
                 'the probe succeeded, the others got 503 meanwhile');
Test::More::is(circuit(), 'closed', 'the circuit is closed again');

$fake->set(delay => 0);
for my $o (@users) {
    my $r = OAuthKit::request('GET', '/api/x', owner => $o);
    Test::More::is($r->{status}, 200, "$o: refreshed after the circuit closed");
}
Test::More::is($fake->count('refresh_ok'), 6, 'each refreshed once');
T::no_reuse();
--- request
GET /oauth/api/providers
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"circuit":"closed"/



=== TEST 8: the background refresher refreshes with no traffic, once across the workers
--- http_config
    oauth_refresh_ahead 4s;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
# lifetime 3 s: due 1.5 s before expiry (the window is capped at half)
$fake->reset(expires_in => 3);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
$fake->set(expires_in => 3600);

my $c;
Test::More::ok(OAuthKit::wait_for(sub {
                   $c = T::conn('alice');
                   return OAuthKit::epoch($c->{expires_at}) - time > 3000;
               }, 8),
               'refreshed without any request: the new expires_at is stored');
Test::More::is($fake->count('refresh_ok'), 1, 'by one refresh call');
Test::More::ok($c->{last_refresh_at}, 'last_refresh_at is set');
# a whole refresher period later nobody refreshed again
T::pause(1.6);
Test::More::is($fake->count('refresh'), 1, 'one refresh across 4 workers');
Test::More::is($fake->count('api'), 0, 'there was no traffic');
T::no_reuse();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-2-alice-1\r$/m



=== TEST 9: an upstream 401 makes the next use refresh
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
$fake->set(api_401 => 1);
my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is($r->{status}, 401, 'the API answered 401');
Test::More::is($fake->count('refresh'), 0, 'no refresh yet');
--- request eval
["GET /api/x", "GET /api/x", "GET /_counts"]
--- more_headers
X-Owner: alice
--- response_body_like eval
[qr/^Authorization: Bearer at-2-alice-1\r$/m,
 qr/^Authorization: Bearer at-2-alice-1\r$/m,
 qr/^refresh=1$/m]



=== TEST 10: a reload while a slow refresh is in flight loses nothing
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::wait_expired('alice');

$fake->set(expires_in => 3600, delay => 2);
my $old = OAuthKit::storm_start(20, '/api/old');
Test::More::ok(OAuthKit::wait_for(sub { $fake->count('refresh') >= 1 }, 5),
               'the refresh is in flight');
Test::More::ok(OAuthKit::reload(workers => 4), 'reloaded: new workers run');
# requests to the new workers wait for the old worker's refresh too
my $new = OAuthKit::storm_start(10, '/api/new');
my @r = (OAuthKit::storm_wait($old), OAuthKit::storm_wait($new));

Test::More::is(T::summary(@r), '200 at-2-alice-1 x30',
               'all 30 requests succeed with the refreshed token');
Test::More::is($fake->count('refresh'), 1, 'one refresh call');

# the rotated refresh token was stored: the next refresh presents it
$fake->set(delay => 0, api_401 => 1);
OAuthKit::request('GET', '/api/x', owner => 'alice');
my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is(T::bearer($r->{content}), 'at-3-alice-1', 'refreshed again');
Test::More::is_deeply([T::refresh_tokens_sent()],
                      [qw(rt-1-alice-1 rt-2-alice-1)],
                      'with the refresh token the reload did not lose');
T::no_reuse();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m
--- no_error_log
[alert]



=== TEST 11: a disconnect while a slow refresh is in flight: nothing is stored, the waiting requests get 401 (T30)
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::wait_expired('alice');

$fake->set(expires_in => 3600, delay => 1.5);
my $h = OAuthKit::storm_start(8, '/api/x');
Test::More::ok(OAuthKit::wait_for(sub { $fake->count('refresh') >= 1 }, 5),
               'the refresh is in flight');
my $st = OAuthKit::api('DELETE', 'connections/demo/alice-1', owner => 'alice')->{status};
Test::More::is($st, 200, 'disconnected');
my @r = OAuthKit::storm_wait($h);
Test::More::is(T::summary(@r), '401 not_connected x8',
               'the waiting requests get 401 not_connected');
Test::More::is($fake->count('api'), 0, 'no token reached the API');
Test::More::is($fake->count('refresh'), 1, 'one refresh call');
Test::More::is(T::conn('alice'), undef, 'the connection stays deleted');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 12: a reconnect while a slow refresh is in flight wins over the refresh's older result
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::wait_expired('alice');

$fake->set(expires_in => 3600, delay => 1.5);
my $h = OAuthKit::storm_start(1, '/api/x');
Test::More::ok(OAuthKit::wait_for(sub { $fake->count('refresh') >= 1 }, 5),
               'the refresh is in flight');
# the code exchange is not delayed by the fake
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my ($r) = OAuthKit::storm_wait($h);
Test::More::is($r->{status}, 200, 'the waiting request succeeds');
Test::More::is(T::bearer($r->{body}), 'at-3-alice-1',
               'with the token of the new connect');
Test::More::is($fake->count('refresh'), 1, 'one refresh call');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m



=== TEST 13: an upstream 401 that arrives while a refresh is in flight does not make its result (a rotated refresh token) get lost
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 3600);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');

# due: the API said 401; and the token endpoint fails for a while
$fake->set(api_401 => 1);
OAuthKit::request('GET', '/api/x', owner => 'alice');
$fake->set(refresh_mode => 'error', api_401 => 1, api_delay => 1.5);

# one: its refresh fails, so it goes on with the still-valid token, and
# the API answers it 401 1.5 s later
my $one = OAuthKit::storm_start(1, '/api/one');
OAuthKit::wait_for(sub { $fake->count('refresh') >= 1 }, 5);

# two: after the 1 s backoff; its refresh is held 3 s, and the 401 of
# "one" comes back meanwhile
T::pause(1.1);
$fake->set(refresh_mode => 'ok', delay => 3, api_delay => 0);
my $two = OAuthKit::storm_start(1, '/api/two');

my ($r1) = OAuthKit::storm_wait($one);
my ($r2) = OAuthKit::storm_wait($two);
Test::More::is($r1->{status}, 401, "one: the API's 401");
Test::More::is($r2->{status}, 200, 'two: succeeds');
Test::More::is(T::bearer($r2->{body}), 'at-2-alice-1',
               'two: with the refreshed token');
$fake->set(delay => 0);
my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is(T::bearer($r->{content}), 'at-2-alice-1',
               'the refreshed token was stored');
Test::More::is_deeply([T::refresh_tokens_sent()],
                      [qw(rt-1-alice-1 rt-1-alice-1)],
                      'no refresh after the one that worked');
T::no_reuse();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_headers
X-Token-Valid: yes



=== TEST 14: the background refresher retries a token that expired while the provider was down, with no traffic
--- http_config
    oauth_refresh_ahead 4s;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset(expires_in => 2);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my $exp = OAuthKit::epoch(T::conn('alice')->{expires_at});
$fake->set(refresh_mode => 'error', expires_in => 3600);

# the background refresher fails, also once the token has expired
Test::More::ok(OAuthKit::wait_for(sub {
    grep { $_->{time} >= $exp + 0.05 }
         $fake->requests(path => '/token', grant_type => 'refresh_token');
}, 8), 'a refresh failed after the token expired');
Test::More::ok(OAuthKit::wait_for(sub {
    (T::conn('alice') // {})->{status} eq 'expired';
}, 3), 'the connection shows expired');

$fake->set(refresh_mode => 'ok');
my $c;
Test::More::ok(OAuthKit::wait_for(sub {
    $c = T::conn('alice');
    return $c->{status} eq 'connected'
           && OAuthKit::epoch($c->{expires_at}) - time > 3000;
}, 12), 'refreshed by the background refresher once the provider is back');
Test::More::is($fake->count('refresh_ok'), 1, 'one successful refresh');
Test::More::is($fake->count('api'), 0, 'there was no traffic');
T::no_reuse();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-2-alice-1\r$/m



=== TEST 15: a refresh answered by something that is not an OAuth refusal (an HTML 403, an unknown error code) keeps the connection
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
for my $case ([ 'html', 403, 'invalid_response' ],
              [ 'unknown_error', 400, 'provider_error' ]) {
    my ($mode, $status, $code) = @$case;
    $fake->reset(expires_in => 3600);
    OAuthKit::connect_ok(owner => 'alice', code => "alice-$mode");

    # the provider's API says the token no longer works: due for a refresh
    $fake->set(api_401 => 1, refresh_mode => $mode,
               refresh_status => $status);
    my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    Test::More::is($r->{status}, 401, "$mode: the API's 401 reaches the client");

    $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    Test::More::is($r->{status}, 200, "$mode: the request still works");
    Test::More::is($fake->count('refresh_error'), 1, "$mode: one failed refresh");
    my $c = T::conn('alice', "alice-$mode");
    Test::More::is($c->{status}, 'connected', "$mode: still connected");
    Test::More::is($c->{last_error}, $code, "$mode: last_error $code");
    my $st = OAuthKit::api('DELETE', "connections/demo/alice-$mode", owner => 'alice')->{status};
    Test::More::is($st, 200, "$mode: cleaned up");
}
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_body_like: "not_connected"
