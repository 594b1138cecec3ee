// Package harness runs the real Sensorcast system for end-to-end tests: the
// sensorcast binary built from this repository, Redis and Mosquitto as
// processes on free loopback ports, an embedded NATS server with
// JetStream, a WebSocket client that speaks the dashboard protocol
// (docs/protocol.md), a client that reconnects and resumes as the SDK does
// (ResumingClient), and an MQTT publisher for many devices.
//
// Everything a test starts belongs to that test: it is stopped by the
// test's cleanup, and child processes die with the test process. Missing
// server binaries fail the test with an install hint; nothing is skipped.
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// installHint tells a developer how to get the servers the tests need.
const installHint = "run make deps (it installs mosquitto, mosquitto-clients and redis-server)"

// RepoRoot returns the repository root: the nearest directory above the
// working directory that holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory; run the tests inside the repository")
		}
		dir = parent
	}
}

// BuildSensorcast builds the sensorcast command from this repository into
// dir and returns the binary's path. When the tests run with -race the
// binary is built with it too, so races in the services fail the tests.
func BuildSensorcast(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sensorcast")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/sensorcast/sensorcast/services/cmd/sensorcast")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}
