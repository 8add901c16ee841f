# ngx_oauth_module: build, test, run.
#
#   make            the module (build/ngx_http_oauth_module.so) and ngx-oauth
#   make deps       install the Debian packages (as root; DEPS="e2e valgrind"
#                   adds those of the slow targets); nothing else installs
#   make test       unit tests (plain and sanitized), then the Test::Nginx
#                   suites under the project's runner and, when
#                   $(TESTNGINX_LIB) exists, under the real Test::Nginx
#   make test-nginx       the suites under t/lib's own runner
#   make test-nginx-real  the suites under openresty's Test::Nginx
#   make run        the demo on http://127.0.0.1:8080/ (PORT=N for another)
#   make deb        the Debian package libnginx-mod-http-oauth (build/deb/)
#   make test-deb   make deb, then install, use and remove it (as root)
#   make fuzz       libFuzzer targets, each run briefly
#   make test-e2e   a real browser against a real authorization server
#   make valgrind   the Test::Nginx suites under valgrind (slow)
#   make bench      oauth_token against a static header, Lua and a sidecar,
#                   then the fleet mode (make bench-fleet: that alone)
#   make faults     reload, upgrade, kills, full store, crash: what was lost
#   make lint       style checks

NGINX_SRC  ?= /usr/share/nginx/src
NGINX_BIN  ?= /usr/sbin/nginx
BUILD      ?= build
ABUILD     := $(abspath $(BUILD))
CC         ?= cc
PROVE_JOBS ?= 2
# T=t/030-token.t runs one suite (or a few) under make test-nginx[-real]
T          ?= t/*.t
DEPS       ?=
# openresty's Test::Nginx (not in Debian): CI finds it next to the clone
TESTNGINX_LIB ?= ../shared/vendor/test-nginx/lib

CORE_DIR   := ngx_oauth_module/core
CORE_SRCS  := $(sort $(wildcard $(CORE_DIR)/*.c))
CORE_HDRS  := $(wildcard $(CORE_DIR)/*.h)
GLUE_SRCS  := $(wildcard ngx_oauth_module/*.c ngx_oauth_module/*.h) \
              ngx_oauth_module/providers.json config
CORE_LIBS  := -lcrypto -llmdb -ljansson
WARN       := -Wall -Wextra -Wpointer-arith -Wno-unused-parameter -Werror
CFLAGS_CORE = -O2 -g $(WARN) -I$(CORE_DIR)

UNIT_SRCS  := $(sort $(wildcard t/unit/test_*.c))
UNIT_BINS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
ASAN_BINS  := $(patsubst t/unit/%.c,$(BUILD)/unit-asan/%,$(UNIT_SRCS))
FUZZ_SRCS  := $(sort $(wildcard t/fuzz/fuzz_*.c))
FUZZ_BINS  := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

MODULE     := $(BUILD)/ngx_http_oauth_module.so
CLI        := $(BUILD)/ngx-oauth
FIXTURE    := $(BUILD)/ngx_oauth_fixture
ECHO_SO    := /usr/lib/nginx/modules/ngx_http_echo_module.so

export TEST_NGINX_BINARY ?= $(NGINX_BIN)
export TEST_NGINX_LOAD_MODULES ?= $(abspath $(MODULE)) $(wildcard $(ECHO_SO))
export NGX_OAUTH_CLI ?= $(abspath $(CLI))
export NGX_OAUTH_FIXTURE ?= $(abspath $(FIXTURE))

.PHONY: faults bench bench-fleet all module cli fixture deps check-deps unit test \
        test-nginx test-nginx-real fuzz fuzz-run run test-e2e valgrind lint \
        clean deb test-deb

all: module cli

deps:
	@sh .ci/deps.sh $(DEPS)

# says what is missing and how to install it; never installs
check-deps:
	@sh .ci/deps.sh --check $(DEPS)

module: $(MODULE)

$(BUILD)/Makefile: config ngx_oauth_module/providers.json
	@test -x $(NGINX_SRC)/configure || { \
	    echo "no nginx sources in $(NGINX_SRC):" \
	         "apt-get install nginx-dev, or make NGINX_SRC=dir"; exit 1; }
	mkdir -p $(BUILD)
	cd $(NGINX_SRC) && bash -c '. ./conf_flags 2>/dev/null; \
	    ./configure "$${NGX_CONF_FLAGS[@]:---with-compat}" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(ABUILD)' \
	    > $(ABUILD)/configure.log 2>&1 \
	    || { tail -n 20 $(ABUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/Makefile $(CORE_SRCS) $(CORE_HDRS) $(GLUE_SRCS)
	$(MAKE) -f $(ABUILD)/Makefile -C $(NGINX_SRC) modules

cli: $(CLI)

CLI_SRCS   := ngx_oauth_module/cli/ngx_oauth_cli.c \
              ngx_oauth_module/cli/ngx_oauth_cli_shared.c
PQ_INC     := $(shell pg_config --includedir 2>/dev/null \
                || echo /usr/include/postgresql)

$(CLI): $(CLI_SRCS) ngx_oauth_module/cli/ngx_oauth_cli.h $(CORE_SRCS) \
        $(CORE_HDRS)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS_CORE) -I$(PQ_INC) $(CPPFLAGS) $(CFLAGS) -o $@ \
	    $(CLI_SRCS) $(CORE_SRCS) $(LDFLAGS) $(CORE_LIBS) -lpq

fixture: $(FIXTURE)

$(FIXTURE): t/cli/ngx_oauth_fixture.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS_CORE) -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

$(BUILD)/unit/%: t/unit/%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)/unit
	$(CC) $(CFLAGS_CORE) -o $@ $< $(CORE_SRCS) $(CORE_LIBS) -lcmocka

$(BUILD)/unit-asan/%: t/unit/%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)/unit-asan
	$(CC) $(CFLAGS_CORE) -O1 -fno-omit-frame-pointer \
	    -fsanitize=address,undefined -fno-sanitize-recover=all \
	    -o $@ $< $(CORE_SRCS) $(CORE_LIBS) -lcmocka

unit: $(UNIT_BINS) $(ASAN_BINS)
	@set -e; for t in $(UNIT_BINS) $(ASAN_BINS); do \
	    echo "== $$t"; $$t; done

test: check-deps
	@$(MAKE) --no-print-directory all unit test-nginx
	@if [ -f $(TESTNGINX_LIB)/Test/Nginx/Socket.pm ]; then \
	    $(MAKE) --no-print-directory test-nginx-real; \
	else \
	    echo "no real Test::Nginx in $(TESTNGINX_LIB):" \
	         "suites ran under t/lib's runner only"; \
	fi

test-nginx: all $(FIXTURE)
	TEST_NGINX_COMPAT=1 prove -I t/lib -j$(PROVE_JOBS) $(T)

test-nginx-real: all $(FIXTURE)
	@test -f $(TESTNGINX_LIB)/Test/Nginx/Socket.pm || { \
	    echo "no Test/Nginx/Socket.pm in $(TESTNGINX_LIB):" \
	         "make test-nginx-real TESTNGINX_LIB=dir"; exit 1; }
	TEST_NGINX_REAL=1 TEST_NGINX_RANDOMIZE=1 prove -I t/lib -I $(abspath $(TESTNGINX_LIB)) \
	    -j$(PROVE_JOBS) $(T)

$(BUILD)/fuzz/%: t/fuzz/%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(BUILD)/fuzz
	clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -I$(CORE_DIR) \
	    -o $@ $< $(CORE_SRCS) $(CORE_LIBS)

# FUZZ_TARGETS=fuzz_token picks targets (default: every t/fuzz/fuzz_*.c)
FUZZ_SECONDS ?= 20
FUZZ_TARGETS ?= $(patsubst t/fuzz/%.c,%,$(FUZZ_SRCS))
fuzz:
	@sh .ci/deps.sh --check fuzz
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
	@set -e; for f in $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS)); do \
	    mkdir -p $(BUILD)/corpus/$$(basename $$f); \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        $(BUILD)/corpus/$$(basename $$f) t/fuzz/seeds/$$(basename $$f); \
	done

PORT ?= 8080

run: deps all
	PORT=$(PORT) sh conf-examples/demo/run.sh

# The package is built by Debian's own tooling (dpkg-buildpackage, dh with
# nginx-dev's nginx_mod build system) in a copy of the tree, so that the
# tree stays clean and the .deb lands in build/deb/.  Never installs
# build dependencies itself: it says what is missing.
DEB_DIR := $(BUILD)/deb

deb:
	@command -v dpkg-buildpackage >/dev/null && \
	    dpkg-checkbuilddeps >/dev/null 2>&1 || { \
	    echo "deb: missing build dependencies:"; \
	    dpkg-checkbuilddeps 2>&1 | sed 's/^/    /'; \
	    echo "    install them: apt-get install dpkg-dev debhelper" \
	         "nginx-dev libssl-dev libcurl4-openssl-dev liblmdb-dev" \
	         "libjansson-dev (or, as root: sh .ci/deps.sh deb)"; \
	    exit 1; }
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar -cf - --exclude-vcs --exclude=./build --exclude=./$(BUILD) \
	    --exclude='./t/servroot*' --exclude=node_modules --exclude=./.npm \
	    --exclude='./obj-*' . | tar -C $(DEB_DIR)/src -xf -
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc \
	    > $(ABUILD)/deb/build.log 2>&1 \
	    || { tail -n 30 $(ABUILD)/deb/build.log; exit 1; }
	rm -rf $(DEB_DIR)/src
	@ls $(DEB_DIR)/*.deb

test-deb: deb
	NGX_OAUTH_DEB="$$(ls $(ABUILD)/deb/libnginx-mod-http-oauth_*.deb)" \
	    prove -I t/lib -v t/debian/package.t

test-e2e: all
	@sh .ci/deps.sh --check e2e
	sh t/e2e/run.sh

VALGRIND_T ?= t/*.t
valgrind: all $(FIXTURE)
	@sh .ci/deps.sh --check valgrind
	TEST_NGINX_COMPAT=1 TEST_NGINX_USE_VALGRIND=1 prove -I t/lib -j1 \
	    $(VALGRIND_T)

bench: all $(FIXTURE)
	@sh .ci/deps.sh bench
	sh bench/run.sh
	sh bench/fleet.sh

# the fleet mode alone (oauth_shared_store against a single node)
bench-fleet: all $(FIXTURE)
	@sh .ci/deps.sh bench
	sh bench/fleet.sh

faults: all
	sh bench/faults.sh

lint:
	@! grep -n '.\{81\}' ngx_oauth_module/*.[ch] ngx_oauth_module/*/*.[ch]
	@! grep -nP '\t| +$$' ngx_oauth_module/*.[ch] ngx_oauth_module/*/*.[ch]
	@! grep -n '^\s*//' ngx_oauth_module/*.[ch] ngx_oauth_module/*/*.[ch]
	@! grep -ln '#include <ngx_' $(CORE_DIR)/*.[ch] ngx_oauth_module/cli/*.c
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr -I$(CORE_DIR) $(CORE_DIR) ngx_oauth_module/cli t/cli

clean:
	rm -rf $(BUILD) t/servroot*
