package benchcorpus

import (
	"slices"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	ref, err := ReferenceDir()
	if err != nil {
		t.Skip(err)
	}
	real, err := Load(ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(real) != 5000+2000+2017 {
		t.Fatalf("loaded %d records", len(real))
	}
	a, b := Generate(real, 3000, 1), Generate(real, 3000, 1)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different corpus")
	}
	if c := Generate(real, 3000, 2); slices.Equal(a, c) {
		t.Fatal("different seeds, same corpus")
	}
	if len(a) != 3000 {
		t.Fatalf("got %d candidates", len(a))
	}
}
