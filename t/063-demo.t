# The demo (make run): run.sh on a free port (PORT=N), refusing a taken
# one with a free one to try; localhost sent to 127.0.0.1; the page as
# headless Chromium renders it: a card per provider with its name and
# monogram, the empty state, a field for the shop, "Connected as ..." with
# a human expiry and Reconnect/Disconnect once an account is connected,
# and a flow's error said in words.  The screenshot is kept in
# build/demo-screenshot.png for a person to look at.

use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use FindBin;

my $top = abs_path("$FindBin::Bin/..");
my $module = $ENV{NGX_OAUTH_MODULE}
    || "$top/build/ngx_http_oauth_module.so";
my ($chromium) = grep { -x } map { "$_/chromium" } split /:/, $ENV{PATH};

plan skip_all => 'no chromium (sh .ci/deps.sh e2e installs it)'
    unless $chromium;
BAIL_OUT("module not built: $module (run make)") unless -f $module;

my $dir = tempdir('ngx-oauth-demo-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1) or die $!;
    return $s->sockport;
}

my $port = free_port();
my $base = "http://127.0.0.1:$port";

# into a file: the daemon keeps its stderr, a pipe would never end
system("DEMO_DIR=$dir/demo DEMO_DAEMON=1 PORT=$port NGX_OAUTH_MODULE=$module "
       . "sh $top/conf-examples/demo/run.sh > $dir/run.log 2>&1");
my $out = do { local (@ARGV, $/) = "$dir/run.log"; <> };
is($?, 0, "run.sh PORT=$port") or BAIL_OUT($out);
like($out, qr{demo: open http://127\.0\.0\.1:$port/}, '... says where');

END {
    if (open my $fh, '<', "$dir/demo/nginx.pid") {
        my $pid = <$fh>;
        kill 'QUIT', $1 if $pid && $pid =~ /^(\d+)/;
    }
}

for (1 .. 50) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    sleep 0.1;
}

$out = `DEMO_DIR=$dir/demo2 PORT=$port NGX_OAUTH_MODULE=$module \\
        sh $top/conf-examples/demo/run.sh 2>&1`;
isnt($?, 0, 'a taken port is refused');
like($out, qr/port $port on 127\.0\.0\.1 is taken; try: make run PORT=(\d+)/,
     '... with a free one to try');
unlike($out, qr/demo: open/, '... before announcing the address');

sub curl {
    my (@args) = @_;
    open my $fh, '-|', 'curl', '-s', '--max-time', '10', @args or die $!;
    local $/;
    my $res = <$fh>;
    close $fh;
    return $res // '';
}

like(curl('-i', '-H', "Host: localhost:$port", "$base/"),
     qr{^Location: http://127\.0\.0\.1:$port/\r?$}m,
     'localhost is sent to 127.0.0.1 before a flow starts');

sub chromium {
    my (@args) = @_;
    my $cmd = join ' ', map { "'$_'" } $chromium, '--headless',
        '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
        "--user-data-dir=$dir/chromium", '--window-size=1280,1000',
        '--virtual-time-budget=5000', @args;
    return `$cmd 2>/dev/null`;
}

# what the page shows: no script or style text
sub visible {
    my ($html) = @_;
    $html =~ s{<(script|style)\b.*?</\1>}{}gs;
    return $html;
}

my $dom = chromium('--dump-dom', "$base/");
like($dom, qr/data-loaded="1"/, 'the page loaded its data');
my @cards = $dom =~ /<section class="card" data-provider="([\w-]+)"/g;
is_deeply(\@cards, [qw(demo demo-shop demo-keys)], 'a card per provider');
like($dom, qr{<div class="mono"[^>]*>DP</div>.*?<h2>Demo Platform</h2>}s,
     'a monogram and a name');
like($dom, qr{<div class="mono"[^>]*>DS</div>.*?<h2>Demo Shop</h2>}s,
     '... for the shop');
like($dom, qr{<div id="empty" class="empty">}, 'the empty state shows');
like($dom, qr/<input name="shop"/, 'a field for the shop');
like($dom, qr/>Not connected</, 'not connected');
unlike(visible($dom), qr/\bKind\b|Circuit|oauth2/, 'no console words');

# connect the demo account, as a browser does, then look again
my $jar = "$dir/jar";
my $loc = curl('-c', $jar, '-b', $jar, '-o', '/dev/null', '-w',
               '%{redirect_url}', "$base/oauth/connect/demo?return_to=/");
like($loc, qr{/provider/authorize\?}, 'connect goes to the provider');
my ($approve) = curl($loc) =~ m{href="(/oauth/callback\?code=[^"]+)"};
$approve =~ s/&amp;/&/g if $approve;
like(curl('-c', $jar, '-b', $jar, '-o', '/dev/null', '-w',
          '%{redirect_url}', "$base$approve"),
     qr/oauth_status=connected/, 'approved');

$dom = chromium('--dump-dom', "$base/");
like($dom, qr/Connected as Demo User/, 'Connected as ...');
like($dom, qr/expires in \d+ min/, 'a human expiry');
like($dom, qr/>Reconnect</, 'Reconnect');
like($dom, qr/>Disconnect</, 'Disconnect');
like($dom, qr{<div id="empty" class="empty" hidden}, 'no empty state now');

$dom = chromium('--dump-dom',
                "$base/?oauth_status=error&oauth_provider=demo"
                . '&oauth_error=browser_mismatch');
like($dom, qr/class="toast err".*another browser or on another address/s,
     'a flow error in words');
unlike(visible($dom), qr/browser_mismatch/, '... not its code');

my $shot = "$top/build/demo-screenshot.png";
chromium("--screenshot=$shot", "$base/");
ok(-s $shot > 20_000, "screenshot $shot");
open my $png, '<', $shot or die $!;
read $png, my $magic, 8;
is($magic, "\x89PNG\r\n\x1a\n", '... a PNG');

done_testing();
