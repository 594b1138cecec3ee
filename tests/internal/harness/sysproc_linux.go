package harness

import "syscall"

// sysProcAttr puts a child in its own process group (so it can be killed
// with everything it started) and has the kernel kill it when the test
// process dies, even by SIGKILL.
//
// Pdeathsig fires when the OS thread that started the child exits; the Go
// runtime does not end its threads while the program runs, so in practice
// that is when the test process exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
