package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

func TestParseProcFiles(t *testing.T) {
	stat := []byte("4242 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 1 0 100 0 0")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3250*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 3.25s", cpu, err)
	}
	rss, err := parseVmRSS([]byte("Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t  1234 kB\nThreads: 3\n"))
	if err != nil || rss != 1234*1024 {
		t.Fatalf("parseVmRSS = %d, %v", rss, err)
	}
	s, err := SampleProc(os.Getpid())
	if err != nil || s.RSSBytes <= 0 {
		t.Fatalf("SampleProc(self) = %+v, %v", s, err)
	}
}

func TestConfigDeliveriesAndLoopbackOnly(t *testing.T) {
	c, err := ParseFlags("t", []string{"--jwt-secret", "0123456789abcdef0123", "--conns", "5000", "--broadcast",
		"--deliveries", "100k,1M"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rooms != 1 || len(c.Rates) != 2 || c.Rates[0] != 20 || c.Rates[1] != 200 {
		t.Fatalf("rooms %d rates %v", c.Rooms, c.Rates)
	}
	if _, err := ParseFlags("t", []string{"--jwt-secret", "x", "--edge", "ws://10.0.0.1:8080/api/v1/ws"}, io.Discard); err == nil {
		t.Fatal("non-loopback edge accepted")
	}
	if _, err := ParseFlags("t", []string{"--jwt-secret", "x", "--source-ips", "192.168.1.1"}, io.Discard); err == nil {
		t.Fatal("non-loopback source address accepted")
	}
	if RoomName(1003, 1000) != "device:load-0003" || RoomName(3, 20000) != "device:load-00003" {
		t.Fatalf("RoomName: %s %s", RoomName(1003, 1000), RoomName(3, 20000))
	}
}

// fakeEdge is a minimal stand-in for `sensorcast edge`: it checks the token,
// subscribes each client's room's live subjects on NATS and renders
// envelopes the way the edge does. The client whose token subject is closeSub is closed with 1013
// after its third message, like a slow consumer.
type fakeEdge struct {
	t        *testing.T
	nc       *nats.Conn
	secret   []byte
	closeSub string
}

func (f *fakeEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var claims jwt.MapClaims
	if _, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return f.secret, nil }); err != nil {
		http.Error(w, `{"error":"bad token","code":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	sub, _ := claims.GetSubject()
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	var mu sync.Mutex
	write := func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		_ = conn.WriteMessage(websocket.TextMessage, b)
	}
	// connected and subscribed in one TCP write, as a coalescing edge would.
	_, data, err := conn.ReadMessage()
	if err != nil {
		return
	}
	room := strings.Split(strings.Split(string(data), `"rooms":["`)[1], `"`)[0]
	sent := 0
	s, err := f.nc.Subscribe(envelopev1.LiveFilter(room), func(m *nats.Msg) {
		var env envelopev1.Envelope
		if err := proto.Unmarshal(m.Data, &env); err != nil {
			f.t.Error(err)
			return
		}
		tel := env.GetTelemetry()
		keys := make([]string, 0, len(tel.Tags))
		for k := range tel.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var tags []string
		for _, k := range keys {
			tags = append(tags, fmt.Sprintf("%q:%q", k, tel.Tags[k]))
		}
		sent++
		if sub == f.closeSub && sent == 3 {
			mu.Lock()
			_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1013, "slow consumer"))
			mu.Unlock()
			conn.Close()
			return
		}
		write(fmt.Appendf(nil, `{"type":"telemetry","room":%q,"payload":{"device_id":%q,"timestamp":"x","fields":{},"tags":{%s}},"timestamp":"y"}`,
			room, tel.DeviceId, strings.Join(tags, ",")))
	})
	if err != nil {
		f.t.Error(err)
		return
	}
	defer s.Unsubscribe()
	_ = f.nc.Flush()
	write([]byte(`{"type":"connected","payload":{"connection_id":"c","server_time":"x","heartbeat_s":54}}`))
	write([]byte(`{"type":"subscribed","payload":{"rooms":["` + room + `"],"rejected":[]}}`))
	_ = conn.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

// startNATS runs a server with JetStream and the room stream, as
// ServeNATS does.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats did not start")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := ensureRoomStream(t.Context(), nc); err != nil {
		t.Fatal(err)
	}
	return s.ClientURL()
}

func TestRunNeedsTheRoomStream(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats did not start")
	}
	cfg, err := ParseFlags("t", []string{"--nats", s.ClientURL(), "--conns", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), cfg, io.Discard); err == nil || !strings.Contains(err.Error(), envelopev1.RoomStream) {
		t.Fatalf("Run without the room stream = %v, want an error naming it", err)
	}
}

// TestRunAgainstFakeEdge runs the generator end to end (connect, publish
// two rate steps, measure, report) against the fake edge.
func TestRunAgainstFakeEdge(t *testing.T) {
	for _, reader := range []string{"epoll", "goroutine"} {
		t.Run(reader, func(t *testing.T) { testRunAgainstFakeEdge(t, reader) })
	}
}

func testRunAgainstFakeEdge(t *testing.T, reader string) {
	natsURL := startNATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	secret := "0123456789abcdef-test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &fakeEdge{t: t, nc: nc, secret: []byte(secret), closeSub: "load-7"}}
	go srv.Serve(ln)
	defer srv.Close()

	cfg, err := ParseFlags("t", []string{
		"--edge", "ws://" + ln.Addr().String() + "/api/v1/ws", "--nats", natsURL, "--jwt-secret", secret,
		"--conns", "40", "--rooms", "8", "--rate", "200,400", "--warmup", "200ms", "--duration", "400ms",
		"--step-gap", "100ms", "--drain", "300ms", "--settle", "0", "--edge-pid", fmt.Sprint(os.Getpid()),
		"--source-ips", "127.0.0.1,127.0.0.2", "--read-buffer", "64", "--reader", reader,
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	WriteSummary(&sb, res)
	t.Log("\n" + sb.String())

	if res.Connect.Ready != 40 || res.Connect.Failed != 0 {
		t.Fatalf("connect: %+v", res.Connect)
	}
	if got := res.Closes["1013 slow consumer"]; got != 1 || len(res.Closes) != 1 {
		t.Fatalf("closes %v, want one 1013", res.Closes)
	}
	// 5 clients per room; every room got published messages; only the
	// closed client (room 7) misses some.
	if res.Expected == 0 || res.Published == 0 || res.Expected != res.Published*5 {
		t.Fatalf("published %d, expected %d", res.Published, res.Expected)
	}
	if res.Lost <= 0 || res.Lost > int64(res.Published) || res.Duplicates != 0 || res.Unreadable != 0 {
		t.Fatalf("lost %d dups %d unreadable %d", res.Lost, res.Duplicates, res.Unreadable)
	}
	if len(res.Steps) != 2 {
		t.Fatalf("steps %d", len(res.Steps))
	}
	for i, s := range res.Steps {
		want := []float64{200, 400}[i] * 5
		if s.OfferedPerSec < want*0.6 || s.OfferedPerSec > want*1.2 {
			t.Errorf("step %d offered %.0f/s, want ≈%.0f", i, s.OfferedPerSec, want)
		}
		if s.Latency.Count == 0 || s.Latency.P99 <= 0 || s.Latency.Max < s.Latency.P50 {
			t.Errorf("step %d latency %+v", i, s.Latency)
		}
		if s.EdgeRSSMB <= 0 {
			t.Errorf("step %d: no edge sample", i)
		}
	}
}

// TestPublisherPacing checks the publisher's average rate and its
// sequence and window bookkeeping.
func TestPublisherPacing(t *testing.T) {
	natsURL := startNATS(t)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var got sync.Map
	var count int64
	var mu sync.Mutex
	sub, err := nc.Subscribe(envelopev1.RoomSubjectPrefix+">", func(m *nats.Msg) {
		mu.Lock()
		count++
		mu.Unlock()
		got.Store(m.Subject, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	rooms := []string{RoomName(0, 3), RoomName(1, 3), RoomName(2, 3)}
	p := newPublisher(nc, rooms, 1)
	now := time.Now().UnixNano()
	w := stepWindow{Rate: 3000, WarmFrom: now, From: now + int64(100*time.Millisecond), To: now + int64(500*time.Millisecond)}
	if err := p.runStep(context.Background(), 0, w); err != nil {
		t.Fatal(err)
	}
	// The publisher catches up on late ticks, so only the last tick's lateness
	// can cost messages; allow for a busy CI machine.
	if p.sent < 1200 || p.sent > 1500 {
		t.Errorf("sent %d in 0.5 s at 3000/s", p.sent)
	}
	var win uint64
	for i := range rooms {
		win += p.inWindow[0][i]
		if d := int64(p.seq[i]) - int64(p.sent/3); d < -1 || d > 1 {
			t.Errorf("room %d seq %d of %d sent: not round-robin", i, p.seq[i], p.sent)
		}
	}
	if win < 900 || win > 1300 {
		t.Errorf("%d messages in the 400 ms window at 3000/s", win)
	}
	_ = nc.Flush()
	var n int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n = count
		mu.Unlock()
		if uint64(n) == p.sent {
			break
		}
	}
	if uint64(n) != p.sent {
		t.Errorf("received %d of %d", n, p.sent)
	}
}
