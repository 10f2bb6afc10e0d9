# kvinit: PID 1 for Redis and Valkey Cluster containers.
# `make` builds build/kvinit; `make check` runs every test; `make help` lists the targets.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
DESTDIR   ?=
CC        ?= cc
PKG_CONFIG ?= pkg-config
PYTHON    ?= /usr/bin/python3

CFLAGS   ?= -O2 -g
CPPFLAGS ?=
LDFLAGS  ?=

# The sanitizer build lives beside the normal one so both can be checked without a clean in between.
ifneq ($(SANITIZE),)
BUILD    ?= build-sanitize
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD    ?= build
SAN_FLAGS :=
endif

# libseccomp is used at build time only: it compiles the child's filter (init/seccomp_gen.c). OpenSSL (libssl,
# libcrypto) is not linked: its headers give the types, and node/openssl.c loads the libraries where TLS is used
# (node/openssl.h says why).
LIBS_PC   := libcap inih hiredis
SSL_PC    := libssl libcrypto
HOSTCC    ?= cc
WARNINGS  := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
HARDENING := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
KV_CPPFLAGS = -Iinit -Inode -Inode/cluster -Isecrets -I$(BUILD)/gen -DKVINIT_VERSION='"$(VERSION)"' -D_GNU_SOURCE $(shell $(PKG_CONFIG) --cflags $(LIBS_PC) $(SSL_PC) 2>/dev/null)
KV_CFLAGS   = -std=gnu11 $(WARNINGS) $(HARDENING) $(SAN_FLAGS)
KV_LDFLAGS  = -pie -Wl,-z,relro,-z,now -Wl,--as-needed $(SAN_FLAGS)
# kvinit runs at every container start, so by default its small libraries are linked in: each shared library
# costs its loading and relocation on every start (measured 0.1-0.3 ms here, see tests/bench/pid1).
# LINK=dynamic links them as shared libraries instead, as a distribution package would.
LINK ?= static
ifeq ($(LINK),static)
KV_LIBS     = -Wl,-Bstatic $(shell $(PKG_CONFIG) --static --libs $(LIBS_PC) 2>/dev/null) -Wl,-Bdynamic
else
KV_LIBS     = $(shell $(PKG_CONFIG) --libs $(LIBS_PC) 2>/dev/null)
endif

# node/main.c sits above init/, node/ and secrets/: the roles and the exit status.
LIB_SRCS  := $(filter-out node/main.c init/seccomp_gen.c,$(wildcard init/*.c node/*.c node/*/*.c secrets/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/node/main.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HELPERS   := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(wildcard tests/helpers/*.c))
HEADERS   := $(wildcard init/*.h init/*.def node/*.h node/*.def node/*/*.h secrets/*.h tests/unit/*.h)
# The fuzz targets' build (see "Fuzzing" below): clang, libFuzzer, ASan and UBSan, in a directory of its own.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_CFLAGS  ?= -O1 -g
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_OBJS    := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all deps check unit integration e2e lint bench install uninstall clean help format image up init down hosts rotate rotate-certs \
	rotate-finish images servers matrix
all: $(BUILD)/kvinit

$(BUILD)/%.o: %.c $(HEADERS) | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(CC) $(KV_CPPFLAGS) $(CPPFLAGS) $(KV_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/seccomp_gen: init/seccomp_gen.c | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(HOSTCC) -std=gnu11 $(WARNINGS) -D_GNU_SOURCE -O2 -o $@ $< $(shell $(PKG_CONFIG) --cflags --libs libseccomp)

$(BUILD)/gen/seccomp_bpf.h: $(BUILD)/gen/seccomp_gen
	$< $(shell $(CC) -dumpmachine) > $@.tmp && mv $@.tmp $@

$(BUILD)/init/seccomp.o: $(BUILD)/gen/seccomp_bpf.h

$(BUILD)/libkvinit.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/kvinit: $(MAIN_OBJ) $(BUILD)/libkvinit.a
	$(CC) $(KV_CFLAGS) $(CFLAGS) $(KV_LDFLAGS) $(LDFLAGS) -o $@ $^ $(KV_LIBS)

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libkvinit.a $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(KV_CPPFLAGS) $(CPPFLAGS) $(KV_CFLAGS) $(CFLAGS) $(KV_LDFLAGS) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libkvinit.a $(KV_LIBS) $(shell $(PKG_CONFIG) --libs cmocka $(SSL_PC) 2>/dev/null)

# move_slots drives the slot mover (node/cluster/migrate.c), so it links the library like the unit tests
$(BUILD)/tests/move_slots: tests/helpers/move_slots.c $(BUILD)/libkvinit.a $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(KV_CPPFLAGS) $(CPPFLAGS) $(KV_CFLAGS) $(CFLAGS) $(KV_LDFLAGS) $(LDFLAGS) -o $@ $< \
		$(BUILD)/libkvinit.a $(KV_LIBS)

$(BUILD)/tests/%: tests/helpers/%.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARNINGS) $(CPPFLAGS) $(CFLAGS) -D_GNU_SOURCE $(LDFLAGS) -o $@ $<

# The build needs the -dev packages; the stamp makes `make` check for them once, not on every object.
$(BUILD)/.deps-ok:
	@tests/deps.sh build
	@mkdir -p $(@D) && touch $@

deps:
	@tests/deps.sh build test lint

# The end-to-end tests (Docker, the images, compose) run with the normal build; the sanitizer build's check runs
# the unit and integration tests, since the images hold the normal build.
check: deps $(BUILD)/kvinit $(UNIT_BINS) $(HELPERS) $(if $(SANITIZE),,images servers $(FUZZ_BINS))
	@E2E=$(if $(SANITIZE),0,1) MATRIX=$(if $(SANITIZE),0,1) REFERENCE=$(if $(SANITIZE),0,1) FUZZ_BUILD=$(if $(SANITIZE),,$(FUZZ_BUILD)) \
		tests/check.sh $(BUILD)

unit: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do $$t || exit 1; done

integration: $(BUILD)/kvinit $(HELPERS)
	KVINIT_BIN=$(BUILD)/kvinit KVINIT_PROBE=$(BUILD)/tests/probe $(PYTHON) -m pytest -q tests/integration

C_SOURCES = $(wildcard init/*.c init/*.h node/*.c node/*.h node/*/*.c node/*/*.h secrets/*.c secrets/*.h images/*.c tests/unit/*.c tests/unit/*.h tests/helpers/*.c)
SHELL_SCRIPTS = $(shell grep -rlE '^\#!/usr/bin/env bash|^\#!/bin/(ba)?sh' .ci tests images compose 2>/dev/null)

# clang-tidy compiles init/seccomp.c, which includes the filter generated at build time
lint: deps $(BUILD)/.deps-ok $(BUILD)/gen/seccomp_bpf.h
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance --std=c11 \
		--inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -Iinit -Inode init node secrets
	clang-tidy --quiet $(wildcard init/*.c node/*.c node/*/*.c secrets/*.c images/*.c) -- $(KV_CPPFLAGS) -std=gnu11
	shellcheck $(SHELL_SCRIPTS)
	clang-format --dry-run --Werror $(C_SOURCES)
	@echo "lint: ok"

format:
	clang-format -i $(C_SOURCES)

bench: $(BUILD)/kvinit $(BUILD)/tests/move_slots
	@tests/deps.sh bench
	KVINIT_BIN=$(BUILD)/kvinit tests/bench/pid1
	KVINIT_BIN=$(BUILD)/kvinit tests/bench/restart
	KVINIT_BIN=$(BUILD)/kvinit tests/bench/formation
	KVINIT_BIN=$(BUILD)/kvinit KVINIT_MOVE_SLOTS=$(BUILD)/tests/move_slots tests/bench/reshard
	KVINIT_BIN=$(BUILD)/kvinit tests/bench/tls

install: $(BUILD)/kvinit
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BUILD)/kvinit $(DESTDIR)$(BINDIR)/kvinit

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/kvinit

clean:
	rm -rf build build-sanitize

help:
	@echo "make            build $(BUILD)/kvinit"
	@echo "make check      run every test: unit (cmocka), integration (pytest, real servers, also against tini,"
	@echo "                dumb-init, catatonit), the Kubernetes manifest checks, and end to end in Docker (builds"
	@echo "                the images first); SANITIZE=address,undefined: unit and integration (kvinit's runs"
	@echo "                only) on an ASan/UBSan build"
	@echo "make lint       cppcheck, clang-tidy, shellcheck, clang-format"
	@echo "make bench      benchmarks against tini, dumb-init, catatonit"
	@echo "make fuzz       every fuzz target FUZZ_SECONDS=$(FUZZ_SECONDS) on its corpus (clang, libFuzzer, ASan/UBSan)"
	@echo "make fuzz-smoke every fuzz target over its corpus and a few seconds (what make check runs)"
	@echo "make deps       install missing Debian packages (as root)"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)"
	@echo "make image      the image kvinit:SERVER (redis-7.0 redis-8.0 valkey-8.1 valkey-9; default redis-8.0 = latest)"
	@echo "                and kvinit-exporter, from Debian packages; make images builds them all"
	@echo "make servers    the test server matrix under $(BUILD)/servers; make matrix runs the matrix tests on each"
	@echo "make up         run a compose layout (LAYOUT=main|cache-cluster|announce|sentinel), ready once every"
	@echo "                replica's link is up; make down [PURGE=1]; TLS=1: every link TLS, with a CA and"
	@echo "                certificates made under compose/secrets/tls/ when missing (the exporter scrapes over TLS)"
	@echo "make init       run the layout's cluster-init again (LAYOUT=main|cache-cluster|announce)"
	@echo "make hosts      the hosts line for host access to the main layout"
	@echo "make rotate     a new password, live: every node accepts it, then sends it (LAYOUT=...)"
	@echo "make rotate-finish  once clients use the new password: every node refuses the old one"
	@echo "make rotate-certs   new TLS certificates from the same CA, written in place: the nodes load them live"
	@echo "make scale NODES=8|6  the main layout out to 8 nodes (slots moved online) and back (drained, removed)"

# --- Fuzzing (tests/fuzz/README.md): one libFuzzer target per parser, built with clang, ASan and UBSan into
# $(FUZZ_BUILD) from the same sources and KV_CPPFLAGS (the gcc build above is left as it is). `make fuzz` runs each
# target FUZZ_SECONDS on its corpus; `make fuzz-smoke` runs each over its corpus and a few seconds more (make check).
# CFLAGS are the gcc build's, for $(CC): the fuzz build takes FUZZ_CFLAGS. Like tests/unit, the targets are in the
# clang-format check only: cppcheck and clang-tidy read the program (both pass on the targets as written), and the
# targets themselves run under the sanitizers.
C_SOURCES    += $(wildcard tests/*.h tests/fuzz/*.c tests/fuzz/*.h)

.PHONY: fuzz fuzz-smoke fuzz-build clean-fuzz
$(BUILD)/tests/test_render: tests/ref_splitargs.h

$(FUZZ_BUILD)/%.o: %.c $(HEADERS) | $(FUZZ_BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(KV_CPPFLAGS) $(CPPFLAGS) -std=gnu11 $(WARNINGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(FUZZ_CFLAGS) \
		-c $< -o $@

# seccomp.c includes the filter the gcc build generates (KV_CPPFLAGS has -I$(BUILD)/gen).
$(FUZZ_BUILD)/init/seccomp.o: $(BUILD)/gen/seccomp_bpf.h

$(FUZZ_BUILD)/libkvinit.a: $(FUZZ_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/ref_splitargs.h $(FUZZ_BUILD)/libkvinit.a $(HEADERS)
	$(FUZZ_CC) $(KV_CPPFLAGS) $(CPPFLAGS) -std=gnu11 $(WARNINGS) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_CFLAGS) \
		$(LDFLAGS) -o $@ $< $(FUZZ_BUILD)/libkvinit.a $(KV_LIBS)

# clang and its libFuzzer runtime are needed by these targets only.
$(FUZZ_BUILD)/.deps-ok:
	@tests/deps.sh build fuzz
	@mkdir -p $(@D) && touch $@

fuzz-build: $(FUZZ_BINS)

fuzz: $(FUZZ_BINS)
	@tests/fuzz/run.sh run $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: $(FUZZ_BINS)
	@tests/fuzz/run.sh smoke $(FUZZ_BUILD)

clean: clean-fuzz
clean-fuzz:
	rm -rf $(FUZZ_BUILD)

# --- Container images (images/README.md): kvinit:NAME for each server NAME (images/servers.sh), each from the Debian
# suite that carries it, and kvinit-exporter, FROM scratch from Debian packages (cached in $(BUILD)/debs, apt state
# per suite in $(BUILD)/apt) with no registry; a rebuild with no change is fast. kvinit:latest is redis-8.0.
# SERVER defaults to the image of KVINIT_IMAGE=kvinit:NAME, else to the LAYOUT's (announce: valkey-9, else redis-8.0).
IMAGE_REVISION ?= $(shell git describe --always --dirty --abbrev=40 --exclude='*' 2>/dev/null || echo unknown)
IMAGE_SOURCE   ?= $(shell git config --get remote.origin.url 2>/dev/null)
IMAGE_ENV       = BUILD=$(BUILD) KVINIT_BIN=$(BUILD)/kvinit VERSION=$(VERSION) REVISION=$(IMAGE_REVISION) \
	SOURCE=$(IMAGE_SOURCE)
IMAGES         ?= $(shell images/servers.sh images)
LAYOUT_SERVER   = $(if $(filter announce,$(LAYOUT)),valkey-9,redis-8.0)
SERVER         ?= $(or $(patsubst kvinit:%,%,$(filter kvinit:%,$(KVINIT_IMAGE))),$(LAYOUT_SERVER))

image: $(BUILD)/kvinit
	@images/docker-engine.sh
	@$(IMAGE_ENV) images/image.sh $(SERVER)

images: $(BUILD)/kvinit
	@images/docker-engine.sh
	@$(IMAGE_ENV) images/image.sh $(IMAGES)

# --- The server matrix of the integration tests: each server unpacked from its suite under $(BUILD)/servers and
# run through that suite's loader (images/servers.sh); `make matrix` runs the tests marked `matrix` against each.
MATRIX_SERVERS ?=
servers:
	@BUILD=$(BUILD) images/servers.sh unpack $(MATRIX_SERVERS)

matrix: $(BUILD)/kvinit $(HELPERS) servers
	@tests/matrix.sh $(BUILD) $(MATRIX_SERVERS)

# The compose layouts (compose/): LAYOUT=main (default), cache-cluster, announce or sentinel.
up: image
	@TLS=$(TLS) compose/stack.sh up

# cluster-init again on the running layout, by `compose up` of its one container (see compose/stack.sh).
init:
	@TLS=$(TLS) compose/stack.sh init

down:
	@compose/stack.sh down

hosts:
	@compose/stack.sh hosts

rotate:
	@compose/stack.sh rotate

rotate-finish:
	@compose/stack.sh rotate-finish

# new TLS certificates from the layout's CA (`make up TLS=1` made it), written in place: the nodes reload them live.
rotate-certs:
	@compose/stack.sh rotate-certs

# `make scale NODES=8` adds redis-node-6 and -7 to the main layout and reshapes the cluster online; NODES=6 drains
# and removes them (compose/scale.sh, compose/docker-compose.scale.yml).
.PHONY: scale
scale:
	@NODES=$(NODES) compose/scale.sh

e2e: images
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e
