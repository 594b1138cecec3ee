//go:build unix

package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFullJitterStaysWithinTheExponentialCeiling(t *testing.T) {
	base, maxDelay := 50*time.Millisecond, time.Second
	for attempt := range 70 {
		ceiling := min(maxDelay, base*time.Duration(1<<min(attempt, 30)))
		var sum time.Duration
		const n = 2000
		for range n {
			d := FullJitter(attempt, base, maxDelay)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", attempt, d, ceiling)
			}
			sum += d
		}
		// Full jitter is uniform over [0, ceiling]: its mean is half the
		// ceiling. 2000 draws land within 10% of it.
		if mean := sum / n; mean < ceiling*4/10 || mean > ceiling*6/10 {
			t.Errorf("attempt %d: mean delay %s; want about %s", attempt, mean, ceiling/2)
		}
	}
}

// fakeEdge speaks enough of the dashboard protocol to test the resuming
// client: each connection gets `connected`, answers one subscribe with
// `subscribed` (recovered: true for every since room), then runs the
// connection's script.
type fakeEdge struct {
	srv     *httptest.Server
	scripts chan func(conn *websocket.Conn, req subscribeRequest)

	mu   sync.Mutex
	subs []subscribePayload
	wg   sync.WaitGroup
}

func startFakeEdge(t *testing.T) *fakeEdge {
	f := &fakeEdge{scripts: make(chan func(*websocket.Conn, subscribeRequest), 10)}
	up := websocket.Upgrader{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.wg.Add(1)
		defer f.wg.Done()
		if r.URL.Query().Get("token") != "tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.WriteJSON(map[string]any{"type": "connected", "payload": map[string]any{"connection_id": "c", "heartbeat_s": 54, "server_time": time.Now().Format(time.RFC3339)}})
		req, ok := f.readSubscribe(conn)
		if !ok {
			return
		}
		select {
		case script := <-f.scripts:
			script(conn, req)
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.wg.Wait()
	})
	return f
}

// readSubscribe reads a subscribe and records it.
func (f *fakeEdge) readSubscribe(conn *websocket.Conn) (subscribeRequest, bool) {
	var req subscribeRequest
	if err := conn.ReadJSON(&req); err != nil {
		return req, false
	}
	f.mu.Lock()
	f.subs = append(f.subs, req.Payload)
	f.mu.Unlock()
	return req, true
}

// answer replies `subscribed` to req: every room joined (joined lists the
// rooms of earlier subscribes) but those rejected as unavailable, each
// since room recovered.
func answer(conn *websocket.Conn, req subscribeRequest, joined []string, unavailable ...string) {
	recovered := map[string]bool{}
	rejected := []Rejection{}
	rooms := append([]string{}, joined...)
	for _, room := range req.Payload.Rooms {
		if slices.Contains(unavailable, room) {
			rejected = append(rejected, Rejection{Room: room, Code: "unavailable", Reason: "try again"})
			continue
		}
		rooms = append(rooms, room)
		if _, ok := req.Payload.Since[room]; ok {
			recovered[room] = true
		}
	}
	p := map[string]any{"rooms": rooms, "rejected": rejected}
	if len(recovered) > 0 {
		p["recovered"] = recovered
	}
	_ = conn.WriteJSON(map[string]any{"type": "subscribed", "request_id": req.RequestID, "payload": p})
}

func (f *fakeEdge) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") }

func (f *fakeEdge) subscriptions() []subscribePayload {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]subscribePayload(nil), f.subs...)
}

func sendReadings(conn *websocket.Conn, room string, seqs ...uint64) {
	for _, seq := range seqs {
		_ = conn.WriteJSON(map[string]any{"type": "telemetry", "room": room, "seq": seq,
			"payload": map[string]any{"device_id": "d1", "fields": map[string]any{"n": seq * 10}}})
	}
}

// closeWith sends a close frame with code and waits for the client's echo.
func closeWith(conn *websocket.Conn, code int) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, "bye"), time.Now().Add(time.Second))
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

func TestResumingClientResubscribesWithTheLastSeqOfEachRoom(t *testing.T) {
	CheckGoroutines(t)
	f := startFakeEdge(t)
	// First connection: two readings of device:d1, none of device:d2, then
	// the pod drains. Second: one more reading, then the socket just dies.
	// Third: stays open.
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil)
		sendReadings(conn, "device:d1", 3, 7)
		closeWith(conn, websocket.CloseServiceRestart)
	}
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil)
		sendReadings(conn, "device:d1", 9)
		sendReadings(conn, "device:d2", 12)
	}
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil)
		sendReadings(conn, "device:d2", 15)
		_, _, _ = conn.ReadMessage() // until the client closes
	}
	c := StartResuming(t, "ann", ResumeOptions{
		URLs: []string{f.url(), f.url()}, Token: "tok", Rooms: []string{"device:d1", "device:d2"},
		BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond, CounterField: "n",
	})
	if err := c.WaitSubscribed(AwaitTimeout); err != nil {
		t.Fatal(err)
	}
	Eventually(t, AwaitTimeout, func() error {
		if n := c.Distinct("device:d2"); n != 2 {
			return fmt.Errorf("%d readings of device:d2", n)
		}
		return nil
	})
	c.Stop()

	subs := f.subscriptions()
	if len(subs) != 3 {
		t.Fatalf("%d subscribes; want 3", len(subs))
	}
	want := []map[string]uint64{nil, {"device:d1": 7}, {"device:d1": 9, "device:d2": 12}}
	for i, s := range subs {
		if fmt.Sprint(s.Since) != fmt.Sprint(want[i]) || len(s.Rooms) != 2 {
			t.Errorf("subscribe %d: %+v; want rooms d1 and d2 since %v", i+1, s, want[i])
		}
	}
	var got []string
	for _, m := range c.Received() {
		got = append(got, fmt.Sprintf("%s/%d/%d/%d", m.Room, m.Seq, m.Counter, m.Conn))
	}
	if want := "device:d1/3/30/1 device:d1/7/70/1 device:d1/9/90/2 device:d2/12/120/2 device:d2/15/150/3"; strings.Join(got, " ") != want {
		t.Errorf("received %v; want %s", got, want)
	}
	codes := c.CloseCodes()
	if codes[CloseServiceRestart] != 1 || codes[CloseAbnormal] != 1 || len(codes) != 2 {
		t.Errorf("close codes %v; want one 1012 and one 1006", codes)
	}
	if r := c.Reconnects(); len(r) != 2 {
		t.Errorf("reconnects %v; want 2", r)
	}
	if p := c.Problems(); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
}

func TestResumingClientBacksOffWhileNoEdgeAnswers(t *testing.T) {
	CheckGoroutines(t)
	f := startFakeEdge(t)
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil)
		_, _, _ = conn.ReadMessage()
	}
	dead := "ws://" + FreeAddr(t) + "/api/v1/ws" // nothing listens there
	start := time.Now()
	c := StartResuming(t, "bob", ResumeOptions{
		URLs: []string{dead, dead, dead, dead, f.url()}, Token: "tok", Rooms: []string{"global"},
		BackoffBase: 20 * time.Millisecond, BackoffCap: 40 * time.Millisecond,
	})
	if err := c.WaitSubscribed(AwaitTimeout); err != nil {
		t.Fatal(err)
	}
	// Four refused dials wait at most 20+40+40+40ms in all.
	if c.DialFailures() != 4 {
		t.Errorf("%d failed dials; want 4", c.DialFailures())
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s to get through four refused dials", took)
	}
}

func TestAPausedResumingClientReadsOnceResumedAndStops(t *testing.T) {
	CheckGoroutines(t)
	f := startFakeEdge(t)
	sent := make(chan struct{})
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil)
		<-sent
		sendReadings(conn, "global", 1, 2)
		_, _, _ = conn.ReadMessage()
	}
	c := StartResuming(t, "cai", ResumeOptions{URLs: []string{f.url()}, Token: "tok", Rooms: []string{"global"}, CounterField: "n"})
	if err := c.WaitSubscribed(AwaitTimeout); err != nil {
		t.Fatal(err)
	}
	// Whether a paused client really reads nothing shows in the slow
	// consumer end-to-end test, where the edge closes it with 1013; here
	// only that reading resumes, and that Stop ends a paused client.
	c.PauseReading()
	close(sent)
	c.ResumeReading()
	Eventually(t, AwaitTimeout, func() error {
		if n := c.Distinct("global"); n != 2 {
			return fmt.Errorf("%d readings", n)
		}
		return nil
	})
	// Stop while paused must not hang.
	c.PauseReading()
	c.Stop()
}

func TestSubscribeRequestEncoding(t *testing.T) {
	data, err := json.Marshal(subscribeRequest{Type: "subscribe", RequestID: "r1",
		Payload: subscribePayload{Rooms: []string{"global"}, Since: map[string]uint64{"global": 41}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"subscribe","request_id":"r1","payload":{"rooms":["global"],"since":{"global":41}}}`; string(data) != want {
		t.Errorf("got %s; want %s", data, want)
	}
}

func TestResumingClientAsksAgainForRoomsTheEdgeCannotResumeYet(t *testing.T) {
	CheckGoroutines(t)
	f := startFakeEdge(t)
	// First connection: both rooms joined, a reading in each, then the
	// socket dies. Second: the edge cannot resume device:d2 at first.
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil)
		sendReadings(conn, "device:d1", 4)
		sendReadings(conn, "device:d2", 5)
	}
	f.scripts <- func(conn *websocket.Conn, req subscribeRequest) {
		answer(conn, req, nil, "device:d2")
		sendReadings(conn, "device:d1", 6)
		retry, ok := f.readSubscribe(conn)
		if !ok {
			return
		}
		answer(conn, retry, []string{"device:d1"})
		sendReadings(conn, "device:d2", 7)
		_, _, _ = conn.ReadMessage()
	}
	c := StartResuming(t, "dee", ResumeOptions{
		URLs: []string{f.url()}, Token: "tok", Rooms: []string{"device:d1", "device:d2"},
		BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond, CounterField: "n",
	})
	Eventually(t, AwaitTimeout, func() error {
		if n := c.Distinct("device:d2"); n != 2 {
			return fmt.Errorf("%d readings of device:d2", n)
		}
		return nil
	})
	c.Stop()
	subs := f.subscriptions()
	want := []string{
		"{[device:d1 device:d2] map[] false}",
		"{[device:d1 device:d2] map[device:d1:4 device:d2:5] false}",
		"{[device:d2] map[device:d2:5] false}",
	}
	if len(subs) != len(want) {
		t.Fatalf("subscribes %+v; want %v", subs, want)
	}
	for i := range subs {
		if got := fmt.Sprint(subs[i]); got != want[i] {
			t.Errorf("subscribe %d: %s; want %s", i+1, got, want[i])
		}
	}
	if c.Unavailable() != 1 || len(c.Reconnects()) != 1 || len(c.Problems()) > 0 {
		t.Errorf("unavailable %d, reconnects %v, problems %v; want 1, one, none", c.Unavailable(), c.Reconnects(), c.Problems())
	}
}
