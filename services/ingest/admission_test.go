package ingest_test

import (
	"testing"
	"time"

	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

// staticDevices stands in for the registry cache (devicecache is tested
// against the registry itself); here only ingest's use of it matters.
type staticDevices map[string]devicecache.Device

func (s staticDevices) Lookup(id string) (devicecache.Device, bool) { d, ok := s[id]; return d, ok }
func (staticDevices) Loaded() <-chan struct{}                       { return loaded }
func (staticDevices) RulesFor(string, []string) []devicecache.Rule  { return nil }

// loaded is a closed channel: the static devices are known from the start.
var loaded = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func TestAdmissionPublishesToGroupRoomsAndDropsUnknownAndDisabledDevices(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	devices := staticDevices{
		"known":    {Enabled: true, Groups: []string{"building-a", "floor-2"}, Version: 1},
		"disabled": {Enabled: false, Version: 3},
	}
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-admission", ingest.WithDevices(devices))
	global := subscribe(t, in.nc, globalSubject)
	groupA := subscribe(t, in.nc, "sensorcast.live.group.building-a.telemetry")
	floor := subscribe(t, in.nc, "sensorcast.live.group.floor-2.telemetry")

	for _, id := range []string{"stranger", "disabled", "known"} {
		dev, _ := device(t, mqttURL, id, nil)
		publish(t, dev, "devices/"+id+"/telemetry", `{"fields":{"t":1}}`, nil)
	}
	for _, sub := range []struct {
		name string
		next func() string
	}{
		{"global", func() string { e, _ := next(t, global); return e.GetTelemetry().GetDeviceId() }},
		{"group:building-a", func() string { e, _ := next(t, groupA); return e.GetTelemetry().GetDeviceId() }},
		{"group:floor-2", func() string { e, _ := next(t, floor); return e.GetTelemetry().GetDeviceId() }},
	} {
		if got := sub.next(); got != "known" {
			t.Errorf("%s got a reading of %q, want only the known device's", sub.name, got)
		}
	}
	expectNothing(t, global, 200*time.Millisecond)
	waitFor(t, 5*time.Second, "both rejections counted", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason=unknown_device") == 1 &&
			counter(t, in.reg, "sensorcast_ingest_rejected_total", "reason=disabled_device") == 1
	})
}
