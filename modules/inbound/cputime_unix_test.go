//go:build unix

package inbound

import (
	"syscall"
	"time"
)

// processCPU is the CPU time the process has used (user + system). Benchmarks
// report it per operation next to wall time: on a shared, loaded machine
// wall time mostly measures waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
