# Webhooks in a fleet (oauth_shared_store + oauth_webhook on every node):
# the node that makes a change writes its event into oauth_events in the
# same PostgreSQL statement as the change, and one worker of the fleet
# (the holder of the delivery lease) sends it.  Two nginx nodes with two
# workers each, a throw-away PostgreSQL (t/lib/FleetKit.pm) and a scripted
# receiver (t/lib/WebhookReceiver.pm).
#
# Plain Test::More (it starts its own servers), so it runs the same under
# either Test::Nginx on the include path.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes qw(sleep time);

use FleetKit;
use WebhookReceiver;

fleet_init();

my $Secret = 'fleet-hook-secret-0123456789';
my $sf = "$Dir/hook-secret";
write_keys($sf, "$Secret\n");

my $Rx = WebhookReceiver->start;
my $RxPort = $Rx->port;

for my $n (qw(A B)) {
    # a short flow life and no background refresh: the housekeeping
    # timers purge every 3 s
    $Node{$n}{http} = "    oauth_webhook http://127.0.0.1:$RxPort/hook "
                      . "secret_file=$sf;\n    oauth_state_ttl 3s;\n"
                      . "    oauth_background_refresh off;";
}

# node A logs in as a role of its own: the test can shut it out alone
psql('CREATE ROLE nodea LOGIN SUPERUSER');
%DbUser = (A => 'nodea', B => 'oauth');

node_start('A');
node_start('B');

ok(wait_for(sub { ready_workers('A') >= 2 && ready_workers('B') >= 2 }, 20),
   'every worker of both nodes is connected');
is(psql('SELECT version FROM oauth_schema'), '2', 'schema version 2');

# the events of the receiver, as [type, owner, account, id]
sub events {
    return map { [ $_->{json}{type}, $_->{json}{owner},
                   $_->{json}{account}, $_->{json}{id} ] }
           grep { $_->{json} } $Rx->requests;
}

sub types_of {
    my $owner = shift;
    return join ' ', map { $_->[0] } grep { $_->[1] eq $owner } events();
}

# 1. a connect on A and a disconnect on B: one event each, once
{
    my $c = connect_via('A', 'A', 'alice', 'alice-1');
    is($c->{result}, 'connected', 'alice connected on A');

    ok(wait_for(sub { types_of('alice') eq 'connection.created' }, 10),
       'connection.created arrived');

    # B has the connection from PostgreSQL (a miss), then deletes it
    is(req('B', 'GET', '/api/x', owner => 'alice')->{status}, 200,
       'B injects alice');
    is(req('B', 'DELETE', '/oauth/api/connections/demo/alice-1',
           owner => 'alice')->{status}, 200, 'disconnect on B');

    ok(wait_for(sub { types_of('alice') =~ /connection\.deleted/ }, 10),
       'connection.deleted arrived');

    sleep 3;     # a second sender would have sent by now

    is(types_of('alice'), 'connection.created connection.deleted',
       'each once, for the fleet');

    my @r = grep { $_->{json} && $_->{json}{owner} eq 'alice' }
            $Rx->requests;
    is(scalar(grep { WebhookReceiver::verify($Secret, $_) } @r),
       scalar @r, 'signed with the secret');
    is($r[0]{headers}{'x-oauth-event-id'}, $r[0]{json}{id},
       'X-OAuth-Event-Id is the id');
    is(psql('SELECT count(*) FROM oauth_events'), '0', 'outbox empty');
    like(psql("SELECT holder FROM oauth_leases WHERE owner = ''"),
         qr/ \d+$/, 'one delivery lease for the fleet');
}

# 2. the receiver is down for a while and the delivering worker dies:
#    every event arrives once, in order per connection, after it is back
{
    $Rx->stop;

    is(connect_via('A', 'B', 'bob', 'bob-1')->{result}, 'connected',
       'bob connected (A, B)');
    is(connect_via('B', 'A', 'carol', 'carol-1')->{result}, 'connected',
       'carol connected (B, A)');

    # the API works on the node's cache: A reads bob from PostgreSQL first
    is(req('A', 'GET', '/api/x', owner => 'bob')->{status}, 200,
       'A injects bob');
    is(req('A', 'PATCH', '/oauth/api/connections/demo/bob-1',
           owner => 'bob', json => '{"label":"work"}')->{status}, 200,
       'PATCH bob on A');
    is(connect_via('B', 'B', 'bob', 'bob-1')->{result}, 'connected',
       'bob connected again on B');
    my $r = req('A', 'DELETE', '/oauth/api/connections', owner => 'bob');
    is($r->{status}, 200, 'DELETE all of bob on A');
    like($r->{content}, qr/"deleted":1/, 'one deleted');

    ok(wait_for(sub { psql('SELECT count(*) FROM oauth_events') eq '5' },
                5), 'five events wait in PostgreSQL');

    # the operator's view of the fleet's outbox
    my ($rc, $out) = @{ cli('--shared', shared_url(), 'events') };
    is($rc, 0, 'ngx-oauth --shared events runs');
    my @rows = split /\n/, $out;
    is(shift(@rows), "seq\tid\ttype\towner\tprovider\taccount\tcreated"
                     . "\tattempts\tnext_at", 'its header');
    is(scalar @rows, 5, 'the five pending events');
    like($rows[0] // '', qr/^\d+\tevt_[0-9a-f]{32}\tconnection\.created\t\S+\tdemo\t\S+\t\d{4}-\d\d-\d\dT[\d:]+Z\t\d+\t\d{4}-/,
         'seq, id, type, owner, provider, account, created, attempts, next_at');
    unlike($out, qr/\Q$Secret\E|v1=/, 'no secret, no signature');

    # the worker that holds the lease dies without a word
    my ($pid) = psql("SELECT holder FROM oauth_leases WHERE owner = ''")
                =~ / (\d+)$/;
    ok($pid && kill('KILL', $pid), "delivering worker $pid killed");

    sleep 1;
    $Rx = WebhookReceiver->start(port => $RxPort, dir => $Rx->dir);

    ok(wait_for(sub { psql('SELECT count(*) FROM oauth_events') eq '0' },
                40), 'the outbox drained');

    is(types_of('bob'), 'connection.created connection.updated '
                        . 'connection.updated connection.deleted',
       'bob: every event once, in order');
    is(types_of('carol'), 'connection.created', 'carol: once');

    my %seen;
    $seen{ $_->[3] }++ for events();
    is(scalar(grep { $_ > 1 } values %seen), 0, 'no event twice');
}

# 3. a write PostgreSQL refuses as superseded writes no event
{
    # A is cut off (an API call would read the row from PostgreSQL first):
    # its PATCH is kept, made on the version its cache has
    psql('ALTER ROLE nodea NOLOGIN');
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
         . "WHERE usename = 'nodea'");
    ok(wait_for(sub {
        psql("SELECT count(*) FROM pg_stat_activity "
             . "WHERE usename = 'nodea'") eq '0' }), 'A is cut off');
    sleep 0.3;

    # another node's newer write, as this node's cache does not know it
    psql("UPDATE oauth_connections SET version = version + 10 "
         . "WHERE owner = 'carol'");

    my $before = scalar events();
    is(req('A', 'PATCH', '/oauth/api/connections/demo/carol-1',
           owner => 'carol', json => '{"label":"old"}')->{status}, 200,
       'PATCH carol on A from an older version');
    psql('ALTER ROLE nodea LOGIN');

    ok(wait_for(sub {
        open my $fh, '<', "$Node{A}{prefix}/logs/error.log" or return 0;
        return grep { /superseded/ } <$fh>;
    }, 10), 'the change was superseded');

    sleep 2;
    is(psql('SELECT count(*) FROM oauth_events'), '0', 'no event written');
    is(scalar events(), $before, 'no event sent');
}

# 4. expired flows are purged from PostgreSQL by the timers, not only
#    when a worker connects; a flow still alive stays
{
    psql("INSERT INTO oauth_flows VALUES ('\\x01', '\\x00', "
         . "now() - interval '1 hour'), ('\\x02', '\\x00', "
         . "now() + interval '1 hour')");
    is(psql('SELECT count(*) FROM oauth_flows'), '2', 'two flows');

    ok(wait_for(sub { psql('SELECT count(*) FROM oauth_flows') eq '1' }, 15),
       'the expired flow was purged');
    is(psql("SELECT encode(state_hash, 'hex') FROM oauth_flows"), '02',
       'the live one stays');
    like(psql("SELECT holder FROM oauth_leases WHERE owner = '' "
              . "AND provider = 'flows'"), qr/ \d+$/,
         'one worker of the fleet purges per interval (a lease)');
}

# 5. a reload hands the delivery lease over at once: the worker that held
#    it deletes its row on its clean exit, so the next event goes out
#    well within the lease's 10 s
{
    my $live = "SELECT holder FROM oauth_leases WHERE owner = '' "
             . "AND provider = 'webhook' AND lease_until > now()";
    my $holder = '';
    ok(wait_for(sub { ($holder = psql($live)) ne '' }, 10),
       'a worker holds the delivery lease');
    my ($pid) = $holder =~ /(\d+)$/;
    my $node;
    for my $n (qw(A B)) {
        open my $fh, '<', "$Node{$n}{prefix}/logs/nginx.pid" or next;
        my $master = <$fh>;
        chomp $master;
        open my $st, '<', "/proc/$pid/stat" or next;
        my @f = split ' ', scalar <$st>;
        $node = $n if $f[3] == $master;
    }
    ok($node, 'the holder is a worker of node ' . ($node // '?'));
    $node //= 'A';
    ok(node_reload($node), "node $node reloaded");
    ok(wait_for(sub { !kill 0, $pid }, 10), 'the holder exited');
    isnt(psql($live), $holder, 'its lease is gone with it');

    # the holder renews its lease at every 1 s poll, so a lease not given
    # back would hold the next event about 10 s; 8 s leaves a loaded
    # machine (the suites run in parallel) room and still tells the two
    my $c = connect_via('B', 'B', 'quinn', 'quinn-1');
    is($c->{result}, 'connected', 'quinn connected');
    my $t0 = time;
    ok(wait_for(sub { types_of('quinn') eq 'connection.created' }, 8),
       'the next event arrived within 8 s (the lease lasts 10 s)')
        or diag time - $t0;
    my $log = do { local (@ARGV, $/) = "$Node{$node}{prefix}/logs/error.log";
                   <> };
    like($log, qr/webhook delivery lease released/,
         'the old holder said so');
}

# no token or secret ever went out
{
    my $all = join "\n", map { $_->{body} } $Rx->requests;
    unlike($all, qr/at-\d|rt-\d|access_token|refresh_token|\Q$Secret\E/,
           'no token or secret in the events');
}

node_stop($_) for qw(A B);

done_testing();
