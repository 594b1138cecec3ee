package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// devicesPage is the body of GET /api/v1/devices.
type devicesPage struct {
	Devices []struct {
		ID      string            `json:"id"`
		Name    string            `json:"name"`
		Type    string            `json:"type"`
		Groups  []string          `json:"groups"`
		Labels  map[string]string `json:"labels"`
		Enabled bool              `json:"enabled"`
	} `json:"devices"`
	Total int    `json:"total"`
	Next  string `json:"next"`
	Code  string `json:"code"`
}

func (p devicesPage) ids() string {
	var ids []string
	for _, d := range p.Devices {
		ids = append(ids, d.ID)
	}
	return strings.Join(ids, ",")
}

// getJSON calls the edge's API with token as a bearer token and decodes
// the answer into v; it returns the HTTP status.
func getJSON(t *testing.T, rawURL, token string, v any) int {
	t.Helper()
	status, err := harness.GetJSON(rawURL, token, v)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// TestTheEdgeListsTheDevicesATokenMayWatch runs a registry and an edge
// that follows it, and reads the dashboards' device API: what a token may
// watch, searched, filtered by group and paged, kept fresh by the
// registry's changes.
func TestTheEdgeListsTheDevicesATokenMayWatch(t *testing.T) {
	natsURL := harness.StartNATS(t).ClientURL()
	reg := sensorcast.StartRegistry(t, "registry-api", harness.Settings{"NATS_URL": natsURL, "JWT_SECRET": jwtSecret})
	admin := harness.AdminToken(t, jwtSecret)
	api := registryClient(t, reg.GRPCAddr, admin)
	ctx := t.Context()
	must(t, call(api.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "boilers", DisplayName: "Boilers"}})))
	must(t, call(api.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "pumps"}})))
	for i := 1; i <= 5; i++ {
		must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{
			Id: fmt.Sprintf("boiler-%d", i), DisplayName: fmt.Sprintf("Boiler %d", i), Type: "thermostat",
			Groups: []string{"boilers"}, Labels: map[string]string{"site": "a"}, Enabled: true,
		}})))
	}
	must(t, call(api.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "pump-1", DisplayName: "Cellar pump", Groups: []string{"pumps"}}})))

	edge := sensorcast.StartEdge(t, "edge-api", harness.Settings{
		"NATS_URL": natsURL, "JWT_SECRET": jwtSecret, "REGISTRY_URL": reg.GRPCAddr, "REGISTRY_TOKEN": admin,
	})
	devices := edge.BaseURL + "/api/v1/devices"
	everything := token(t, "alice", "global")

	t.Run("a token granting global sees every device, in id order, with its registry metadata", func(t *testing.T) {
		var p devicesPage
		if status := getJSON(t, devices, everything, &p); status != http.StatusOK {
			t.Fatalf("status %d: %+v", status, p)
		}
		if p.ids() != "boiler-1,boiler-2,boiler-3,boiler-4,boiler-5,pump-1" || p.Total != 6 || p.Next != "" {
			t.Fatalf("got %s (total %d, next %q)", p.ids(), p.Total, p.Next)
		}
		d := p.Devices[0]
		if d.Name != "Boiler 1" || d.Type != "thermostat" || d.Labels["site"] != "a" || !d.Enabled || len(d.Groups) != 1 || d.Groups[0] != "boilers" {
			t.Errorf("boiler-1 = %+v", d)
		}
		if pump := p.Devices[5]; pump.Enabled || pump.Name != "Cellar pump" {
			t.Errorf("pump-1 = %+v, want disabled, named", pump)
		}
	})

	t.Run("search, group filter and pages", func(t *testing.T) {
		var p devicesPage
		getJSON(t, devices+"?q=CELLAR", everything, &p)
		if p.ids() != "pump-1" {
			t.Errorf("q=CELLAR (a name, any case): %s", p.ids())
		}
		getJSON(t, devices+"?q=boiler-&group=boilers&limit=2", everything, &p)
		if p.ids() != "boiler-1,boiler-2" || p.Total != 5 || p.Next != "boiler-2" {
			t.Fatalf("first page: %s total %d next %q", p.ids(), p.Total, p.Next)
		}
		var seen []string
		for after := ""; ; {
			var page devicesPage // fresh: a reply without "next" must not keep the last page's
			if status := getJSON(t, devices+"?group=boilers&limit=2&after="+url.QueryEscape(after), everything, &page); status != http.StatusOK {
				t.Fatalf("after %q: status %d: %+v", after, status, page)
			}
			seen = append(seen, page.ids())
			if page.Next == "" {
				break
			}
			if len(seen) > 5 {
				t.Fatalf("5 pages of 2 and still a next page, for 5 devices: %s", strings.Join(seen, "|"))
			}
			after = page.Next
		}
		if got := strings.Join(seen, "|"); got != "boiler-1,boiler-2|boiler-3,boiler-4|boiler-5" {
			t.Errorf("pages: %s", got)
		}
	})

	t.Run("a narrower token sees only what its rooms reach", func(t *testing.T) {
		var p devicesPage
		getJSON(t, devices, token(t, "bob", "group:pumps", "device:boiler-3"), &p)
		if p.ids() != "boiler-3,pump-1" || p.Total != 2 {
			t.Errorf("bob sees %s (total %d), want boiler-3,pump-1", p.ids(), p.Total)
		}
		var groups struct {
			Groups []struct {
				ID      string `json:"id"`
				Name    string `json:"name"`
				Devices int    `json:"devices"`
			} `json:"groups"`
		}
		getJSON(t, edge.BaseURL+"/api/v1/groups", token(t, "bob", "group:pumps"), &groups)
		if fmt.Sprint(groups.Groups) != "[{pumps  1}]" {
			t.Errorf("bob's groups: %v", groups.Groups)
		}
		getJSON(t, edge.BaseURL+"/api/v1/groups", everything, &groups)
		if fmt.Sprint(groups.Groups) != "[{boilers Boilers 5} {pumps  1}]" {
			t.Errorf("alice's groups: %v", groups.Groups)
		}
	})

	t.Run("a registry change shows within seconds", func(t *testing.T) {
		must(t, call(api.DeleteDevice(ctx, &registryv1.DeleteDeviceRequest{Id: "boiler-5"})))
		harness.Eventually(t, 5*time.Second, func() error {
			var p devicesPage
			getJSON(t, devices+"?group=boilers", everything, &p)
			if p.Total != 4 {
				return fmt.Errorf("boilers: %s", p.ids())
			}
			return nil
		})
	})

	t.Run("bad requests get a clear error", func(t *testing.T) {
		for _, tc := range []struct {
			name, url, token string
			status           int
			code             string
		}{
			{"no token", devices, "", http.StatusUnauthorized, "unauthorized"},
			{"a device's token", devices, deviceToken(t, "boiler-1"), http.StatusUnauthorized, "unauthorized"},
			{"a limit out of range", devices + "?limit=5000", everything, http.StatusBadRequest, "invalid_request"},
			{"a limit that is not a number", devices + "?limit=ten", everything, http.StatusBadRequest, "invalid_request"},
		} {
			var p devicesPage
			if status := getJSON(t, tc.url, tc.token, &p); status != tc.status || p.Code != tc.code {
				t.Errorf("%s: %d %q, want %d %q", tc.name, status, p.Code, tc.status, tc.code)
			}
		}
	})
}
