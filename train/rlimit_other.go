//go:build !unix

package train

// rlimitAS reports no address-space limit where there is no getrlimit.
func rlimitAS() (uint64, bool) { return 0, false }
