package devicesapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sensorcast/sensorcast/services/internal/auth"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
)

// tokens authenticates bearer tokens that it knows by name.
type tokens map[string]*auth.Claims

func (v tokens) authenticate(r *http.Request) (*auth.Claims, error) {
	if c, ok := v[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]; ok {
		return c, nil
	}
	return nil, errors.New("unauthorized: bad token")
}

// directory is a hand-written Directory over a sorted list of devices.
type directory struct {
	ready   bool
	devices []devicecache.Device
}

func (d *directory) Devices(after string, limit int, _ string, match func(devicecache.Device) bool) (page []devicecache.Device, total int) {
	for _, dev := range d.devices {
		if match(dev) {
			total++
			if dev.ID > after && len(page) < limit {
				page = append(page, dev)
			}
		}
	}
	return page, total
}

func (d *directory) Groups() []devicecache.Group { return nil }
func (d *directory) Ready() bool                 { return d.ready }

func serve(t *testing.T, api *API, path, token string) (int, map[string]any) {
	t.Helper()
	mux := api.Handler()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s: body %q is not JSON", path, rec.Body)
	}
	return rec.Code, body
}

func TestTheAPIAnswersWithoutARegistryWithAClearError(t *testing.T) {
	v := tokens{"alice": {Subject: "alice", Rooms: []string{"global"}}}
	for _, tc := range []struct {
		name string
		api  *API
	}{
		{"an edge without a registry", New(nil, v.authenticate)},
		{"a registry not loaded yet", New(&directory{ready: false}, v.authenticate)},
	} {
		for _, path := range []string{DevicesPath, GroupsPath} {
			status, body := serve(t, tc.api, path, "alice")
			if status != http.StatusServiceUnavailable || body["code"] != "unavailable" || body["error"] == "" {
				t.Errorf("%s, %s: %d %v, want 503 unavailable with a reason", tc.name, path, status, body)
			}
		}
	}
}

func TestTheLastPageHasNoNext(t *testing.T) {
	dir := &directory{ready: true, devices: []devicecache.Device{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}}
	api := New(dir, tokens{"bob": {Subject: "bob", Rooms: []string{"device:*"}}}.authenticate)
	for _, tc := range []struct{ path, next string }{
		{DevicesPath + "?limit=2", "b"},
		{DevicesPath + "?limit=2&after=b", ""}, // full, but nothing follows
		{DevicesPath + "?limit=4", ""},
		{DevicesPath + "?limit=3", "c"},
	} {
		status, body := serve(t, api, tc.path, "bob")
		if status != http.StatusOK || body["next"] != tc.next || body["total"] != 4.0 {
			t.Errorf("%s: %d next %v total %v, want next %q of 4", tc.path, status, body["next"], body["total"], tc.next)
		}
	}
}
