# Several nginx nodes sharing one PostgreSQL (oauth_shared_store): a
# throw-away cluster in a temp dir and two nginx instances (two prefixes,
# two ports, two workers each) are started here, beside the fake provider
# (t/lib/FleetKit.pm).  Missing PostgreSQL binaries fail the test.
#
# Plain Test::More (it starts its own servers), so it runs the same under
# either Test::Nginx on the include path.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use HTTP::Tiny;
use Time::HiRes qw(sleep time);
use POSIX ();

use FleetKit;

fleet_init();

# node B logs in as a role of its own: the test can shut it out alone
psql('CREATE ROLE nodeb LOGIN SUPERUSER');
%DbUser = (A => 'oauth', B => 'nodeb');

my $fake = $Fake;

node_start('A');
node_start('B');

ok(wait_for(sub { psql('SELECT version FROM oauth_schema') eq '2' }),
   'schema created by the nodes');

# every worker is ready (connected, listening, its cache checked): under
# load a worker may still be connecting when the first callback comes
ok(wait_for(sub { ready_workers('A') >= 2 && ready_workers('B') >= 2 }, 20),
   'every worker of both nodes is connected');

# 1. start on A, callback on B
my $c = connect_via('A', 'B', 'alice', 'alice-1');
is($c->{result}, 'connected', 'start on A, callback on B: connected')
    or diag explain $c;

is(psql("SELECT count(*) FROM oauth_connections WHERE owner = 'alice'"),
   '1', 'the connection is in PostgreSQL');
unlike(psql("SELECT encode(record, 'escape') FROM oauth_connections"),
       qr/at-\d|rt-\d|access_token/, 'sealed: no token in the clear');
is(psql('SELECT count(*) FROM oauth_flows'), '0', 'the flow was spent');

for my $n (qw(A B)) {
    my $r = req($n, 'GET', '/api/x', owner => 'alice');
    is($r->{status}, 200, "injects on $n");
    like($r->{content}, qr/Authorization: Bearer /, "bearer on $n");
}

# a state replayed on the other node is refused
{
    my $r = req('A', 'GET', '/connect/demo', owner => 'bob');
    my ($state) = $r->{headers}{location} =~ /[?&]state=([^&]+)/;
    my ($cookie) = ($r->{headers}{'set-cookie'} // '') =~ /^([^;]+)/;
    my $r1 = req('B', 'GET', "/oauth/callback?code=bob-1&state=$state",
                 owner => 'bob', headers => { Cookie => $cookie });
    my $r2 = req('A', 'GET', "/oauth/callback?code=bob-1&state=$state",
                 owner => 'bob', headers => { Cookie => $cookie });
    like($r1->{headers}{location} // '', qr/oauth_status=connected/,
         'first callback connects');
    is($r2->{status}, 400, 'the same state on the other node: 400');
}

# 2. a rotating refresh at expiry, 200 requests across both nodes
{
    $fake->set(expires_in => 2, rotate => 1);
    my $c2 = connect_via('B', 'A', 'carol', 'carol-1');
    is($c2->{result}, 'connected', 'carol connected');
    # both nodes cache it
    is(req($_, 'GET', '/api/x', owner => 'carol')->{status}, 200,
       "carol injects on $_") for qw(A B);
    # the refreshed token lives long: one expiry in this block
    $fake->set(expires_in => 3600);
    my $before = $fake->count('refresh');
    sleep 2.2;
    my @pids;
    my $out = "$Dir/storm";
    for my $i (1 .. 20) {
        my $pid = fork;
        if (!$pid) {
            my $h = HTTP::Tiny->new(timeout => 20);
            my @st;
            for my $j (1 .. 10) {
                my $n = ($i + $j) % 2 ? 'A' : 'B';
                my $r = $h->get("http://127.0.0.1:$Node{$n}{port}/api/x",
                                { headers => { 'X-User' => 'carol' } });
                push @st, $r->{status};
            }
            open my $fh, '>', "$out.$i"; print $fh "@st\n"; close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid $_, 0 for @pids;
    my %st;
    for my $i (1 .. 20) {
        open my $fh, '<', "$out.$i" or next;
        $st{$_}++ for split ' ', <$fh>;
    }
    is_deeply(\%st, { 200 => 200 }, '200 requests at expiry: all 200')
        or diag explain \%st;
    is($fake->count('refresh') - $before, 1,
       'exactly one refresh call across the fleet');
    is($fake->count('reuse'), 0, 'no refresh token spent twice');
}

# 3. disconnect on A: B stops within a second
{
    my $revokes = $fake->count('revoke');
    my $r = req('A', 'DELETE', '/oauth/api/connections/demo/alice-1',
                owner => 'alice');
    is($r->{status}, 200, 'disconnect on A');
    my $t0 = time;
    my $st = wait_for(sub {
        req('B', 'GET', '/api/x', owner => 'alice')->{status} == 401
    }, 1);
    ok($st, 'B answers 401 within 1 s') or diag time - $t0;
    sleep 0.5;
    my @hints = sort map { $_->{form}{token_type_hint} // '' }
                $fake->requests(path => '/revoke');
    is($fake->count('revoke') - $revokes, 2,
       'revoked once (its refresh and access tokens), by A alone')
        or diag "@hints";
}

# 4. a query stalled 3 s does not delay unrelated requests
{
    # bob's record in both caches first: a miss would wait its turn
    req($_, 'GET', '/api/x', owner => 'bob') for qw(A B A B);
    my $pid = fork;
    if (!$pid) {
        open STDOUT, '>', '/dev/null';
        exec("$PGBIN/psql", '-X', '-q', '-h', '127.0.0.1', '-p', $PGPORT,
             '-U', 'oauth', '-d', 'fleet', '-c',
             'BEGIN; LOCK TABLE oauth_flows IN ACCESS EXCLUSIVE MODE; '
             . 'SELECT pg_sleep(3); COMMIT;');
    }
    sleep 0.5;
    my @starts;
    for my $i (1 .. 4) {
        my $p = fork;
        if (!$p) {
            req('A', 'GET', '/connect/demo', owner => "stall$i");
            POSIX::_exit(0);
        }
        push @starts, $p;
    }
    sleep 0.3;
    my $slow = 0;
    for my $i (1 .. 20) {
        my $t = time;
        my $r = req('A', 'GET', '/api/x', owner => 'bob');
        my $s = req('A', 'GET', '/static');
        if (time - $t > 0.5 || $r->{status} != 200 || $s->{status} != 200) {
            $slow++;
            diag sprintf "%.2fs %s %s", time - $t, $r->{status},
                         $s->{status};
        }
    }
    is($slow, 0, 'cached injections and other requests go on during a '
                 . 'stalled query');
    waitpid $_, 0 for @starts, $pid;
}

# 3b. the management API on a node that never saw the owner's connections
# sees what PostgreSQL has: list, change, delete all
{
    for my $code (qw(frank-1 frank-2)) {
        my $cf = connect_via('A', 'A', 'frank', $code);
        is($cf->{result}, 'connected', "$code connected on A");
    }
    is(req('A', 'GET', '/api/x', owner => 'frank')->{status}, 409,
       'A has both (account_required)');
    my $revokes = $fake->count('revoke');

    my $r = req('B', 'GET', '/oauth/api/connections', owner => 'frank');
    is($r->{status}, 200, 'list on B');
    my @acc = sort $r->{content} =~ /"account":"([^"]+)"/g;
    is("@acc", 'frank-1 frank-2', 'B lists both, never used there');

    is(req('B', 'GET', '/oauth/api/connections/demo/frank-2',
           owner => 'frank')->{status}, 200, 'one of them read on B');
    # (no userinfo_url here: .../test reads the connection as GET does)
    my $x = req('B', 'POST', '/oauth/api/connections/demo/frank-2/refresh',
                owner => 'frank', json => '{}');
    is($x->{status}, 200, 'POST .../refresh on B') or diag $x->{content};
    is(req('B', 'PATCH', '/oauth/api/connections/demo/frank-1',
           owner => 'frank', json => '{"label":"from-b"}')->{status}, 200,
       'PATCH on B');
    like(psql("SELECT encode(record, 'escape') FROM oauth_connections "
              . "WHERE owner = 'frank' AND account = 'frank-1'"),
         qr/from-b/, 'the label is in PostgreSQL');
    ok(wait_for(sub {
        req('A', 'GET', '/oauth/api/connections/demo/frank-1',
            owner => 'frank')->{content} =~ /"label":"from-b"/ }, 2),
       'the label is seen on A');

    $r = req('B', 'DELETE', '/oauth/api/connections', owner => 'frank');
    is($r->{status}, 200, 'DELETE connections on B') or diag $r->{content};
    is(psql("SELECT count(*) FROM oauth_connections WHERE owner = 'frank'"),
       '0', 'PostgreSQL has none of them');
    my $t0 = time;
    ok(wait_for(sub {
        req('A', 'GET', '/api/x', owner => 'frank')->{status} == 401
    }, 1), 'A answers 401 within 1 s') or diag time - $t0;
    is(req('A', 'GET', '/oauth/api/connections', owner => 'frank')->{content}
       =~ /"account":"/ ? 'some' : 'none', 'none', 'A lists none');
    sleep 0.5;
    my @tokens = map { $_->{form}{token} // '' }
                 $fake->requests(path => '/revoke');
    my %seen;
    $seen{$_}++ for @tokens[-4 .. -1];
    is($fake->count('revoke') - $revokes, 4,
       'each revoked once (refresh and access tokens of both)');
    is(scalar(grep { $_ == 1 } values %seen), 4, 'no token revoked twice');
}

# 4b. a node that missed notifications checks its cache by versions when
# it is back, and a write it made on an older version loses
{
    my $ce = connect_via('A', 'A', 'erin', 'erin-1');
    is($ce->{result}, 'connected', 'erin connected');
    is(req('B', 'GET', '/api/x', owner => $_)->{status}, 200,
       "B caches $_") for qw(bob carol erin);

    my $label = sub {
        my ($node, $owner) = @_;
        my $r = req($node, 'GET', '/oauth/api/connections', owner => $owner);
        return 'none' unless $r->{status} == 200;
        return 'gone' unless $r->{content} =~ /"account":"/;
        my ($l) = $r->{content} =~ /"label":(null|"[^"]*")/;
        return $l // '?';
    };

    # B is shut out: its connections end, it cannot log in again
    psql('ALTER ROLE nodeb NOLOGIN');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
         . "WHERE usename = 'nodeb'");
    ok(wait_for(sub {
        psql("SELECT count(*) FROM pg_stat_activity "
             . "WHERE usename = 'nodeb'") eq '0' }), 'B is cut off');
    sleep 0.3;

    is(req('A', 'PATCH', '/oauth/api/connections/demo/bob-1',
           owner => 'bob', json => '{"label":"moved"}')->{status}, 200,
       'label changed on A');
    is(req('A', 'DELETE', '/oauth/api/connections/demo/erin-1',
           owner => 'erin')->{status}, 200, 'erin disconnected on A');
    like(psql("SELECT encode(record, 'escape') FROM oauth_connections "
              . "WHERE owner = 'bob'"), qr/moved/, 'the change is stored');

    # B missed both; it writes bob on its old version meanwhile
    is($label->('B', 'bob'), 'null', 'B still has the old bob');
    is($label->('B', 'erin'), 'null', 'B still has erin');
    is(req('B', 'PATCH', '/oauth/api/connections/demo/bob-1',
           owner => 'bob', json => '{"label":"stale"}')->{status}, 200,
       'a label written on B while cut off (kept to write later)');

    psql('ALTER ROLE nodeb LOGIN');
    my $seen = wait_for(sub {
        $label->('B', 'bob') eq '"moved"' && $label->('B', 'erin') eq 'gone'
    }, 15);
    ok($seen, 'B back: sees the change and the disconnect it missed')
        or diag 'bob: ' . $label->('B', 'bob')
              . ' erin: ' . $label->('B', 'erin');
    is($label->('B', 'carol'), 'null',
       'unchanged entries stay in B\'s cache (not dropped)');
    is(req('B', 'GET', '/api/x', owner => 'erin')->{status}, 401,
       'erin no longer injects on B');
    like(psql("SELECT encode(record, 'escape') FROM oauth_connections "
              . "WHERE owner = 'bob'"), qr/moved/,
         'the write made on an older version did not overwrite the newer');
    is($label->('A', 'bob'), '"moved"', 'A keeps the newer label');
    my $log = do { local (@ARGV, $/) = "$Node{B}{prefix}/logs/error.log";
                   <> };
    like($log, qr/cache checked, \d+ of \d+ entries changed/,
         'B checked its cache by versions');
    like($log, qr/superseded by a newer one/,
         'B\'s old write was refused');
}

# 5. PostgreSQL down: cached injections go on, connects answer 503
{
    ok(pg_stop(), 'PostgreSQL killed');
    sleep 0.5;
    my %st;
    for my $i (1 .. 10) {
        $st{ req($i % 2 ? 'A' : 'B', 'GET', '/api/x',
                 owner => 'bob')->{status} }++;
    }
    is_deeply(\%st, { 200 => 10 }, 'cached injections: 200')
        or diag explain \%st;
    my $r = req('A', 'GET', '/connect/demo', owner => 'dave');
    is($r->{status}, 503, 'connect while down: 503');
    like($r->{content} // '', qr/shared_store_unavailable/, 'clear error');
    $r = req('B', 'DELETE', '/oauth/api/connections', owner => 'bob');
    is($r->{status}, 503, 'DELETE connections while down: 503');
    like($r->{content} // '', qr/shared_store_unavailable/,
         'it would miss what only PostgreSQL has');

    ok(pg_start(), 'PostgreSQL back');
    my $ok = wait_for(sub {
        my $c = connect_via('A', 'B', 'dave', 'dave-1');
        ($c->{result} // '') eq 'connected';
    }, 15);
    ok($ok, 'connects work again without a reload');
    is(req('B', 'GET', '/api/x', owner => 'dave')->{status}, 200,
       'the new connection injects on the other node');
    is(psql("SELECT count(*) FROM oauth_connections"), '3',
       'no record lost (bob, carol, dave)');
    my $chk = cli('--shared', shared_url(), '--key-file', $KeyFile,
                  'check');
    is($chk->[0], 0, 'ngx-oauth --shared check: exit 0') or diag $chk->[1];
    like($chk->[1], qr/in 3 connections: (\d+) ok, 0 failed/,
         'ngx-oauth --shared check: every record there and open');
}

done_testing();
