# The README's quick start: `make run` (the main job) and `make test`.
GO ?= go
BIN := bin/selfinstruct
OUT ?= out/alpaca
NUM ?= 20

.PHONY: build run test test-short bench bench-corpus bench-engine bench-models bench-llamacpp lint fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/selfinstruct

# The main job with defaults: a small Alpaca-format dataset in $(OUT). The
# teacher is chosen by the CLI (--teacher auto): the OpenAI API when
# OPENAI_API_KEY (or OPENAI_BASE_URL) is set, otherwise the built-in engine
# running Qwen2.5-0.5B-Instruct Q8_0 (Q8_0 and F32 tensors, both supported),
# pulled once from the Hugging Face Hub into the cache. Offline, give a local
# file: make run ARGS='--model path/to/model.gguf'.
run: build
	./$(BIN) generate --num $(NUM) --out $(OUT) $(ARGS)

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

# The novelty filter at Alpaca's scale (5K/20K/52K candidates made from the
# real Alpaca data in ../shared), then Go benchmarks of the LCS kernel and
# the Index next to the plain dynamic programme, with their ratios.
bench:
	$(GO) run ./filters/cmd/noveltybench -sizes 5000,20000,52000
	$(GO) test -run '^$$' -bench . -benchmem ./filters/... | awk '{ print } \
	  /\/impl=/ && / ns\/op/ { n = split($$1, p, "/impl="); impl = p[2]; sub(/-[0-9]+$$/, "", impl); \
	    for (i = 2; i <= NF; i++) if ($$i == "ns/op") ns[p[1], impl] = $$(i-1); if (impl != "dp") fast[p[1], impl] = 1 } \
	  END { print "\nspeed-up over the plain DP LCS, same run:"; \
	    for (k in fast) { split(k, q, SUBSEP); if (ns[q[1], "dp"] > 0) printf "  %-45s %-12s %8.1fx\n", q[1], q[2], ns[q[1], "dp"] / ns[q[1], q[2]] | "sort" } }'

# Writes the 5K/20K/52K benchmark corpora as Alpaca JSON lists under
# out/bench, e.g. for timing `selfinstruct dedupe` on them.
bench-corpus:
	$(GO) run ./filters/cmd/noveltybench -sizes 5000,20000,52000 -write out/bench

# The local engine's speed on random-weight models with TinyLlama-1.1B's
# shapes (Q4_0 and Q4_K_M, as llama-quantize mixes them), written by
# `selfinstruct random-model` with the tokenizer of llama.cpp's LLaMA vocab
# file in ../shared (read at run time, never copied): prompt processing and
# generation with 1 and all threads, 1/4/8/16 sequences batched together, and
# the memory-bandwidth bound. VOCAB=... points elsewhere.
VOCAB ?= ../shared/models/vocab/ggml-vocab-llama-spm.gguf
ENGINE_MODELS := out/bench-engine/tinyllama-1.1b-q4_0.gguf out/bench-engine/tinyllama-1.1b-q4_k_m.gguf
BENCH_THREADS ?= $(shell nproc)

bench-models: $(ENGINE_MODELS)

out/bench-engine/tinyllama-1.1b-%.gguf: | build
	./$(BIN) random-model --shape tinyllama-1.1b --type $* --vocab $(VOCAB) --out $@

bench-engine: build $(ENGINE_MODELS)
	./$(BIN) bench -m out/bench-engine/tinyllama-1.1b-q4_0.gguf -p 64 -n 32 -t 1,$(BENCH_THREADS) -s 1,4,8,16 -r 3
	./$(BIN) bench -m out/bench-engine/tinyllama-1.1b-q4_k_m.gguf -p 64 -n 32 -t $(BENCH_THREADS) -s 1 -r 3

# The same models through llama.cpp as shipped prebuilt in node-llama-cpp
# 3.21.1 (installed under out/llamacpp with npm), run alternately with
# `selfinstruct bench` in one process: tokens/s side by side and the ratio.
bench-llamacpp: build $(ENGINE_MODELS)
	@test -d out/llamacpp/node_modules/node-llama-cpp || npm install --prefix out/llamacpp --no-audit --no-fund node-llama-cpp@3.21.1
	NODE_PATH=$(CURDIR)/out/llamacpp/node_modules node scripts/bench-vs-llamacpp.mjs --bin ./$(BIN) -p 64 -n 32 -t $(BENCH_THREADS) -r 3 $(ENGINE_MODELS)

lint:
	@fmt_out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt_out" ]; then echo "gofmt would change:"; echo "$$fmt_out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin out
