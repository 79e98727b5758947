# fedrec: make demo · make test · make bench
# Installs what the system lacks (Debian packages) before building, so a fresh machine
# needs nothing by hand.

SWIFT    ?= swift
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE  := .build/release
DEBUG    := .build/debug

.PHONY: all deps build release test demo bench clean

all: build

# System libraries: libarchive for tar shards. `apt-get update` runs once, only when
# something is missing.
deps:
	@missing=""; \
	pkg-config --exists libarchive 2>/dev/null || missing="$$missing libarchive-dev"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing" >&2; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build demo-out
