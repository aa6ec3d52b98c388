package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	cmd.SetArgs([]string{"--model", filepath.Join(completeShared, "stories260K-Q8_0.gguf"), "-p", "32", "-n", "8", "-r", "2",
		"-t", "1,2", "-s", "3,1", "--no-bandwidth", "--json"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res []benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var got []string
	for _, r := range res {
		got = append(got, fmt.Sprintf("t%d/s%d/%s", r.Threads, r.Seqs, r.Test))
		if r.AvgTS <= 0 || len(r.SamplesTS) != 2 || r.Params == 0 || r.ModelSize == 0 || r.WeightBytes <= 0 || r.WeightBytes > r.ModelSize {
			t.Errorf("implausible result %+v", r)
		}
		if r.MemReadGBs != 0 || r.BoundTS != 0 {
			t.Errorf("--no-bandwidth, yet %+v", r)
		}
	}
	// pp runs once per thread count with one sequence, tg per -s value.
	want := "t1/s1/pp32 t1/s3/tg8 t1/s1/tg8 t2/s1/pp32 t2/s3/tg8 t2/s1/tg8"
	if strings.Join(got, " ") != want {
		t.Errorf("tests %v, want %s", got, want)
	}
}

// With -d every test starts from that many tokens of context, and says so
// in its name and in n_depth, as llama-bench does.
func TestBenchDepth(t *testing.T) {
	requireSharedModels(t)
	model := filepath.Join(completeShared, "stories260K-Q8_0.gguf")
	cmd := newBenchCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--model", model, "-p", "16", "-n", "4", "-d", "300", "-r", "1", "-t", "1", "-s", "2", "--no-bandwidth", "--json"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var res []benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var got []string
	for _, r := range res {
		got = append(got, fmt.Sprintf("s%d/%s/d%d", r.Seqs, r.Test, r.NDepth))
		if r.AvgTS <= 0 {
			t.Errorf("implausible result %+v", r)
		}
	}
	if want := "s1/pp16 @ d300/d300 s2/tg4 @ d300/d300"; strings.Join(got, " ") != want {
		t.Errorf("tests %v, want %s", got, want)
	}
}

func TestBenchBadLists(t *testing.T) {
	requireSharedModels(t)
	for _, args := range [][]string{{"-t", "0"}, {"-t", "2,x"}, {"-s", ""}, {"-s", "1,-4"}, {"-d", "-1"}} {
		cmd := newBenchCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(append([]string{"--model", filepath.Join(completeShared, "stories260K-Q8_0.gguf")}, args...))
		err := cmd.ExecuteContext(context.Background())
		var ce *codedError
		if !errors.As(err, &ce) || ce.code != exitBadInput {
			t.Errorf("%v: error %v, want a bad-input error", args, err)
		}
	}
}

// The bandwidth probe must read every byte it claims to: its sum over a
// buffer is checked, and the rate it reports must be finite and positive.
func TestReadBandwidth(t *testing.T) {
	p := make([]uint64, 1003)
	var want uint64
	for i := range p {
		p[i] = uint64(i * i)
		want += p[i]
	}
	if got := sumWords(p); got != want {
		t.Fatalf("sumWords = %d, want %d", got, want)
	}
	buf := newBandwidthBuffer(8 << 20)
	for _, threads := range []int{1, 3} {
		bw := measureReadBandwidth(buf, threads)
		if !(bw > 1e8 && bw < 1e13) {
			t.Errorf("%d threads: %g bytes/s", threads, bw)
		}
	}
}
