//go:build unix

package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Settings are SENSORCAST_* environment variables of a sensorcast process,
// without the prefix: {"NATS_URL": "nats://..."}. OpenTelemetry's own
// variables keep their names: {"OTEL_TRACES_SAMPLER": "always_on"}.
type Settings map[string]string

// Sensorcast is the sensorcast binary under test.
type Sensorcast struct {
	Path string
}

// Ingest is a running `sensorcast ingest`.
type Ingest struct {
	*Process
	AdminURL string // http://host:port, serving /healthz, /readyz and /metrics
}

// StartIngest runs `sensorcast ingest` with settings (ADMIN_ADDR is chosen
// here) and waits until its /readyz answers 200.
func (s Sensorcast) StartIngest(t testing.TB, name string, settings Settings) *Ingest {
	t.Helper()
	admin := FreeAddr(t)
	settings = withDefaults(settings, Settings{"ADMIN_ADDR": admin})
	p := StartProcess(t, name, environ(settings), s.Path, "ingest")
	in := &Ingest{Process: p, AdminURL: "http://" + admin}
	p.WaitReady(t, startTimeout, func() error { return WantStatus(in.AdminURL+"/readyz", http.StatusOK) })
	return in
}

// Edge is a running `sensorcast edge`.
type Edge struct {
	*Process
	Addr    string // host:port of its HTTP server
	BaseURL string // http://host:port
	WSURL   string // ws://host:port/api/v1/ws
}

// StartEdge runs `sensorcast edge` with settings and waits until its
// /readyz answers 200. POD_NAME is name and HTTP_ADDR a free port unless
// settings say otherwise; a test replaces a dead edge with a new one on
// the same address by passing the old edge's Addr as HTTP_ADDR.
func (s Sensorcast) StartEdge(t testing.TB, name string, settings Settings) *Edge {
	t.Helper()
	addr := settings["HTTP_ADDR"]
	if addr == "" {
		addr = FreeAddr(t)
	}
	settings = withDefaults(settings, Settings{"POD_NAME": name})
	settings["HTTP_ADDR"] = addr
	p := StartProcess(t, name, environ(settings), s.Path, "edge")
	e := &Edge{Process: p, Addr: addr, BaseURL: "http://" + addr, WSURL: "ws://" + addr + "/api/v1/ws"}
	p.WaitReady(t, startTimeout, func() error { return WantStatus(e.BaseURL+"/readyz", http.StatusOK) })
	return e
}

// ReadyStatus returns the HTTP status of the edge's /readyz.
func (e *Edge) ReadyStatus() (int, error) {
	resp, err := httpClient.Get(e.BaseURL + "/readyz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// httpClient opens a fresh connection per request, so no idle connection
// (and its goroutines) outlives a test.
var httpClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// WantStatus fails unless GET url answers with status want.
func WantStatus(url string, want int) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// GetJSON sends GET url, with token as a bearer token unless it is empty,
// decodes the answer's JSON body into v, and returns the HTTP status.
func GetJSON(url, token string, v any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %s, body not JSON: %w", url, resp.Status, err)
	}
	return resp.StatusCode, nil
}

func withDefaults(settings, defaults Settings) Settings {
	merged := Settings{"LOG_FORMAT": "text"}
	for k, v := range defaults {
		merged[k] = v
	}
	for k, v := range settings {
		merged[k] = v
	}
	return merged
}

// environ is the test's environment without any SENSORCAST_* or OTEL_*
// variable of the developer's shell, plus settings.
func environ(settings Settings) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SENSORCAST_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := "SENSORCAST_" + k
		if strings.HasPrefix(k, "OTEL_") {
			name = k
		}
		env = append(env, name+"="+settings[k])
	}
	return env
}

// StartSimulator runs `sensorcast simulate` with settings: simulated
// devices that publish readings and answer commands. It returns at once;
// the devices connect by themselves.
func (s Sensorcast) StartSimulator(t testing.TB, name string, settings Settings) *Process {
	t.Helper()
	return StartProcess(t, name, environ(withDefaults(settings, nil)), s.Path, "simulate")
}

// Registry is a running `sensorcast registry`.
type Registry struct {
	*Process
	GRPCAddr string // host:port of its gRPC API
	AdminURL string // http://host:port, serving /healthz, /readyz and /metrics
}

// StartRegistry runs `sensorcast registry` with settings (GRPC_ADDR and
// ADMIN_ADDR are chosen here) and waits until its /readyz answers 200.
func (s Sensorcast) StartRegistry(t testing.TB, name string, settings Settings) *Registry {
	t.Helper()
	grpcAddr, admin := FreeAddr(t), FreeAddr(t)
	settings = withDefaults(settings, Settings{"GRPC_ADDR": grpcAddr, "ADMIN_ADDR": admin})
	p := StartProcess(t, name, environ(settings), s.Path, "registry")
	r := &Registry{Process: p, GRPCAddr: grpcAddr, AdminURL: "http://" + admin}
	p.WaitReady(t, startTimeout, func() error { return WantStatus(r.AdminURL+"/readyz", http.StatusOK) })
	return r
}
