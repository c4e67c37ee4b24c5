package bench

import (
	"os"
	"strconv"
	"strings"
)

// PeakRSSGB reports the process's resident-memory high-water mark (VmHWM of
// /proc/self/status), in GB; 0 where that file is unavailable (outside
// Linux).
func PeakRSSGB() float64 { return statusGB("VmHWM:") }

// RSSGB reports the process's resident memory now (VmRSS), in GB; 0 where
// /proc/self/status is unavailable.
func RSSGB() float64 { return statusGB("VmRSS:") }

// statusGB reads a "Field:  N kB" line of /proc/self/status, in GB.
func statusGB(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1e6
		}
	}
	return 0
}
