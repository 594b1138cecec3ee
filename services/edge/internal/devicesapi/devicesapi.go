// Package devicesapi is the edge's small read-only HTTP API over the device
// registry, for dashboards: which devices and groups a token may watch.
// It answers from the edge's local copy of the registry (devicecache), so
// thousands of dashboards loading their device lists cost the registry
// nothing.
package devicesapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/sensorcast/sensorcast/services/internal/auth"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/room"
)

// Paths of the API.
const (
	DevicesPath = "/api/v1/devices"
	GroupsPath  = "/api/v1/groups"
)

// Page sizes of GET /api/v1/devices.
const (
	DefaultLimit = 200
	MaxLimit     = 1000
)

// Directory is the edge's copy of the registry; devicecache.Cache is one.
type Directory interface {
	Devices(after string, limit int, search string, match func(devicecache.Device) bool) ([]devicecache.Device, int)
	Groups() []devicecache.Group
	Ready() bool
}

// Authenticate returns the claims of a dashboard user's request, or why
// it is refused.
type Authenticate func(r *http.Request) (*auth.Claims, error)

// Device is a device as the API shows it.
type Device struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Type    string            `json:"type"`
	Groups  []string          `json:"groups"`
	Labels  map[string]string `json:"labels"`
	Enabled bool              `json:"enabled"`
}

// DevicesResponse is the body of GET /api/v1/devices.
type DevicesResponse struct {
	Devices []Device `json:"devices"`
	// Total counts every device that matches, on all pages.
	Total int `json:"total"`
	// Next is the after of the next page; empty on the last one.
	Next string `json:"next"`
}

// Group is a group as the API shows it.
type Group struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Devices int    `json:"devices"`
}

// GroupsResponse is the body of GET /api/v1/groups.
type GroupsResponse struct {
	Groups []Group `json:"groups"`
}

// API serves the two endpoints. Directory may be nil (an edge without a
// registry): both then answer 503.
type API struct {
	dir          Directory
	authenticate Authenticate
}

// New returns the API over dir; requests are checked by authenticate.
func New(dir Directory, authenticate Authenticate) *API {
	return &API{dir: dir, authenticate: authenticate}
}

// Handler serves the API's two paths (other methods get 405).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DevicesPath, a.serveDevices)
	mux.HandleFunc("GET "+GroupsPath, a.serveGroups)
	return mux
}

// serveDevices lists the devices the token may watch, in id order:
// ?q= keeps those whose id or name contains it (any case), ?group= those
// in a group, ?limit= and ?after= page.
func (a *API) serveDevices(w http.ResponseWriter, r *http.Request) {
	claims, ok := a.authorize(w, r)
	if !ok {
		return
	}
	query := r.URL.Query()
	limit := DefaultLimit
	if s := query.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit must be a whole number from 1 to "+strconv.Itoa(MaxLimit))
			return
		}
		limit = n
	}
	group := query.Get("group")
	all := claims.MayJoin(room.Global)
	match := func(d devicecache.Device) bool {
		if group != "" && !slices.Contains(d.Groups, group) {
			return false
		}
		return all || mayWatch(claims, d)
	}
	// One more than the page, to know whether another page follows.
	page, total := a.dir.Devices(query.Get("after"), limit+1, query.Get("q"), match)
	resp := DevicesResponse{Devices: make([]Device, 0, min(len(page), limit)), Total: total}
	if len(page) > limit {
		page = page[:limit]
		resp.Next = page[limit-1].ID
	}
	for _, d := range page {
		labels := d.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		groups := d.Groups
		if groups == nil {
			groups = []string{}
		}
		resp.Devices = append(resp.Devices, Device{ID: d.ID, Name: d.Name, Type: d.Type, Groups: groups, Labels: labels, Enabled: d.Enabled})
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveGroups lists the groups whose rooms the token grants, or every
// group when it grants `global`.
func (a *API) serveGroups(w http.ResponseWriter, r *http.Request) {
	claims, ok := a.authorize(w, r)
	if !ok {
		return
	}
	all := claims.MayJoin(room.Global)
	resp := GroupsResponse{Groups: []Group{}}
	for _, g := range a.dir.Groups() {
		if all || claims.MayJoin(room.Group(g.ID)) {
			resp.Groups = append(resp.Groups, Group{ID: g.ID, Name: g.Name, Devices: g.Members})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// authorize checks the request's token and that there is a loaded
// registry to answer from.
func (a *API) authorize(w http.ResponseWriter, r *http.Request) (*auth.Claims, bool) {
	claims, err := a.authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return nil, false
	}
	switch {
	case a.dir == nil:
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this edge does not follow a device registry (--registry-url)")
		return nil, false
	case !a.dir.Ready():
		writeError(w, http.StatusServiceUnavailable, "unavailable", "device registry not loaded yet; try again")
		return nil, false
	}
	return claims, true
}

// mayWatch reports whether the token grants a room the device's messages
// reach: its own, or one of its groups'.
func mayWatch(c *auth.Claims, d devicecache.Device) bool {
	if c.MayJoin(room.Device(d.ID)) {
		return true
	}
	for _, g := range d.Groups {
		if c.MayJoin(room.Group(g)) {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
