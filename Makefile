# The targets CI runs are lint and test (see .ci/run).
GO          ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHSTAT   ?= golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
BENCHTIME   ?= 1s
BENCHCOUNT  ?= 6

# Modules of their own, whose dependencies must not reach the library's
# go.mod: the OpenTelemetry example, and the Redis-backed rate limiter.
SUBMODULES  := examples/otel redislimiter

# go-json-experiment/json: go.mod pins a v1.27 tag (on Go 1.27 it aliases
# encoding/json/v2, on 1.26 it carries its own copy); test-json-latest runs
# the tests against whatever tag is newest, to hear of a break early.
JSONV2_TAG  ?= latest

.PHONY: all test lint bench cover fuzz test-json-latest

all: lint test

## test: every test, with the race detector, the submodules' too; redislimiter's
## run against a redis-server they start when one is on PATH, else against miniredis
test:
	$(GO) test -race -count=1 ./...
	@command -v redis-server >/dev/null 2>&1 || echo "note: redis-server is not on PATH: redislimiter's tests run against miniredis (apt-get install redis-server to run them against Redis)"
	@for m in $(SUBMODULES); do echo "cd $$m && $(GO) test -race -count=1 ./..."; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done

## lint: gofmt (must change nothing), go.mod tidy, go vet, staticcheck, in every module
lint:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@for m in $(SUBMODULES); do echo "cd $$m && go mod tidy -diff && go vet && staticcheck"; (cd $$m && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...) || exit 1; done

## test-json-latest: the tests against the newest tagged go-json-experiment/json,
## through a copy of go.mod (the module's own is left as it is)
test-json-latest:
	@tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	cp go.mod go.sum "$$tmp"/ && \
	$(GO) get -modfile="$$tmp/go.mod" github.com/go-json-experiment/json@$(JSONV2_TAG) && \
	$(GO) test -modfile="$$tmp/go.mod" -count=1 . ./servicedesktest ./internal/...

## bench: benchmarks (SDK beside a raw net/http baseline), summarised by benchstat;
## the bulk imports against a rate limit take 5 s each, so they run BULKCOUNT times;
## redislimiter's (against a local redis-server): a request's cost beside the
## in-process governor, and fleets of 4 and 16 processes (10-12 s each)
BULKCOUNT   ?= 2
bench:
	$(GO) test -run '^$$' -bench . -skip BulkAdd -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) ./... | tee bench.txt
	$(GO) test -run '^$$' -bench BulkAdd -benchtime 1x -count $(BULKCOUNT) . | tee -a bench.txt
	cd redislimiter && $(GO) test -run '^$$' -bench Wait -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) . | tee -a ../bench.txt
	cd redislimiter && $(GO) test -run '^$$' -bench Fleet -benchtime 1x -count $(BULKCOUNT) . | tee -a ../bench.txt
	$(GO) run $(BENCHSTAT) bench.txt

## cover: coverage profile and per-function summary
cover:
	$(GO) test -coverprofile=cover.out ./...
	$(GO) tool cover -func=cover.out | tail -1
