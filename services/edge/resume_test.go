package edge

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
)

// reading is a room message's device and temperature, with its sequence.
type reading struct {
	Device string
	Temp   float64
	Seq    uint64
}

func (c *client) reading() reading {
	c.t.Helper()
	m := c.next()
	if m.Type != "telemetry" {
		c.t.Fatalf("got %s (%s), want telemetry", m.Type, m.Payload)
	}
	var p struct {
		DeviceID string             `json:"device_id"`
		Fields   map[string]float64 `json:"fields"`
	}
	c.payload(m, &p)
	return reading{Device: m.Room + "/" + p.DeviceID, Temp: p.Fields["temperature"], Seq: m.Seq}
}

func (c *client) subscribeWith(payload any) subscribed {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "subscribe", "request_id": "s", "payload": payload})
	c.send(string(b))
	m := c.next()
	if m.Type != "subscribed" {
		c.t.Fatalf("got %s (%s), want subscribed", m.Type, m.Payload)
	}
	var p subscribed
	c.payload(m, &p)
	return p
}

func TestASubscribeWithSinceReplaysWhatWasMissedThenGoesLive(t *testing.T) {
	e := startEdge(t, nil)
	tok := token(t, "u", "device:*")
	c := e.dial(t, tok)
	c.subscribe("device:d1")
	var last uint64
	for i := 1; i <= 3; i++ {
		e.publish(t, "device:d1", "d1", float64(i))
		r := c.reading()
		if r.Temp != float64(i) || r.Seq <= last {
			t.Fatalf("live reading %d: %+v after seq %d", i, r, last)
		}
		last = r.Seq
	}
	c.conn.Close()
	e.publish(t, "device:d1", "d1", 4)
	e.publish(t, "device:d2", "d2", 99) // another room
	e.publish(t, "device:d1", "d1", 5)

	c = e.dial(t, tok)
	got := c.subscribeWith(map[string]any{"rooms": []string{"device:d1"}, "since": map[string]uint64{"device:d1": last}})
	if !got.Recovered["device:d1"] {
		t.Fatalf("subscribed %+v, want device:d1 recovered", got)
	}
	for _, want := range []float64{4, 5} {
		r := c.reading()
		if r.Temp != want || r.Seq <= last {
			t.Fatalf("replayed %+v after seq %d, want temperature %v", r, last, want)
		}
		last = r.Seq
	}
	e.publish(t, "device:d1", "d1", 6)
	if r := c.reading(); r.Temp != 6 || r.Seq <= last {
		t.Fatalf("live after the replay: %+v, want temperature 6 after seq %d", r, last)
	}
}

func TestASinceBeyondRetentionSaysNotRecovered(t *testing.T) {
	e := startEdge(t, nil)
	if err := roomstream.Ensure(t.Context(), e.pub, roomstream.Retention{MaxAge: time.Hour, MaxPerRoom: 2, MaxBytes: -1}); err != nil {
		t.Fatal(err)
	}
	tok := token(t, "u", "device:*")
	c := e.dial(t, tok)
	c.subscribe("device:d1")
	e.publish(t, "device:d1", "d1", 1)
	first := c.reading().Seq
	c.conn.Close()
	for i := 2; i <= 5; i++ {
		e.publish(t, "device:d1", "d1", float64(i))
	}

	for name, since := range map[string]uint64{"pushed out by the per-room limit": first, "beyond the stream's end": first + 1000} {
		t.Run(name, func(t *testing.T) {
			c := e.dial(t, tok)
			got := c.subscribeWith(map[string]any{"rooms": []string{"device:d1"}, "since": map[string]uint64{"device:d1": since}})
			if rec, ok := got.Recovered["device:d1"]; !ok || rec {
				t.Fatalf("subscribed %+v, want device:d1 recovered=false", got)
			}
			// What the stream still holds follows, in order.
			if a, b := c.reading(), c.reading(); a.Temp != 4 || b.Temp != 5 || b.Seq <= a.Seq {
				t.Fatalf("after a lost since: %+v %+v, want the retained 4 and 5", a, b)
			}
		})
	}
}

func TestLatestSendsEachDevicesLastStateFirst(t *testing.T) {
	e := startEdge(t, nil)
	for _, r := range []struct {
		room, device string
		temp         float64
	}{{"device:d1", "d1", 1}, {"global", "d1", 1}, {"device:d1", "d1", 2}, {"global", "d1", 2}, {"device:d2", "d2", 7}, {"global", "d2", 7}} {
		e.publish(t, r.room, r.device, r.temp)
	}
	c := e.dial(t, token(t, "u", "device:*", "global"))
	got := c.subscribeWith(map[string]any{"rooms": []string{"device:d1", "global"}, "latest": true})
	if fmt.Sprint(got.Rooms) != "[device:d1 global]" || len(got.Recovered) != 0 {
		t.Fatalf("subscribed %+v", got)
	}
	var snapshot []reading
	for range 3 {
		snapshot = append(snapshot, c.reading())
	}
	if want := "[{device:d1/d1 2 0} {global/d1 2 0} {global/d2 7 0}]"; fmt.Sprint(snapshot) != want {
		t.Errorf("latest: %v, want %s (snapshots carry no seq)", snapshot, want)
	}
	e.publish(t, "global", "d2", 8)
	if r := c.reading(); r.Temp != 8 || r.Seq == 0 {
		t.Errorf("live after the snapshot: %+v", r)
	}
}

func TestASinceThatCannotBeCheckedIsRejectedNotJoinedLive(t *testing.T) {
	e := startEdge(t, nil)
	e.publish(t, "device:d1", "d1", 1)
	if err := e.js.DeleteStream(t.Context(), envelopev1.RoomStream); err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, token(t, "u", "device:*"))
	got := c.subscribeWith(map[string]any{"rooms": []string{"device:d1", "device:d2"}, "since": map[string]uint64{"device:d1": 1}})
	if fmt.Sprint(got.Rooms) != "[device:d2]" || len(got.Rejected) != 1 || got.Rejected[0].Room != "device:d1" || got.Rejected[0].Code != "unavailable" {
		t.Fatalf("subscribed %+v, want device:d1 rejected as unavailable and device:d2 joined", got)
	}
}

func TestNoRoomMessageOvertakesTheSubscribedReply(t *testing.T) {
	e := startEdge(t, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.publish(t, "device:seam", "seam", float64(i))
		}
	}()
	defer func() { close(stop); <-done }()

	tok := token(t, "u", "device:*")
	watcher := e.dial(t, tok) // keeps device:seam subscribed on the pod
	watcher.subscribe("device:seam")
	for i := range 10 {
		rooms := []string{"device:seam"}
		for j := range 30 {
			rooms = append(rooms, fmt.Sprintf("device:new-%d-%d", i, j))
		}
		c := e.dial(t, tok)
		b, _ := json.Marshal(rooms)
		c.send(`{"type":"subscribe","payload":{"rooms":` + string(b) + `}}`)
		if m := c.next(); m.Type != "subscribed" {
			t.Fatalf("subscribe %d: first frame is %s (room %s), want subscribed", i, m.Type, m.Room)
		}
		c.conn.Close()
	}
}

func TestLatestIsCappedPerRoom(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.Session.LatestDevices = 2 })
	for i, d := range []string{"d1", "d2", "d3"} {
		e.publish(t, "device:"+d, d, float64(i))
		e.publish(t, "global", d, float64(i))
	}
	c := e.dial(t, token(t, "u", "global"))
	c.subscribeWith(map[string]any{"rooms": []string{"global"}, "latest": true})
	// Two devices' snapshots (they only sent telemetry), then the live message.
	e.publish(t, "global", "d9", 99)
	var snapshot []string
	for {
		r := c.reading()
		if r.Seq != 0 {
			if r.Temp != 99 {
				t.Fatalf("live message %+v, want d9's", r)
			}
			break
		}
		snapshot = append(snapshot, r.Device)
	}
	if len(snapshot) != 2 {
		t.Fatalf("snapshot %v with --latest-devices 2, want 2 devices", snapshot)
	}
}
