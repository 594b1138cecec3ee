package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/services/edge/internal/command"
	"github.com/sensorcast/sensorcast/services/edge/internal/hub"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
	"github.com/sensorcast/sensorcast/services/internal/auth"
)

// failingReplays is a hub whose stream breaks during every replay; rooms
// cannot be joined live either.
type failingReplays struct{}

func (failingReplays) Hold(string) (*hub.Held, error) { return nil, hub.ErrUnavailable }
func (failingReplays) Resume(context.Context, string, hub.Replayer, hub.From) error {
	return errors.New("stream read failed midway")
}
func (failingReplays) ResumePoint(_ context.Context, _ string, since uint64) (uint64, bool, error) {
	return since, true, nil
}
func (failingReplays) Position(context.Context, string) (uint64, error) { return 0, nil }
func (failingReplays) Leave(string, hub.Subscriber)                     {}

// countingPresence keeps each room's connection count.
type countingPresence struct {
	mu     sync.Mutex
	counts map[string]int
}

func (p *countingPresence) Join(room, _ string) { p.add(room, 1) }

func (p *countingPresence) Leave(room, _ string) { p.add(room, -1) }

func (p *countingPresence) add(room string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[room] += n
}

func (p *countingPresence) Members(context.Context, string) ([]wire.Member, error) { return nil, nil }

func (p *countingPresence) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for room, n := range p.counts {
		if n != 0 {
			out[room] = n
		}
	}
	return out
}

type noCommands struct{}

func (noCommands) Send(context.Context, command.Sink, string, command.Request) string { return "" }
func (noCommands) Forget(command.Sink)                                                {}

// A connection counts in presence from its `subscribed` reply on; a room
// whose replay then fails (the session closes with 1013) must not stay
// counted.
func TestAFailedReplayLeavesNoPresenceBehind(t *testing.T) {
	p := &countingPresence{counts: map[string]int{}}
	ended := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		claims := &auth.Claims{Subject: "alice", Rooms: []string{"device:*"}, ExpiresAt: time.Now().Add(time.Hour)}
		s := New("c1", conn, claims, Defaults(), Deps{
			Rooms: failingReplays{}, Presence: p, Commands: noCommands{},
			Metrics: NewMetrics(nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		s.Run(r.Context())
		close(ended)
	}))
	defer srv.Close()

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","request_id":"1","payload":{"rooms":["device:a","device:b"],"since":{"device:a":5,"device:b":7}}}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var closeErr *websocket.CloseError
	for {
		_, data, err := ws.ReadMessage()
		if errors.As(err, &closeErr) {
			break
		}
		if err != nil {
			t.Fatalf("reading until the close: %v", err)
		}
		if strings.Contains(string(data), `"subscribed"`) && !strings.Contains(string(data), `"device:a"`) {
			t.Errorf("subscribed without the rooms: %s", data)
		}
	}
	if closeErr.Code != CloseTryAgainLater {
		t.Errorf("closed with %d %q, want 1013 (resume later)", closeErr.Code, closeErr.Text)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end")
	}
	if left := p.snapshot(); len(left) != 0 {
		t.Errorf("presence still counts %v after the session ended", left)
	}
}
