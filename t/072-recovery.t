# Refresh under faults (issue 9, findings 8 and 9): a worker killed while
# it holds a connection's refresh lease, with a call to the provider out;
# a reload while the background refresher has a call out; how many calls
# the background refresher has out at once.
#
# The fake provider (t/lib/FakeProvider.pm) is slow on purpose (delay),
# and rotates refresh tokens and revokes a grant whose spent refresh token
# comes back (RFC 9700 section 4.14.2), so a lost answer shows.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
worker_connections(256);
no_shuffle();
add_block_preprocessor(\&OAuthKit::demo_defaults);

# Shared by the blocks' init code (which runs in another package under the
# real framework, hence the full names).
package T;

use Time::HiRes qw(sleep time);

sub fake { OAuthKit::fake() }

sub conn {
    my $owner = shift // 'alice';
    return OAuthKit::connection($owner, 'demo', "$owner-1");
}

sub pause {
    my $until = time + shift;
    sleep 0.02 while time < $until;
}

sub bearer {
    my $body = shift // '';
    return $body =~ /^Authorization: Bearer (\S+)\r$/m ? $1 : '';
}

# the worker with an established connection to the fake's token endpoint:
# the lease holder, with its call out
sub token_caller {
    my $port = fake()->port;
    my %w = map { $_ => 1 } OAuthKit::worker_pids();
    my $out = `ss -tnpH state established dst 127.0.0.1:$port 2>/dev/null`;
    for my $pid ($out =~ /pid=(\d+)/g) {
        return $pid if $w{$pid};
    }
    return undef;
}

# one request, timed: [status, bearer token, seconds, body]
sub timed {
    my ($path, $owner) = @_;
    my $t0 = time;
    my $r = OAuthKit::request('GET', $path, owner => $owner // 'alice');
    return [$r->{status}, bearer($r->{content}), time - $t0, $r->{content}];
}

# until the master has respawned the killed worker
sub respawned {
    my $want = shift // 2;
    OAuthKit::wait_for(sub { my @w = OAuthKit::worker_pids(); @w >= $want }, 10);
}

# how many refresh calls were at the fake at once, at most: each was
# there from its arrival for the fake's delay
sub max_parallel {
    my $delay = shift;
    my @t = sort { $a <=> $b }
            map { $_->{time} }
            fake()->requests(path => '/token', grant_type => 'refresh_token');
    my $max = 0;
    for my $i (0 .. $#t) {
        my $n = grep { $_ >= $t[$i] && $_ < $t[$i] + $delay } @t;
        $max = $n if $n > $max;
    }
    return $max;
}

# the start of a flow: { status, state, cookie }
sub start_flow {
    my ($owner, $path) = @_;
    my $r = OAuthKit::request('GET', $path // '/connect/demo', owner => $owner);
    my $loc = $r->{headers}{location} // '';
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($state) = $loc =~ /[?&]state=([^&]+)/;
    my ($cookie) = $sc =~ /^([^;]+)/;
    return { status => $r->{status}, state => $state, cookie => $cookie,
             body => $r->{content} };
}

# its callback: the HTTP status and oauth_status or oauth_error
sub finish_flow {
    my ($owner, $flow, $code) = @_;
    my $r = OAuthKit::request('GET', "/callback?code=$code&state=$flow->{state}",
                           owner => $owner,
                           headers => { Cookie => $flow->{cookie} });
    my $loc = $r->{headers}{location} // '';
    my ($res) = $loc =~ /[?&]oauth_(?:status|error)=([^&]+)/;
    return "$r->{status} " . ($res // '');
}

sub metric {
    my $name = shift;
    my $r = OAuthKit::request('GET', '/metrics');
    return $r->{content} =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

package main;

run_tests();

__DATA__

=== TEST 1: finding 8: while a refresh is out, a still-valid token is used at once; a killed lease holder stalls nobody
--- http_config
    oauth_background_refresh off;
    oauth_refresh_ahead 1h;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
# lifetime 8 s: due after 4 s (the window is capped at half), valid to 8 s
$fake->reset(expires_in => 8, rotate => 0);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::pause(4.2);
$fake->set(expires_in => 3600, delay => 6);

# the first use takes the lease and calls the provider, which takes 6 s;
# its request goes on with the token it has
my $first = T::timed('/api/first');
Test::More::is("$first->[0] $first->[1]", '200 at-1-alice-1',
               'the request that started the refresh used the valid token');
Test::More::cmp_ok($first->[2], '<', 2, 'without waiting for the provider');

my $holder = OAuthKit::wait_for(sub { T::token_caller() }, 5);
Test::More::ok($holder, 'a worker is calling the provider');
kill 'KILL', $holder if $holder;
OAuthKit::wait_for(sub { !kill 0, $holder }, 5) if $holder;

# the lease of the dead worker is taken over at once, by the first
# request to come; every request is answered with the valid token
my @r = map { T::timed("/api/after-$_") } 1 .. 6;
my @slow = grep { $_->[2] > 2 } @r;
Test::More::is(join(',', map { "$_->[0] $_->[1]" } @r),
               join(',', ('200 at-1-alice-1') x 6),
               'six requests after the kill: 200 with the still-valid token');
Test::More::is(scalar @slow, 0, 'none waited (15 s before)');

Test::More::ok(OAuthKit::wait_for(sub { $fake->count('refresh') >= 2 }, 5),
               'the takeover called the provider');
Test::More::ok(OAuthKit::wait_for(sub {
                   T::timed('/api/x')->[1] eq 'at-3-alice-1' }, 12),
               'and its tokens are used once stored');
Test::More::is($fake->count('refresh'), 2,
               'two refresh calls: the dead one and the takeover');
T::respawned();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m
--- error_log eval
qr/\[warn\] .*taking over a refresh whose process exited with a call out/



=== TEST 2: finding 8: an expired token and a killed lease holder: the takeover is at once, not at the lease deadline
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
T::pause(1.2);
$fake->set(expires_in => 3600, delay => 1);

# oauth_http_timeout is the default 10 s: the lease runs 15 s
my $storm = OAuthKit::storm_start(8, '/api/x');
my $holder = OAuthKit::wait_for(sub { T::token_caller() }, 5);
Test::More::ok($holder, 'the lease holder is calling the provider');
my $t0 = Time::HiRes::time();
kill 'KILL', $holder if $holder;
# the storm's requests on the killed worker die with it; those on the
# other (if the kernel gave it any) and the next one wait for a takeover
my @r = OAuthKit::storm_wait($storm, 20);
push @r, { status => $_->[0], body => $_->[3] } for T::timed('/api/next');
my $took = Time::HiRes::time() - $t0;
my @ok = grep { $_->{status} == 200 } @r;
Test::More::cmp_ok(scalar @ok, '>=', 1, 'the requests on the survivor are answered');
Test::More::is(scalar(grep { T::bearer($_->{body}) ne 'at-3-alice-1' } @ok), 0,
               'with the token of the takeover refresh');
Test::More::cmp_ok($took, '<', 6,
                   'within the provider time after the kill, not the 15 s lease');
Test::More::is($fake->count('refresh'), 2, 'two refresh calls: the dead one and the takeover');
T::respawned();
--- request
GET /api/after
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m



=== TEST 3: finding 9: a refresh token spent by a killed worker: one careful retry, then reauthorization_required with last_error refresh_interrupted
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
# a strict provider: rotates, and revokes the grant on reuse
$fake->reset(expires_in => 1, rotate => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::pause(1.2);
$fake->set(expires_in => 3600, delay => 1.5);

my $storm = OAuthKit::storm_start(6, '/api/x');
my $holder = OAuthKit::wait_for(sub { T::token_caller() }, 5);
Test::More::ok($holder, 'the lease holder is calling the provider');
kill 'KILL', $holder if $holder;
my @r = OAuthKit::storm_wait($storm, 20);
Test::More::is(scalar(grep { $_->{status} == 200 } @r), 0,
               'no request was answered with a token');
T::respawned();

# the next use takes the lease over and tries once
my $r = OAuthKit::request('GET', '/api/next', owner => 'alice');
Test::More::is($r->{status}, 401, 'the next use: 401');
my $c = T::conn('alice');
Test::More::is($c->{status}, 'error', 'the connection needs the user again');
Test::More::is($c->{last_error}, 'refresh_interrupted',
               'and says why: a refresh was cut off');
Test::More::is($fake->count('refresh'), 2,
               'one retry after the dead call, no more');
Test::More::is($fake->count('reuse'), 1, 'the retry was the reuse');

for (1 .. 3) { OAuthKit::request('GET', '/api/again', owner => 'alice') }
Test::More::is($fake->count('refresh'), 2, 'later requests call nobody');
T::respawned();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_body_like eval
qr/"error":"reauthorization_required"/
--- error_log eval
qr/refused the refresh: invalid_grant \(HTTP 400\); the refresh token was most likely spent/



=== TEST 4: finding 9: a reload while the background refresher has a call out: the worker stays until the answer is stored
--- http_config
    oauth_refresh_ahead 4s;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
# lifetime 3 s: due 1.5 s before expiry; nobody sends a request
$fake->reset(expires_in => 3, rotate => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
$fake->set(expires_in => 3600, delay => 2.5);
Test::More::ok(OAuthKit::wait_for(sub { $fake->count('refresh') >= 1 }, 8),
               'the background refresh is out');
Test::More::ok(OAuthKit::reload(workers => 2), 'reloaded: new workers run');

my $c;
Test::More::ok(OAuthKit::wait_for(sub {
                   $c = T::conn('alice');
                   return OAuthKit::epoch($c->{expires_at}) - time > 3000;
               }, 8),
               'the old worker stored the answer before it exited');
Test::More::is($fake->count('refresh'), 1, 'one refresh call');

# the rotated refresh token was kept: the next refresh presents it
$fake->set(delay => 0, api_401 => 1);
OAuthKit::request('GET', '/api/x', owner => 'alice');
OAuthKit::request('GET', '/api/x', owner => 'alice');
my @sent = map { $_->{form}{refresh_token} }
           $fake->requests(path => '/token', grant_type => 'refresh_token');
Test::More::is_deeply(\@sent, [qw(rt-1-alice-1 rt-2-alice-1)],
                      'the next refresh sent the rotated token');
Test::More::is($fake->count('reuse'), 0, 'nothing was used twice');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m
--- no_error_log
outbound request cancelled on exit



=== TEST 5: finding 9: the background refresher has at most two calls out per worker, not a batch of sixteen
--- http_config
    oauth_refresh_ahead 4s;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
# lifetime 6 s: due after 3 s, time enough to connect all ten
$fake->reset(expires_in => 6, rotate => 1, delay => 1);
my @owners = map { "u$_" } 1 .. 10;
OAuthKit::connect_ok(owner => $_, code => "$_-1") for @owners;
$fake->set(expires_in => 3600);
Test::More::ok(OAuthKit::wait_for(sub { $fake->count('refresh_ok') >= 10 }, 25),
               'all ten were refreshed without traffic');
my $max = T::max_parallel(1);
Test::More::cmp_ok($max, '<=', 4, "at most 2 per worker at once (saw $max)");
Test::More::cmp_ok($max, '>=', 2, 'but more than one at a time');
Test::More::is($fake->count('refresh'), 10, 'each once');
Test::More::is($fake->count('reuse'), 0, 'nothing was used twice');
--- request
GET /api/x
--- more_headers
X-Owner: u7
--- response_headers
X-Token-Valid: yes



=== TEST 6: finding 5: pending flows are capped per owner: the oldest is dropped, other owners keep theirs (T71)
--- http_config
    oauth_max_flows_per_owner 2;
--- config
--- init
T::fake()->reset(expires_in => 3600);
my $bob = T::start_flow('bob');
# a second apart: flows are aged in seconds
my @alice;
for (1 .. 3) {
    push @alice, T::start_flow('alice');
    T::pause(1.05) if $_ < 3;
}
Test::More::is(join(',', map { $_->{status} } @alice), '302,302,302',
               'every start is answered');
Test::More::is(T::finish_flow('alice', $alice[0], 'alice-1'), '400 ',
               'the oldest flow is gone');
Test::More::is(T::finish_flow('alice', $alice[1], 'alice-1'), '302 connected',
               'the two newest complete');
Test::More::is(T::finish_flow('alice', $alice[2], 'alice-2'), '302 connected',
               'the newest too');
Test::More::is(T::finish_flow('bob', $bob, 'bob-1'), '302 connected',
               'another owner keeps his');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/"account":"alice-1".*"account":"alice-2"/s
--- error_log
owner has 2 pending flows: the oldest 1 dropped



=== TEST 7: findings 5 and 10: a store full of flows keeps a reserve: refresh and disconnect commit, the purge frees it with no reload, usage is in the metrics (T29)
--- http_config
    oauth_store $TEST_NGINX_OAUTH_DIR/full.mdb max_size=256k;
    oauth_state_ttl 3s;
    oauth_background_refresh off;
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
OAuthKit::connect_ok(owner => 'bob', code => 'bob-1');
my $size = T::metric('oauth_store_size_bytes');
Test::More::is($size, 256 * 1024, 'the store size is a metric');

# many owners (the per-owner cap does not stop that) fill it with starts
my ($full, $n);
for $n (1 .. 3000) {
    my $f = T::start_flow("filler-$n", '/connect/demo?return_to=%2F' . ('x' x 1500));
    if ($f->{status} != 302) { $full = $f; last }
}
Test::More::ok($full && $full->{status} == 503
               && $full->{body} =~ /"store_full"/, 'then start answers 503 store_full');
Test::More::cmp_ok(T::metric('oauth_store_free_bytes'), '<', 32 * 1024,
                   'no room left for a flow, says the metric');
Test::More::cmp_ok(T::metric('oauth_store_used_bytes'), '<', $size,
                   'the reserve is not used by starts');

# a refresh (the API's) and a disconnect still commit
my $st = OAuthKit::api('POST', 'connections/demo/alice-1/refresh', owner => 'alice')->{status};
Test::More::is($st, 200, 'a refresh commits on the full store');
my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
Test::More::is(T::bearer($r->{content}), 'at-3-alice-1', 'and its token is used');
$st = OAuthKit::api('DELETE', 'connections/demo/bob-1', owner => 'bob')->{status};
Test::More::is($st, 200, 'a disconnect commits on the full store');
Test::More::ok(!OAuthKit::connection('bob', 'demo', 'bob-1'), 'bob is gone');

# the flows expire after 3 s and are purged 3 s later: starts work again
Test::More::ok(OAuthKit::wait_for(sub {
                   T::start_flow('carol')->{status} == 302 }, 40),
               'the purge made room, with no reload');
Test::More::cmp_ok(T::metric('oauth_store_free_bytes'), '>', 0, 'room again');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m
--- no_error_log
cannot purge expired flows



=== TEST 8: finding 9: the careful attempt after a takeover gets no answer: the connection stays retryable, and the next attempt is careful too
--- http_config
    oauth_background_refresh off;
    oauth_http_timeout 2s;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
# a strict provider: rotates, and revokes the grant on reuse
$fake->reset(expires_in => 1, rotate => 1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::pause(1.2);
$fake->set(expires_in => 3600, delay => 3);

# the holder's call spends rt-1 at the provider, and dies with its answer
# (one request only: a second one could take the lease over before
# /api/next below, and the careful attempt would not be the one timed out)
my $storm = OAuthKit::storm_start(1, '/api/x');
my $holder = OAuthKit::wait_for(sub { T::token_caller() }, 5);
Test::More::ok($holder, 'the lease holder is calling the provider');
kill 'KILL', $holder if $holder;
OAuthKit::storm_wait($storm, 20);
T::respawned();

# the takeover's careful attempt: the provider answers nothing in time
$fake->set(refresh_mode => 'drop', delay => 3);
my $r = T::timed('/api/next');
Test::More::is($r->[0], 503, 'the takeover got no answer: 503');
my $c = T::conn('alice');
Test::More::isnt($c->{status}, 'error', 'a timeout does not end the grant');
Test::More::is($c->{last_error}, 'refresh_interrupted',
               'the note that the refresh token may be spent stays');

# after the backoff, the next attempt is the careful one: the provider
# refuses the spent token, and the record says why
$fake->set(refresh_mode => 'ok', delay => 0);
T::pause(2.1);
$r = T::timed('/api/later');
Test::More::is($r->[0], 401, 'the next attempt: 401');
$c = T::conn('alice');
Test::More::is($c->{status}, 'error', 'the connection needs the user again');
Test::More::is($c->{last_error}, 'refresh_interrupted',
               'and says why (not a bare invalid_grant)');
Test::More::is($fake->count('reuse'), 1, 'the spent token came back once');
Test::More::is($fake->count('refresh'), 3,
               'three calls: the dead one, the timed-out one, the last one');
T::respawned();
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- error_code: 401
--- response_body_like eval
qr/"error":"reauthorization_required"/
--- error_log eval
[qr/refresh failed: provider_unavailable \(transfer timeout, HTTP 0\); the careful attempt after an interrupted refresh is tried again later/,
 qr/refused the refresh: invalid_grant \(HTTP 400\); the refresh token was most likely spent/]
