# The store: one LMDB file shared by every worker (flows started on one
# worker finish on another, connections stored by one are read by all),
# private to nginx (0600, no descriptor kept by the master), surviving a
# reload, refused at start-up when it cannot be opened, and failing
# cleanly, without losing anything, when it is full (SPEC section 7,
# security-tests.md T54, T58-T62).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::Nginx::Socket 'no_plan';
use OAuthKit api_prefix => '/api/';

master_on();
workers(4);

our $Store = <<'_EOC_';
    oauth_store     $TEST_NGINX_OAUTH_DIR/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
_EOC_

# A fake token endpoint naming the account after the code.
our $Provider = <<'_EOC_';
    oauth_provider demo {
        client_id          demo-client;
        redirect_uri       https://app.example/callback;
        authorization_url  https://auth.example/authorize;
        token_url          http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/token;
        account_id         user.id;
    }

    map $request_body $fake_account {
        "~(^|&)code=([A-Za-z0-9-]+)"  $2;
        default                       none;
    }

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        default_type application/json;

        location = /token {
            echo_read_request_body;
            echo '{"access_token":"AT-$fake_account","user":{"id":"$fake_account"}}';
        }
    }
_EOC_

# The module's locations, served on the main port and, for blocks that
# need requests spread over the workers, on a "reuseport" port too: there
# the kernel hands each new connection to one worker by hash, so that
# sixty connections cannot all land on the same one.
our $Spread = <<'_EOC_';
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_2 reuseport;
        oauth_owner $http_x_owner;
        add_header X-Pid $pid always;

        location ~ ^/connect/(?<p>[^/]+)$ {
            oauth_start $p;
        }

        location = /callback {
            oauth_callback;
        }

        location /api/ {
            oauth_api;
        }
    }
_EOC_

our $Locations = <<'_EOC_';
    oauth_owner $http_x_owner;
    add_header X-Pid $pid always;

    location ~ ^/connect/(?<p>[^/]+)$ {
        oauth_start $p;
    }

    location = /callback {
        oauth_callback;
    }

    location /api/ {
        oauth_api;
    }

    # tells the test where the reuseport server listens
    location = /spread-port {
        return 200 "$TEST_NGINX_RAND_PORT_2";
    }
_EOC_

sub master_pid {
    my $pid = OAuthKit::slurp(server_root() . '/logs/nginx.pid');
    $pid =~ s/\s+//g;
    return $pid;
}

sub workers_of {
    my $ppid = shift;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = OAuthKit::slurp($stat);
        push @kids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+) /s && $2 == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

# HUP, then wait until every old worker is gone and the new ones are up.
sub reload {
    my $master = master_pid();
    my %old = map { $_ => 1 } workers_of($master);
    kill 'HUP', $master or die "HUP $master: $!";
    return wait_for(sub {
        my @now = workers_of($master);
        return @now == 4 && !grep { $old{$_} } @now;
    }, 10);
}

sub mode_of { sprintf '%04o', (stat shift)[2] & 07777 }

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a connection stored by one worker is seen by every worker; flows cross workers
--- http_config eval: $::Store . $::Provider . $::Spread
--- config eval: $::Locations
--- init
package main;
my $port = http_get('/spread-port')->{content};
like($port, qr/^\d+\z/, 'the reuseport server');

# flows: start and callback are two connections, often on two workers
my ($crossed, %pids) = (0);
for my $i (1 .. 12) {
    my $f = start_flow(owner => 'alice', port => $port);
    my $res = callback($f, code => "acct-$i", port => $port);
    my $r = flow_result($res);
    is($r->{status}, 'connected', "flow $i connected");
    my ($p1, $p2) = ($f->{res}{headers}{'x-pid'}, $res->{headers}{'x-pid'});
    $pids{$p1}++;
    $pids{$p2}++;
    $crossed++ if $p1 != $p2;
}
ok($crossed, "$crossed of 12 flows were started and finished by different workers");

# every worker lists the twelve connections
my %seen_by;
for my $i (1 .. 60) {
    my $res = http_get('/api/connections', 'X-Owner' => 'alice', -port => $port);
    my $list = json_decode($res->{content});
    $seen_by{$res->{headers}{'x-pid'}}++;
    is(scalar @$list, 12, "request $i sees the twelve connections");
}
my @workers = workers_of(master_pid());
is(scalar @workers, 4, 'four workers');
ok(keys(%seen_by) >= 2, scalar(keys %seen_by) . ' different workers answered');
my %is_worker = map { $_ => 1 } @workers;
ok(!grep({ !$is_worker{$_} } keys %seen_by), 'all of them workers of this master');
--- request
GET /api/connections
--- more_headers
X-Owner: bob
--- response_body
[]
--- no_error_log
[error]
[crit]
[alert]



=== TEST 2: the store is private: files 0600 (tightened if they were not), no descriptor in the master
--- http_config eval: $::Store . $::Provider
--- config eval: $::Locations
--- user_files eval
[[ OAuthKit::oauth_dir() . '/store.mdb' => '' ]]
--- init
package main;
my $store = oauth_dir() . '/store.mdb';
ok(-f $store, 'the store is one file');
is(mode_of($store), '0600', 'store file 0600, though it was created 0644');
is(mode_of("$store-lock"), '0600', 'lock file 0600');
my ($r) = connect_flow(code => 'acct-1');
is($r->{status}, 'connected', 'the store works');
my $master = master_pid();
my @fds = map { readlink($_) // '' } glob "/proc/$master/fd/*";
is(scalar(grep { index($_, $store) == 0 } @fds), 0, 'the master keeps no descriptor of the store');
my $w = (workers_of($master))[0];
@fds = map { readlink($_) // '' } glob "/proc/$w/fd/*";
ok(scalar(grep { index($_, $store) == 0 } @fds) >= 1, 'a worker has it open');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"acct-1"



=== TEST 3: flows and connections survive a reload
--- http_config eval: $::Store . $::Provider
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(code => 'before');
is($r->{status}, 'connected', 'connected before the reload');
my $flow = start_flow(owner => 'alice');
is($flow->{status}, 302, 'a flow started before the reload');
ok(reload(), 'reloaded: only new workers now');
$r = flow_result(callback($flow, code => 'after'));
is($r->{status}, 'connected', 'the flow finishes on a new worker');
is_deeply([ sort map { $_->{account} } @{ connections('alice') } ], [ 'after', 'before' ],
          'both connections there');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"after"
--- no_error_log
[error]
[crit]



=== TEST 4: a store in a directory that does not exist: nginx does not start
--- http_config
    oauth_store     /nonexistent-oauth-dir/sub/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth: cannot open store "\/nonexistent-oauth-dir\/sub\/store\.mdb": .*No such file or directory/



=== TEST 5: a store whose directory is a file: nginx does not start
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR/keys/store.mdb;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth: cannot open store "\S+\/keys\/store\.mdb": .*Not a directory/



=== TEST 6: a store path that is a directory: nginx does not start
--- http_config
    oauth_store     $TEST_NGINX_OAUTH_DIR;
    oauth_key_file  $TEST_NGINX_OAUTH_DIR/keys;
--- config
    location = /t {
        return 204;
    }
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth: cannot open store "\S+": /



=== TEST 7: a full store: start answers 503 store_full, reads go on, nothing stored is lost; a bigger map after a reload writes again (T54)
--- http_config eval
my $cfg = $::Provider;
$cfg =~ s/^/    oauth_store     \$TEST_NGINX_OAUTH_DIR\/store.mdb max_size=64k;\n    oauth_key_file  \$TEST_NGINX_OAUTH_DIR\/keys;\n/;
$cfg;
--- config eval: $::Locations
--- init
package main;
my ($r) = connect_flow(code => 'kept-1');
is($r->{status}, 'connected', 'a connection before the store fills');
my $pending = start_flow(owner => 'alice');

my ($full, $n) = (undef, 0);
for my $i (1 .. 3000) {
    my $res = http_get('/connect/demo?return_to=%2F' . ('x' x 200), 'X-Owner' => "filler-$i");
    if ($res->{status} != 302) {
        $full = $res;
        last;
    }
    $n++;
}
ok($n >= 1, "$n flows fitted");
ok($full, 'then the store is full');
is($full->{status}, 503, 'start answers 503');
like($full->{content}, qr/^\{"error":"store_full"/, 'store_full');
ok(!$full->{headers}{'set-cookie'}, 'no cookie for a flow that was not stored');
for my $i (1 .. 5) {
    # a flow as big as the one refused (a smaller one may fit a page's
    # leftover room)
    is(http_get('/connect/demo?return_to=%2F' . ('x' x 200), 'X-Owner' => 'again')->{status},
       503, "still full ($i)");
}

my $list = connections('alice');
is(scalar @$list, 1, 'reads go on: the connection is listed');
is($list->[0]{account}, 'kept-1', 'intact');
is($list->[0]{status}, 'connected', 'and connected');

# a bigger map, then a reload: writes resume, everything is still there
my $conf = server_root() . '/conf/nginx.conf';
my $text = OAuthKit::slurp($conf);
$text =~ s/max_size=64k/max_size=4m/ or die 'no max_size in the config';
open my $fh, '>', $conf or die "$conf: $!";
print $fh $text;
close $fh;
ok(reload(), 'reloaded with max_size=4m');
my $f = start_flow(owner => 'alice');
is($f->{status}, 302, 'start works again');
$r = flow_result(callback($f, code => 'kept-2'));
is($r->{status}, 'connected', 'and a new connection is stored');
$r = flow_result(callback($pending, code => 'pending'));
is($r->{status}, 'connected', 'the flow started before the store filled still completes');
is_deeply([ sort map { $_->{account} } @{ connections('alice') } ], [ 'kept-1', 'kept-2', 'pending' ],
          'all three connections');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"kept-1"
--- error_log
oauth: cannot store flow
--- no_error_log
[alert]
[crit]



=== TEST 8: a store file that is not LMDB: nginx does not start (T59)
--- http_config eval: $::Store
--- config
    location = /t {
        return 204;
    }
--- user_files eval
[[ OAuthKit::oauth_dir() . '/store.mdb' => ('not an lmdb file ' x 1000) ]]
--- must_die
--- error_log eval
qr/\[emerg\] .*oauth: cannot open store "\S+store\.mdb": .*MDB_INVALID/



=== TEST 9: a flow whose provider a reload removed ends cleanly: unknown_provider, in both modes
--- http_config eval: $::Store . $::Provider
--- config eval: $::Locations
--- init
package main;
my $redirect = start_flow(owner => 'alice', uri => '/connect/demo?return_to=%2Fback');
my $popup = start_flow(owner => 'alice', uri => '/connect/demo?mode=popup');
my $conf = server_root() . '/conf/nginx.conf';
my $text = OAuthKit::slurp($conf);
$text =~ s/oauth_provider demo \{/oauth_provider renamed {/ or die 'no provider in the config';
open my $fh, '>', $conf or die "$conf: $!";
print $fh $text;
close $fh;
ok(reload(), 'reloaded without the provider');
my $r = flow_result(callback($redirect));
is($r->{status}, 'error', 'redirect mode: error');
is($r->{error}, 'unknown_provider', 'unknown_provider');
is($r->{location}, '/back?oauth_status=error&oauth_provider=demo&oauth_error=unknown_provider', 'back to return_to');
my $res = callback($popup);
is($res->{status}, 200, 'popup mode: a page');
like($res->{content}, qr/"error":"unknown_provider"/, 'naming the error');
unlike($res->{content}, qr/postMessage/, 'posted nowhere: no origin to post to is known');
like($res->{headers}{'content-security-policy'}, qr/script-src 'nonce-/, 'under the same CSP');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 10: expired flows are purged after a grace of one oauth_state_ttl, with the background refresher off too
--- http_config eval
$::Store . $::Provider . <<'_EOC_';
    oauth_state_ttl           1s;
    oauth_background_refresh  off;
_EOC_
--- config eval: $::Locations
--- init
package main;
my $cli = $ENV{NGX_OAUTH_CLI} || "$FindBin::Bin/../build/ngx-oauth";
die "ngx-oauth not built: $cli (make cli)\n" unless -x $cli;
my @cmd = ($cli, '--store', "$ENV{TEST_NGINX_OAUTH_DIR}/store.mdb",
           '--key-file', "$ENV{TEST_NGINX_OAUTH_DIR}/keys", 'check');
my $flow = start_flow(owner => 'alice');
is($flow->{status}, 302, 'a flow started');
like(scalar `@cmd`, qr/checked 1 PKCE verifiers/, 'the flow is stored');
ok(wait_for(sub { scalar(`@cmd`) !~ /PKCE verifiers/ }, 8),
   'and purged a while after it expired');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 11: a store file deleted while nginx runs is reported, loudly (T58)
--- http_config eval
$::Store . $::Provider . <<'_EOC_';
    oauth_refresh_ahead 4s;
_EOC_
--- config eval: $::Locations
--- init
package main;
my $store = "$ENV{TEST_NGINX_OAUTH_DIR}/store.mdb";
ok(-f $store, 'the store is there');
# the port answers before every worker has opened its store: wait until
# each of them has the file mapped, so that none opens a new one
ok(wait_for(sub {
    my @w = workers_of(master_pid());
    return @w == 4 && !grep { OAuthKit::slurp("/proc/$_/maps") !~ /\Q$store\E/ } @w;
}, 10), 'every worker has the store open');
unlink $store or die "unlink $store: $!";
my $err = server_root() . '/logs/error.log';
ok(wait_for(sub { slurp($err) =~ /store "[^"]+" was deleted or replaced while in use/ }, 8),
   'every worker says so within a few seconds');
--- request
GET /api/connections
--- more_headers
X-Owner: alice
--- response_body
[]
