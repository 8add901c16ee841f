package FleetKit;

# What the fleet suites (t/090-fleet.t, t/091-fleet-cli.t) share: a
# throw-away PostgreSQL cluster in a temp dir, nginx nodes that use it as
# oauth_shared_store beside the fake provider, and the requests a test
# makes to them.  Missing PostgreSQL binaries fail the suite: CI installs
# them (.ci/deps.sh), and a silent skip would hide the whole feature.
#
#   use FleetKit;
#   fleet_init();                  # PostgreSQL, database "fleet", the fake
#   node_start('A');               # nginx with 2 workers on a free port
#   req('A', 'GET', '/api/x', owner => 'alice');
#   psql('SELECT ...');  pg_stop();  pg_start();
#   cli('--shared', shared_url(), 'check');   # ngx-oauth: [rc, output]
#
# Everything started is stopped in END blocks.

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use FindBin ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use FakeProvider;

our @EXPORT = qw(fleet_init free_port pg_run pg_start pg_stop psql
                 node_start node_stop node_reload req wait_for connect_via
                 ready_workers key_line write_keys shared_url cli
                 $Dir $PGBIN $PGPORT %Node %DbUser $KeyFile $Fake $FP);

our ($Dir, $PGBIN, $PGPORT, $PGDATA, $KeyFile, $Fake, $FP);
our (%Node, %DbUser);

my $NGINX = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my @MODULES = split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} // '');
my $CLI = $ENV{NGX_OAUTH_CLI} // "$FindBin::Bin/../build/ngx-oauth";

# PostgreSQL refuses root: run it as the postgres user then
my @AS = ($> == 0) ? ('runuser', '-u', 'postgres', '--') : ();

my $Http = HTTP::Tiny->new(max_redirect => 0, timeout => 15);

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die $!;
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub pg_run { system(@AS, @_) == 0 }

sub pg_start {
    return system(@AS, 'sh', '-c',
        "'$PGBIN/pg_ctl' -D '$PGDATA' -o '-p $PGPORT -k $PGDATA "
        . "-c listen_addresses=127.0.0.1 -c fsync=off' "
        . "-l '$PGDATA/log' -w start >/dev/null 2>&1") == 0;
}

sub pg_stop {
    return system(@AS, 'sh', '-c',
        "'$PGBIN/pg_ctl' -D '$PGDATA' -m immediate -w stop "
        . ">/dev/null 2>&1") == 0;
}

sub psql {
    my $sql = shift;
    my $out = `$PGBIN/psql -X -q -A -t -h 127.0.0.1 -p $PGPORT -U oauth -d fleet -c "$sql" 2>&1`;
    chomp $out;
    return $out;
}

sub shared_url { "postgresql://oauth\@127.0.0.1:$PGPORT/fleet" }

# "KID:BASE64" of a new random key
sub key_line {
    my $kid = shift;
    return "$kid:" . encode_base64(join('', map { chr int rand 256 } 1 .. 32),
                                   '') . "\n";
}

sub write_keys {
    my ($path, @lines) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh @lines;
    close $fh;
    chmod 0600, $path;
    return $path;
}

# a cluster with database "fleet", a fleet keyring, the fake provider
sub fleet_init {
    ($PGBIN) = sort { $b cmp $a } glob '/usr/lib/postgresql/*/bin';
    if (!$PGBIN || !-x "$PGBIN/initdb" || !-x "$PGBIN/pg_ctl") {
        fail('PostgreSQL server binaries (initdb, pg_ctl) are required: '
             . 'apt-get install postgresql (see .ci/deps.sh)');
        done_testing();
        exit 1;
    }

    @MODULES = ("$FindBin::Bin/../build/ngx_http_oauth_module.so")
        unless @MODULES;

    $Dir = tempdir('fleet-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $Dir;
    $PGDATA = "$Dir/pg";
    $PGPORT = free_port();

    mkdir $PGDATA or die $!;
    if (@AS) {
        my ($uid, $gid) = (getpwnam 'postgres')[2, 3];
        chown $uid, $gid, $PGDATA;
    }

    ok(pg_run('sh', '-c', "'$PGBIN/initdb' -D '$PGDATA' -A trust -U oauth "
                          . "--no-sync >/dev/null 2>&1"),
       'initdb');
    ok(pg_start(), 'PostgreSQL started');
    ok(system("$PGBIN/createdb -h 127.0.0.1 -p $PGPORT -U oauth fleet") == 0,
       'database created');

    $Fake = FakeProvider->start;
    $FP = $Fake->port;

    # one keyring for the fleet: every node opens every record
    $KeyFile = write_keys("$Dir/keys", key_line('k1'));
}

END { pg_stop() if $PGDATA && -e "$PGDATA/postmaster.pid" }

sub node_conf {
    my ($name) = @_;
    my $port = $Node{$name}{port};
    my $prefix = $Node{$name}{prefix};
    my $user = $DbUser{$name} // 'oauth';
    my $load = join '', map { "load_module $_;\n" } @MODULES;
    my $extra = $Node{$name}{http} // '';     # more http-level lines
    return <<"_EOC_";
$load
worker_processes 2;
error_log $prefix/logs/error.log info;
pid $prefix/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    oauth_store $prefix/store.mdb;
    oauth_key_file $KeyFile;
    oauth_shared_store postgresql://$user\@127.0.0.1:$PGPORT/fleet;
    oauth_owner \$http_x_user;
$extra
    oauth_provider demo {
        client_id          test-client;
        client_secret      test-secret;
        authorization_url  http://127.0.0.1:$FP/authorize;
        token_url          http://127.0.0.1:$FP/token;
        revocation_url     http://127.0.0.1:$FP/revoke;
        redirect_uri       http://localhost:$port/oauth/callback;
        account_id         user.id;
        account_name       user.name;
        api_base_url       http://127.0.0.1:$FP/api;
        scope              read;
    }
    server {
        listen 127.0.0.1:$port;
        add_header X-Worker \$pid always;
        location ~ ^/connect/([a-z0-9_]+)\$ { oauth_start \$1; }
        location = /oauth/callback { oauth_callback; }
        location /oauth/api/ { oauth_api; }
        location /api/ {
            oauth_token demo;
            proxy_pass http://127.0.0.1:$FP;
        }
        location = /static { return 200 "static\\n"; }
    }
}
_EOC_
}

sub node_start {
    my ($name) = @_;
    $Node{$name}{port} //= free_port();
    my $prefix = $Node{$name}{prefix} = "$Dir/$name";
    mkdir $prefix;
    mkdir "$prefix/logs";
    open my $fh, '>', "$prefix/nginx.conf" or die $!;
    print $fh node_conf($name);
    close $fh;
    system($NGINX, '-p', $prefix, '-c', "$prefix/nginx.conf") == 0
        or die "nginx $name did not start\n";
}

sub node_stop {
    my $name = shift;
    my $p = $Node{$name}{prefix} or return;
    system($NGINX, '-p', $p, '-c', "$p/nginx.conf", '-s', 'stop');
}

# the key file is read again; returns once the new workers are ready
sub node_reload {
    my $name = shift;
    my $p = $Node{$name}{prefix};
    my $before = ready_workers($name);
    system($NGINX, '-p', $p, '-c', "$p/nginx.conf", '-s', 'reload') == 0
        or return 0;
    return wait_for(sub { ready_workers($name) >= $before + 2 }, 20);
}

END { node_stop($_) for keys %Node }

sub req {
    my ($node, $method, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    $h{'X-User'} = $o{owner} // 'alice';
    my %opt = (headers => \%h);
    if (defined $o{json}) {
        $h{'Content-Type'} = 'application/json';
        $opt{content} = $o{json};
    }
    return $Http->request($method,
                          "http://127.0.0.1:$Node{$node}{port}$path",
                          \%opt);
}

sub wait_for {
    my ($cond, $timeout) = @_;
    my $end = time + ($timeout // 10);
    my $v;
    until (($v = $cond->()) || time > $end) { sleep 0.05 }
    return $v;
}

# start on one node, the callback on another
sub connect_via {
    my ($a, $b, $owner, $code) = @_;
    my $r = req($a, 'GET', '/connect/demo', owner => $owner);
    return { start => $r->{status}, body => $r->{content} }
        unless $r->{status} == 302;
    my ($state) = ($r->{headers}{location} // '') =~ /[?&]state=([^&]+)/;
    my $sc = $r->{headers}{'set-cookie'} // '';
    $sc = $sc->[0] if ref $sc;
    my ($cookie) = $sc =~ /^([^;]+)/;
    $r = req($b, 'GET', "/oauth/callback?code=$code&state=$state",
             owner => $owner, headers => { Cookie => $cookie });
    my ($res) = ($r->{headers}{location} // '') =~ /oauth_status=([^&]+)/;
    return { start => 302, status => $r->{status}, result => $res // '',
             location => $r->{headers}{location} // '' };
}

# workers that are connected, listening and have checked their cache
sub ready_workers {
    my $name = shift;
    open my $fh, '<', "$Node{$name}{prefix}/logs/error.log" or return 0;
    return scalar grep { /cache checked/ } <$fh>;
}

# ngx-oauth ARGS: [exit code, stdout and stderr]
sub cli {
    my @args = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if (!$pid) {
        open STDERR, '>&', \*STDOUT;
        exec($CLI, @args) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return [$? >> 8, $out];
}

1;
