package e2e

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

const (
	// jwtSecret signs every dashboard token of the tests.
	jwtSecret = "e2e-secret-for-dashboard-tokens"
	// allowedOrigin is the one browser origin the edges accept.
	allowedOrigin = "https://dashboard.example"
	// presenceLease is short so that a killed edge's presence lapses fast.
	presenceLease = 3 * time.Second
	// quiet is how long a test waits after the last expected message to
	// make sure no unexpected one follows. Delivery takes milliseconds.
	quiet = 400 * time.Millisecond
)

// env is the system the scenarios share: Redis, Mosquitto, NATS, one
// ingest and two edges. Destructive scenarios start edges of their own on
// the same servers.
type env struct {
	redis   *harness.Redis
	mqtt    *harness.Mosquitto
	natsURL string
	js      jetstream.JetStream // publishes envelopes straight to the room stream
	pending []jetstream.PubAckFuture
	ingest  *harness.Ingest
	edgeA   *harness.Edge
	edgeB   *harness.Edge
}

func startEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		redis: harness.StartRedis(t),
		mqtt:  harness.StartMosquitto(t),
	}
	e.natsURL = harness.StartNATS(t).ClientURL()
	js, err := jetstream.New(harness.ConnectNATS(t, e.natsURL))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	e.js = js
	e.ingest = sensorcast.StartIngest(t, "ingest", harness.Settings{
		"NATS_URL":         e.natsURL,
		"MQTT_URL":         e.mqtt.URL,
		"MQTT_CLIENT_ID":   "e2e-ingest-1",
		"MQTT_SHARE_GROUP": "e2e-ingest",
	})
	e.edgeA = e.startEdge(t, "edge-a", nil)
	e.edgeB = e.startEdge(t, "edge-b", nil)
	warmUpEdges(t, e.mqtt, e.edgeA, e.edgeB)
	return e
}

// startEdge starts an edge on the shared servers; overrides change its
// settings.
func (e *env) startEdge(t testing.TB, name string, overrides harness.Settings) *harness.Edge {
	t.Helper()
	settings := harness.Settings{
		"NATS_URL":        e.natsURL,
		"NATS_CONNS":      "2",
		"REDIS_URL":       e.redis.URL,
		"JWT_SECRET":      jwtSecret,
		"ALLOWED_ORIGINS": allowedOrigin,
		"PRESENCE_LEASE":  presenceLease.String(),
		"DRAIN_PERIOD":    "1s",
	}
	maps.Copy(settings, overrides)
	return sensorcast.StartEdge(t, name, settings)
}

// warmUpEdges publishes probe readings over MQTT until one reaches a
// client on each edge, which proves ingest holds its MQTT subscription and
// every edge delivers. Then it waits until late probes stop arriving, so
// none can reach a later scenario's global room (or its counters), and
// closes its clients.
func warmUpEdges(t *testing.T, broker *harness.Mosquitto, edges ...*harness.Edge) {
	t.Helper()
	var clients []*harness.Client
	for _, edge := range edges {
		c := dial(t, edge, "warmup")
		c.MustSubscribe(t, "device:warmup", "global")
		clients = append(clients, c)
	}
	probe := 0
	harness.Eventually(t, 20*time.Second, func() error {
		probe++
		broker.Publish(t, "devices/warmup/telemetry", fmt.Appendf(nil, `{"fields":{"probe":%d}}`, probe), false)
		for _, c := range clients {
			if _, err := c.Await(time.Second, harness.Message.IsRoomMessage); err != nil {
				return fmt.Errorf("probe %d did not reach %s: %w", probe, c.Name, err)
			}
		}
		return nil
	})
	for _, c := range clients {
		for {
			if _, err := c.Await(quiet, harness.Message.IsRoomMessage); err != nil {
				break
			}
		}
		c.Close()
	}
}

// token signs a token for user that grants rooms (patterns).
func token(t testing.TB, user string, rooms ...string) string {
	t.Helper()
	return harness.Token(t, jwtSecret, user, time.Hour, rooms...)
}

// dial connects user to edge with a token that grants every room.
func dial(t testing.TB, edge *harness.Edge, user string) *harness.Client {
	t.Helper()
	return harness.Dial(t, user+"@"+edge.Name, edge.WSURL, token(t, user, "global", "device:*", "group:*"), harness.DialOptions{})
}

// publishTelemetry publishes a telemetry envelope for device straight to its
// room's subject in the room stream (which ingest created), as ingest
// would, carrying seq as the field "seq" and pad as a tag (if not empty) to
// make the message as large as a test needs. flushNATS waits for the
// stream to have stored it.
func (e *env) publishTelemetry(t testing.TB, device string, seq int, pad string) {
	t.Helper()
	tel := &envelopev1.Telemetry{
		DeviceId:  device,
		Timestamp: timestamppb.Now(),
		Fields: map[string]*envelopev1.FieldValue{
			"seq": {Kind: &envelopev1.FieldValue_Number{Number: float64(seq)}},
		},
	}
	if pad != "" {
		tel.Tags = map[string]string{"pad": pad}
	}
	data, err := proto.Marshal(&envelopev1.Envelope{
		Id:         fmt.Sprintf("e2e-%s-%d", device, seq),
		IngestedAt: timestamppb.Now(),
		Body:       &envelopev1.Envelope_Telemetry{Telemetry: tel},
	})
	if err != nil {
		t.Fatalf("marshal envelope: %v", err)
	}
	subject := envelopev1.RoomSubject("device:"+device, envelopev1.KindTelemetry)
	ack, err := e.js.PublishAsync(subject, data)
	if err != nil {
		t.Fatalf("publish to %s: %v", subject, err)
	}
	e.pending = append(e.pending, ack)
}

// flushNATS waits until the stream has acknowledged every message published.
func (e *env) flushNATS(t testing.TB) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for _, ack := range e.pending {
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			t.Fatalf("publish to %s: %v", ack.Msg().Subject, err)
		case <-timeout:
			t.Fatalf("the room stream did not acknowledge %s within 10s", ack.Msg().Subject)
		}
	}
	e.pending = nil
}

// observer is a client that must keep receiving every message of its
// device room while other clients on the same edge misbehave.
type observer struct {
	e        *env
	c        *harness.Client
	device   string
	pad      string
	seq      int // the last message published
	received int // the last message received
}

func newObserver(t testing.TB, e *env, edge *harness.Edge, pad string) *observer {
	t.Helper()
	o := &observer{e: e, c: dial(t, edge, "olive"), device: "observer-" + edge.Name, pad: pad}
	o.c.MustSubscribe(t, "device:"+o.device)
	return o
}

// publish publishes the room's next n messages.
func (o *observer) publish(t testing.TB, n int) {
	t.Helper()
	for range n {
		o.seq++
		o.e.publishTelemetry(t, o.device, o.seq, o.pad)
	}
	o.e.flushNATS(t)
}

// expectPublished waits for every message published and not yet received,
// in order, and fails t on any gap.
func (o *observer) expectPublished(t testing.TB) {
	t.Helper()
	for o.received < o.seq {
		m := o.c.ExpectType(t, "telemetry")
		if got := seqOf(t, m); got != o.received+1 {
			t.Fatalf("%s: got message %d; want %d (messages lost or reordered)", o.c.Name, got, o.received+1)
		}
		o.received++
	}
}

// keepsReceiving publishes n messages to the observer's room and checks
// that every one arrives, in order.
func (o *observer) keepsReceiving(t testing.TB, n int) {
	t.Helper()
	o.publish(t, n)
	o.expectPublished(t)
}

// seqOf reads the "seq" field of a telemetry message published by
// publishTelemetry.
func seqOf(t testing.TB, m harness.Message) int {
	t.Helper()
	var p harness.Telemetry
	m.Decode(t, &p)
	seq, ok := p.Fields["seq"].(float64)
	if !ok {
		t.Fatalf("telemetry %s has no numeric seq field", m)
	}
	return int(seq)
}
