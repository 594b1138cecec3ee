package simulator

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// wsDevice is one simulated device that speaks WebSocket to the edge
// (protocol.md section 3) instead of MQTT: the edge reports it online
// while it is connected.
type wsDevice struct {
	id          string
	url         string
	token       func(deviceID string) (string, error)
	interval    time.Duration
	sensors     *sensors
	jitter      *rand.Rand // used only by run's goroutine
	logger      *slog.Logger
	connectWarn *rate.Sometimes
}

// Reconnects back off from wsRetryMin to wsRetryMax, with full jitter.
const (
	wsRetryMin = 500 * time.Millisecond
	wsRetryMax = 30 * time.Second
)

// run keeps the device connected until ctx ends.
func (d *wsDevice) run(ctx context.Context) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if d.session(ctx) {
			attempt = 0 // it was connected: come back quickly
		}
		wait := time.Duration(d.jitter.Int64N(int64(min(wsRetryMin<<min(attempt, 10), wsRetryMax)) + 1))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// wsFrame is a message of the device protocol.
type wsFrame struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// Traceparent of a command is echoed on its acknowledgements, so they
	// join the command's trace.
	Traceparent string `json:"traceparent,omitempty"`
}

// session is one connection: readings on a timer, commands answered as
// they come. It reports whether it got connected at all.
func (d *wsDevice) session(ctx context.Context) bool {
	tok, err := d.token(d.id)
	if err != nil {
		d.logger.Error("simulated device has no token", "err", err)
		return false
	}
	dialer := websocket.Dialer{HandshakeTimeout: publishTimeout}
	conn, resp, err := dialer.DialContext(ctx, d.url, http.Header{"Authorization": {"Bearer " + tok}})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		d.connectWarn.Do(func() { d.logger.Warn("simulated WebSocket device cannot connect; retrying", "err", err) })
		return false
	}
	defer conn.Close()

	// The reader hands commands to this goroutine, which alone writes.
	commands := make(chan wsFrame, commandBacklog)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			var f wsFrame
			if err := conn.ReadJSON(&f); err != nil {
				return
			}
			if f.Type != "command" {
				continue // errors and pongs: nothing to do
			}
			select {
			case commands <- f:
			default:
				d.logger.Warn("simulated device busy; command left to time out")
			}
		}
	}()
	send := func(f wsFrame) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(publishTimeout))
		return conn.WriteJSON(f) == nil
	}
	timer := time.NewTimer(time.Duration(d.jitter.Int64N(int64(d.interval) + 1)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "device stopping"), time.Now().Add(stopTimeout))
			select {
			case <-readDone:
			case <-time.After(stopTimeout):
			}
			return true
		case <-readDone:
			return true
		case c := <-commands:
			for _, ack := range answer(c.Payload) {
				if !send(wsFrame{Type: "command_ack", Payload: ack, Traceparent: c.Traceparent}) {
					return true
				}
			}
		case now := <-timer.C:
			timer.Reset(time.Duration(float64(d.interval) * (0.8 + 0.4*d.jitter.Float64())))
			payload, err := d.sensors.reading(now)
			if err != nil {
				d.logger.Error("encode reading", "err", err)
				continue
			}
			if !send(wsFrame{Type: "telemetry", Payload: payload}) {
				return true
			}
		}
	}
}
