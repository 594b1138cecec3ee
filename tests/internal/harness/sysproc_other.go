//go:build unix && !linux

package harness

import "syscall"

// sysProcAttr puts a child in its own process group so it can be killed
// with everything it started. Outside Linux there is no parent-death
// signal: a test process killed with SIGKILL leaves its children running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
