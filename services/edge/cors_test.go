package edge

import (
	"net/http"
	"strings"
	"testing"
)

func TestBrowsersOnAnotherOriginCanReadRefusalsAndTheDeviceAPI(t *testing.T) {
	e := startEdge(t, func(c *Config) { c.AllowedOrigins = "https://dash.example.com" })
	base := strings.TrimSuffix(strings.Replace(e.url, "ws://", "http://", 1), WSPath)
	do := func(method, path, origin string, header http.Header) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	t.Run("a WebSocket refusal is readable by the page that asked, so its client stops retrying", func(t *testing.T) {
		for _, origin := range []string{"https://dash.example.com", "https://evil.example.com"} {
			resp := do("GET", WSPath+"?token=bad", origin, nil)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") != origin {
				t.Errorf("from %s: %d, Access-Control-Allow-Origin %q", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
	})

	t.Run("an allowed origin's preflight for the device API is answered", func(t *testing.T) {
		resp := do("OPTIONS", "/api/v1/devices", "https://dash.example.com", http.Header{
			"Access-Control-Request-Method": {"GET"}, "Access-Control-Request-Headers": {"authorization"},
		})
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://dash.example.com" ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || h.Get("Access-Control-Allow-Methods") != "GET" {
			t.Errorf("preflight: %d %v", resp.StatusCode, h)
		}
		// This edge has no registry: the answer is a 503, readable by the page.
		resp = do("GET", "/api/v1/groups", "https://dash.example.com", http.Header{"Authorization": {"Bearer " + token(t, "u", "global")}})
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Access-Control-Allow-Origin") != "https://dash.example.com" {
			t.Errorf("GET: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("another origin gets no CORS headers from the device API", func(t *testing.T) {
		resp := do("OPTIONS", "/api/v1/devices", "https://evil.example.com", http.Header{"Access-Control-Request-Method": {"GET"}})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("Access-Control-Allow-Origin %q for a disallowed origin", got)
		}
	})
}
