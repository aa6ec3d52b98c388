package quant

import "syscall"

// threadCPUTime returns the calling thread's CPU time in nanoseconds.
func threadCPUTime() int64 {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
