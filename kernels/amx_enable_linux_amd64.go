//go:build !purego

package kernels

import (
	"sync"
	"syscall"
	"unsafe"
)

// amxOnce runs amxProbe once per process and caches its answer.
var amxOnce = sync.OnceValue(amxProbe)

// amxEnable reports whether the AMX-BF16 kernels may run: the CPU has
// AMX-TILE and AMX-BF16, the OS manages the tile state in XCR0, and Linux
// granted this process the XTILEDATA feature. The permission request
// (arch_prctl ARCH_REQ_XCOMP_PERM) is made once per process and covers all
// its threads; without it the first tile instruction raises SIGILL.
func amxEnable() bool {
	return amxOnce()
}

// amxProbe checks CPUID, requests the XTILEDATA permission and checks that it
// was granted and that XCR0 enables the tile state.
func amxProbe() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	const osxsave = 1 << 27
	if _, _, ecx1, _ := cpuid(1, 0); ecx1&osxsave == 0 {
		return false
	}
	const (
		amxBF16 = 1 << 22
		amxTile = 1 << 24
	)
	if _, _, _, edx7 := cpuid(7, 0); edx7&(amxBF16|amxTile) != amxBF16|amxTile {
		return false
	}
	const (
		archGetXcompPerm = 0x1022
		archReqXcompPerm = 0x1023
		xfeatureTileData = 18
		xfeatureTileMask = 1<<17 | 1<<18 // XTILECFG, XTILEDATA
	)
	if _, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureTileData, 0); errno != 0 {
		return false
	}
	var perm uint64
	if _, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archGetXcompPerm, uintptr(unsafe.Pointer(&perm)), 0); errno != 0 || perm&xfeatureTileMask != xfeatureTileMask {
		return false
	}
	xcr0, _ := xgetbv()
	return xcr0&xfeatureTileMask == xfeatureTileMask
}
