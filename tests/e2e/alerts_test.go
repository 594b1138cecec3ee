package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// alertPayload is the contract's `alert` payload (docs/protocol.md).
type alertPayload struct {
	AlertID   string   `json:"alert_id"`
	DeviceID  string   `json:"device_id"`
	RuleID    string   `json:"rule_id"`
	RuleName  string   `json:"rule_name"`
	Severity  string   `json:"severity"`
	Field     string   `json:"field"`
	Value     *float64 `json:"value"`
	Threshold *float64 `json:"threshold"`
	State     string   `json:"state"`
	Timestamp string   `json:"timestamp"`
}

// alertFrame is one `alert` room message as the dashboard received it.
type alertFrame struct {
	Room string
	Seq  uint64
	P    alertPayload
	Raw  string
}

// TestAlertsFireOnceAcrossTwoIngestReplicas runs the registry, two ingest
// replicas sharing one MQTT subscription (so the broker splits the
// readings between them, and a device's consecutive readings are evaluated
// by either) and an edge, all following the registry. Readings carry
// device timestamps, so hold and cooldown do not depend on wall time. Every
// rule transition must reach the device's room, its group's room and
// global exactly once, whichever replica evaluated the reading.
func TestAlertsFireOnceAcrossTwoIngestReplicas(t *testing.T) {
	harness.CheckGoroutines(t) // first, so that it checks after every cleanup
	start := time.Now()

	redis := harness.StartRedis(t)
	mqtt := harness.StartMosquitto(t)
	natsURL := harness.StartNATS(t).ClientURL()
	reg := sensorcast.StartRegistry(t, "registry-alerts", harness.Settings{"NATS_URL": natsURL, "JWT_SECRET": jwtSecret})
	admin := harness.AdminToken(t, jwtSecret)
	api := registryClient(t, reg.GRPCAddr, admin)

	ctx := t.Context()
	must(t, call(api.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "g1"}})))
	must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "d-a", Groups: []string{"g1"}, Enabled: true}})))
	must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "d-b", Enabled: true}})))

	createRule := func(rule *registryv1.AlertRule) *registryv1.AlertRule {
		t.Helper()
		resp, err := api.CreateAlertRule(ctx, &registryv1.CreateAlertRuleRequest{AlertRule: rule})
		if err != nil {
			t.Fatalf("create alert rule %q: %v", rule.GetName(), err)
		}
		if resp.GetAlertRule().GetId() == "" {
			t.Fatalf("create alert rule %q: no id in %v", rule.GetName(), resp)
		}
		return resp.GetAlertRule()
	}
	// The rules exist before ingest starts: ingest loads them with the
	// devices, before it admits its first reading.
	r1 := createRule(&registryv1.AlertRule{
		Name: "d-a too hot", Target: &registryv1.AlertRule_DeviceId{DeviceId: "d-a"},
		Field: "temperature", Operator: registryv1.Operator_OPERATOR_GT, Threshold: 40,
		Severity: registryv1.Severity_SEVERITY_CRITICAL,
		Hold:     durationpb.New(2 * time.Second), Cooldown: durationpb.New(0), Enabled: true,
	})
	r2 := createRule(&registryv1.AlertRule{
		Name: "g1 too dry", Target: &registryv1.AlertRule_GroupId{GroupId: "g1"},
		Field: "humidity", Operator: registryv1.Operator_OPERATOR_LT, Threshold: 10,
		Severity: registryv1.Severity_SEVERITY_WARNING,
		Hold:     durationpb.New(0), Cooldown: durationpb.New(time.Hour), Enabled: true,
	})

	follow := harness.Settings{"NATS_URL": natsURL, "REGISTRY_URL": reg.GRPCAddr, "REGISTRY_TOKEN": admin}
	ingests := []*harness.Ingest{
		sensorcast.StartIngest(t, "ingest-alerts-1", withSettings(follow, harness.Settings{
			"MQTT_URL": mqtt.URL, "MQTT_CLIENT_ID": "e2e-ingest-alerts-1", "MQTT_SHARE_GROUP": "e2e-alerts",
		})),
		sensorcast.StartIngest(t, "ingest-alerts-2", withSettings(follow, harness.Settings{
			"MQTT_URL": mqtt.URL, "MQTT_CLIENT_ID": "e2e-ingest-alerts-2", "MQTT_SHARE_GROUP": "e2e-alerts",
		})),
	}
	edge := sensorcast.StartEdge(t, "edge-alerts", withSettings(follow, harness.Settings{
		"JWT_SECRET": jwtSecret, "REDIS_URL": redis.URL,
	}))

	dash := harness.Dial(t, "dashboard", edge.WSURL,
		harness.Token(t, jwtSecret, "alice", time.Hour, "device:*", "group:*", "global"), harness.DialOptions{})
	alertRooms := []string{"device:d-a", "group:g1", "global"}
	dash.MustSubscribe(t, alertRooms...)

	// Readings go out over two MQTT connections in turn; the broker hands
	// each to either replica. Each is sent only once the previous one has
	// reached the dashboard, so that the replicas see the readings in order
	// as far as the platform lets a test arrange it.
	pubs := []*harness.MQTTPublisher{
		harness.DialMQTT(t, mqtt.Addr, "e2e-alerts-pub-1"),
		harness.DialMQTT(t, mqtt.Addr, "e2e-alerts-pub-2"),
	}
	readings := 0
	send := func(device, fields string, at time.Time) {
		t.Helper()
		readings++
		mark := fmt.Sprintf("m%d", readings)
		payload := fmt.Sprintf(`{"fields":%s,"tags":{"mark":%q}`, fields, mark)
		if !at.IsZero() {
			payload += fmt.Sprintf(`,"timestamp":%q`, at.Format(time.RFC3339Nano))
		}
		payload += "}"
		if err := pubs[readings%len(pubs)].Publish(ctx, "devices/"+device+"/telemetry", []byte(payload)); err != nil {
			t.Fatalf("publish %s: %v", payload, err)
		}
		room := "device:" + device
		if device != "d-a" {
			room = "global" // the dashboard is not in d-b's room
		}
		_, err := dash.Await(alertWait, func(m harness.Message) bool {
			var p struct{ Tags map[string]string }
			return m.Type == "telemetry" && m.Room == room && json.Unmarshal(m.Payload, &p) == nil && p.Tags["mark"] == mark
		})
		if err != nil {
			t.Fatalf("reading %s of %s did not reach %s: %v", payload, device, room, err)
		}
	}
	telemetryCounts := func() []float64 {
		t.Helper()
		counts := make([]float64, len(ingests))
		for i, in := range ingests {
			counts[i] = harness.Scrape(t, in.AdminURL+"/metrics").Value("sensorcast_ingest_messages_total", "kind", "telemetry")
		}
		return counts
	}

	// Warm up with readings of d-b that no rule watches (R1 is d-a's, R2
	// g1's) until both replicas have handled some: both hold their share of
	// the subscription.
	harness.Eventually(t, 20*time.Second, func() error {
		send("d-b", `{"temperature":50,"humidity":5}`, time.Time{})
		if c := telemetryCounts(); c[0] < 1 || c[1] < 1 {
			return fmt.Errorf("telemetry handled per replica: %v; want both > 0", c)
		}
		return nil
	})
	before := telemetryCounts()
	t.Logf("warm-up: %d readings of d-b, telemetry handled per replica %v", readings, before)

	// got collects every alert the dashboard receives, in arrival order.
	var got []alertFrame
	take := func(m harness.Message) {
		t.Helper()
		f := alertFrame{Room: m.Room, Raw: string(m.Raw)}
		if m.Seq == nil {
			t.Errorf("alert without seq: %s", m.Raw)
		} else {
			f.Seq = *m.Seq
		}
		m.Decode(t, &f.P)
		got = append(got, f)
	}
	isAlert := func(m harness.Message) bool { return m.Type == "alert" }
	count := func(rule *registryv1.AlertRule, state, room string) int {
		n := 0
		for _, a := range got {
			if a.P.RuleID == rule.GetId() && a.P.State == state && a.Room == room {
				n++
			}
		}
		return n
	}
	// awaitAlerts receives alerts until rule has reached state in every
	// room of d-a.
	awaitAlerts := func(rule *registryv1.AlertRule, state string) {
		t.Helper()
		deadline := time.Now().Add(alertWait)
		for {
			missing := slices.DeleteFunc(slices.Clone(alertRooms), func(room string) bool { return count(rule, state, room) > 0 })
			if len(missing) == 0 {
				return
			}
			m, err := dash.Await(time.Until(deadline), isAlert)
			if err != nil {
				// Say first what already went wrong, which may explain it.
				seen := map[string]int{}
				for _, a := range got {
					seen[fmt.Sprintf("%s %q of %s in %s", a.P.State, a.P.RuleName, a.P.DeviceID, a.Room)]++
				}
				for _, what := range slices.Sorted(maps.Keys(seen)) {
					if n := seen[what]; n > 1 {
						t.Errorf("received %d alerts %s; want at most 1", n, what)
					}
				}
				t.Fatalf("waiting for %s %q in %v: %v; alerts so far:%s", state, rule.GetName(), missing, err, dumpAlerts(got))
			}
			take(m)
		}
	}

	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	sec := func(base time.Time, n int) time.Time { return base.Add(time.Duration(n) * time.Second) }

	// R1: temperature > 40 for 2 s. Five readings of 41 over 4 s fire it
	// once (at t0+2s when every reading is evaluated in order, later if a
	// replica evaluated one late and ignored it), and 39 resolves it.
	for i := range 5 {
		send("d-a", `{"temperature":41}`, sec(t0, i))
	}
	awaitAlerts(r1, "firing")
	send("d-a", `{"temperature":39}`, sec(t0, 5))
	awaitAlerts(r1, "resolved")

	// R2: humidity < 10 on g1, no hold, cooldown 1 h: 5 fires, 20
	// resolves, and 5 again must not fire within the cooldown.
	t1 := sec(t0, 10)
	send("d-a", `{"humidity":5}`, t1)
	awaitAlerts(r2, "firing")
	send("d-a", `{"humidity":20}`, sec(t1, 1))
	awaitAlerts(r2, "resolved")
	send("d-a", `{"humidity":5}`, sec(t1, 2))

	// d-b matches nothing: R1 watches d-a only, and d-b is not in g1.
	send("d-b", `{"temperature":50,"humidity":5}`, sec(t1, 3))
	send("d-b", `{"temperature":51,"humidity":4}`, sec(t1, 4))

	// Settle: markers of a field no rule watches until both replicas have
	// handled one after every reading above (a replica handles its
	// messages in order), then a quiet period for anything late.
	last := telemetryCounts()
	markers := 0
	harness.Eventually(t, 20*time.Second, func() error {
		markers++
		send("d-a", `{"marker":1}`, sec(t1, 4+markers))
		if c := telemetryCounts(); c[0] <= last[0] || c[1] <= last[1] {
			return fmt.Errorf("telemetry handled per replica: %v, %v after the scenarios; want both to move", c, last)
		}
		return nil
	})
	const settle = 2 * time.Second
	for deadline := time.Now().Add(settle); ; {
		m, err := dash.Await(time.Until(deadline), isAlert)
		if err != nil {
			break
		}
		take(m)
	}
	dash.Ping(t) // the quiet period ended by timing out, not with the connection
	after := telemetryCounts()
	t.Logf("scenario readings handled per replica: %v (telemetry counters %v before, %v after; %d markers)",
		[]float64{after[0] - before[0], after[1] - before[1]}, before, after, markers)
	for _, in := range ingests {
		m := harness.Scrape(t, in.AdminURL+"/metrics")
		t.Logf("%s: alerts stored firing=%g resolved=%g, evaluation errors=%g", in.Name,
			m.Value("sensorcast_ingest_alerts_total", "state", "firing"),
			m.Value("sensorcast_ingest_alerts_total", "state", "resolved"),
			m.Value("sensorcast_ingest_alert_errors_total"))
	}
	t.Logf("alerts received (%d):%s", len(got), dumpAlerts(got))

	// Every alert belongs to R1 or R2 and to d-a, and arrived in one of
	// d-a's rooms.
	for _, a := range got {
		if a.P.DeviceID != "d-a" || (a.P.RuleID != r1.GetId() && a.P.RuleID != r2.GetId()) || !slices.Contains(alertRooms, a.Room) {
			t.Errorf("unexpected alert (want only R1 %s and R2 %s for d-a in %v): %s", r1.GetId(), r2.GetId(), alertRooms, a.Raw)
		}
	}
	id1 := checkRuleAlerts(t, got, alertRooms, r1, "critical",
		alertPayloadWant{value: 41, from: sec(t0, 2), to: sec(t0, 4)},
		alertPayloadWant{value: 39, from: sec(t0, 5), to: sec(t0, 5)})
	id2 := checkRuleAlerts(t, got, alertRooms, r2, "warning",
		alertPayloadWant{value: 5, from: t1, to: t1},
		alertPayloadWant{value: 20, from: sec(t1, 1), to: sec(t1, 1)})
	if id1 != "" && id1 == id2 {
		t.Errorf("R1 and R2 alerts share alert_id %q", id1)
	}
	if want := 2 * 2 * len(alertRooms); len(got) != want {
		t.Errorf("received %d alerts; want %d (a firing and a resolved of R1 and of R2 in each of %v)", len(got), want, alertRooms)
	}
	t.Logf("servers and scenarios took %s (cleanup not included)", time.Since(start).Round(100*time.Millisecond))
}

// alertWait bounds the wait for a reading or an alert to reach the
// dashboard: generous for a 2-core machine running everything with -race.
const alertWait = 10 * time.Second

// alertPayloadWant is what one transition's payload must carry: the value
// of the reading that caused it, taken between from and to.
type alertPayloadWant struct {
	value    float64
	from, to time.Time
}

// checkRuleAlerts checks that rule fired once and resolved once, each in
// every room of rooms, with one alert_id, and returns that id.
func checkRuleAlerts(t *testing.T, got []alertFrame, rooms []string, rule *registryv1.AlertRule, severity string, firing, resolved alertPayloadWant) string {
	t.Helper()
	name := rule.GetName()
	var ids []string
	for _, state := range []string{"firing", "resolved"} {
		want := firing
		if state == "resolved" {
			want = resolved
		}
		// One transition, delivered through each room: the copies must
		// be identical but for the room.
		var first *alertPayload
		for _, room := range rooms {
			var frames []alertFrame
			for _, a := range got {
				if a.P.RuleID == rule.GetId() && a.P.State == state && a.Room == room {
					frames = append(frames, a)
				}
			}
			if len(frames) != 1 {
				t.Errorf("%q: %d %s alerts in %s; want exactly 1:%s", name, len(frames), state, room, dumpAlerts(frames))
				continue
			}
			p := frames[0].P
			if first == nil {
				first = &p
			} else if !samePayload(*first, p) {
				t.Errorf("%q %s: the copy in %s differs from the first: %+v vs %+v", name, state, room, p, *first)
			}
		}
		if first == nil {
			continue
		}
		p := *first
		var problems []string
		if p.AlertID == "" {
			problems = append(problems, "no alert_id")
		}
		if p.DeviceID != "d-a" {
			problems = append(problems, fmt.Sprintf("device_id %q, want d-a", p.DeviceID))
		}
		if p.RuleName != name {
			problems = append(problems, fmt.Sprintf("rule_name %q, want %q", p.RuleName, name))
		}
		if p.Severity != severity {
			problems = append(problems, fmt.Sprintf("severity %q, want %q", p.Severity, severity))
		}
		if p.Field != rule.GetField() {
			problems = append(problems, fmt.Sprintf("field %q, want %q", p.Field, rule.GetField()))
		}
		if p.Value == nil || *p.Value != want.value {
			problems = append(problems, fmt.Sprintf("value %s, want %g", number(p.Value), want.value))
		}
		if p.Threshold == nil || *p.Threshold != rule.GetThreshold() {
			problems = append(problems, fmt.Sprintf("threshold %s, want %g", number(p.Threshold), rule.GetThreshold()))
		}
		if ts, err := time.Parse(time.RFC3339Nano, p.Timestamp); err != nil || ts.Before(want.from) || ts.After(want.to) {
			problems = append(problems, fmt.Sprintf("timestamp %q, want the reading's time, %s to %s",
				p.Timestamp, want.from.Format(time.RFC3339), want.to.Format(time.RFC3339)))
		}
		if len(problems) > 0 {
			t.Errorf("%q %s: %s", name, state, strings.Join(problems, "; "))
		}
		ids = append(ids, p.AlertID)
	}
	if len(ids) == 2 && ids[0] != ids[1] {
		t.Errorf("%q: resolved alert_id %q differs from firing alert_id %q", name, ids[1], ids[0])
	}
	// In every room the resolution comes after the firing (checked when
	// there is one of each; other counts are reported above).
	for _, room := range rooms {
		var firing, resolved []uint64
		for _, a := range got {
			if a.P.RuleID == rule.GetId() && a.Room == room {
				switch a.P.State {
				case "firing":
					firing = append(firing, a.Seq)
				case "resolved":
					resolved = append(resolved, a.Seq)
				}
			}
		}
		if len(firing) != 1 || len(resolved) != 1 {
			continue
		}
		if firingSeq, resolvedSeq := firing[0], resolved[0]; resolvedSeq <= firingSeq {
			t.Errorf("%q in %s: resolved at seq %d, not after firing at seq %d", name, room, resolvedSeq, firingSeq)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func samePayload(a, b alertPayload) bool {
	return a.AlertID == b.AlertID && a.DeviceID == b.DeviceID && a.RuleID == b.RuleID && a.RuleName == b.RuleName &&
		a.Severity == b.Severity && a.Field == b.Field && a.State == b.State && a.Timestamp == b.Timestamp &&
		number(a.Value) == number(b.Value) && number(a.Threshold) == number(b.Threshold)
}

func number(v *float64) string {
	if v == nil {
		return "missing"
	}
	if math.IsNaN(*v) {
		return "NaN"
	}
	return fmt.Sprintf("%g", *v)
}

func dumpAlerts(alerts []alertFrame) string {
	if len(alerts) == 0 {
		return " none"
	}
	var b strings.Builder
	for _, a := range alerts {
		fmt.Fprintf(&b, "\n\t%s", a.Raw)
	}
	return b.String()
}
