//go:build !race

package harness

// raceEnabled reports whether this test binary runs with the race detector.
const raceEnabled = false
