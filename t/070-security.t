# Attacks and faults of security-tests.md that had no test (T25, T35, T39,
# T43, T47, T53, T56, T57, T60, T62, T64, T66, T67, T68, T69) or only a
# partial one (T02, T06, T07): each block makes the attack or the fault
# happen and checks what got through.  Outbound-call attacks use a
# listener (t/lib/Recorder.pm) that records whether anything arrived.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use OAuthKit;
use Recorder;
use Test::Nginx::Socket 'no_plan';

master_on();
workers(2);
worker_connections(256);
add_block_preprocessor(\&OAuthKit::demo_defaults);

our $Evil = Recorder->start;
$ENV{TEST_NGINX_EVIL_PORT} = $Evil->port;

# tmpfs mounts made by a block (T60), undone at the end
our @Mounts;
END { system('umount', '-l', $_) for @Mounts }

# Shared by the blocks' init code (which runs in another package under the
# real framework, hence the full names).
package T;

use HTTP::Tiny;
use MIME::Base64 qw(decode_base64);
use Time::HiRes qw(sleep time);

sub fake { OAuthKit::fake() }
sub evil { $main::Evil }

sub pause {
    my $until = time + shift;
    sleep 0.02 while time < $until;
}

sub bearer {
    my $body = shift // '';
    return $body =~ /^Authorization: Bearer (\S+)\r$/m ? $1 : '';
}

sub store { "$ENV{TEST_NGINX_OAUTH_DIR}/" . shift }

sub slurp {
    my $f = shift;
    open my $fh, '<', $f or return '';
    local $/;
    return scalar <$fh>;
}

sub cli {
    my ($store, @args) = @_;
    my $cli = $ENV{NGX_OAUTH_CLI} || "$FindBin::Bin/../build/ngx-oauth";
    my $out = `$cli --store $store --key-file $ENV{TEST_NGINX_OAUTH_KEY_FILE} @args 2>&1`;
    return ($? >> 8, $out);
}

# The start of a flow: { state, cookie, challenge } (undef on failure).
sub start {
    my (%o) = @_;
    my $r = OAuthKit::request('GET', $o{path} // '/connect/demo',
                           owner => $o{owner} // 'alice',
                           headers => $o{headers} // {});
    return undef unless $r->{status} == 302;
    my $loc = $r->{headers}{location} // '';
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($state) = $loc =~ /[?&]state=([^&]+)/;
    my ($challenge) = $loc =~ /[?&]code_challenge=([^&]+)/;
    my ($cookie) = $sc =~ /^([^;]+)/;
    return { state => $state, cookie => $cookie, challenge => $challenge };
}

# The callback for a started flow: { status, result, error, location }.
sub callback {
    my ($flow, %o) = @_;
    my $r = OAuthKit::request('GET', ($o{path} // '/callback')
                           . "?code=$o{code}&state=$flow->{state}",
                           owner => $o{owner} // 'alice',
                           headers => { Cookie => $flow->{cookie},
                                        %{ $o{headers} // {} } });
    my $loc = $r->{headers}{location} // '';
    my ($result) = $loc =~ /[?&]oauth_status=([^&]+)/;
    my ($error) = $loc =~ /[?&]oauth_error=([^&]+)/;
    return { status => $r->{status}, result => $result // '',
             error => $error // '', location => $loc };
}

sub connections {
    my $owner = shift;
    my $res = OAuthKit::api('GET', 'connections', owner => $owner);
    my ($status, $data) = ($res->{status}, $res->{json});
    return $status == 200 && ref $data eq 'ARRAY' ? scalar @$data : -1;
}

# file descriptors of a process, and how many of them name a path
sub fds {
    my $pid = shift;
    return map { readlink($_) // '' } glob "/proc/$pid/fd/*";
}

# the worker whose connection to the fake provider is established (the
# one holding the refresh lease while its token call is in flight)
sub token_caller {
    my $port = fake()->port;
    my $out = `ss -tnpH state established dst 127.0.0.1:$port 2>/dev/null`;
    my %w = map { $_ => 1 } OAuthKit::worker_pids();
    for my $pid ($out =~ /pid=(\d+)/g) {
        return $pid if $w{$pid};
    }
    return undef;
}

# child processes of a pid
sub children {
    my $parent = shift;
    my $n = 0;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $line = slurp($stat);
        $n++ if $line =~ /^\d+ \(.*\) \S (\d+) / && $1 == $parent;
    }
    return $n;
}

# An nginx of the block's own, as a daemon (what USR2 needs): the demo
# provider and the base locations plus $locations, on a free port.
sub own_nginx {
    my $locations = shift;
    my $dir = "$ENV{TEST_NGINX_OAUTH_DIR}/own-" . int(rand 1e9);
    mkdir $dir or die "$dir: $!";
    mkdir "$dir/logs";
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 1, ReuseAddr => 1) or die $!;
    my $port = $l->sockport;
    close $l;
    my $mods = join '', map { "load_module $_;\n" }
                        split ' ', $ENV{TEST_NGINX_LOAD_MODULES} // '';
    my $http = $OAuthKit::DemoProvider . "\n    server {\n"
             . "        listen 127.0.0.1:$port;\n"
             . $OAuthKit::DemoLocations . $locations . "    }\n";
    $http =~ s/\$TEST_NGINX_SERVER_PORT/$port/g;
    $http =~ s/\$TEST_NGINX_FAKE_PORT/$ENV{TEST_NGINX_FAKE_PORT}/g;
    my $user = $> == 0 ? 'user root;' : '';
    open my $fh, '>', "$dir/nginx.conf" or die $!;
    print $fh <<"_EOC_";
daemon on;
master_process on;
worker_processes 2;
$user
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
$mods
events { worker_connections 256; }
http {
    access_log off;
    oauth_store $dir/store.mdb;
    oauth_key_file $ENV{TEST_NGINX_OAUTH_KEY_FILE};
    oauth_owner \$http_x_owner;
    oauth_background_refresh off;
$http
}
_EOC_
    close $fh;
    my $bin = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    system("$bin -p $dir/ -c $dir/nginx.conf -e $dir/logs/error.log") == 0
        or die "own nginx: cannot start\n" . slurp("$dir/logs/error.log");
    my $master = OAuthKit::wait_for(sub { my $p = slurp("$dir/nginx.pid"); chomp $p; $p }, 5);
    OAuthKit::wait_for(sub { children($master) >= 2 }, 5);
    return { dir => $dir, port => $port, master => $master,
             pidfile => "$dir/nginx.pid" };
}

sub stop_nginx {
    my $ng = shift;
    for my $f ("$ng->{pidfile}.oldbin", $ng->{pidfile}) {
        my $p = slurp($f);
        chomp $p;
        kill 'QUIT', $p if $p;
    }
    kill 'QUIT', $ng->{master};
    OAuthKit::wait_for(sub { !kill 0, $ng->{master} }, 10);
}

sub key_bytes {
    open my $fh, '<', $ENV{TEST_NGINX_OAUTH_KEY_FILE} or die "key: $!";
    my ($b64) = <$fh> =~ /^[^:]+:(\S+)/;
    close $fh;
    return decode_base64($b64);
}

package main;

run_tests();

__DATA__

=== TEST 1: T02: twenty copies of one callback at once: one code exchange, one connection, the rest refused
--- http_config
    oauth_background_refresh off;
--- config
--- init
my $fake = T::fake();
$fake->reset(code_delay => 0.3);
my $flow = T::start(owner => 'alice');
Test::More::ok($flow && $flow->{state}, 'a flow started');
my @r = OAuthKit::storm(20, "/callback?code=alice-1&state=$flow->{state}",
                         owner => 'alice',
                         headers => { Cookie => $flow->{cookie} });
my $won = grep { $_->{head} =~ /oauth_status=connected/ } @r;
Test::More::is($won, 1, 'exactly one callback connects');
Test::More::is(scalar(grep { $_->{status} == 0 } @r), 0, 'every one answered');
Test::More::is($fake->count('code'), 1, 'the provider saw one code exchange');
Test::More::is(T::connections('alice'), 1, 'one connection');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"alice-1"
--- no_error_log
[alert]



=== TEST 2: T06: a code exchange the provider answers too late is not retried; the user gets an error and the state is spent
--- http_config
    oauth_background_refresh off;
    oauth_http_timeout 1s;
--- config
--- init
my $fake = T::fake();
$fake->reset(code_delay => 3);
my $flow = T::start(owner => 'alice');
my $r = T::callback($flow, code => 'alice-1');
Test::More::is($r->{result}, 'error', 'the flow ends in an error');
Test::More::is($r->{error}, 'token_request_failed', 'token_request_failed');
T::pause(2.5);
Test::More::is($fake->count('code'), 1, 'one exchange, never re-sent');
$r = T::callback($flow, code => 'alice-1');
Test::More::is($r->{error}, 'invalid_state', 'the replayed callback is refused: the state is spent');
Test::More::is($fake->count('code'), 1, 'and makes no exchange');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 3: T07: code injection: a victim's code delivered to the attacker's flow fails PKCE at the provider, nothing is linked
--- http_config
    oauth_background_refresh off;
--- config
--- init
my $fake = T::fake();
$fake->reset;
# the victim's flow: the provider binds the code to its challenge
my $victim = T::start(owner => 'victim');
Test::More::ok($victim && $victim->{challenge}, 'victim flow with a challenge');
$fake->set(pkce_codes => { 'victim-1' => $victim->{challenge} });
# the attacker starts a flow of their own and feeds it the victim's code
my $attacker = T::start(owner => 'mallory');
my $r = T::callback($attacker, code => 'victim-1', owner => 'mallory');
Test::More::is($r->{result}, 'error', 'the injected code does not connect');
Test::More::is($fake->count('pkce_mismatch'), 1,
               'the provider refused the attacker flow\'s verifier');
Test::More::is(T::connections('mallory'), 0, 'nothing linked to the attacker');
$r = T::callback($attacker, code => 'victim-1', owner => 'mallory');
Test::More::is($r->{error}, 'invalid_state', 'the attacker\'s state is spent');
# the victim's own flow still works with its own verifier
$r = T::callback($victim, code => 'victim-1', owner => 'victim');
Test::More::is($r->{result}, 'connected', 'the victim connects with the code');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: victim
--- response_body_like: "account":"victim-1"



=== TEST 4: T35: the upstream of oauth_token is the configured one whatever the path, the absolute-form request line or the Host say
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
my $fake = T::fake();
$fake->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my $evil = T::evil();
$evil->reset;
my $ep = $evil->port;
for my $path ("/api/\@127.0.0.1:$ep/x", "/api/%40127.0.0.1:$ep", "/api//127.0.0.1:$ep/",
              "/api/..%2f..%2fadmin", "/api/%5c127.0.0.1:$ep", "/api/:$ep\@127.0.0.1/x",
              "/api/x%23\@127.0.0.1:$ep", "/api/x?u=http://127.0.0.1:$ep/") {
    OAuthKit::request('GET', $path, owner => 'alice');
}
OAuthKit::request('GET', '/api/host', owner => 'alice',
               headers => { Host => "127.0.0.1:$ep" });
# absolute-form: the request line names the evil host
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $ENV{TEST_NGINX_SERVER_PORT}) or die $!;
print $s "GET http://127.0.0.1:$ep/api/abs HTTP/1.0\r\nX-Owner: alice\r\n\r\n";
my $ans = join '', <$s>;
close $s;
Test::More::like($ans, qr/^HTTP\/1\.[01] 200/, 'absolute-form: answered');
T::pause(0.5);
Test::More::is($evil->connections, 0, 'nothing reached the other host');
my @api = $fake->requests(path => qr{^/api});
Test::More::cmp_ok(scalar @api, '>=', 6, 'the requests went to the provider');
Test::More::is(scalar(grep { ($_->{head} // '') !~ /^Host: 127\.0\.0\.1:$ENV{TEST_NGINX_FAKE_PORT}\r$/mi } @api),
               0, 'with the configured Host');
--- request
GET /api/last
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-1-alice-1\r$/m



=== TEST 5: T39: with proxy_ssl_verify on, an API host with an untrusted certificate gets no request and no token
--- http_config eval
my $d = $ENV{TEST_NGINX_OAUTH_DIR};
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
       . "-addext subjectAltName=IP:127.0.0.1 -keyout $d/api.key "
       . "-out $d/api.pem >/dev/null 2>&1") == 0 or die "openssl failed";
<<'_EOC_';
    oauth_background_refresh off;
    log_format rawreq '$request $http_authorization';

    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_3 ssl;
        ssl_certificate     $TEST_NGINX_OAUTH_DIR/api.pem;
        ssl_certificate_key $TEST_NGINX_OAUTH_DIR/api.key;
        access_log $TEST_NGINX_OAUTH_DIR/api-tls.log rawreq;
        location / { return 200 "reached\n"; }
    }
_EOC_
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass https://127.0.0.1:$TEST_NGINX_RAND_PORT_3;
        proxy_ssl_verify on;
        proxy_ssl_server_name on;
        proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
    }
--- init
T::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my $r = OAuthKit::request('GET', '/api/first', owner => 'alice');
Test::More::is($r->{status}, 502, 'the untrusted API host: 502');
my $log = "$ENV{TEST_NGINX_OAUTH_DIR}/api-tls.log";
Test::More::ok(!-s $log, 'the API host received no request');
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- error_code: 502
--- response_body_unlike: at-1-alice-1
--- error_log
upstream SSL certificate verify error



=== TEST 6: T43: the owner comes from the authentication subrequest only: X-Owner, X_Owner and duplicates from the client change nothing
--- http_config
    oauth_background_refresh off;
    oauth_owner $auth_owner;
    underscores_in_headers on;
    map $http_x_session $session_owner {
        s-alice   alice;
        s-mallory mallory;
        default   "";
    }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_4;
        location / {
            if ($session_owner = "") { return 401; }
            add_header X-Owner $session_owner;
            return 204;
        }
    }
--- config
    auth_request /_auth;
    auth_request_set $auth_owner $upstream_http_x_owner;
    location = /_auth {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_4;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }
--- init
T::fake()->reset;
my $flow = T::start(owner => 'ignored', headers => { 'X-Session' => 's-alice' });
my $r = T::callback($flow, code => 'alice-1', owner => 'ignored',
                    headers => { 'X-Session' => 's-alice' });
Test::More::is($r->{result}, 'connected', 'alice connected through her session');
for my $h ({ 'X-Owner' => 'alice' }, { 'X_Owner' => 'alice' },
           { 'X-Auth-Owner' => 'alice', 'X-Owner' => 'alice' }) {
    my $res = OAuthKit::request('GET', '/oauth/api/connections',
                                 headers => { 'X-Session' => 's-mallory', %$h });
    Test::More::like($res->{content}, qr/^\[\]\s*$/,
                   'mallory sees no connection with ' . join(',', keys %$h));
    $res = OAuthKit::request('GET', '/oauth/api/connections', headers => $h);
    Test::More::is($res->{status}, 401, 'no session: 401 with ' . join(',', keys %$h));
}
--- request
GET /oauth/api/connections
--- more_headers
X-Session: s-alice
X-Owner: mallory
--- response_body_like: "account":"alice-1"



=== TEST 7: T47: a core dump of a worker does not hold the key
--- http_config
    oauth_background_refresh off;
--- config
--- init
T::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my ($w) = OAuthKit::worker_pids();
my $core = "$ENV{TEST_NGINX_OAUTH_DIR}/core-t47";
system("gcore -o $core $w >/dev/null 2>&1");
my ($file) = glob "$core*";
SKIP: {
    Test::More::skip('gcore cannot attach here', 2) unless $file && -s $file;
    open my $fh, '<:raw', $file or die "$file: $!";
    local $/;
    my $img = <$fh>;
    close $fh;
    unlink $file;
    Test::More::cmp_ok(length $img, '>', 100_000, 'a real core');
    Test::More::is(index($img, T::key_bytes()), -1, 'the key is not in it');
}
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"alice-1"



=== TEST 8: T53: after a store rollback the refresh token is one the provider rotated away: reauthorization_required, no crash, no retry storm
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
# what a restored backup looks like to the provider: the refresh token the
# store holds was spent after the backup was taken
my $http = HTTP::Tiny->new;
my $res = $http->post_form($fake->url('/token'),
                           { grant_type => 'refresh_token',
                             refresh_token => 'rt-1-alice-1' });
Test::More::is($res->{status}, 200, 'the token rotated behind the store\'s back');
T::pause(1.2);
my @r = map { OAuthKit::request('GET', '/api/x', owner => 'alice') } 1 .. 5;
Test::More::is(join(',', map { $_->{status} } @r), '401,401,401,401,401',
               'every request: 401');
Test::More::like($r[0]{content}, qr/reauthorization_required/, 'reauthorization_required');
Test::More::is($fake->count('refresh'), 2, 'one refresh attempt by the module, no storm');
my $c = OAuthKit::connection('alice', 'demo', 'alice-1');
Test::More::is($c->{status}, 'error', 'the connection is in error');
Test::More::is($c->{last_error}, 'invalid_grant', 'with invalid_grant');
--- request
GET /api/y
--- more_headers
X-Owner: alice
--- error_code: 401
--- no_error_log
[alert]
[crit]



=== TEST 9: T56: workers killed with -9 while they write: what was committed stays, the store checks clean, writes go on
--- http_config
    oauth_background_refresh off;
    oauth_store $TEST_NGINX_OAUTH_DIR/t56.mdb;
--- config
--- init
my $fake = T::fake();
$fake->reset;
my $killer = fork;
if (!$killer) {
    for (1 .. 12) {
        T::pause(0.15);
        my @w = OAuthKit::worker_pids();
        kill 'KILL', $w[ $_ % @w ] if @w;
    }
    POSIX::_exit(0);
}
my @ok;
my $end = time + 2.5;
my $i = 0;
while (time < $end) {
    $i++;
    my $r = OAuthKit::connect_flow(owner => "u$i", code => "u$i-1");
    push @ok, $i if $r->{ok};
}
waitpid $killer, 0;
Test::More::cmp_ok(scalar @ok, '>', 0, scalar(@ok) . " of $i connects committed");
OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 5);
my @missing = grep { T::connections("u$_") != 1 } @ok;
Test::More::is("@missing", '', 'every committed connection is there');
my ($rc, $out) = T::cli(T::store('t56.mdb'), 'check');
Test::More::is($rc, 0, 'ngx-oauth check: clean') or Test::More::diag($out);
my $t = time;
OAuthKit::connect_ok(owner => 'after', code => 'after-1');
Test::More::cmp_ok(time - $t, '<', 3, 'a new write commits at once');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: after
--- response_body_like: "account":"after-1"



=== TEST 10: T57: a commit that stores tokens is synced to disk
--- http_config
    oauth_background_refresh off;
--- config
--- init
T::fake()->reset;
OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 5);
my @w = OAuthKit::worker_pids();
my $log = "$ENV{TEST_NGINX_OAUTH_DIR}/strace-t57";
my @pids;
for my $w (@w) {
    my $pid = fork;
    if (!$pid) {
        exec 'strace', '-q', '-o', "$log.$w", '-e', 'trace=fsync,fdatasync,msync',
             '-p', $w;
    }
    push @pids, $pid;
}
T::pause(1);
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
T::pause(0.5);
kill 'INT', @pids;
waitpid $_, 0 for @pids;
my $calls = join '', map { T::slurp($_) } glob "$log.*";
SKIP: {
    Test::More::skip('strace cannot attach here', 1) if $calls =~ /Operation not permitted/;
    Test::More::like($calls, qr/\b(?:fdatasync|fsync|msync)\(/, 'the commit was synced');
}
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"alice-1"



=== TEST 11: T60: a store on a full file system: writes fail with 503, reads and injection go on, nothing crashes
--- http_config eval
my $d = "$ENV{TEST_NGINX_OAUTH_DIR}/t60";
mkdir $d;
if ($> == 0 && system("mount -t tmpfs -o size=256k tmpfs $d 2>/dev/null") == 0) {
    push @main::Mounts, $d;
}
<<'_EOC_';
    oauth_background_refresh off;
    oauth_store $TEST_NGINX_OAUTH_DIR/t60/store.mdb max_size=8m;
_EOC_
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
SKIP: {
    Test::More::skip('needs root to mount a small file system', 4) unless @main::Mounts;
    T::fake()->reset;
    OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
    # fill the file system around the store
    system("dd if=/dev/zero of=$ENV{TEST_NGINX_OAUTH_DIR}/t60/fill bs=4k count=1000 2>/dev/null");
    my ($failed, $n) = (0, 0);
    for my $i (1 .. 40) {
        $n++;
        my $r = OAuthKit::request('GET', '/connect/demo?return_to=/' . ('x' x 1500), owner => "f$i");
        if ($r->{status} == 503) { $failed = 1; last }
    }
    Test::More::ok($failed, "a flow start got 503 after $n tries");
    my $r = OAuthKit::request('GET', '/api/x', owner => 'alice');
    Test::More::is(T::bearer($r->{content}), 'at-1-alice-1', 'injection goes on');
    Test::More::is(T::connections('alice'), 1, 'reads go on');
    unlink "$ENV{TEST_NGINX_OAUTH_DIR}/t60/fill";
    Test::More::is(OAuthKit::request('GET', '/connect/demo', owner => 'bob')->{status}, 302,
                   'with space again, writes work');
}
--- request
GET /api/y
--- more_headers
X-Owner: alice
--- error_code: 200
--- no_error_log
[emerg]
[alert]



=== TEST 12: T62, T66: twenty reloads under load: no failed request, no file descriptor or store handle piles up in the master
--- http_config
    oauth_background_refresh off;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my $master = OAuthKit::master_pid();
OAuthKit::reload(workers => 2);
# old workers hold a channel each until they exit: count without them
OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 10);
my $before = () = T::fds($master);
my @bad;
for my $i (1 .. 20) {
    my $storm = OAuthKit::storm_start(10, '/api/x');
    Test::More::ok(OAuthKit::reload(workers => 2), "reload $i") or last;
    push @bad, grep { $_->{status} != 200 } OAuthKit::storm_wait($storm);
}
Test::More::is(scalar @bad, 0, 'every request during the reloads: 200')
    or Test::More::diag(join ',', map { $_->{status} } @bad);
OAuthKit::wait_for(sub { OAuthKit::worker_pids() == 2 }, 15);
my @fds = T::fds($master);
Test::More::cmp_ok(scalar @fds, '<=', $before, 'the master has no more descriptors than before');
Test::More::is(scalar(grep { /\.mdb/ } @fds), 0, 'and none of the store');
--- request
GET /api/z
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-1-alice-1\r$/m
--- no_error_log
[alert]
[crit]



=== TEST 13: T64: workers through eight reloads under load never run out of LMDB reader slots, and dead ones are cleared
--- http_config
    oauth_background_refresh off;
    oauth_store $TEST_NGINX_OAUTH_DIR/t64.mdb;
--- config
--- init
T::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
for (1 .. 8) {
    my $storm = OAuthKit::storm_start(16, '/oauth/api/connections');
    OAuthKit::reload(workers => 2);
    OAuthKit::storm_wait($storm);
}
my @r = OAuthKit::storm(32, '/oauth/api/connections');
Test::More::is(scalar(grep { $_->{status} != 200 } @r), 0, 'all answered 200');
my $readers = `mdb_stat -n -r $ENV{TEST_NGINX_OAUTH_DIR}/t64.mdb 2>&1`;
my $n = () = $readers =~ /^\s*\d+\s+[0-9a-f]+\s+\S+/mg;
Test::More::cmp_ok($n, '<=', 4, "reader slots in use: $n");
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body_like: "account":"alice-1"
--- no_error_log
MDB_READERS_FULL



=== TEST 14: T67: binary upgrade: while two generations serve, a due token is refreshed once; the old generation takes over again
--- http_config
    oauth_background_refresh off;
--- config
--- init
# nginx honours USR2 only when it runs as a daemon, which the runner's
# nginx does not: this block runs an nginx of its own
my $fake = T::fake();
$fake->reset(expires_in => 2);
my $ng = T::own_nginx(<<'_EOC_');
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
_EOC_
{
    local $ENV{TEST_NGINX_SERVER_PORT} = $ng->{port};
    OAuthKit::connect_ok(owner => 'alice', code => 'alice-1')->{ok}
        or Test::More::diag(T::slurp("$ng->{dir}/logs/error.log"));
    my $old = $ng->{master};
    kill 'USR2', $old;
    my $new = OAuthKit::wait_for(sub {
        return undef unless -f "$ng->{pidfile}.oldbin";
        my $p = T::slurp($ng->{pidfile});
        chomp $p;
        return $p && $p != $old ? $p : undef;
    }, 10);
    Test::More::ok($new, 'a new master runs');
    Test::More::ok(OAuthKit::wait_for(sub { T::children($new) >= 2 }, 10),
                   'with its workers');
    T::pause(2.2);
    $fake->set(expires_in => 3600, delay => 0.5);
    my @r = OAuthKit::storm(30, '/api/x');
    Test::More::is(scalar(grep { T::bearer($_->{body}) ne 'at-2-alice-1' } @r), 0,
                   'both generations inject the refreshed token');
    Test::More::is($fake->count('refresh'), 1, 'one refresh across the generations');
    Test::More::is($fake->count('reuse'), 0, 'no refresh token used twice');
    # back out of the upgrade: the new master goes, the old one stays
    kill 'QUIT', $new if $new;
    Test::More::ok(OAuthKit::wait_for(sub { !kill 0, $new }, 10), 'the new master left');
    Test::More::ok(OAuthKit::wait_for(sub { T::children($old) >= 2 }, 10),
                   'the old generation serves');
    my $r = OAuthKit::request('GET', '/api/y', owner => 'alice');
    Test::More::is(T::bearer($r->{content}), 'at-2-alice-1', 'with the refreshed token');
}
T::stop_nginx($ng);
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 15: T68: a reload with a short worker_shutdown_timeout during a slow code exchange: the flow is spent, nothing half-written
--- main_config
    worker_shutdown_timeout 1s;
--- http_config
    oauth_background_refresh off;
--- config
--- init
my $fake = T::fake();
$fake->reset(code_delay => 4);
my $flow = T::start(owner => 'alice');
my $s = OAuthKit::storm_start(1, "/callback?code=alice-1&state=$flow->{state}",
                               owner => 'alice', headers => { Cookie => $flow->{cookie} });
OAuthKit::wait_for(sub { $fake->count('code') >= 1 }, 5);
Test::More::ok(OAuthKit::reload(workers => 2), 'reloaded');
my ($r) = OAuthKit::storm_wait($s, 10);
Test::More::unlike($r->{head}, qr/oauth_status=connected/, 'the cut flow did not connect');
T::pause(4);
Test::More::is(T::connections('alice'), 0, 'no connection stored, even after the provider answered');
my $again = T::callback($flow, code => 'alice-1');
Test::More::is($again->{error}, 'invalid_state', 'the state stays spent');
Test::More::is($fake->count('code'), 1, 'one exchange only');
--- request
GET /oauth/api/connections
--- more_headers
X-Owner: alice
--- response_body
[]



=== TEST 16: T69: a worker that dies abruptly is replaced; committed connections stay and inject
--- http_config
    oauth_background_refresh off;
    oauth_store $TEST_NGINX_OAUTH_DIR/t69.mdb;
--- config
    location /api/ {
        oauth_token demo;
        proxy_pass http://127.0.0.1:$TEST_NGINX_FAKE_PORT;
    }
--- init
T::fake()->reset;
OAuthKit::connect_ok(owner => 'alice', code => 'alice-1');
my @before = OAuthKit::worker_pids();
# SIGKILL: the runner counts a SIGSEGV as a module crash; the containment
# that matters (respawn, store intact) is the same
kill 'KILL', @before;
Test::More::ok(OAuthKit::wait_for(sub {
    my @w = OAuthKit::worker_pids();
    return @w == 2 && !grep { my $p = $_; grep { $_ == $p } @before } @w;
}, 10), 'two new workers');
my ($rc, $out) = T::cli(T::store('t69.mdb'), 'check');
Test::More::is($rc, 0, 'the store checks clean') or Test::More::diag($out);
--- request
GET /api/x
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-1-alice-1\r$/m



=== TEST 17: T25: the lease holder is killed mid-refresh: another worker completes the refresh, the requests are answered
--- http_config
    oauth_background_refresh off;
    oauth_http_timeout 4s;
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
# the answer is held long enough that the kill surely lands mid-call,
# even on a loaded machine
$fake->set(expires_in => 3600, delay => 3);
my $storm = OAuthKit::storm_start(10, '/api/x');
my $holder = OAuthKit::wait_for(sub { T::token_caller() }, 5);
Test::More::ok($holder, 'the lease holder is calling the provider');
kill 'KILL', $holder if $holder;
# requests sent after the kill reach a live worker whichever worker the
# kernel handed the first storm to
my $after = OAuthKit::storm_start(5, '/api/x');
my @r = (OAuthKit::storm_wait($storm, 30), OAuthKit::storm_wait($after, 30));
my @ok = grep { $_->{status} == 200 } @r;
Test::More::cmp_ok(scalar @ok, '>=', 1, 'the requests on the survivor are answered');
Test::More::is(scalar(grep { T::bearer($_->{body}) ne 'at-3-alice-1' } @ok), 0,
               'with the token of the takeover refresh');
Test::More::is($fake->count('refresh'), 2, 'two refresh calls: the dead one and the takeover');
--- request
GET /api/after
--- more_headers
X-Owner: alice
--- response_body_like eval
qr/^Authorization: Bearer at-3-alice-1\r$/m
