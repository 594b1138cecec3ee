// Package dashboard serves the browser dashboard (web/dashboard) at "/".
// `make web` builds it with Vite into static/app, which is embedded in the
// binary; a binary built without it serves a page that says how to.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed all:static
var files embed.FS

// contentSecurityPolicy keeps the page to its own scripts and its own
// origin's APIs (WebSocket included: some browsers do not count ws: as
// 'self').
const contentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Handler serves the dashboard embedded in the binary.
func Handler() http.Handler {
	app, err := fs.Sub(files, "static/app")
	if err != nil {
		panic(err) // a constant, valid path
	}
	notBuilt, err := files.ReadFile("static/not-built.html")
	if err != nil {
		panic(err) // embedded above
	}
	return handler(app, notBuilt)
}

// handler serves the dashboard built into app: "/" is its page,
// "/assets/..." its content-hashed files, cached for a year. Without a
// build (no index.html) "/" is the notBuilt page.
func handler(app fs.FS, notBuilt []byte) http.Handler {
	if _, err := fs.Stat(app, "index.html"); err != nil {
		return notBuiltHandler(notBuilt)
	}
	assets := http.FileServerFS(app)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			assets.ServeHTTP(w, r)
			return
		}
		// The page names the current assets: always ask again. ("/" is
		// index.html; the rest are the files of the build's public/.)
		w.Header().Set("Cache-Control", "no-cache")
		assets.ServeHTTP(w, r)
	})
}

func notBuiltHandler(page []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		setHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
}

func setHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
}
