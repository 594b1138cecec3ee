package edge

import (
	"net/http"
	"strconv"
	"time"
)

// corsMaxAge is how long a browser may cache a preflight's answer.
const corsMaxAge = 10 * time.Minute

// withCORS lets dashboards served from an allowed origin (see
// originAllowed) call h from the browser with a bearer token: it answers
// their preflights and marks the responses readable to them. Tokens travel
// in a header, never in cookies, so this opens nothing to other sites.
func (s *Service) withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" || !s.originAllowed(r) {
			h.ServeHTTP(w, r)
			return
		}
		exposeTo(w, r)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization")
			w.Header().Set("Access-Control-Max-Age", strconv.Itoa(int(corsMaxAge.Seconds())))
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// exposeTo makes a response readable to the page that asked, at its
// origin. The WebSocket endpoint's refusals use it whatever the origin:
// browsers hide why a WebSocket failed, so a client asks again with fetch,
// and must be able to read "unauthorized" or "origin not allowed" to stop
// retrying. Those bodies say nothing but why.
func exposeTo(w http.ResponseWriter, r *http.Request) {
	if origin := r.Header.Get("Origin"); origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
}
