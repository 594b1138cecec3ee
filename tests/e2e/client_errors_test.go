package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// Every case here misbehaves on edge-a while an observer on edge-a must
// keep receiving every message of its room.
func testBadClientMessages(t *testing.T, e *env) {
	obs := newObserver(t, e, e.edgeA, "")

	t.Run("invalid JSON gets invalid_json and the connection carries on", func(t *testing.T) {
		c := dial(t, e.edgeA, "ivy")
		c.SendText(t, []byte(`{"type":"ping",`))
		if err := c.ExpectError(t); err.Code != "invalid_json" || err.Error == "" {
			t.Errorf("got error %+v; want code invalid_json and a message", err)
		}
		c.Ping(t)
		obs.keepsReceiving(t, 1)
	})

	t.Run("an unknown type gets unknown_type with the request_id echoed", func(t *testing.T) {
		c := dial(t, e.edgeA, "ivy")
		reply := c.Request(t, "teleport", map[string]any{"to": "mars"})
		var err harness.Error
		if reply.Type == "error" {
			reply.Decode(t, &err)
		}
		if err.Code != "unknown_type" || err.Error == "" {
			t.Errorf("got %s; want an error with code unknown_type and a message", reply)
		}
		c.Ping(t)
		obs.keepsReceiving(t, 1)
	})

	t.Run("bad room names are rejected as invalid_room and good ones joined", func(t *testing.T) {
		c := dial(t, e.edgeA, "ivy")
		bad := []string{"device:has space", "device:", "lobby", "device:a.b", "group:" + strings.Repeat("g", 129), "device:../x"}
		s := c.Subscribe(t, append([]string{"device:ok-1"}, bad...)...)
		if !slices.Equal(s.Rooms, []string{"device:ok-1"}) {
			t.Errorf("joined %v; want only device:ok-1", s.Rooms)
		}
		checkRejected(t, s.Rejected, bad, "invalid_room")
		obs.keepsReceiving(t, 1)
	})

	t.Run("rooms the token does not grant are rejected as forbidden", func(t *testing.T) {
		c := harness.Dial(t, "limited@edge-a", e.edgeA.WSURL, token(t, "lim", "device:allowed-*"), harness.DialOptions{})
		forbidden := []string{"global", "device:other", "group:building-a", "device:allowed-"}
		s := c.Subscribe(t, append([]string{"device:allowed-1"}, forbidden...)...)
		if !slices.Equal(s.Rooms, []string{"device:allowed-1"}) {
			t.Errorf("joined %v; want only device:allowed-1", s.Rooms)
		}
		checkRejected(t, s.Rejected, forbidden, "forbidden")
		obs.keepsReceiving(t, 1)
	})

	t.Run("a frame of exactly 8192 bytes is answered", func(t *testing.T) {
		c := dial(t, e.edgeA, "ivy")
		c.SendText(t, paddedPing(t, "big-ok", 8192))
		reply := c.Expect(t, "the pong to big-ok", func(m harness.Message) bool { return m.RequestID == "big-ok" })
		if reply.Type != "pong" {
			t.Errorf("got %s; want pong", reply)
		}
		obs.keepsReceiving(t, 1)
	})

	t.Run("a frame of 8193 bytes closes the connection with 1009", func(t *testing.T) {
		c := dial(t, e.edgeA, "ivy")
		c.SendText(t, paddedPing(t, "too-big", 8193))
		if ce, _ := c.AwaitClose(t, harness.AwaitTimeout); ce.Code != websocket.CloseMessageTooBig {
			t.Errorf("closed with %d %q; want 1009", ce.Code, ce.Text)
		}
		obs.keepsReceiving(t, 1)
	})

	t.Run("a flood of 200 pings gets rate_limited errors and the connection stays usable", func(t *testing.T) {
		c := dial(t, e.edgeA, "flo")
		const flood = 200
		ids := make([]string, flood)
		for i := range ids {
			ids[i] = c.NextRequestID()
			c.Send(t, map[string]any{"type": "ping", "request_id": ids[i]})
			if i%20 == 0 {
				obs.publish(t, 1) // room traffic in the middle of the flood
			}
		}
		pongs, limited := 0, 0
		for _, id := range ids {
			reply := c.Expect(t, "the reply to "+id, func(m harness.Message) bool { return m.RequestID == id })
			switch reply.Type {
			case "pong":
				pongs++
			case "error":
				var err harness.Error
				reply.Decode(t, &err)
				if err.Code != "rate_limited" {
					t.Fatalf("got %s; want pong or error rate_limited", reply)
				}
				limited++
			default:
				t.Fatalf("got %s; want pong or error rate_limited", reply)
			}
		}
		t.Logf("%d pings: %d pongs, %d rate_limited", flood, pongs, limited)
		if limited == 0 || pongs == 0 {
			t.Errorf("%d pongs and %d rate_limited errors; want some of each", pongs, limited)
		}
		obs.expectPublished(t)
		harness.Eventually(t, 2*time.Second, func() error {
			if reply := c.Request(t, "ping", nil); reply.Type != "pong" {
				return fmt.Errorf("after the flood a ping got %s", reply)
			}
			return nil
		})
		obs.keepsReceiving(t, 1)
	})
}

// checkRejected checks that rejected names exactly the rooms want, each
// with code and a reason.
func checkRejected(t testing.TB, rejected []harness.Rejection, want []string, code string) {
	t.Helper()
	var rooms []string
	for _, r := range rejected {
		rooms = append(rooms, r.Room)
		if r.Code != code || r.Reason == "" {
			t.Errorf("room %q rejected with %q (%q); want code %s and a reason", r.Room, r.Code, r.Reason, code)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(rooms)), slices.Sorted(slices.Values(want))) {
		t.Errorf("rejected %q; want %q", rooms, want)
	}
}

// paddedPing returns a ping with requestID that is exactly size bytes.
func paddedPing(t testing.TB, requestID string, size int) []byte {
	t.Helper()
	frame := fmt.Sprintf(`{"type":"ping","request_id":%q,"pad":""}`, requestID)
	if len(frame) > size {
		t.Fatalf("a ping cannot be %d bytes", size)
	}
	return []byte(strings.Replace(frame, `"pad":""`, `"pad":"`+strings.Repeat("x", size-len(frame))+`"`, 1))
}

func testRefusedUpgrades(t *testing.T, e *env) {
	obs := newObserver(t, e, e.edgeA, "")
	rooms := []string{"global", "device:*"}
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix(), "rooms": rooms,
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name   string
		token  string
		opts   harness.DialOptions
		status int
		code   string
	}{
		{"a missing token gets 401", "", harness.DialOptions{}, http.StatusUnauthorized, "unauthorized"},
		{"a malformed token gets 401", "not.a.jwt", harness.DialOptions{}, http.StatusUnauthorized, "unauthorized"},
		{"a token signed with another secret gets 401",
			harness.Token(t, "another-secret-of-enough-bytes", "mallory", time.Hour, rooms...), harness.DialOptions{}, http.StatusUnauthorized, "unauthorized"},
		{"an unsigned token (alg none) gets 401", unsigned, harness.DialOptions{}, http.StatusUnauthorized, "unauthorized"},
		{"an expired token gets 401",
			harness.Token(t, jwtSecret, "old", -time.Minute, rooms...), harness.DialOptions{}, http.StatusUnauthorized, "unauthorized"},
		{"an expired token in the Authorization header gets 401",
			harness.Token(t, jwtSecret, "old", -time.Minute, rooms...), harness.DialOptions{BearerHeader: true}, http.StatusUnauthorized, "unauthorized"},
		{"a browser from a foreign origin gets 403",
			token(t, "eve", rooms...), harness.DialOptions{Origin: "https://evil.example"}, http.StatusForbidden, "forbidden_origin"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.DialRefused(t, e.edgeA.WSURL, tc.token, tc.opts)
			if r.Status != tc.status || r.Body.Code != tc.code || r.Body.Error == "" {
				t.Errorf("refused with %d %s; want %d and a JSON body with code %q and an error", r.Status, r.Raw, tc.status, tc.code)
			}
			if !strings.HasPrefix(r.ContentType, "application/json") {
				t.Errorf("Content-Type %q; want application/json", r.ContentType)
			}
			obs.keepsReceiving(t, 1)
		})
	}

	accepted := []struct {
		name string
		opts harness.DialOptions
	}{
		{"a token in the Authorization header is accepted", harness.DialOptions{BearerHeader: true}},
		{"a browser from the allowed origin is accepted", harness.DialOptions{Origin: allowedOrigin}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			c := harness.Dial(t, "ok@edge-a", e.edgeA.WSURL, token(t, "ok", rooms...), tc.opts)
			c.Ping(t)
		})
	}
}
