//go:build !purego

package quant

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// avo's register allocator falls back to X16-X31 (EVEX-only, AVX-512) when
// a kernel needs more than 16 vector registers; the result assembles but
// faults with SIGILL on AVX2-only CPUs, only when that kernel runs. The
// generated file must use VEX-encodable registers only.
func TestGeneratedAssemblyIsAVX2Only(t *testing.T) {
	files, err := filepath.Glob("*_amd64.s")
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated assembly found: %v", err)
	}
	evex := regexp.MustCompile(`(?m)^.*\b([XYZ](1[6-9]|2[0-9]|3[01])|Z[0-9]+|K[1-7])\b.*$`)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := evex.Find(src); m != nil {
			t.Errorf("%s uses an AVX-512 register: %s", f, m)
		}
	}
}
