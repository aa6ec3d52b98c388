package quant

import (
	"math/rand/v2"
	"syscall"
	"testing"
)

func init() { rowBuffer = guarded }

// guarded returns a b-byte slice that starts right after an inaccessible
// page (atEnd false) or ends right before one (atEnd true), so a kernel that
// reads a single byte outside its row faults instead of passing by luck.
func guarded(t *testing.T, size int, atEnd bool) []byte {
	t.Helper()
	page := syscall.Getpagesize()
	span := (size + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, span+2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[:page], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	if err := syscall.Mprotect(mem[page+span:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	if atEnd {
		return mem[page+span-size : page+span : page+span]
	}
	return mem[page : page+size : page+size]
}

// Every kernel reads only inside its rows: weights and activations placed
// against inaccessible pages on either side.
func TestKernelSetsStayInsideRows(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for _, s := range usableKernelSets(t) {
		for typ, k := range s.kernels {
			typ := Type(typ)
			if k == nil {
				continue
			}
			xt := VecDotType(typ)
			for _, blocks := range []int{1, 5, 17} {
				n := blocks * typ.BlockSize()
				w0, x0 := randomBlocks(r, typ, n), randomBlocks(r, xt, n)
				for _, atEnd := range []bool{false, true} {
					w, x := guarded(t, len(w0), atEnd), guarded(t, len(x0), atEnd)
					copy(w, w0)
					copy(x, x0)
					checkKernel(t, s.name, typ, n, w, x, "guarded")
				}
			}
		}
	}
}
