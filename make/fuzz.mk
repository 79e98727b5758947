# make fuzz: libFuzzer harnesses for fedrec's parsers (Fuzz/, a package of its own over
# FedRecCore), built with AddressSanitizer into .build-fuzz (git-ignored). Included from the
# top Makefile.
#
#   make fuzz                     each harness for FUZZ_TIME seconds (default 300), in turn
#   make fuzz FUZZ_TARGETS=json   one harness
#   make fuzz FUZZ_ARGS=-runs=10000000   a number of executions instead of a time
#   make fuzz-smoke               each harness for a few seconds (about 90 s in all)
#   make fuzz-run                 as make fuzz, without building first
#
# One process at a time (no -jobs/-workers): the project's machines have two cores. New
# inputs go to .build-fuzz/corpus/TARGET (the seeds in Fuzz/corpus/TARGET are read, never
# written); a crash stops the run and is written to .build-fuzz/artifacts/TARGET-crash-*,
# which `.build-fuzz/release/fuzz-TARGET FILE` replays.

FUZZ_TARGETS    ?= safetensors shard ratings npy json fedrec-files tables secagg-server secagg-party report
FUZZ_TIME       ?= 300
FUZZ_SMOKE_TIME ?= 7
FUZZ_ARGS       ?=
FUZZ_SCRATCH    := .build-fuzz
FUZZ_BIN        := $(FUZZ_SCRATCH)/release
# Release: debug Swift runs the parsers several times slower. Sanitizers: SwiftPM's
# --sanitize=fuzzer links libFuzzer's main and instruments C targets for coverage, and
# one -sanitize=fuzzer,address for swiftc: given as two flags (two --sanitize options)
# swiftc 6.3 honours only the last, in an order that changes from one build to the next
# (so does the build's signature: a full rebuild), leaving either no coverage or no ASan.
# -timeout: an input that takes over 10 s is reported as a hang.
FUZZ_BUILD_FLAGS := --package-path Fuzz --scratch-path $(FUZZ_SCRATCH) -c release --sanitize=fuzzer \
                    -Xswiftc -sanitize=fuzzer,address
FUZZ_RUN_FLAGS   := -timeout=10 -print_final_stats=1

.PHONY: fuzz fuzz-run fuzz-smoke fuzz-build

# ld.gold warns for every ASan helper symbol ("Cannot export local symbol"): filtered out,
# the build's own status kept. make's variables are kept out of the environment: SwiftPM
# rebuilds everything (BoringSSL included, minutes) when its environment changes.
fuzz-build: deps
	@mkdir -p $(FUZZ_SCRATCH)
	@{ env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(SWIFT) build $(FUZZ_BUILD_FLAGS) 2>&1; echo $$? > $(FUZZ_SCRATCH)/build-status; } \
	  | grep -v 'Cannot export local symbol'; exit $$(cat $(FUZZ_SCRATCH)/build-status)

fuzz: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run

# The run alone, with the harnesses as built last.
fuzz-run:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_SCRATCH)/corpus/$$t $(FUZZ_SCRATCH)/artifacts; \
	  echo "fuzz-$$t: $(if $(FUZZ_ARGS),$(FUZZ_ARGS),$(FUZZ_TIME) s)" >&2; \
	  $(FUZZ_BIN)/fuzz-$$t $(FUZZ_RUN_FLAGS) $(if $(FUZZ_ARGS),$(FUZZ_ARGS),-max_total_time=$(FUZZ_TIME)) \
	    -artifact_prefix=$(FUZZ_SCRATCH)/artifacts/$$t- $(FUZZ_SCRATCH)/corpus/$$t Fuzz/corpus/$$t \
	    2> $(FUZZ_SCRATCH)/fuzz-$$t.log || { tail -40 $(FUZZ_SCRATCH)/fuzz-$$t.log >&2; exit 1; }; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' $(FUZZ_SCRATCH)/fuzz-$$t.log >&2; \
	done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(FUZZ_SMOKE_TIME) FUZZ_ARGS=
