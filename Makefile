# fedrec: make demo · make test · make bench
# Installs what the system lacks (Debian packages) before building, so a fresh machine
# needs nothing by hand.

SWIFT    ?= swift
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE  := .build/release
DEBUG    := .build/debug

.PHONY: all deps build release test demo bench clean

# The demo: 10 federated rounds of explicit-rating MF on the synthetic sample data.
DEMO_RUN ?= demo-out

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

demo: release
	rm -rf $(DEMO_RUN)
	pipelines/fl-rounds --bin $(RELEASE) --data sample-data/ratings.csv --run $(DEMO_RUN) \
	  --rounds 10 --jobs 2 --objective mse --dim 16 \
	  --partition "--split ratio --test-ratio 0.2 --shards 4" \
	  --train "--algorithm als --l2 0.1" --server "--l2 0.1"
	@echo "models and metrics.jsonl are in $(DEMO_RUN)/" >&2

bench: release
	bench/run-all

clean:
	rm -rf .build $(DEMO_RUN)
