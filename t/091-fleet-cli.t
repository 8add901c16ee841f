# ngx-oauth --shared: check, rotate, backup and restore against the
# fleet's PostgreSQL while two nginx nodes use it (t/lib/FleetKit.pm
# starts the cluster, the nodes and the fake provider).
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

my $URL = shared_url();
my $k1 = (do { local (@ARGV, $/) = $KeyFile; <> });

node_start('A');
node_start('B');

ok(wait_for(sub { ready_workers('A') >= 2 && ready_workers('B') >= 2 }, 20),
   'every worker of both nodes is connected');

# "keys" of ngx-oauth list for one owner in a node's cache
sub cached_keys {
    my ($node, $owner) = @_;
    my $r = cli('--store', "$Node{$node}{prefix}/store.mdb", 'list',
                '--owner', $owner);
    my ($keys) = $r->[1] =~ /^\Q$owner\E\t.*\t(\S+)$/m;
    return $keys // '';
}

# no token of the fake provider in the clear
sub no_secret {
    my ($out, $what) = @_;
    unlike($out, qr/\b(?:at|rt)-\d+-/, "$what: no token printed");
}

# 1. check after connects on two nodes
{
    is(connect_via('A', 'B', 'alice', 'alice-1')->{result}, 'connected',
       'alice connected (A then B)');
    is(connect_via('B', 'A', 'bob', 'bob-1')->{result}, 'connected',
       'bob connected (B then A)');
    for my $n (qw(A B)) {
        is(req($n, 'GET', '/api/x', owner => $_)->{status}, 200,
           "$_ injects on $n") for qw(alice bob);
    }

    my $r = cli('--shared', $URL, '--key-file', $KeyFile, 'check');
    is($r->[0], 0, 'check: exit 0') or diag $r->[1];
    like($r->[1], qr/^checked 4 sealed values in 2 connections: 4 ok, 0 failed$/m,
         'check counts both connections, every value opens');
    no_secret($r->[1], 'check');

    $r = cli('--shared', $URL, 'check');
    is($r->[0], 2, 'check without --key-file: usage error');
    $r = cli('--shared', "postgresql://oauth:pw\@127.0.0.1:$PGPORT/fleet",
             '--key-file', $KeyFile, 'check');
    is($r->[0], 2, 'a password in the URL is refused');
    like($r->[1], qr/--password-file/, 'and the error says where it goes');
    $r = cli('--shared', $URL, '--store', "$Dir/x.mdb", '--key-file',
             $KeyFile, 'check');
    is($r->[0], 2, '--shared and --store together: usage error');
    my $down = shared_url() =~ s/:$PGPORT/:1/r;
    $r = cli('--shared', $down, '--key-file', $KeyFile, 'check');
    is($r->[0], 3, 'no database there: exit 3');
}

# 2. a second key, rotate, and the caches learn of the re-sealed rows
{
    my $k2 = key_line('k2');
    my $both = write_keys("$Dir/keys-both", $k2, $k1);
    my $new = write_keys("$Dir/keys-new", $k2);

    # the usual order: every node gets the new key first (k2 seals)
    write_keys($KeyFile, $k2, $k1);
    ok(node_reload($_), "node $_ reloaded with k2 and k1") for qw(A B);

    my $r = cli('--shared', $URL, '--key-file', $both, 'rotate');
    is($r->[0], 0, 'rotate: exit 0') or diag $r->[1];
    like($r->[1], qr/^rotated 4 sealed values in 2 connections to key k2: 0 already under it, 0 failed$/m,
         'rotate re-sealed every value under k2');
    no_secret($r->[1], 'rotate');

    like(psql("SELECT string_agg(version::text, ',' ORDER BY owner) "
              . "FROM oauth_connections"), qr/^\d+,\d+$/, 'rows there');

    $r = cli('--shared', $URL, '--key-file', $new, 'check');
    is($r->[0], 0, 'check with k2 alone: exit 0') or diag $r->[1];
    like($r->[1], qr/4 ok, 0 failed/, 'every row is sealed under k2');

    # NOTIFY: both caches take the new rows, no reload needed
    for my $n (qw(A B)) {
        for my $o (qw(alice bob)) {
            ok(wait_for(sub { cached_keys($n, $o) eq 'access=k2,refresh=k2' },
                        5),
               "${n}'s cache has $o re-sealed under k2")
                or diag cached_keys($n, $o);
        }
    }

    $r = cli('--shared', $URL, '--key-file', $both, 'rotate');
    like($r->[1], qr/rotated 0 sealed values in 2 connections to key k2: 4 already under it/,
         'a second rotate has nothing to do');

    # the old key goes: the nodes still inject from their caches
    write_keys($KeyFile, $k2);
    ok(node_reload($_), "node $_ reloaded with k2 alone") for qw(A B);
    for my $n (qw(A B)) {
        my $x = req($n, 'GET', '/api/x', owner => 'alice');
        is($x->{status}, 200, "alice still injects on $n");
        like($x->{content} // '', qr/Authorization: Bearer at-/,
             "with her token on $n");
    }
    $k1 = $k2;
}

# 3. backup, rows lost, restore
my $backup = "$Dir/backup.mdb";
{
    my $r = cli('--shared', $URL, 'backup', $backup);
    is($r->[0], 0, 'backup: exit 0') or diag $r->[1];
    like($r->[1], qr/backup of 2 connections written to .* and read back/,
         'backup says what it wrote');
    ok(!-e "$backup-lock", 'no LMDB lock file left beside it');
    is((stat $backup)[2] & 0777, 0600, 'the backup is mode 0600');

    $r = cli('--store', $backup, '--key-file', $KeyFile, 'check');
    is($r->[0], 0, 'the backup reads as a store: ngx-oauth --store check');
    like($r->[1], qr/4 sealed values in 2 connections: 4 ok/,
         'both connections are in it and open');

    $r = cli('--shared', $URL, 'backup', $backup);
    is($r->[0], 2, 'backup over an existing file: refused');

    psql("DELETE FROM oauth_connections WHERE owner = 'bob'");
    is(psql('SELECT count(*) FROM oauth_connections'), '1', 'bob is lost');

    $r = cli('--shared', $URL, 'restore', $backup);
    is($r->[0], 0, 'restore: exit 0') or diag $r->[1];
    like($r->[1], qr/restored 1 connections from .*, 1 already as they were/,
         'restore brings back bob and leaves alice');
    is(psql('SELECT count(*) FROM oauth_connections'), '2',
       'both rows are back');
    $r = cli('--shared', $URL, '--key-file', $KeyFile, 'check');
    like($r->[1], qr/4 sealed values in 2 connections: 4 ok, 0 failed/,
         'the restored row opens');
    is(req('B', 'GET', '/api/x', owner => 'bob')->{status}, 200,
       'bob injects after the restore');
}

# 4. a record tampered with in the database
{
    my $before = psql("SELECT version FROM oauth_connections "
                      . "WHERE owner = 'alice'");

    # a byte of the nonce of the first sealed value ('S', version, kid
    # length, "k2", then the nonce)
    psql("UPDATE oauth_connections SET record = set_byte(record, "
         . "position('\\x6b32'::bytea in record) + 4, "
         . "get_byte(record, position('\\x6b32'::bytea in record) + 4) # 1) "
         . "WHERE owner = 'alice'");

    my $r = cli('--shared', $URL, '--key-file', $KeyFile, 'check');
    is($r->[0], 1, 'check of a tampered record: exit 1') or diag $r->[1];
    like($r->[1], qr/^failed\talice\tdemo\talice-1\t\w+\t[^\t]+\tk2$/m,
         'the value that does not open is named');
    like($r->[1], qr/4 sealed values in 2 connections: 3 ok, 1 failed/,
         'and counted');
    no_secret($r->[1], 'check of a tampered record');

    $r = cli('--shared', $URL, '--key-file', $KeyFile, 'rotate');
    is($r->[0], 0, 'rotate has nothing to re-seal (all under k2)');

    $r = cli('--shared', $URL, 'restore', $backup);
    like($r->[1], qr/restored 1 connections/, 'restore repairs it');
    $r = cli('--shared', $URL, '--key-file', $KeyFile, 'check');
    is($r->[0], 0, 'check: exit 0 again') or diag $r->[1];
    cmp_ok(psql("SELECT version FROM oauth_connections "
                . "WHERE owner = 'alice'"), '>', $before,
           'the restored row has a higher version');
    ok(wait_for(sub {
        req('A', 'GET', '/api/x', owner => 'alice')->{status} == 200 }, 5),
       'alice injects on A');
}

# 5. PostgreSQL killed mid-traffic: no record lost
{
    my $out = "$Dir/traffic";
    my @pids;
    for my $i (1 .. 4) {
        my $pid = fork;
        if (!$pid) {
            my @res;
            my $end = time + 4;
            my $j = 0;
            while (time < $end) {
                $j++;
                my $owner = "m$i-$j";
                my $c = connect_via($i % 2 ? 'A' : 'B', $i % 2 ? 'B' : 'A',
                                    $owner, "$owner-1");
                push @res, ($c->{result} // '') eq 'connected' ? $owner
                                                                : '-';
                req($_, 'GET', '/api/x', owner => 'alice') for qw(A B);
            }
            open my $fh, '>', "$out.$i"; print $fh "@res\n"; close $fh;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    sleep 1.2;
    ok(pg_stop(), 'PostgreSQL killed mid-traffic');
    sleep 1;
    ok(pg_start(), 'PostgreSQL back');
    waitpid $_, 0 for @pids;

    my @connected;
    for my $i (1 .. 4) {
        open my $fh, '<', "$out.$i" or next;
        push @connected, grep { $_ ne '-' } split ' ', <$fh>;
    }
    cmp_ok(scalar @connected, '>', 0, 'some connects made it')
        or diag 'none';
    my $want = 2 + @connected;

    # writes a worker kept while the database was away come in later
    ok(wait_for(sub {
        psql('SELECT count(*) FROM oauth_connections') eq $want }, 15),
       "every connect answered \"connected\" is in PostgreSQL ($want)")
        or diag psql('SELECT count(*) FROM oauth_connections');

    my $r = cli('--shared', $URL, '--key-file', $KeyFile, 'check');
    is($r->[0], 0, 'ngx-oauth --shared check after the outage: exit 0')
        or diag $r->[1];
    my $values = 2 * $want;
    like($r->[1], qr/^checked $values sealed values in $want connections: $values ok, 0 failed$/m,
         'no record lost, every one opens');
}

done_testing();
