package FlowTest;

# Helpers for the flow suites (t/001-config.t, t/002-store.t,
# t/010-start.t, t/020-callback.t).
#
# Test::Nginx sends one fixed request per block, but an OAuth flow is a
# conversation: start, read the state and the cookie off the redirect, then
# call back with them.  Blocks do that from "--- init" (run once nginx is
# up, in both the real framework and t/lib's runner) with the functions
# below, which talk to the block's nginx over plain HTTP, and keep the
# block's "--- request" for a last observable check (usually what the
# connections API lists).
#
# Blocks start their init with "package main;" so that the code reads the
# same under both frameworks (the real one evals init in its own package).
#
# Every suite gets a private directory, published as $TEST_NGINX_OAUTH_DIR
# for configs, holding:
#   keys       a valid keyring (mode 0600)
#   store*     the block's LMDB store, removed before each block
#   *.log      logs of the fake providers, removed before each block
#
# The fake providers are extra servers of the block's own nginx; those
# that log use this format, read back by as_requests():
#   log_format as '$request_method $uri auth=[$http_authorization] '
#                 'body=[$request_body]';

use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use HTTP::Tiny;
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes ();

our @EXPORT = qw(
    oauth_dir write_key_file random_key
    http_get query_params url_escape
    start_flow callback connect_flow flow_result
    connections as_log as_requests wait_for
    slurp json_decode
);

my $Dir = File::Temp::tempdir('oauth-flow-XXXXXX', TMPDIR => 1,
                              CLEANUP => 1);
chmod 0700, $Dir;
$ENV{TEST_NGINX_OAUTH_DIR} = $Dir;

sub oauth_dir { $Dir }

sub random_key {
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($fh, my $bytes, 32) == 32 or die "short read from /dev/urandom";
    close $fh;
    return encode_base64($bytes, '');
}

# write_key_file(name_or_path, text, mode): a keyring as an operator
# writes it, relative names inside the suite's directory.
sub write_key_file {
    my ($path, $text, $mode) = @_;
    $path = "$Dir/$path" unless $path =~ m{^/};
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod($mode // 0600, $path) or die "chmod $path: $!";
    return $path;
}

write_key_file('keys', 'k1:' . random_key() . "\n");

# A clean store and clean fake-provider logs for every block.
sub _clean_dir {
    opendir my $dh, $Dir or return;
    for my $f (readdir $dh) {
        next unless $f =~ /^(?:store.*|.*\.log)\z/;
        unlink "$Dir/$f";
    }
    closedir $dh;
}

Test::Nginx::Socket::add_block_preprocessor(sub { _clean_dir() })
    if defined &Test::Nginx::Socket::add_block_preprocessor;

#--------------------------------------------------------------------------
# HTTP to the block's nginx
#--------------------------------------------------------------------------

sub _port {
    return $ENV{TEST_NGINX_SERVER_PORT}
        // Test::Nginx::Socket::server_port();
}

# http_get(path_and_query, header => value, ...): never follows redirects.
# -method and -port override GET and the block's port.
sub http_get {
    my ($path, %headers) = @_;
    my $method = delete $headers{-method} // 'GET';
    my $port = delete $headers{-port} // _port();
    my $ua = HTTP::Tiny->new(max_redirect => 0, timeout => 20,
                             keep_alive => 0);
    return $ua->request($method, "http://127.0.0.1:$port$path",
                        { headers => \%headers });
}

sub url_escape {
    my $s = shift;
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub _url_unescape {
    my $s = shift;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# The query of a URL (or "?query") as a hash; a repeated name becomes an
# array ref.
sub query_params {
    my $url = shift // '';
    my (undef, $query) = split /\?/, $url, 2;
    $query =~ s/#.*//s if defined $query;
    my %q;
    for my $pair (split /&/, $query // '') {
        next if $pair eq '';
        my ($k, $v) = map { _url_unescape($_) } split /=/, $pair, 2;
        $v //= '';
        if (exists $q{$k}) {
            $q{$k} = [ ref $q{$k} ? @{ $q{$k} } : $q{$k}, $v ];
        }
        else {
            $q{$k} = $v;
        }
    }
    return \%q;
}

sub json_decode { JSON::PP->new->decode(shift) }

#--------------------------------------------------------------------------
# Flows
#--------------------------------------------------------------------------

# start_flow(uri => '/connect/demo?...', owner => 'alice'): the start
# response and what a browser keeps from it.  port => N talks to another
# server of the block than the main one.
sub start_flow {
    my (%o) = @_;
    my $res = http_get($o{uri} // '/connect/demo',
                       defined $o{owner} ? ('X-Owner' => $o{owner}) : (),
                       $o{port} ? (-port => $o{port}) : ());
    my $loc = $res->{headers}{location};
    my $set = $res->{headers}{'set-cookie'} // '';
    my ($cookie) = $set =~ /^([^;]+)/;
    my $q = query_params($loc);
    return {
        res      => $res,
        status   => $res->{status},
        location => $loc,
        q        => $q,
        state    => $q->{state},
        cookie   => $cookie,
        owner    => $o{owner},
    };
}

# callback(flow, code => 'c1', query => 'extra=1', owner => .., cookie => ..)
# calls /callback the way the provider's redirect would, from the browser
# that started the flow unless told otherwise.  raw_query => '...' replaces
# the whole query; no_code => 1 leaves the code out; port => N as above.
sub callback {
    my ($flow, %o) = @_;
    my $query = $o{raw_query};
    unless (defined $query) {
        my @q;
        push @q, 'code=' . url_escape($o{code} // 'code-1')
            unless $o{no_code};
        push @q, 'state=' . url_escape($flow->{state} // '');
        push @q, $o{query} if defined $o{query};
        $query = join '&', @q;
    }
    my $cookie = exists $o{cookie} ? $o{cookie} : $flow->{cookie};
    my $owner = exists $o{owner} ? $o{owner} : $flow->{owner};
    my %h;
    $h{Cookie} = $cookie if defined $cookie;
    $h{'X-Owner'} = $owner if defined $owner;
    $h{-port} = $o{port} if $o{port};
    return http_get(($o{path} // '/callback') . "?$query", %h);
}

# What the user's page learns: the redirect's oauth_* parameters, or the
# message the popup page posts (plus the origin it is posted to).
sub flow_result {
    my $res = shift;
    if ($res->{status} == 302) {
        # nginx's absolute_redirect prefixes a relative Location with the
        # request's own scheme and host: take them off again.
        (my $loc = $res->{headers}{location} // '')
            =~ s{^http://(?:127\.0\.0\.1|localhost)(?::\d+)?(?=/)}{};
        my $q = query_params($loc);
        return {
            status   => $q->{oauth_status},
            provider => $q->{oauth_provider},
            account  => $q->{oauth_account},
            error    => $q->{oauth_error},
            location => $loc,
        };
    }
    if ($res->{status} == 200
        && $res->{content} =~ /var m=(\{.*?\});if\(window\.opener\)/s)
    {
        my $m = json_decode($1);
        my ($target) = $res->{content} =~ /postMessage\(m,("[^"]*")\)/;
        $m->{target} = defined $target ? json_decode("[$target]")->[0]
                                       : undef;
        return $m;
    }
    return { status => "HTTP $res->{status}", body => $res->{content} };
}

# connect_flow(owner => .., uri => .., code => .., ...): start, then the
# callback; returns (result, flow, callback response).
sub connect_flow {
    my (%o) = @_;
    my $owner = delete $o{owner} // 'alice';
    my $flow = start_flow(uri => delete $o{uri}, owner => $owner,
                          port => $o{port});
    die "start answered $flow->{status}: $flow->{res}{content}"
        unless $flow->{status} == 302 && $flow->{state};
    my $res = callback($flow, %o);
    return (flow_result($res), $flow, $res);
}

# connections(owner): what the API lists for the owner, decoded.
sub connections {
    my ($owner, $query, $port) = @_;
    my $res = http_get('/api/connections' . ($query ? "?$query" : ''),
                       'X-Owner' => $owner // 'alice',
                       $port ? (-port => $port) : ());
    die "GET /api/connections answered $res->{status}: $res->{content}"
        unless $res->{status} == 200;
    return json_decode($res->{content});
}

#--------------------------------------------------------------------------
# Files and logs
#--------------------------------------------------------------------------

sub slurp {
    my $file = shift;
    open my $fh, '<', $file or return '';
    local $/;
    my $data = <$fh>;
    close $fh;
    return $data // '';
}

# wait_for(sub { ... }, seconds): polls until the sub returns true.
sub wait_for {
    my ($cond, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 3);
    while (1) {
        my $r = $cond->();
        return $r if $r || Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.02);
    }
}

# Lines of a fake provider's access log ($TEST_NGINX_OAUTH_DIR/NAME.log).
sub as_log {
    my $name = shift // 'as';
    return [ split /\n/, slurp("$Dir/$name.log") ];
}

# The requests a fake logged with the "as" format, parsed.
sub as_requests {
    my $name = shift // 'as';
    my @out;
    for my $line (@{ as_log($name) }) {
        next unless $line =~ /^(\S+) (\S+) auth=\[(.*?)\] body=\[(.*)\]$/;
        my %r = (method => $1, uri => $2, auth => $3, body => $4);
        $r{form} = query_params("?$r{body}");
        push @out, \%r;
    }
    return \@out;
}

1;
