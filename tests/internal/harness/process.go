//go:build unix

package harness

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopTimeout is how long a process may take to exit after SIGTERM before
// it is killed; the edge's drain alone may take a few seconds.
const stopTimeout = 15 * time.Second

// Process is a server process owned by a test. It runs in its own process
// group and, on Linux, is killed if the test process dies. When the test
// ends it is stopped (SIGTERM, then SIGKILL), and if the test failed its
// output is logged.
type Process struct {
	Name string

	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{} // closed once the process has exited
	exitedAt time.Time     // set before done is closed

	mu       sync.Mutex
	signaled bool // the test sent a signal itself; its exit is expected
}

// StartProcess starts path with args and env (nil inherits the test's
// environment). The process is stopped when t ends.
func StartProcess(t testing.TB, name string, env []string, path string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	p := &Process{Name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, path, err)
	}
	go func() {
		_ = cmd.Wait() // the result is read from cmd.ProcessState
		p.exitedAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() { p.cleanup(t) })
	return p
}

func (p *Process) cleanup(t testing.TB) {
	p.mu.Lock()
	signaled := p.signaled
	p.mu.Unlock()
	select {
	case <-p.done:
		if !signaled {
			t.Errorf("%s exited by itself during the test: %s", p.Name, p.cmd.ProcessState)
		}
	default:
		code, err := p.Stop()
		switch {
		case err != nil:
			t.Errorf("stopping %s: %v", p.Name, err)
		case code != 0:
			t.Errorf("%s exited with status %d after SIGTERM; want 0", p.Name, code)
		}
	}
	output := p.Output()
	if strings.Contains(output, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race (output below)", p.Name)
	}
	if t.Failed() {
		const keep = 64 << 10
		if len(output) > keep {
			output = "...\n" + output[len(output)-keep:]
		}
		t.Logf("output of %s (pid %d):\n%s", p.Name, p.cmd.Process.Pid, output)
	}
}

// Output is everything the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process. Its exit is then expected: the cleanup
// does not report it.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	p.signaled = true
	p.mu.Unlock()
	return p.cmd.Process.Signal(sig)
}

// Kill kills the process and everything in its process group with SIGKILL
// and waits for it to exit.
func (p *Process) Kill() {
	p.mu.Lock()
	p.signaled = true
	p.mu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Wait waits up to timeout for the process to exit and returns its exit
// status (-1 when a signal ended it) and when it exited.
func (p *Process) Wait(timeout time.Duration) (int, time.Time, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), p.exitedAt, nil
	case <-time.After(timeout):
		return 0, time.Time{}, fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
}

// Stop sends SIGTERM and waits for the process to exit; after stopTimeout
// it kills the process group and reports an error.
func (p *Process) Stop() (int, error) {
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) && !p.Exited() {
		return 0, fmt.Errorf("SIGTERM %s: %w", p.Name, err)
	}
	code, _, err := p.Wait(stopTimeout)
	if err != nil {
		p.Kill()
		return 0, fmt.Errorf("%w after SIGTERM; killed it", err)
	}
	return code, nil
}

// WaitReady polls check until it returns nil. It fails t if timeout
// passes first or if the process exits while starting.
func (p *Process) WaitReady(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	err := Poll(timeout, func() error {
		if p.Exited() {
			return errExited
		}
		return check()
	})
	switch {
	case errors.Is(err, errExited):
		t.Fatalf("%s exited while starting: %s\n%s", p.Name, p.cmd.ProcessState, p.Output())
	case err != nil:
		t.Fatalf("%s not ready after %s: %v", p.Name, timeout, err)
	}
}

var errExited = errors.New("process exited")

// syncBuffer is a bytes.Buffer that a process writes while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
