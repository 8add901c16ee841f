# The ngx-oauth command against stores filled by t/cli/ngx_oauth_fixture.c.
#
# Core Perl only (Test::More, JSON::PP, MIME::Base64, File::Temp).  Builds
# nothing: the binaries come from the Makefile (make cli, and the fixture
# rule), found through NGX_OAUTH_CLI and NGX_OAUTH_FIXTURE or under build/.
# A missing binary is a failure, never a skip.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Spec;
use File::Temp qw(tempdir);
use FindBin;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX qw(strftime);
use Test::More;

my $root = abs_path("$FindBin::Bin/..");

sub binary {
    my ($env, $default) = @_;
    my $path = $ENV{$env} // $default;

    return File::Spec->file_name_is_absolute($path)
           ? $path : File::Spec->catfile($root, $path);
}

my $cli = binary('NGX_OAUTH_CLI', 'build/ngx-oauth');
my $fixture = binary('NGX_OAUTH_FIXTURE', 'build/ngx_oauth_fixture');

my $missing = 0;

for ([$cli, 'NGX_OAUTH_CLI', 'make cli'],
     [$fixture, 'NGX_OAUTH_FIXTURE', 'make fixture'])
{
    my ($path, $env, $how) = @$_;

    next if ok(-x $path, "binary $path exists");

    diag("$path is missing or not executable: build it with '$how' "
         . "or point $env at it");
    $missing++;
}

if ($missing) {
    done_testing();
    exit 1;
}

my $dir = tempdir('ngx-oauth-cli-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# runs a command without a shell: { out, err, rc }

sub run {
    my @cmd = @_;
    my ($out, $err) = ("$dir/.out", "$dir/.err");

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open(STDOUT, '>', $out) or die "stdout: $!";
        open(STDERR, '>', $err) or die "stderr: $!";
        exec(@cmd) or die "exec $cmd[0]: $!";
    }

    waitpid($pid, 0);

    my $status = $?;

    return {
        out => slurp($out),
        err => slurp($err),
        rc  => ($status & 127) ? 128 + ($status & 127) : $status >> 8,
    };
}

sub slurp {
    my ($path) = @_;

    open(my $fh, '<', $path) or die "$path: $!";
    local $/;
    my $s = <$fh>;
    close($fh);

    return $s // '';
}

sub spew {
    my ($path, $text, $mode) = @_;

    open(my $fh, '>', $path) or die "$path: $!";
    print $fh $text;
    close($fh);
    chmod($mode // 0600, $path) or die "chmod $path: $!";
}

sub cli { run($cli, @_) }

sub fill {
    my ($store, $keys, @args) = @_;
    my $r = run($fixture, '--store', $store, '--key-file', $keys, @args);

    is($r->{rc}, 0, "fixture @args[0 .. 3]") or diag($r->{err});
}

# stdout and stderr of every call, to prove no secret ever shows

my @seen;

sub cli_seen {
    my $r = cli(@_);
    push @seen, $r->{out}, $r->{err};
    return $r;
}

sub no_secret_in {
    my ($what, @secrets) = @_;
    my $all = join('', @seen);

    for my $s (@secrets) {
        ok(index($all, $s) < 0, "$what: \"$s\" never printed");
    }
}

sub usage_error {
    my ($name, @args) = @_;
    my $r = cli_seen(@args);

    is($r->{rc}, 2, "$name: exit 2");
    like($r->{err}, qr/^ngx-oauth: \S/, "$name: message on stderr");
    is($r->{out}, '', "$name: nothing on stdout");
}

sub mode_of { (stat($_[0]))[2] & 07777 }

my $rfc3339 = qr/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;
my $line_re = qr/^([A-Za-z0-9._-]{1,32}):([A-Za-z0-9+\/]{43}=)\n\z/;


# keygen

{
    my $r = cli('keygen');
    is($r->{rc}, 0, 'keygen: exit 0 without --store or --key-file');
    is($r->{err}, '', 'keygen: quiet on stderr');
    like($r->{out}, $line_re, 'keygen: one KID:BASE64 line');

    my ($kid, $b64) = $r->{out} =~ $line_re;
    my @days = map { strftime('k%Y%m%d', gmtime(time() - $_)) } 0, 86400;

    ok(defined $kid && grep({ $_ eq $kid } @days),
       "keygen: default key id is k + UTC date ($kid)");
    is(length(decode_base64($b64 // '')), 32, 'keygen: 32 bytes of key');

    my %keys;

    for (1 .. 20) {
        my $k = cli('keygen', 'uniq')->{out};
        $keys{$k}++;
    }

    is(scalar(keys %keys), 20, 'keygen: 20 keys, all different');

    $r = cli('keygen', 'Key_1.a-b');
    like($r->{out}, qr/^Key_1\.a-b:[A-Za-z0-9+\/]{43}=\n\z/,
         'keygen: explicit key id');

    $r = cli('keygen', 'x' x 32);
    is($r->{rc}, 0, 'keygen: 32-character key id accepted');

    usage_error(sprintf("keygen bad kid '%s'", $_ =~ s/\n/\\n/r),
                'keygen', $_)
        for ('x' x 33, 'a:b', 'sp ace', "new\nline", '#c', "caf\xc3\xa9", '');

    usage_error('keygen two ids', 'keygen', 'a', 'b');
}


# keys and a store

my %key;

for my $name (qw(old new other)) {
    my $r = cli('keygen', $name);
    is($r->{rc}, 0, "keygen $name");
    $key{$name} = $r->{out};
    spew("$dir/keys.$name", $r->{out});
}

spew("$dir/keys.both", $key{new} . "# the old key only opens\n" . $key{old});

my $store = "$dir/oauth.mdb";

my %tok = (
    a1_access  => 'ya29.A1-access-' . ('q' x 40),
    a1_refresh => '1//A1-refresh-zzz',
    a2_access  => 'ya29.A2-access-xyz',
    t1_access  => 'xoxb-T1-slack-token',
    b_secret   => 'sk_live_B-stripe-secret',
);

fill($store, "$dir/keys.old", qw(conn alice google a1),
     @tok{qw(a1_access a1_refresh)});
fill($store, "$dir/keys.old", qw(conn alice google a2), $tok{a2_access});
fill($store, "$dir/keys.old", qw(conn alice slack T1), $tok{t1_access});
fill($store, "$dir/keys.old", qw(secret bob stripe acct_1), $tok{b_secret});
fill($store, "$dir/keys.old", qw(flow state-expired-1 alice google -60));
fill($store, "$dir/keys.old", qw(flow state-expired-2 bob google -1));
fill($store, "$dir/keys.old", qw(flow state-live alice google 600));

my @secrets = (values(%tok), map { (split /:/, $key{$_})[1] } keys %key);
chomp(@secrets);


# list

{
    my $r = cli_seen('--store', $store, 'list');
    is($r->{rc}, 0, 'list: exit 0 without --key-file');

    my @lines = split /\n/, $r->{out};
    is($lines[0], join("\t", qw(owner provider account kind status
                                 expires_at updated_at keys)),
       'list: header line');
    is(scalar(@lines), 5, 'list: four connections');

    my %row = map { my @f = split /\t/; ("$f[0]/$f[1]/$f[2]" => \@f) }
              @lines[1 .. $#lines];

    my $a1 = $row{'alice/google/a1'};
    ok($a1, 'list: alice/google/a1 listed');
    is_deeply([@$a1[3, 4]], [qw(oauth2 connected)], 'list: kind, status');
    like($a1->[5], qr/^$rfc3339\z/, 'list: expires_at is RFC 3339 UTC');
    like($a1->[6], qr/^$rfc3339\z/, 'list: updated_at is RFC 3339 UTC');
    is($a1->[7], 'access=old,refresh=old', 'list: key id of each value');
    is($row{'alice/slack/T1'}[7], 'access=old', 'list: access only');

    my $b = $row{'bob/stripe/acct_1'};
    is_deeply([@$b[3, 5, 7]], ['api_key', '-', 'credentials=old'],
              'list: api_key without expiry');

    $r = cli_seen('list', '--owner', 'alice', '--store', $store);
    is(scalar(split /\n/, $r->{out}), 4, 'list --owner: alice only');
    unlike($r->{out}, qr/^bob/m, 'list --owner: no bob');

    $r = cli_seen('--store', $store, 'list', '--provider=google');
    is(scalar(split /\n/, $r->{out}), 3, 'list --provider: google only');

    $r = cli_seen('--store', $store, 'list', '--owner', 'alice',
                  '--provider', 'slack');
    like($r->{out}, qr/\nalice\tslack\tT1\t[^\n]*\n\z/,
         'list --owner --provider');

    $r = cli_seen('--store', $store, 'list', '--owner', 'nobody');
    is(scalar(split /\n/, $r->{out}), 1, 'list: unknown owner, header only');

    $r = cli_seen('--store', $store, '--key-file', "$dir/keys.old", 'list',
                  '--json');
    is($r->{rc}, 0, 'list --json: exit 0');

    my $list = eval { decode_json($r->{out}) };
    is(ref($list), 'ARRAY', 'list --json: a JSON array') or diag($@);
    is(scalar(@{ $list // [] }), 4, 'list --json: four connections');

    my ($j) = grep { $_->{account} eq 'a1' } @{ $list // [] };
    is($j->{owner}, 'alice', 'list --json: owner');
    is($j->{provider}, 'google', 'list --json: provider');
    is($j->{kind}, 'oauth2', 'list --json: kind');
    is($j->{status}, 'connected', 'list --json: status');
    like($j->{expires_at}, qr/^$rfc3339\z/, 'list --json: expires_at');
    like($j->{updated_at}, qr/^$rfc3339\z/, 'list --json: updated_at');
    is_deeply($j->{keys}, { access => 'old', refresh => 'old' },
              'list --json: key ids');
    is($j->{version}, 1, 'list --json: version');

    my ($s) = grep { $_->{account} eq 'acct_1' } @{ $list // [] };
    ok(exists $s->{expires_at} && !defined $s->{expires_at},
       'list --json: no expiry is null');
    is_deeply($s->{keys}, { credentials => 'old' },
              'list --json: credentials key id');

    $r = cli_seen('--store', $store, 'list', '--json', '--owner', 'nobody');
    is($r->{out}, "[\n]\n", 'list --json: empty array');

    # owners are whatever nginx had: one line and one cell each, valid JSON

    my $odd = "$dir/odd.mdb";

    fill($odd, "$dir/keys.old", 'conn', "tab\there", 'google',
         "line\nbreak\\", 'ODD-1');
    fill($odd, "$dir/keys.old", 'conn', "bin\xff\xfe", 'google', "z\xc3\xab",
         'ODD-2');

    $r = cli_seen('--store', $odd, 'list');
    my @rows = sort grep { !/^owner\t/ } split /\n/, $r->{out};
    is(scalar(@rows), 2, 'list: odd names stay one line each');
    like($rows[1], qr/^tab\\x09here\tgoogle\tline\\x0abreak\\x5c\toauth2\t/,
         'list: control characters and backslash escaped');
    like($rows[0], qr/^bin\xff\xfe\tgoogle\tz\xc3\xab\t/,
         'list: other bytes as they are');

    $r = cli_seen('--store', $odd, 'list', '--json');
    $list = eval { decode_json($r->{out}) };
    is(ref($list), 'ARRAY', 'list --json: odd names, valid JSON') or diag($@);

    my %by = map { ($_->{owner} => $_) } @{ $list // [] };
    is($by{"tab\there"}{account}, "line\nbreak\\",
       'list --json: escaped strings round-trip');
    is($by{'bin??'}{account}, "z\x{eb}",
       'list --json: bytes that are not UTF-8 shown as ?');
    push @secrets, qw(ODD-1 ODD-2);

    no_secret_in('list', @secrets);
}


# check

{
    my $r = cli_seen('--store', $store, '--key-file', "$dir/keys.old",
                     'check');
    is($r->{rc}, 0, 'check: exit 0 when every value opens');
    is($r->{out}, "checked 5 sealed values in 4 connections: 5 ok, "
                  . "0 failed\n"
                  . "checked 3 PKCE verifiers of flows under way: 3 ok, "
                  . "0 failed\n", 'check: summary');

    $r = cli_seen('check', '--key-file', "$dir/keys.new", '--store', $store);
    is($r->{rc}, 1, 'check: exit 1 with a ring missing the key');
    like($r->{out},
         qr/^failed\talice\tgoogle\ta1\taccess\tunknown key id\told$/m,
         'check: unknown key reported');
    like($r->{out}, qr/0 ok, 5 failed\n.*: 0 ok, 3 failed\n\z/,
         'check: every value failed, flows too');
    like($r->{out}, qr/^failed\talice\tgoogle\t-\tpkce\tunknown key id\told$/m,
         'check: a flow verifier under an unknown key is reported');

    # a second store for damaged records

    my $bad = "$dir/bad.mdb";

    fill($bad, "$dir/keys.old", qw(conn carol google c1 CAROL-ACCESS
                                   CAROL-REFRESH));
    fill($bad, "$dir/keys.old", qw(conn carol github c2 CAROL-GH-ACCESS));
    fill($bad, "$dir/keys.other", qw(conn carol slack c3 CAROL-SLACK));
    fill($bad, "$dir/keys.old", qw(secret dave stripe d1 DAVE-SECRET));

    $r = cli_seen('--store', $bad, '--key-file', "$dir/keys.old", 'check');
    is($r->{rc}, 1, 'check: a value sealed under a foreign key fails');
    like($r->{out},
         qr/^failed\tcarol\tslack\tc3\taccess\tunknown key id\tother$/m,
         'check: foreign key named');

    fill($bad, "$dir/keys.old", qw(tamper carol google c1 access));
    fill($bad, "$dir/keys.old", qw(move dave stripe d1 credentials access));

    $r = cli_seen('--store', $bad, '--key-file', "$dir/keys.old", 'check');
    is($r->{rc}, 1, 'check: exit 1 after tampering');

    my @failed = sort grep { /^failed\t/ } split /\n/, $r->{out};
    is_deeply(\@failed, [
        "failed\tcarol\tgoogle\tc1\taccess\tauthentication failed\told",
        "failed\tcarol\tslack\tc3\taccess\tunknown key id\tother",
        "failed\tdave\tstripe\td1\taccess\tauthentication failed\told",
    ], 'check: one line per failure: tampered, foreign, moved');
    is((split /\n/, $r->{out})[-1],
       'checked 6 sealed values in 4 connections: 3 ok, 3 failed',
       'check: summary counts failures');

    # rotation leaves what it cannot open alone, and says so

    $r = cli_seen('--store', $bad, '--key-file', "$dir/keys.both", 'rotate');
    is($r->{rc}, 1, 'rotate: exit 1 when some values do not open');
    like($r->{out},
         qr/^failed\tcarol\tgoogle\tc1\taccess\tauthentication failed\told$/m,
         'rotate: tampered value reported');
    is((split /\n/, $r->{out})[-1],
       'rotated 3 sealed values in 4 connections to key new: '
       . '0 already under it, 3 failed', 'rotate: counts');

    $r = cli_seen('--store', $bad, '--key-file', "$dir/keys.new", 'check');
    like($r->{out}, qr/: 3 ok, 3 failed\n\z/,
         'rotate: the values that opened are under the new key');

    push @secrets, qw(CAROL-ACCESS CAROL-REFRESH CAROL-GH-ACCESS CAROL-SLACK
                      DAVE-SECRET);
    no_secret_in('check', @secrets);
}


# rotate

{
    my $r = cli_seen('--store', $store, '--key-file', "$dir/keys.both",
                     'rotate');
    is($r->{rc}, 0, 'rotate: exit 0');
    is($r->{out}, "rotated 5 sealed values in 4 connections to key new: "
                  . "0 already under it, 0 failed\n"
                  . "rotated 3 PKCE verifiers of flows under way, 0 failed\n",
       'rotate: counts, flows too');

    $r = cli_seen('--store', $store, '--key-file', "$dir/keys.new", 'check');
    is($r->{rc}, 0, 'rotate: check with the new key alone passes');

    $r = cli_seen('--store', $store, '--key-file', "$dir/keys.old", 'check');
    is($r->{rc}, 1, 'rotate: the old key alone opens nothing');

    $r = cli_seen('--store', $store, 'list', '--json');
    my $list = decode_json($r->{out});
    my ($j) = grep { $_->{account} eq 'a1' } @$list;
    is_deeply($j->{keys}, { access => 'new', refresh => 'new' },
              'rotate: list names the new key');
    is($j->{version}, 2, 'rotate: put as a new version');

    for ([qw(alice google a1 access a1_access)],
         [qw(alice google a1 refresh a1_refresh)],
         [qw(alice slack T1 access t1_access)],
         [qw(bob stripe acct_1 credentials b_secret)])
    {
        my @c = @$_;
        my $o = run($fixture, '--store', $store, '--key-file',
                    "$dir/keys.new", 'open', @c[0 .. 3]);
        is($o->{out}, "$tok{$c[4]}\n", "rotate: @c[0 .. 3] keeps its value");
    }

    $r = cli_seen('--store', $store, '--key-file', "$dir/keys.both",
                  'rotate');
    is($r->{rc}, 0, 'rotate again: exit 0');
    is($r->{out}, "rotated 0 sealed values in 0 connections to key new: "
                  . "5 already under it, 0 failed\n",
       'rotate again: values under the active key are left alone');

    $r = cli_seen('--store', $store, 'list', '--json');
    ($j) = grep { $_->{account} eq 'a1' } @{ decode_json($r->{out}) };
    is($j->{version}, 2, 'rotate again: nothing rewritten');

    no_secret_in('rotate', @secrets);
}


# purge

{
    my $r = cli('--store', $store, 'purge');
    is($r->{rc}, 0, 'purge: exit 0');
    is($r->{out}, "purged 2 expired flows\n", 'purge: expired flows only');

    $r = cli('purge', '--store', $store);
    is($r->{out}, "purged 0 expired flows\n", 'purge: nothing left to purge');

    isnt(run($fixture, '--store', $store, '--key-file', "$dir/keys.new",
             qw(flow state-live alice google 600))->{rc},
         0, 'purge: the live flow was kept (its state is still taken)');
}


# backup

{
    my $dest = "$dir/backup.mdb";

    my $r = cli('--store', $store, 'backup', $dest);
    is($r->{rc}, 0, 'backup: exit 0') or diag($r->{err});
    ok(-f $dest, 'backup: file written');
    is(mode_of($dest), 0600, 'backup: mode 0600');

    is(cli('--store', $dest, 'list')->{out},
       cli('--store', $store, 'list')->{out},
       'backup: same connections');

    $r = cli('--store', $dest, '--key-file', "$dir/keys.new", 'check');
    is($r->{rc}, 0, 'backup: every value opens in the copy');

    my $size = -s $dest;

    $r = cli('--store', $store, 'backup', $dest);
    is($r->{rc}, 2, 'backup: existing destination refused with exit 2');
    like($r->{err}, qr/^ngx-oauth: backup: .*exists/, 'backup: says why');
    is(-s $dest, $size, 'backup: existing destination untouched');

    $r = cli('--store', $store, 'backup', "$dir/no/such/dir/b.mdb");
    is($r->{rc}, 2, 'backup: unwritable destination, exit 2');
}


# usage errors: exit 2

{
    my $r = cli('--help');
    is($r->{rc}, 0, '--help: exit 0');
    like($r->{out}, qr/^usage: ngx-oauth --store PATH --key-file FILE/,
         '--help: usage on stdout');

    $r = cli('--version');
    is($r->{rc}, 0, '--version: exit 0');
    like($r->{out}, qr/^ngx-oauth \d+\.\d+/, '--version');

    my @s = ('--store', $store);
    my @k = ('--key-file', "$dir/keys.new");

    usage_error('no command');
    usage_error('unknown command', @s, 'frobnicate');
    usage_error('unknown option', @s, 'list', '--color');
    usage_error('option without value', 'list', '--store');
    usage_error('empty option value', '--store=', 'list');
    usage_error('duplicate option', @s, @s, 'list');
    usage_error('list with an argument', @s, 'list', 'extra');
    usage_error('--json with check', @s, @k, 'check', '--json');
    usage_error('--owner with rotate', @s, @k, 'rotate', '--owner', 'x');
    usage_error('list without --store', 'list');
    usage_error('check without --key-file', @s, 'check');
    usage_error('rotate without --key-file', @s, 'rotate');
    usage_error('backup without DEST', @s, 'backup');
    usage_error('backup with two DESTs', @s, 'backup', "$dir/x", "$dir/y");
    usage_error('purge with an argument', @s, 'purge', 'now');

    chdir($dir) or die "chdir: $!";
    $r = cli(@s, 'backup', '--', '-dash.mdb');
    chdir($root) or die "chdir: $!";
    is($r->{rc}, 0, '--: a destination that starts with a dash');
    ok(-f "$dir/-dash.mdb", '--: backup written');
}


# store or key file that cannot be opened: exit 3

{
    my $nostore = "$dir/missing.mdb";

    my $r = cli_seen('--store', $nostore, 'list');
    is($r->{rc}, 3, 'missing store: exit 3');
    like($r->{err}, qr/^ngx-oauth: .*missing\.mdb/, 'missing store: named');
    ok(!-e $nostore, 'missing store: not created');

    $r = cli('--store', $nostore, '--key-file', "$dir/keys.new", 'check');
    is($r->{rc}, 3, 'missing store: check exit 3');

    spew("$dir/junk.mdb", "this is not an LMDB file\n" x 400);
    $r = cli('--store', "$dir/junk.mdb", 'list');
    is($r->{rc}, 3, 'not a store: exit 3');
    like($r->{err}, qr/^ngx-oauth: /, 'not a store: message');

    $r = cli('--store', $dir, 'list');
    is($r->{rc}, 3, 'a directory as store: exit 3');

    $r = cli('--store', $store, '--key-file', "$dir/keys.missing", 'check');
    is($r->{rc}, 3, 'missing key file: exit 3');
    like($r->{err}, qr/^ngx-oauth: .*keys\.missing/, 'missing key file');

    spew("$dir/keys.group", $key{new}, 0640);
    $r = cli_seen('--store', $store, '--key-file', "$dir/keys.group", 'check');
    is($r->{rc}, 3, 'group-readable key file: exit 3');
    like($r->{err}, qr/^ngx-oauth: .*group or others/,
         'group-readable key file: says why');
    no_secret_in('key file errors', @secrets);

    spew("$dir/keys.world", $key{new}, 0604);
    $r = cli('--store', $store, '--key-file', "$dir/keys.world", 'rotate');
    is($r->{rc}, 3, 'world-readable key file: exit 3');

    spew("$dir/keys.short", "short:" . ('A' x 20) . "\n");
    $r = cli_seen('--store', $store, '--key-file', "$dir/keys.short", 'check');
    is($r->{rc}, 3, 'key of a wrong length: exit 3');
    like($r->{err}, qr/^ngx-oauth: .*line 1/, 'wrong length: line named');

    $r = cli('--store', $store, '--key-file', "$dir/keys.short", 'list');
    is($r->{rc}, 0, 'list does not read the key file');
}


done_testing();
