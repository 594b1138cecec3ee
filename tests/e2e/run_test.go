package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// TestRunKeepsUpWithAThousandDevices runs `sensorcast run` (what `make
// run` starts) with 1,000 simulated MQTT devices, each publishing every
// second, and checks that ingest goes on storing their readings. The
// embedded broker used to deadlock within seconds of such a start (QoS 1
// deliveries to ingest hit a lock bug in mochi-mqtt), leaving ingest
// stuck at the first hundred readings.
func TestRunKeepsUpWithAThousandDevices(t *testing.T) {
	httpAddr := harness.FreeAddr(t)
	run := harness.StartProcess(t, "run", []string{"SENSORCAST_JWT_SECRET=" + jwtSecret}, sensorcast.Path, "run",
		"--http-addr", httpAddr, "--mqtt-addr", harness.FreeAddr(t), "--grpc-addr", harness.FreeAddr(t),
		"--devices", "1000", "--ws-devices", "0", "--interval", "1s")
	metrics := "http://" + httpAddr + "/metrics"
	run.WaitReady(t, 30*time.Second, func() error { return harness.WantStatus("http://"+httpAddr+"/readyz", 200) })
	readings := func() float64 {
		return harness.Scrape(t, metrics).Value("sensorcast_ingest_messages_total", "kind", "telemetry")
	}
	// Every device publishing: about 1,000 readings a second.
	harness.Eventually(t, 60*time.Second, func() error {
		if n := readings(); n < 2000 {
			return fmt.Errorf("%v readings stored so far", n)
		}
		return nil
	})
	// And still, a while later. This checks that nothing stalls, not a
	// rate: about 5,000 are sent meanwhile, on a machine busy with other
	// tests; the deadlock stopped ingest for good.
	const window = 5 * time.Second
	before := readings()
	time.Sleep(window)
	if got := readings() - before; got < 1000 {
		t.Fatalf("%v readings stored in %s from 1,000 devices publishing every second: ingest stalled", got, window)
	}
}
