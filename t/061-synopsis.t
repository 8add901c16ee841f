# The README's Synopsis runs as it is written: its two files are laid out
# in a copy of this machine's /etc/nginx (Debian layout), nginx starts
# with them, and a user logged in by the application's /session can list
# providers, start a Google and a Shopify connection, and be told it is not
# connected yet on the proxied Google API.  Only what a test machine has
# to change is changed: ports, the certificate, no DNS, no port 80.

use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use FindBin;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

require "$FindBin::Bin/debian/layout.pl";

my $top = abs_path("$FindBin::Bin/..");
my $module = $ENV{NGX_OAUTH_MODULE}
    || "$top/build/ngx_http_oauth_module.so";
my $cli = $ENV{NGX_OAUTH_CLI} || "$top/build/ngx-oauth";

plan skip_all => 'no /etc/nginx (Debian nginx) on this machine'
    unless -f '/etc/nginx/nginx.conf';
BAIL_OUT("module not built: $module (run make)") unless -f $module;

my $readme = debian_read("$top/README.md");
my ($syn) = $readme =~ /^## Synopsis\n.*?^```nginx\n(.*?)^```$/ms;
ok($syn, 'the Synopsis has an nginx block') or BAIL_OUT('no Synopsis');

# "# /etc/nginx/..." lines start each file
my %files;
my $cur;
for my $line (split /^/, $syn) {
    if ($line =~ m{^# (/etc/nginx/\S+)\s*$}) {
        $cur = $1;
        next;
    }
    die "Synopsis: text before the first file name\n" unless $cur;
    $files{$cur} .= $line;
}
is_deeply([sort keys %files],
          ['/etc/nginx/conf.d/oauth.conf',
           '/etc/nginx/sites-available/app.example.com'],
          'a conf.d snippet and a server block');

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die $!;
    return $s->sockport;
}

my ($port, $auth) = (free_port(), free_port());

my $p = debian_layout(module => $module);
my $etc = "$p/etc/nginx";
unlink "$etc/sites-enabled/default";

for my $f (keys %files) {
    my $text = debian_rewrite($p, $files{$f});
    $text =~ s{listen 443 ssl;}{listen 127.0.0.1:$port ssl;}g;
    $text =~ s{127\.0\.0\.1:3000}{127.0.0.1:$auth}g;
    $text =~ s{proxy_pass https://www\.googleapis\.com/}
              {proxy_pass https://127.0.0.1:$auth/}g;
    (my $dst = $f) =~ s{^/etc/nginx}{$etc};
    debian_write($dst, $text);
}
symlink '../sites-available/app.example.com',
        "$etc/sites-enabled/app.example.com" or die $!;
debian_secrets($p, cli => $cli);

# the application's login: the cookie "session=alice" is user alice
debian_write("$etc/conf.d/zz-test-application.conf", <<"END");
server {
    listen 127.0.0.1:$auth;
    location = /session {
        if (\$cookie_session = alice) {
            add_header X-User-Id alice;
            return 204;
        }
        return 401;
    }
}
END

# a failed test does not leave nginx running
END {
    if ($p && -f "$p/run/nginx.pid") {
        my $pid = debian_read("$p/run/nginx.pid");
        kill 'QUIT', $1 if $pid =~ /^(\d+)/;
    }
}

my ($rc, $out) = debian_nginx_t($p);
is($rc, 0, 'nginx -t') or diag($out);

system($main::DEBIAN_NGINX, '-p', "$p/", '-c', "$etc/nginx.conf",
       '-e', "$p/var/log/nginx/error.log") == 0
    or BAIL_OUT('nginx did not start: ' . debian_read(
                "$p/var/log/nginx/error.log"));

for (1 .. 50) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    sleep 0.1;
}

sub get {
    my ($path, $cookie) = @_;
    my @c = $cookie ? ('-H', "Cookie: $cookie") : ();
    open my $fh, '-|', 'curl', '-sk', '-i', '--max-time', '10', @c,
         "https://127.0.0.1:$port$path" or die $!;
    local $/;
    my $res = <$fh>;
    close $fh;
    my ($status) = $res =~ m{^HTTP/\S+ (\d+)};
    return ($status // 0, $res);
}

my ($st, $res) = get('/oauth/api/providers', 'session=alice');
is($st, 200, 'providers for a logged-in user') or diag($res);
like($res, qr/"name":\s*"google"/, '... google');
like($res, qr/"name":\s*"shopify"/, '... shopify');

($st, $res) = get('/oauth/api/providers');
is($st, 401, 'no login: 401 from the application');

($st, $res) = get('/oauth/connect/google', 'session=alice');
is($st, 302, 'connect google') or diag($res);
like($res, qr{^Location:\s+https://accounts\.google\.com/\S*redirect_uri=
               https%3A%2F%2Fapp\.example\.com%2Foauth%2Fcallback}mx,
     '... redirects to Google with the redirect URI');

($st, $res) = get('/oauth/connect/shopify?shop=acme', 'session=alice');
is($st, 302, 'connect shopify with a shop') or diag($res);
like($res, qr{^Location: https://acme\.myshopify\.com/}m, '... the shop');

($st, $res) = get('/google/drive/v3/files', 'session=alice');
like($res, qr/"error":\s*"not_connected"/, 'google API: not connected yet');

($st, $res) = get('/metrics');
is($st, 200, 'metrics from 127.0.0.1, without a login');
like($res, qr/^# TYPE oauth_/m, '... Prometheus text');

my $errors = debian_read("$p/var/log/nginx/error.log");
unlike($errors, qr/secret-[\w.-]+-not-for-logs/, 'no secret in the log');

my $pid = debian_read("$p/run/nginx.pid");
chomp $pid;
kill 'QUIT', $pid;
for (1 .. 50) {
    last unless kill 0, $pid;
    sleep 0.1;
}
ok(!kill(0, $pid), 'nginx stopped');

done_testing();
