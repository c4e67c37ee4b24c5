//go:build linux

package kernels

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"unsafe"
)

// guarded returns a copy of s that ends exactly where an inaccessible page
// begins, so that a kernel reading or writing past the end faults.
func guarded(t *testing.T, s []float32) []float32 {
	page := syscall.Getpagesize()
	size := (len(s)*4+page-1)/page*page + page
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip("mmap:", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[size-page:], syscall.PROT_NONE); err != nil {
		t.Skip("mprotect:", err)
	}
	end := size - page
	g := unsafe.Slice((*float32)(unsafe.Pointer(&mem[end-len(s)*4])), len(s))
	copy(g, s)
	return g
}

// TestMatMulGuarded runs the products on operands that end at a guard page
// and checks that they fault nowhere and match the same path on ordinary
// slices bit for bit.
func TestMatMulGuarded(t *testing.T) {
	pool := NewPool(2)
	defer pool.Close()
	r := rand.New(rand.NewPCG(7, 8))
	shapes := [][3]int{{1, 1, 1}, {13, 7, 5}, {31, 33, 17}, {64, 1000, 47}, {47, 64, 1000}, {5, 33, 2000}, {100, 37, 300}}
	for _, path := range testPaths()[1:] {
		for _, variant := range []string{"NT", "NN", "NN=", "TN"} {
			for _, s := range shapes {
				m, n, k := s[0], s[1], s[2]
				t.Run(fmt.Sprintf("%s/%s/%dx%dx%d", path.name, variant, m, n, k), func(t *testing.T) {
					withPath(path, func() {
						a, b, c := randSlice(r, m*k), randSlice(r, n*k), randSlice(r, m*n)
						bias := randSlice(r, n)
						ga, gb, gc, gbias := guarded(t, a), guarded(t, b), guarded(t, c), guarded(t, bias)
						saved := prepackLimit
						defer func() { prepackLimit = saved }()
						for _, limit := range []int{saved, 500} {
							prepackLimit = limit
							run := func(c, a, b, bias []float32) {
								switch variant {
								case "NT":
									MatMulNT(pool, c, a, b, bias, m, n, k)
								case "NN":
									MatMulNNAcc(pool, c, a, b, m, n, k)
								case "NN=":
									MatMulNN(pool, c, a, b, m, n, k)
								case "TN":
									MatMulTNAcc(pool, c, a, b, m, n, k)
								}
							}
							run(c, a, b, bias)
							run(gc, ga, gb, gbias)
							for i := range c {
								if c[i] != gc[i] {
									t.Fatalf("limit %d: C[%d] = %v on guarded slices, %v on ordinary ones", limit, i, gc[i], c[i])
								}
							}
						}
					})
				})
			}
		}
	}
}
