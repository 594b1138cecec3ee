package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// sensorcast is the binary under test, built once by TestMain.
var sensorcast harness.Sensorcast

// binaryVar names a prebuilt binary to test instead of building one (for
// example a release build).
const binaryVar = "SENSORCAST_E2E_BINARY"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if path := os.Getenv(binaryVar); path != "" {
		sensorcast = harness.Sensorcast{Path: path}
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sensorcast-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	path, err := harness.BuildSensorcast(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build the binary under test:", err)
		return 1
	}
	sensorcast = harness.Sensorcast{Path: path}
	return m.Run()
}
