# Several nginx nodes, continued (t/lib/FleetKit.pm starts PostgreSQL and
# two nodes): the circuit breaker is the fleet's, an owner with no
# connection costs PostgreSQL one query per TTL, and the management API's
# fill drops what PostgreSQL no longer has.
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

my $fake = $Fake;

# node B logs in as a role of its own: the test can shut it out alone
psql('CREATE ROLE nodeb LOGIN SUPERUSER');
%DbUser = (A => 'oauth', B => 'nodeb');

for my $n (qw(A B)) {
    $Node{$n}{http} = "    oauth_background_refresh off;\n"
                    . "    oauth_circuit_breaker failures=2 reset=2s;\n";
    node_start($n);
}

ok(wait_for(sub { ready_workers('A') >= 2 && ready_workers('B') >= 2 }, 20),
   'every worker of both nodes is connected');

sub circuit {
    my $node = shift;
    my $r = req($node, 'GET', '/oauth/api/providers', owner => 'alice');
    my ($c) = ($r->{content} // '') =~ /"circuit":"([a-z_]+)"/;
    return $c // 'none';
}

# 1. the circuit breaker across the fleet
{
    $fake->set(expires_in => 1);
    my @users = qw(alice bob carol dave erin);
    for my $o (@users) {
        my $c = connect_via('A', 'A', $o, "$o-1");
        is($c->{result}, 'connected', "$o connected");
    }
    # both nodes cache them
    for my $o (@users) {
        req($_, 'GET', '/api/x', owner => $o) for qw(A B);
    }
    sleep 1.2;
    is(circuit($_), 'closed', "closed at first on $_") for qw(A B);

    $fake->set(expires_in => 3600, refresh_mode => 'error');
    my $before = $fake->count('refresh');
    for my $o (qw(alice bob)) {
        is(req('A', 'GET', '/api/x', owner => $o)->{status}, 503,
           "$o on A: 503 while the provider fails");
    }
    is($fake->count('refresh') - $before, 2, 'two failed calls, from A');
    is(circuit('A'), 'open', 'the circuit is open on A');
    ok(wait_for(sub { circuit('B') eq 'open' }, 1),
       'and on B within 1 s');
    like(psql("SELECT provider FROM oauth_circuits"), qr/^demo$/,
         'the circuit is in PostgreSQL');

    for my $o (qw(carol dave)) {
        my $r = req('B', 'GET', '/api/x', owner => $o);
        is($r->{status}, 503, "$o on B: 503, as an open circuit answers");
        like($r->{content}, qr/"provider_unavailable"/,
             'provider_unavailable');
    }
    is($fake->count('refresh') - $before, 2,
       'B did not call the provider');

    # healthy again; at half-open one probe goes out across the fleet,
    # held 1 s, while both nodes get requests of four owners
    $fake->set(refresh_mode => 'ok', delay => 1);
    ok(wait_for(sub { circuit('A') eq 'half_open'
                      && circuit('B') eq 'half_open' }, 5),
       'half-open on both after the reset time');
    $before = $fake->count('refresh');

    my %st;
    my $end = time + 8;
    while (time < $end && circuit('A') ne 'closed') {
        my @pids;
        my $out = "$Dir/probe";
        my $i = 0;
        for my $o (qw(bob carol dave erin)) {
            for my $n (qw(A B)) {
                $i++;
                my $pid = fork;
                if (!$pid) {
                    my $r = req($n, 'GET', '/api/x', owner => $o);
                    open my $fh, '>', "$out.$i";
                    print $fh "$r->{status}\n";
                    close $fh;
                    POSIX::_exit(0);
                }
                push @pids, $pid;
            }
        }
        waitpid $_, 0 for @pids;
        for my $k (1 .. $i) {
            open my $fh, '<', "$out.$k" or next;
            my $s = <$fh>;
            chomp $s;
            $st{$s}++;
        }
        sleep 0.2;
    }
    is($fake->count('refresh') - $before, 1,
       'one probe across the fleet') or diag explain \%st;
    ok($st{200} && $st{200} <= 2, 'the probe\'s owner got 200')
        or diag explain \%st;
    is(circuit('A'), 'closed', 'the circuit is closed again on A');
    ok(wait_for(sub { circuit('B') eq 'closed' }, 1),
       'and on B within 1 s');

    $fake->set(delay => 0);
    for my $o (qw(alice carol dave)) {
        is(req('B', 'GET', '/api/x', owner => $o)->{status}, 200,
           "$o on B: refreshed after the circuit closed");
    }
    is($fake->count('reuse'), 0, 'no refresh token spent twice');
}

# 2. a node that missed the close (cut off from PostgreSQL) checks the
# fleet's circuits when it is back; meanwhile it never waits on them
{
    $fake->set(expires_in => 1, refresh_mode => 'ok');
    for my $o (qw(gina hal ivan)) {
        my $c = connect_via('A', 'A', $o, "$o-1");
        is($c->{result}, 'connected', "$o connected");
        req('B', 'GET', '/api/x', owner => $o);
    }
    sleep 1.2;
    $fake->set(expires_in => 3600, refresh_mode => 'error');
    for my $o (qw(gina hal)) {
        is(req('A', 'GET', '/api/x', owner => $o)->{status}, 503,
           "$o on A: 503 while the provider fails");
    }
    ok(wait_for(sub { circuit('B') eq 'open' }, 1), 'open on B');

    # B is shut out: its connections end, it cannot log in again
    psql('ALTER ROLE nodeb NOLOGIN');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
         . "WHERE usename = 'nodeb'");
    ok(wait_for(sub {
        psql("SELECT count(*) FROM pg_stat_activity "
             . "WHERE usename = 'nodeb'") eq '0' }), 'B is cut off');

    $fake->set(refresh_mode => 'ok');
    ok(wait_for(sub { req('A', 'GET', '/api/x', owner => 'gina')->{status}
                      == 200 }, 10),
       'A probes at half-open and the provider answers');
    is(circuit('A'), 'closed', 'closed on A');
    my $t0 = time;
    isnt(circuit('B'), 'closed', 'B missed the close');
    is(req('B', 'GET', '/api/x', owner => 'carol')->{status}, 200,
       'B injects a valid token meanwhile');
    ok(time - $t0 < 1, 'without waiting on PostgreSQL');

    psql('ALTER ROLE nodeb LOGIN');
    ok(wait_for(sub { circuit('B') eq 'closed' }, 15),
       'B back: it checks the fleet\'s circuits, closed');
    is(req('B', 'GET', '/api/x', owner => 'ivan')->{status}, 200,
       'ivan on B: refreshed');
}

# 3. an owner with no connection: one query per TTL and worker, not one
# per request; a connect on another node still injects within 1 s
{
    my $log = "$FleetKit::PGDATA/log";
    psql("ALTER SYSTEM SET log_statement = 'all'");
    psql('SELECT pg_reload_conf()');
    sleep 0.5;
    my $asked = sub {
        open my $fh, '<', $log or return -1;
        return scalar grep { /\$1 = 'nobody'/ } <$fh>;
    };
    is($asked->(), 0, 'PostgreSQL not asked about nobody yet');
    my %st;
    my $t0 = time;
    for my $i (1 .. 40) {
        $st{ req($i % 2 ? 'A' : 'B', 'GET', '/api/x',
                 owner => 'nobody')->{status} }++;
    }
    # once per worker (2 nodes x 2) and 5 s: a loaded machine may take
    # longer than 5 s over the 40
    my $most = 4 * (1 + int((time - $t0) / 5));
    is_deeply(\%st, { 401 => 40 }, '40 requests of an owner with none: 401')
        or diag explain \%st;
    my $n = $asked->();
    ok($n >= 1 && $n <= $most && $n < 20,
       "PostgreSQL asked $n times (at most once per worker and 5 s: "
       . "$most)");

    my $c = connect_via('A', 'A', 'nobody', 'nobody-1');
    is($c->{result}, 'connected', 'nobody connects on A');
    my $t1 = time;
    ok(wait_for(sub {
        req('B', 'GET', '/api/x', owner => 'nobody')->{status} == 200
    }, 1), 'and injects on B within 1 s') or diag time - $t1;
    is(req('B', 'GET', '/api/x', owner => 'nobody')->{status}, 200,
       'on both workers of B');
    psql("ALTER SYSTEM SET log_statement = 'none'");
    psql('SELECT pg_reload_conf()');
}

# 4. a row deleted in PostgreSQL whose notification B missed: the
# management API's fill drops it from B's cache
{
    my $c = connect_via('A', 'A', 'zoe', 'zoe-1');
    is($c->{result}, 'connected', 'zoe connected on A');
    is(req('B', 'GET', '/api/x', owner => 'zoe')->{status}, 200,
       'B caches zoe') for 1 .. 2;
    # a plain DELETE sends no NOTIFY: as if B had missed it
    psql("DELETE FROM oauth_connections WHERE owner = 'zoe'");
    # (a cached entry changed in the second of the fill's query is kept)
    sleep 1.2;
    is(req('B', 'GET', '/api/x', owner => 'zoe')->{status}, 200,
       'B still injects its cached copy (it was not told)');
    my $r = req('B', 'GET', '/oauth/api/connections', owner => 'zoe');
    is($r->{status}, 200, 'GET connections on B');
    unlike($r->{content}, qr/"account":"/, 'it lists none');
    is(req('B', 'GET', '/api/x', owner => 'zoe')->{status}, 401,
       'and B no longer injects it') for 1 .. 2;
    my $log = do { local (@ARGV, $/) = "$Node{B}{prefix}/logs/error.log";
                   <> };
    like($log, qr/1 cached connections of an owner were gone/,
         'B says what it dropped');
}

done_testing();
