package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestTheBuiltDashboardIsServedWithItsAssets(t *testing.T) {
	app := fstest.MapFS{
		"index.html":          {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc.js"></script>`)},
		"assets/index-abc.js": {Data: []byte(`console.log("hi")`)},
	}
	h := handler(app, []byte("not built"))

	page := get(t, h, "/")
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "index-abc.js") {
		t.Fatalf("/: %d %q", page.Code, page.Body)
	}
	if cc := page.Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("/ Cache-Control = %q: the page names the current assets, so browsers must ask again", cc)
	}
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP = %q", csp)
	}
	asset := get(t, h, "/assets/index-abc.js")
	if asset.Code != http.StatusOK || !strings.Contains(asset.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("asset: %d, Cache-Control %q", asset.Code, asset.Header().Get("Cache-Control"))
	}
	if !strings.Contains(asset.Header().Get("Content-Type"), "javascript") {
		t.Errorf("asset Content-Type = %q", asset.Header().Get("Content-Type"))
	}
	if missing := get(t, h, "/assets/gone.js"); missing.Code != http.StatusNotFound {
		t.Errorf("a missing asset: %d, want 404", missing.Code)
	}
}

func TestABinaryWithoutTheDashboardSaysHowToBuildIt(t *testing.T) {
	h := handler(fstest.MapFS{}, []byte("run make web"))
	if page := get(t, h, "/"); page.Code != http.StatusOK || page.Body.String() != "run make web" {
		t.Errorf("/: %d %q", page.Code, page.Body)
	}
	if other := get(t, h, "/assets/x.js"); other.Code != http.StatusNotFound {
		t.Errorf("/assets/x.js: %d, want 404", other.Code)
	}
}
