# The README's quick start: `make run` (the main job) and `make test`.
GO ?= go
BIN := bin/selfinstruct
OUT ?= out/alpaca
NUM ?= 20

.PHONY: build run test test-short bench bench-corpus lint fuzz clean

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

lint:
	@fmt_out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt_out" ]; then echo "gofmt would change:"; echo "$$fmt_out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin out
