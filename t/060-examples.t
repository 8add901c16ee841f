# Every file in conf-examples/ passes `nginx -t` with the module loaded:
# operators copy them, so they must be valid.  Paths under /etc, /var and
# the TLS files are pointed at a scratch directory; nothing else changes.

use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Basename qw(basename);
use Cwd qw(abs_path);

use FindBin;
my $top = abs_path("$FindBin::Bin/..");
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $module = $ENV{NGX_OAUTH_MODULE}
    || "$top/build/ngx_http_oauth_module.so";

BAIL_OUT("module not built: $module (run make)") unless -f $module;

my @files = sort glob("$top/conf-examples/*.conf");
ok(@files >= 3, 'there are example files') or BAIL_OUT('no examples');

for my $file (@files) {
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(logs tmp secrets tls lib);

    # a keyring, client secrets and a certificate of the test's own
    my $key = join '', map { chr(int(rand(256))) } 1 .. 32;
    require MIME::Base64;
    open my $k, '>', "$dir/oauth.keys" or die $!;
    print $k 'k1:', MIME::Base64::encode_base64($key, ''), "\n";
    close $k;
    chmod 0600, "$dir/oauth.keys";

    for my $p (qw(google slack github shopify hubspot quickbooks)) {
        open my $s, '>', "$dir/secrets/$p" or die $!;
        print $s "secret-$p\n";
        close $s;
    }

    system('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
           '-subj', '/CN=app.example.com', '-days', '1',
           '-keyout', "$dir/tls/app.key", '-out', "$dir/tls/app.pem")
        == 0 or die 'openssl failed';

    open my $in, '<', $file or die $!;
    my $conf = do { local $/; <$in> };
    close $in;

    $conf =~ s{/etc/nginx/oauth\.keys}{$dir/oauth.keys}g;
    $conf =~ s{/etc/nginx/secrets/}{$dir/secrets/}g;
    $conf =~ s{/etc/nginx/tls/}{$dir/tls/}g;
    $conf =~ s{/var/lib/nginx/}{$dir/lib/}g;
    $conf =~ s{/var/log/nginx/}{$dir/logs/}g;
    $conf =~ s{listen 443 ssl;}{listen 127.0.0.1:1 ssl;}g;

    # no DNS here: literal upstream hosts are resolved at startup
    $conf =~ s{proxy_pass (https?)://[a-z0-9.-]+\.(com|net)/}{proxy_pass $1://127.0.0.1/}g;

    open my $out, '>', "$dir/nginx.conf" or die $!;
    print $out "load_module $module;\n",
               "pid $dir/nginx.pid;\n",
               "error_log $dir/logs/error.log;\n",
               "events { worker_connections 16; }\n",
               $conf;
    close $out;

    my $res = `$nginx -t -p $dir -c $dir/nginx.conf -e $dir/logs/error.log 2>&1`;
    is($?, 0, basename($file) . ' passes nginx -t') or diag($res);
    unlike($res, qr/secret-\w+/, basename($file) . ': no secret printed');
}

done_testing();
