package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The reference data lives beside the checkout: ../shared from the
// repository root, two levels above this package.
var completeShared = filepath.Join("..", "..", "..", "shared", "models")

func requireSharedModels(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(completeShared); err != nil {
		t.Skipf("reference data not available (%s missing): skipping llama.cpp comparison", completeShared)
	}
}

func TestBenchJSON(t *testing.T) {
	requireSharedModels(t)
	cmd := newBenchCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--model", filepath.Join(completeShared, "stories260K-Q8_0.gguf"), "-p", "32", "-n", "8", "-r", "2", "--json"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res []benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res) != 2 || res[0].Test != "pp32" || res[1].Test != "tg8" {
		t.Fatalf("tests %+v", res)
	}
	for _, r := range res {
		if r.AvgTS <= 0 || len(r.SamplesTS) != 2 || r.Params == 0 || r.ModelSize == 0 {
			t.Errorf("implausible result %+v", r)
		}
	}
}
