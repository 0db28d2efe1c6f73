# Serialine. `make demo` runs a whole simulated line; `make test` runs the tests.
GO        ?= go
BIN       := bin
PKGS      := ./...
FUZZTIME  ?= 5s
BENCHTIME ?= 1s
export SERIALINE_REQUIRE_PG       ?= 1
export SERIALINE_REQUIRE_MOSQUITTO ?= 1

.PHONY: all build test test-short fuzz bench demo test-soak ci vet clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/serialine ./cmd/serialine-edge ./cmd/serialine-central ./cmd/serialine-sim

vet:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

# The test command of the README and of .ci/run: race detector on, real
# PostgreSQL and Mosquitto (tests fail if they are unreachable; set
# SERIALINE_REQUIRE_PG=0 / SERIALINE_REQUIRE_MOSQUITTO=0 to skip them), then
# every fuzz target for $(FUZZTIME).
test: vet
	$(GO) test -race -timeout 15m $(PKGS)
	@$(MAKE) --no-print-directory fuzz

test-short:
	$(GO) test -race -short $(PKGS)

# Runs every native fuzz target for $(FUZZTIME) each. Go 1.26's fuzz
# coordinator can report a bare "context deadline exceeded" when -fuzztime
# expires while a worker is mid-call (go.dev/issue/75804, fixed in 1.27):
# such a run, with no failing input written and no panic, is run once more;
# anything else fails.
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f"; \
	    for try in 1 2; do \
	      if $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >$$log 2>&1; then break; fi; \
	      if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written\|panic:\|_test.go:[0-9]' $$log; then \
	        echo "  (fuzz coordinator deadline race, no failing input: once more)"; continue; \
	      fi; \
	      cat $$log; exit 1; \
	    done; \
	  done; \
	done

# Benchmarks: medians of repeated runs and ratios against the raw limits
# measured in the same run.
bench:
	$(GO) run ./cmd/internal/benchreport -benchtime $(BENCHTIME)

demo: build
	$(BIN)/serialine demo

# Fault suites (testdata/soak/sync: store-and-forward under SIGKILL and cut
# links; testdata/soak/edge: the line engine). Bounded; longer runs:
# SERIALINE_SOAK_CYCLES=500 make test-soak.
test-soak:
	$(GO) test -race -run 'Soak' -timeout 10m -tags soak ./testdata/soak/...

# What CI runs (.ci/run): the tests, then the fault suites.
ci: test test-soak

clean:
	rm -rf $(BIN)
