package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestThrottledLogCapsAFloodAndCountsWhatItDropped(t *testing.T) {
	var buf bytes.Buffer
	l := newThrottledLog(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 10_000 {
		l.warn(context.Background(), "device message rejected", "reason", "invalid_json")
	}
	lines := strings.Count(buf.String(), "\n")
	// The burst, plus the few the steady rate allows while the loop runs.
	if lines < logBurst || lines > logBurst+5 {
		t.Fatalf("%d lines logged for 10000 warnings, want about %d", lines, logBurst)
	}
	buf.Reset()
	l.limit.SetBurst(1) // let the next one through at once
	l.limit.SetLimit(1e9)
	l.warn(context.Background(), "device message rejected", "reason", "invalid_json")
	if !strings.Contains(buf.String(), "suppressed_since_last=") {
		t.Errorf("next line %q does not report the suppressed warnings", buf.String())
	}
}
