package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/natsconn"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

const testSecret = "edge-test-secret-0123456789"

// testEdge is one edge pod served on a loopback port, fed by an embedded NATS.
type testEdge struct {
	ns       *server.Server
	storeDir string
	js       jetstream.JetStream
	url      string
	pub      *nats.Conn
	subs     []*nats.Conn
	cancel   context.CancelFunc
	done     chan error
}

func startEdge(t *testing.T, mutate func(*Config), depOpts ...func(*Deps)) *testEdge {
	t.Helper()
	storeDir := t.TempDir()
	ns := natstest.StartOnPort(t, -1, storeDir)
	var cfg Config
	cfg.RegisterFlags(flagSet())
	cfg.JWTSecret = testSecret
	cfg.PodName = "test-pod"
	cfg.DrainPeriod = 200 * time.Millisecond
	cfg.NATSConns = 2
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The services' own connection settings: reconnect forever, quickly.
	connect := func() *nats.Conn {
		nc, err := natsconn.Connect(t.Context(), ns.ClientURL(), "edge-test", logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	e := &testEdge{ns: ns, storeDir: storeDir, pub: connect(), done: make(chan error, 1)}
	if err := roomstream.Ensure(t.Context(), e.pub, roomstream.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(e.pub)
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	for range cfg.NATSConns {
		e.subs = append(e.subs, connect())
	}
	deps := Deps{NATS: e.subs, Logger: logger, Registry: prometheus.NewRegistry()}
	for _, opt := range depOpts {
		opt(&deps)
	}
	svc, err := New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "ws://" + ln.Addr().String() + WSPath
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.done <- svc.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-e.done; err != nil {
			t.Errorf("edge Run: %v", err)
		}
	})
	return e
}

func token(t *testing.T, sub string, rooms ...string) string {
	t.Helper()
	tok, err := MintToken(testSecret, sub, rooms, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func (e *testEdge) dial(t *testing.T, tok string) *client {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(e.url+"?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn}
	if m := c.next(); m.Type != "connected" {
		t.Fatalf("first message is %q, want connected", m.Type)
	}
	return c
}

type message struct {
	Type      string          `json:"type"`
	Room      string          `json:"room"`
	Seq       uint64          `json:"seq"`
	RequestID string          `json:"request_id"`
	Timestamp string          `json:"timestamp"`
	Payload   json.RawMessage `json:"payload"`
}

func (c *client) send(v string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(v)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) next() message {
	c.t.Helper()
	m, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) read(timeout time.Duration) (message, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		return message{}, err
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatalf("server sent invalid JSON %q: %v", data, err)
	}
	if m.Timestamp == "" {
		c.t.Errorf("message %s has no timestamp", data)
	}
	return m, nil
}

func (c *client) payload(m message, v any) {
	c.t.Helper()
	if err := json.Unmarshal(m.Payload, v); err != nil {
		c.t.Fatalf("payload of %s: %v", m.Type, err)
	}
}

func (c *client) subscribe(rooms ...string) subscribed {
	c.t.Helper()
	b, _ := json.Marshal(rooms)
	c.send(`{"type":"subscribe","request_id":"s","payload":{"rooms":` + string(b) + `}}`)
	m := c.next()
	if m.Type != "subscribed" || m.RequestID != "s" {
		c.t.Fatalf("got %s (%s), want subscribed", m.Type, m.Payload)
	}
	var p subscribed
	c.payload(m, &p)
	return p
}

type subscribed struct {
	Recovered map[string]bool `json:"recovered"`
	Rooms     []string        `json:"rooms"`
	Rejected  []struct {
		Room, Code, Reason string
	} `json:"rejected"`
}

func (e *testEdge) publish(t *testing.T, room, deviceID string, temp float64) {
	t.Helper()
	e.publishPadded(t, room, deviceID, temp, 0)
}

// publishPadded adds a tag of pad bytes, to fill socket buffers quickly.
func (e *testEdge) publishPadded(t *testing.T, room, deviceID string, temp float64, pad int) {
	t.Helper()
	data, err := proto.Marshal(&envelopev1.Envelope{
		Id:         "m",
		IngestedAt: timestamppb.Now(),
		Body: &envelopev1.Envelope_Telemetry{Telemetry: &envelopev1.Telemetry{
			DeviceId:  deviceID,
			Timestamp: timestamppb.Now(),
			Fields:    map[string]*envelopev1.FieldValue{"temperature": {Kind: &envelopev1.FieldValue_Number{Number: temp}}},
			Tags:      map[string]string{"pad": strings.Repeat("p", pad)},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Stored with an acknowledgement, as ingest does: once this returns the
	// message is in the stream, ready to be replayed.
	if _, err := e.js.Publish(context.Background(), envelopev1.RoomSubject(room, envelopev1.KindTelemetry), data); err != nil {
		t.Error(err)
	}
}

func TestTheUpgradeNeedsAValidTokenAndAnAllowedOrigin(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.AllowedOrigins = "https://dash.example.com" })
	httpURL := strings.Replace(e.url, "ws://", "http://", 1)
	for name, tc := range map[string]struct {
		query, auth, origin string
		want                int
		code                string
	}{
		"no token":            {want: 401, code: "unauthorized"},
		"a garbage token":     {query: "?token=abc", want: 401, code: "unauthorized"},
		"a disallowed origin": {query: "?token=" + token(t, "u", "global"), origin: "https://evil.example.com", want: 403, code: "forbidden_origin"},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", httpURL+tc.query, nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error, Code string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.want || body.Code != tc.code || body.Error == "" {
				t.Errorf("got %d %+v, want %d %s", resp.StatusCode, body, tc.want, tc.code)
			}
		})
	}
	t.Run("accepts a bearer header from an allowed origin", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + token(t, "u", "global")}, "Origin": {"https://dash.example.com"}}
		conn, _, err := websocket.DefaultDialer.Dial(e.url, h)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	})
}

func TestRoomsDeliverExactlyTheirMessages(t *testing.T) {
	e := startEdge(t, nil)
	a := e.dial(t, token(t, "alice", "device:*", "global"))
	b := e.dial(t, token(t, "bob", "device:d2"))

	got := a.subscribe("device:d1", "global", "device:d1", "bad room", "group:g")
	if strings.Join(got.Rooms, ",") != "device:d1,global" {
		t.Errorf("joined %v", got.Rooms)
	}
	if len(got.Rejected) != 2 || got.Rejected[0].Code != "invalid_room" || got.Rejected[1].Code != "forbidden" {
		t.Errorf("rejected %+v", got.Rejected)
	}
	if got := b.subscribe("device:d2"); len(got.Rooms) != 1 {
		t.Errorf("bob joined %v", got.Rooms)
	}

	e.publish(t, "device:d1", "d1", 1)
	e.publish(t, "device:d2", "d2", 2)
	e.publish(t, "global", "d1", 3)

	// Rooms are independent streams: their messages may interleave in any order.
	seen := map[string]float64{}
	for range 2 {
		m := a.next()
		var p struct {
			DeviceID string             `json:"device_id"`
			Fields   map[string]float64 `json:"fields"`
		}
		a.payload(m, &p)
		if m.Type != "telemetry" || p.DeviceID != "d1" {
			t.Errorf("alice got %s from %s", m.Type, p.DeviceID)
		}
		seen[m.Room] = p.Fields["temperature"]
	}
	if seen["device:d1"] != 1 || seen["global"] != 3 {
		t.Errorf("alice got %v, want device:d1=1 and global=3", seen)
	}
	if m := b.next(); m.Room != "device:d2" {
		t.Errorf("bob got a message of %s", m.Room)
	}

	// After unsubscribe, nothing more arrives from that room.
	a.send(`{"type":"unsubscribe","request_id":"u","payload":{"rooms":["device:d1"]}}`)
	if m := a.next(); m.Type != "unsubscribed" || !strings.Contains(string(m.Payload), `["global"]`) {
		t.Errorf("got %s %s", m.Type, m.Payload)
	}
	e.publish(t, "device:d1", "d1", 4)
	e.publish(t, "global", "d1", 5)
	if m := a.next(); m.Room != "global" {
		t.Errorf("after unsubscribe got a message of %s", m.Room)
	}
}

func TestBadMessagesGetErrorsAndTheConnectionCarriesOn(t *testing.T) {
	e := startEdge(t, nil)
	c := e.dial(t, token(t, "alice", "global"))
	for _, tc := range []struct{ send, code string }{
		{`not json`, "invalid_json"},
		{`{"type":"teleport","request_id":"r1"}`, "unknown_type"},
		{`{"type":"subscribe","request_id":"r2","payload":{"rooms":[]}}`, "invalid_payload"},
		{`{"type":"subscribe","request_id":"r3","payload":{"rooms":"global"}}`, "invalid_payload"},
		{`{"type":"presence","request_id":"r4","payload":{"room":"group:secret"}}`, "forbidden"},
		{`{"type":"presence","request_id":"r5","payload":{"room":"what?"}}`, "invalid_room"},
	} {
		c.send(tc.send)
		m := c.next()
		var p struct{ Code, Error string }
		c.payload(m, &p)
		if m.Type != "error" || p.Code != tc.code || p.Error == "" {
			t.Errorf("%s: got %s %+v, want error %s", tc.send, m.Type, p, tc.code)
		}
	}
	c.send(`{"type":"ping","request_id":"p"}`)
	if m := c.next(); m.Type != "pong" || m.RequestID != "p" {
		t.Errorf("got %s/%s, want pong/p", m.Type, m.RequestID)
	}
	c.send(`{"type":"command","request_id":"c","payload":{"device_id":"d1","name":"blink"}}`)
	if m := c.next(); m.Type != "command_result" || !strings.Contains(string(m.Payload), `"rejected"`) {
		t.Errorf("command got %s %s", m.Type, m.Payload)
	}
}

func TestPresenceCountsUsersAndConnections(t *testing.T) {
	e := startEdge(t, nil)
	a1 := e.dial(t, token(t, "alice", "global"))
	a2 := e.dial(t, token(t, "alice", "global"))
	b := e.dial(t, token(t, "bob", "global"))
	for _, c := range []*client{a1, a2, b} {
		c.subscribe("global")
	}
	b.send(`{"type":"presence","request_id":"q","payload":{"room":"global"}}`)
	m := b.next()
	var p struct {
		Room    string
		Count   int
		Members []struct {
			UserID      string `json:"user_id"`
			Connections int
		}
	}
	b.payload(m, &p)
	if m.Type != "presence" || p.Count != 2 || p.Members[0].UserID != "alice" || p.Members[0].Connections != 2 {
		t.Errorf("presence = %s", m.Payload)
	}
}

func TestLimitsAreEnforcedWithoutHurtingOthers(t *testing.T) {
	e := startEdge(t, func(c *Config) {
		c.Session.SendQueue = 64
		c.Session.RateLimit = 5
		c.Session.RateBurst = 5
	})
	t.Run("an oversized frame closes with 1009", func(t *testing.T) {
		c := e.dial(t, token(t, "big", "global"))
		c.send(`{"type":"ping","pad":"` + strings.Repeat("x", 8200) + `"}`)
		_, err := c.read(5 * time.Second)
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Errorf("got %v, want close 1009", err)
		}
	})

	t.Run("a flood gets rate_limited errors", func(t *testing.T) {
		c := e.dial(t, token(t, "flood", "global"))
		for range 20 {
			c.send(`{"type":"ping"}`)
		}
		limited := 0
		for range 20 {
			var p struct{ Code string }
			if m := c.next(); m.Type == "error" {
				c.payload(m, &p)
				if p.Code == "rate_limited" {
					limited++
				}
			}
		}
		if limited < 10 {
			t.Errorf("%d of 20 pings were rate limited, want at least 10", limited)
		}
	})

	t.Run("a reader that never reads is closed with 1013", func(t *testing.T) {
		// Its own edge: 4 KiB messages need a queue the watcher keeps below under -race.
		e := startEdge(t, func(c *Config) { c.Session.SendQueue = 512 })
		watcher := e.dial(t, token(t, "w", "global"))
		watcher.subscribe("global")
		dialer := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024) })
		}}).DialContext}
		conn, _, err := dialer.Dial(e.url+"?token="+token(t, "slow", "global"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		slow := &client{t: t, conn: conn}
		slow.next() // connected
		slow.subscribe("global")

		// Publish until the edge gives up on the slow reader; the watcher
		// must receive every message meanwhile.
		const n = 3000
		published := make(chan struct{})
		go func() {
			defer close(published)
			for i := range n {
				// 3000 × 4 KiB outgrows the kernel's socket buffers (4 MiB
				// at most) and the slow reader's queue.
				e.publishPadded(t, "global", "d1", float64(i), 4096)
				if i%8 == 7 {
					time.Sleep(time.Millisecond) // a pace the watcher keeps up with under -race
				}
			}
		}()
		defer func() { <-published }()
		for i := range n {
			// Scan rather than decode: 4 KiB JSON decodes are slow under -race.
			_ = watcher.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, data, err := watcher.conn.ReadMessage()
			if err != nil {
				t.Fatalf("watcher, at reading %d: %v", i, err)
			}
			if want := fmt.Sprintf(`"temperature":%d}`, i); !strings.Contains(string(data), want) {
				t.Fatalf("watcher's reading %d lacks %s", i, want)
			}
		}
		for {
			if _, err = slow.read(5 * time.Second); err != nil {
				break
			}
		}
		var closeErr *websocket.CloseError
		if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseTryAgainLater || closeErr.Text != "slow consumer" {
			t.Errorf("slow reader ended with %v, want close 1013 slow consumer", err)
		}
	})
}

func TestTheLastLeaveDropsTheNATSSubscription(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.NATSConns = 1 })
	// The pod's own subscriptions (command results) are there from the start.
	base := e.subs[0].NumSubscriptions()
	subs := func() int { return e.subs[0].NumSubscriptions() - base }
	a := e.dial(t, token(t, "a", "global", "device:*"))
	b := e.dial(t, token(t, "b", "global"))
	a.subscribe("global", "device:x")
	b.subscribe("global")
	// (A new room also reads its position from the stream, briefly with a
	// reply subscription of its own.)
	eventually(t, func() bool { return subs() == 2 }, "one subscription per room")
	a.conn.Close()
	eventually(t, func() bool { return subs() == 1 }, "device:x unsubscribed when its only member left")
	b.send(`{"type":"unsubscribe","payload":{"rooms":["global"]}}`)
	b.next()
	if subs() != 0 {
		t.Errorf("%d subscriptions left, want 0", subs())
	}
}

func TestShutdownDrainsClientsWith1012(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("readiness goes off at once and every client gets 1012", func(t *testing.T) {
		e := startEdge(t, func(c *Config) { c.DrainPeriod = time.Second })
		var clients []*client
		for range 5 {
			c := e.dial(t, token(t, "u", "global"))
			c.subscribe("global")
			clients = append(clients, c)
		}
		e.cancel()
		readyz := strings.Replace(strings.TrimSuffix(e.url, WSPath), "ws://", "http://", 1) + "/readyz"
		eventually(t, func() bool {
			resp, err := http.Get(readyz)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusServiceUnavailable
		}, "/readyz answers 503 while draining")
		for _, c := range clients {
			var err error
			for err == nil {
				_, err = c.read(5 * time.Second)
			}
			if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
				t.Errorf("client ended with %v, want close 1012", err)
			}
			c.conn.Close()
		}
	})
	// The subtest's cleanups have stopped the edge and NATS.
	eventually(t, func() bool { return runtime.NumGoroutine() <= before }, "no goroutine outlives the edge")
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHeartbeatKeepsLiveClientsAndDropsSilentOnes(t *testing.T) {
	e := startEdge(t, func(c *Config) {
		c.Session.PingInterval = 100 * time.Millisecond
		c.Session.PongTimeout = 400 * time.Millisecond
	})
	live := e.dial(t, token(t, "live", "global"))
	silent := e.dial(t, token(t, "silent", "global"))

	// The live client reads, so gorilla answers every server ping with a pong.
	liveErr := make(chan error, 1)
	go func() {
		_, err := live.read(1200 * time.Millisecond)
		liveErr <- err
	}()
	time.Sleep(time.Second) // the silent client neither reads nor writes meanwhile
	_, err := silent.read(time.Second)
	var closeErr *websocket.CloseError
	if err == nil || errors.As(err, &closeErr) && closeErr.Code == websocket.CloseServiceRestart {
		t.Errorf("silent client: %v, want its connection dropped", err)
	}
	if err := <-liveErr; err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("live client: %v, want only its own read timeout (the edge kept it)", err)
	}
}

// catalog stands in for the registry cache (tested against the registry
// itself); here only the edge's use of it matters.
type catalog struct {
	devices map[string]bool
	groups  map[string]bool
	members map[string][]string // group -> device ids
	ready   atomic.Bool
}

func (c *catalog) Lookup(id string) (devicecache.Device, bool) {
	return devicecache.Device{Enabled: true}, c.devices[id]
}
func (c *catalog) GroupExists(id string) bool { return c.groups[id] }
func (c *catalog) Ready() bool                { return c.ready.Load() }
func (c *catalog) GroupMembers(id string, limit int) []string {
	return c.members[id][:min(limit, len(c.members[id]))]
}
func (c *catalog) DeviceIDs(limit int) []string {
	var ids []string
	for id := range c.devices {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids[:min(limit, len(ids))]
}

func TestRoomsOfUnknownDevicesAndGroupsAreRejected(t *testing.T) {
	cat := &catalog{devices: map[string]bool{"d1": true}, groups: map[string]bool{"g1": true}}
	e := startEdge(t, nil, func(d *Deps) { d.Catalog = cat })
	c := e.dial(t, token(t, "alice", "*"))

	c.send(`{"type":"subscribe","payload":{"rooms":["device:d1"]}}`)
	m := c.next()
	var got subscribed
	c.payload(m, &got)
	if len(got.Rejected) != 1 || got.Rejected[0].Code != "unavailable" {
		t.Errorf("before the registry is loaded: %+v, want unavailable", got)
	}
	if !strings.Contains(string(m.Payload), `"rooms":[]`) {
		t.Errorf("a subscribe that joined nothing must list rooms as [], got %s", m.Payload)
	}
	cat.ready.Store(true)
	got = c.subscribe("device:d1", "device:ghost", "group:g1", "group:ghost", "global")
	if strings.Join(got.Rooms, ",") != "device:d1,group:g1,global" {
		t.Errorf("joined %v", got.Rooms)
	}
	if len(got.Rejected) != 2 || got.Rejected[0].Code != "invalid_room" || got.Rejected[0].Reason != "no such device" ||
		got.Rejected[1].Code != "invalid_room" || got.Rejected[1].Reason != "no such group" {
		t.Errorf("rejected %+v", got.Rejected)
	}
}

func TestHealthAndTheConnectionCountAreExposed(t *testing.T) {
	e := startEdge(t, nil)
	base := strings.Replace(strings.TrimSuffix(e.url, WSPath), "ws://", "http://", 1)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d", code)
	}
	c := e.dial(t, token(t, "u", "global"))
	c.subscribe("global")
	if _, body := get("/metrics"); !strings.Contains(body, "\nsensorcast_edge_connections 1\n") || !strings.Contains(body, "\nsensorcast_edge_rooms 1\n") {
		t.Errorf("/metrics lacks the connection and room gauges:\n%s", body)
	}
}

func TestRoomsComeBackByThemselvesAfterANATSRestart(t *testing.T) {
	e := startEdge(t, nil)
	base := strings.Replace(strings.TrimSuffix(e.url, WSPath), "ws://", "http://", 1)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	ready := func() int {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c := e.dial(t, token(t, "u", "global"))
	c.subscribe("global")
	e.publish(t, "global", "d1", 1)
	c.next()

	port := e.ns.Addr().(*net.TCPAddr).Port
	e.ns.Shutdown()
	eventually(t, func() bool { return ready() == http.StatusServiceUnavailable }, "not ready while NATS is down")
	natstest.StartOnPort(t, port, e.storeDir)
	eventually(t, func() bool { return ready() == http.StatusOK }, "ready again once NATS is back")

	// The pod's room subscription is restored without the client doing
	// anything: readings published from now on reach it. (Publish until one
	// arrives; a short read deadline would break a gorilla connection.)
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 2; ; i++ {
			e.publish(t, "global", "d1", float64(i))
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	m, err := c.read(10 * time.Second)
	close(stop)
	<-published
	if err != nil || m.Type != "telemetry" {
		t.Fatalf("after NATS came back: %v %v, want a reading", m.Type, err)
	}
}
