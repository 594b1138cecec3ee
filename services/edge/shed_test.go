package edge

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/proto/edgestats"
	"github.com/sensorcast/sensorcast/services/internal/redistest"
)

func TestAShedRequestClosesThatManyConnectionsAtItsPace(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	e := startEdge(t, func(c *Config) { c.PresenceLease = time.Second },
		func(d *Deps) { d.Redis = srv.Client(t) })
	var clients []*client
	for range 6 {
		c := e.dial(t, token(t, "u", "global"))
		c.subscribe("global")
		clients = append(clients, c)
	}
	// As the operator writes it (operator/internal/edgeload): 4 at 10/s.
	if err := rdb.HSet(t.Context(), edgestats.ShedKey("test-pod"),
		edgestats.FieldShedConnections, 4, edgestats.FieldShedPerSecond, 10).Err(); err != nil {
		t.Fatal(err)
	}

	type ending struct {
		err error
		at  time.Time
	}
	endings := make(chan ending, len(clients))
	for _, c := range clients {
		go func() {
			var err error
			for err == nil {
				_, err = c.read(3 * time.Second)
			}
			endings <- ending{err, time.Now()}
		}()
	}
	var closed []time.Time
	for range clients {
		end := <-endings
		var ce *websocket.CloseError
		switch {
		case websocket.IsCloseError(end.err, websocket.CloseServiceRestart):
			if ce, _ = end.err.(*websocket.CloseError); ce.Text != "server rebalancing, reconnect" {
				t.Errorf("close reason %q", ce.Text)
			}
			closed = append(closed, end.at)
		case websocket.IsCloseError(end.err, websocket.CloseNormalClosure, websocket.CloseAbnormalClosure):
			t.Errorf("client ended with %v", end.err)
		}
		// The rest time out: they stay connected.
	}
	if len(closed) != 4 {
		t.Fatalf("%d connections closed, want 4", len(closed))
	}
	// Four closes at 10/s span about 300ms; not a timing assertion on the
	// machine, only that they were not all at once.
	if spread := closed[3].Sub(closed[0]); spread < 150*time.Millisecond {
		t.Errorf("closes spread over %v, want them paced at 10/s", spread)
	}
	if n := rdb.Exists(t.Context(), edgestats.ShedKey("test-pod")).Val(); n != 0 {
		t.Error("the request was not removed once taken")
	}
}
