# A copy of this machine's /etc/nginx in a scratch prefix, laid out the way
# Debian's nginx packages lay it out, with every absolute path of it moved
# into the prefix: conf.d/*.conf and sites-enabled/* are included inside
# http {}, modules-enabled/*.conf in the main context.  Used by the
# examples, Synopsis and package tests (t/060, t/061, t/062).
#
#   my $p = debian_layout(module => "/abs/ngx_http_oauth_module.so");
#   debian_install($p, "conf-examples/quickstart");
#   my ($rc, $out) = debian_nginx_t($p);
#
# module => undef keeps what modules-enabled/ holds (the package test).

use strict;
use warnings;
use File::Temp qw(tempdir);
use File::Basename qw(basename dirname);
use File::Find qw(find);

our $DEBIAN_NGINX = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

sub debian_sh {
    my @cmd = @_;
    system(@cmd) == 0 or die "@cmd failed\n";
}

sub debian_write {
    my ($file, $text, $mode) = @_;
    open my $fh, '>', $file or die "$file: $!\n";
    print $fh $text;
    close $fh or die "$file: $!\n";
    chmod $mode, $file if defined $mode;
}

sub debian_read {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

# every absolute path the Debian files and the examples use, moved under
# $p; the CA bundle and the modules directory stay the machine's own

sub debian_rewrite {
    my ($p, $text) = @_;
    $text =~ s{(?<![\w/])/etc/nginx/}{$p/etc/nginx/}g;
    $text =~ s{(?<![\w/])/var/lib/nginx/}{$p/var/lib/nginx/}g;
    $text =~ s{(?<![\w/])/var/log/nginx/}{$p/var/log/nginx/}g;
    $text =~ s{(?<![\w/])/run/nginx\.pid}{$p/run/nginx.pid}g;
    $text =~ s{(?<![\w/])/etc/ssl/(certs|private)/app\.example\.com}
              {$p/etc/ssl/$1/app.example.com}g;
    return $text;
}

sub debian_rewrite_tree {
    my ($p, $dir) = @_;
    find({ no_chdir => 1, wanted => sub {
        return if -l $_ || !-f $_;
        my $mode = (stat $_)[2] & 07777;
        debian_write($_, debian_rewrite($p, debian_read($_)), $mode);
    } }, $dir);
}

sub debian_layout {
    my (%o) = @_;
    my $p = tempdir('ngx-oauth-debian-XXXXXX', TMPDIR => 1, CLEANUP => 1);

    # the workers (www-data) walk into the prefix for the store
    chmod 0755, $p;

    debian_sh('mkdir', '-p', map { "$p/$_" }
              qw(etc var/log/nginx var/lib/nginx/oauth run
                 etc/ssl/certs etc/ssl/private));
    debian_sh('cp', '-a', '/etc/nginx', "$p/etc/nginx");
    symlink '/usr/lib/nginx/modules', "$p/modules" or die "symlink: $!\n";

    # the package's state directory, as its postinst makes it
    if ($> == 0 && defined getpwnam('www-data')) {
        my ($uid, $gid) = (getpwnam('www-data'))[2, 3];
        chown $uid, $gid, "$p/var/lib/nginx/oauth";
    }
    chmod 0700, "$p/var/lib/nginx/oauth";

    if ($o{module}) {
        # only this build of the module: drop a package's enabled copy
        for my $f (glob "$p/etc/nginx/modules-enabled/*") {
            unlink $f if basename($f) =~ /oauth/;
        }
        debian_write("$p/etc/nginx/modules-enabled/50-mod-http-oauth.conf",
                     "load_module $o{module};\n");
    }

    # nginx's compiled-in temp paths are the machine's /var/lib/nginx
    debian_write("$p/etc/nginx/conf.d/000-layout-temp-paths.conf",
        join '', map { "${_}_temp_path $p/var/lib/nginx/$_;\n" }
                 qw(client_body proxy fastcgi uwsgi scgi));

    debian_sh('sh', '-c', 'openssl req -x509 -newkey ec '
              . '-pkeyopt ec_paramgen_curve:prime256v1 -nodes '
              . '-subj /CN=app.example.com -days 1 '
              . "-keyout '$p/etc/ssl/private/app.example.com.key' "
              . "-out '$p/etc/ssl/certs/app.example.com.pem' 2>/dev/null");

    debian_rewrite_tree($p, "$p/etc/nginx");

    return $p;
}

# an example laid out as an operator would: conf.d/ and snippets/ copied,
# sites-available/ copied and linked from sites-enabled/; plus the key file
# and a client secret for every secret file it names

sub debian_install {
    my ($p, $src, %o) = @_;
    my $etc = "$p/etc/nginx";

    # snippets/ shared by the examples sits beside them
    for my $sub (qw(conf.d snippets ../snippets sites-available)) {
        for my $f (glob "$src/$sub/*") {
            my $dst = "$etc/" . basename($sub) . "/" . basename($f);
            debian_write($dst, debian_rewrite($p, debian_read($f)));
            if ($sub eq 'sites-available') {
                symlink "../sites-available/" . basename($f),
                        "$etc/sites-enabled/" . basename($f)
                    or die "symlink: $!\n";
            }
        }
    }

    debian_secrets($p, %o);
}

sub debian_secrets {
    my ($p, %o) = @_;
    my $etc = "$p/etc/nginx";
    my $cli = $o{cli} || $ENV{NGX_OAUTH_CLI} || 'ngx-oauth';

    unless (-f "$etc/oauth.keys") {
        # as README.Debian says: (umask 077; ngx-oauth keygen > oauth.keys)
        debian_sh('sh', '-c', "umask 077; '$cli' keygen > '$etc/oauth.keys'");
    }

    mkdir "$etc/secrets", 0700;
    my $all = '';
    find({ no_chdir => 1, wanted => sub {
        $all .= debian_read($_) if -f $_ && !-l $_;
    } }, "$etc/conf.d", "$etc/sites-enabled");

    while ($all =~ m{client_secret_file\s+\Q$etc\E/secrets/([\w.-]+)}g) {
        debian_write("$etc/secrets/$1", "secret-$1-not-for-logs\n", 0600);
    }
}

# literal upstream host names are resolved when the configuration is read;
# a test machine may have no DNS, so they point at loopback

sub debian_no_dns {
    my ($p) = @_;
    find({ no_chdir => 1, wanted => sub {
        return if -l $_ || !-f $_;
        my $t = debian_read($_);
        (my $n = $t) =~ s{proxy_pass (https?)://[a-z0-9.-]+\.(com|net)/}
                         {proxy_pass $1://127.0.0.1/}g;
        debian_write($_, $n) if $n ne $t;
    } }, "$p/etc/nginx/sites-available");
}

sub debian_nginx_t {
    my ($p) = @_;
    my $out = `$DEBIAN_NGINX -t -p $p/ -c $p/etc/nginx/nginx.conf \\
               -e $p/var/log/nginx/error.log 2>&1`;
    return ($? >> 8, $out);
}

1;
