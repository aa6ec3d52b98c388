# The README's quick start: `make run` (the main job) and `make test`.
GO ?= go
BIN := bin/selfinstruct
OUT ?= out/alpaca
NUM ?= 20

.PHONY: build run test test-short bench lint fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/selfinstruct

# The main job with defaults: a small Alpaca-format dataset in $(OUT).
run: build
	./$(BIN) generate --num $(NUM) --out $(OUT)

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./filters/...

lint:
	@fmt_out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt_out" ]; then echo "gofmt would change:"; echo "$$fmt_out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin out
