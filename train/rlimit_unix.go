//go:build unix

package train

import "syscall"

// rlimitAS returns the soft RLIMIT_AS (the address-space limit); ok is
// false when there is none.
func rlimitAS() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &r); err != nil || r.Cur == ^uint64(0) { // ^0 is RLIM_INFINITY
		return 0, false
	}
	return uint64(r.Cur), true
}
