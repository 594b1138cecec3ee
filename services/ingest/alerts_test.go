package ingest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/ingest"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/mqtttest"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
)

// ruledDevices are static devices with alert rules.
type ruledDevices struct {
	staticDevices
	rules []devicecache.Rule
}

func (d ruledDevices) RulesFor(deviceID string, groups []string) []devicecache.Rule {
	var out []devicecache.Rule
	for _, r := range d.rules {
		if r.Target == "device:"+deviceID {
			out = append(out, r)
		}
		for _, g := range groups {
			if r.Target == "group:"+g {
				out = append(out, r)
			}
		}
	}
	return out
}

func TestRulesRaiseAlertsInTheDevicesRooms(t *testing.T) {
	checkGoroutineLeaks(t)
	ns := natstest.Start(t)
	mqttURL, _ := mqtttest.Start(t)
	devices := ruledDevices{
		staticDevices: staticDevices{"d1": {Enabled: true, Groups: []string{"g1"}, Version: 1}},
		rules: []devicecache.Rule{{
			ID: "rule-hot", Name: "too hot", Target: "group:g1", Field: "temperature",
			Operator: registryv1.Operator_OPERATOR_GT, Threshold: 40, Severity: registryv1.Severity_SEVERITY_CRITICAL,
			Hold: 2 * time.Second, Enabled: true,
		}},
	}
	in := startIngest(t, ns.ClientURL(), mqttURL, "ingest-alerts", ingest.WithDevices(devices))
	deviceAlerts := subscribe(t, in.nc, "sensorcast.live.device.d1.alert")
	groupAlerts := subscribe(t, in.nc, "sensorcast.live.group.g1.alert")
	globalAlerts := subscribe(t, in.nc, "sensorcast.live.global.alert")

	dev, _ := device(t, mqttURL, "d1", nil)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var props *paho.PublishProperties
	reading := func(sec int, temp float64, extra string) {
		publish(t, dev, "devices/d1/telemetry", fmt.Sprintf(`{"fields":{"temperature":%g%s},"timestamp":%q}`,
			temp, extra, t0.Add(time.Duration(sec)*time.Second).Format(time.RFC3339)), props)
	}
	reading(0, 41, "")
	reading(1, 42, "")
	expectNothing(t, deviceAlerts, 300*time.Millisecond) // held for 1 s of 2
	// The reading that fires the alert is traced: the alert is sent in its
	// trace (with tracing off, under the device's own span context).
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	props = &paho.PublishProperties{}
	props.User.Add("traceparent", traceparent)
	reading(2, 43, "")
	props = nil
	fired, firedMsg := next(t, deviceAlerts)
	if got := firedMsg.Header.Get("traceparent"); got != traceparent {
		t.Errorf("the firing alert carries traceparent %q, want the firing reading's %q", got, traceparent)
	}
	a := fired.GetAlert()
	if a.GetState() != envelopev1.AlertState_ALERT_STATE_FIRING || a.GetRuleId() != "rule-hot" || a.GetRuleName() != "too hot" ||
		a.GetDeviceId() != "d1" || a.GetValue() != 43 || a.GetThreshold() != 40 || a.GetField() != "temperature" ||
		a.GetSeverity() != envelopev1.AlertSeverity_ALERT_SEVERITY_CRITICAL || !a.GetTimestamp().AsTime().Equal(t0.Add(2*time.Second)) {
		t.Fatalf("firing alert = %v", a)
	}
	reading(3, 44, "")
	reading(4, 10, `,"humidity":3`) // no longer too hot
	resolved, _ := next(t, deviceAlerts)
	if r := resolved.GetAlert(); r.GetState() != envelopev1.AlertState_ALERT_STATE_RESOLVED || r.GetAlertId() != a.GetAlertId() || r.GetValue() != 10 {
		t.Fatalf("resolution = %v, want resolved %s at 10", r, a.GetAlertId())
	}
	// The same two alerts reach the device's other rooms.
	for _, sub := range []struct {
		name string
		next func() *envelopev1.Alert
	}{
		{"group:g1", func() *envelopev1.Alert { e, _ := next(t, groupAlerts); return e.GetAlert() }},
		{"global", func() *envelopev1.Alert { e, _ := next(t, globalAlerts); return e.GetAlert() }},
	} {
		if f, r := sub.next(), sub.next(); f.GetAlertId() != a.GetAlertId() || f.GetState() != envelopev1.AlertState_ALERT_STATE_FIRING ||
			r.GetState() != envelopev1.AlertState_ALERT_STATE_RESOLVED {
			t.Errorf("%s got %v then %v", sub.name, f, r)
		}
	}
	expectNothing(t, deviceAlerts, 300*time.Millisecond)
	waitFor(t, 5*time.Second, "alerts counted", func() bool {
		return counter(t, in.reg, "sensorcast_ingest_alerts_total", "state=firing") == 1 &&
			counter(t, in.reg, "sensorcast_ingest_alerts_total", "state=resolved") == 1
	})
}
