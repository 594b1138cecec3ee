package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"google.golang.org/grpc"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/edge/internal/command"
	"github.com/sensorcast/sensorcast/services/edge/internal/dashboard"
	"github.com/sensorcast/sensorcast/services/edge/internal/devicesapi"
	"github.com/sensorcast/sensorcast/services/edge/internal/devicews"
	"github.com/sensorcast/sensorcast/services/edge/internal/hub"
	"github.com/sensorcast/sensorcast/services/edge/internal/presence"
	"github.com/sensorcast/sensorcast/services/edge/internal/session"
	"github.com/sensorcast/sensorcast/services/internal/auth"
)

// WSPath is the dashboard WebSocket endpoint of the contract.
const WSPath = "/api/v1/ws"

// DeviceWSPath is the endpoint of devices that speak WebSocket.
const DeviceWSPath = "/api/v1/device/ws"

// connection is an open WebSocket of either kind, as the drain sees it.
type connection interface {
	Close(code int, reason, metricReason string)
}

// DeviceSecrets checks a device's registry credential; the registry's
// gRPC client implements it.
type DeviceSecrets interface {
	VerifyDeviceSecret(ctx context.Context, in *registryv1.VerifyDeviceSecretRequest, opts ...grpc.CallOption) (*registryv1.VerifyDeviceSecretResponse, error)
}

// Service is one edge pod.
type Service struct {
	cfg       Config
	logger    *slog.Logger
	conns     []*nats.Conn
	verifier  *auth.Verifier
	hub       *hub.Hub
	commands  *command.Dispatcher
	tracer    trace.Tracer // device messages into ingest
	tracker   *presence.Tracker
	watcher   *presence.Watcher
	catalog   session.Catalog
	directory devicesapi.Directory // nil without a registry
	metrics   *session.Metrics
	devices   *devicews.Metrics
	secrets   DeviceSecrets // nil: devices authenticate with tokens only
	js        jetstream.JetStream
	gatherer  prometheus.Gatherer
	upgrader  websocket.Upgrader
	origins   []string
	anyOrigin bool

	draining atomic.Bool
	// sessionsCtx ends the sessions still open after the drain.
	sessionsCtx    context.Context
	cancelSessions context.CancelFunc

	mu       sync.Mutex
	sessions map[connection]struct{}
	wg       sync.WaitGroup // one per running connection
}

// Deps are what the edge needs from outside. The caller owns and closes them.
type Deps struct {
	// NATS carries room messages; room subscriptions are spread over all of them.
	NATS []*nats.Conn
	// Redis holds presence and connection counts shared by all pods; nil
	// keeps them in this process, which is right for a single pod only.
	Redis redis.UniversalClient
	// Catalog, when set, rejects subscriptions to rooms of devices and
	// groups the registry does not know; its Run is the caller's.
	Catalog session.Catalog
	// Directory, when set, serves the device list API (GET /api/v1/devices,
	// /api/v1/groups) to dashboards; its Run is the caller's.
	Directory devicesapi.Directory
	// DeviceSecrets, when set, lets devices connect with their registry
	// credential (HTTP Basic auth) as well as with a token.
	DeviceSecrets DeviceSecrets
	Logger        *slog.Logger
	Registry      *prometheus.Registry
}

// New builds an edge pod; Run serves it.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(deps.NATS) == 0 {
		return nil, errors.New("edge needs at least one NATS connection")
	}
	verifier, err := auth.NewVerifier(ctx, auth.Config{
		HMACSecret:     []byte(cfg.JWTSecret),
		PublicKeyFiles: splitList(cfg.JWTPublicKeys),
		JWKSURL:        cfg.JWKSURL,
	}, deps.Logger)
	if err != nil {
		return nil, fmt.Errorf("token keys: %w", err)
	}
	// Fan-outs, replays, commands and device messages are traced with the
	// global provider (tracing.Setup's).
	tp := otel.GetTracerProvider()
	commands, err := command.New(deps.NATS[0], command.NewMetrics(deps.Registry), deps.Logger, tp)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(deps.NATS[0])
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s := &Service{
		js:        js,
		cfg:       cfg,
		logger:    deps.Logger,
		conns:     deps.NATS,
		verifier:  verifier,
		hub:       hub.New(deps.NATS, hub.NewMetrics(deps.Registry), deps.Logger, tp),
		commands:  commands,
		tracer:    tp.Tracer("github.com/sensorcast/sensorcast/services/edge"),
		metrics:   session.NewMetrics(deps.Registry),
		devices:   devicews.NewMetrics(deps.Registry),
		secrets:   deps.DeviceSecrets,
		gatherer:  deps.Registry,
		catalog:   deps.Catalog,
		directory: deps.Directory,
		sessions:  map[connection]struct{}{},
		upgrader: websocket.Upgrader{
			// Small read buffers keep idle connections cheap; frames larger
			// than the buffer are still read, in pieces.
			ReadBufferSize:  1024,
			WriteBufferPool: &sync.Pool{},
			// Origins are checked before the upgrade, with a JSON error.
			CheckOrigin:       func(*http.Request) bool { return true },
			HandshakeTimeout:  10 * time.Second,
			EnableCompression: false,
		},
	}
	for _, o := range splitList(cfg.AllowedOrigins) {
		if o == "*" {
			s.anyOrigin = true
		}
		s.origins = append(s.origins, strings.ToLower(strings.TrimSuffix(o, "/")))
	}
	var backend presence.Backend = presence.NewMemory()
	if deps.Redis != nil {
		backend = presence.NewRedis(deps.Redis)
	}
	s.tracker = presence.NewTracker(cfg.PodName, backend, cfg.PresenceLease, s.podStats, deps.Logger)
	s.tracker.OnMembersMoved(presence.Announce(deps.NATS[0], deps.Logger))
	s.watcher = presence.NewWatcher(deps.NATS[0], s.tracker, deps.Logger)
	// A dead pod's members leave when its lease lapses: look twice a lease.
	s.watcher.Refresh = cfg.PresenceLease / 2
	s.sessionsCtx, s.cancelSessions = context.WithCancel(context.Background())
	return s, nil
}

func (s *Service) podStats() presence.PodStats {
	s.mu.Lock()
	n := len(s.sessions)
	s.mu.Unlock()
	return presence.PodStats{Connections: n, Rooms: s.hub.RoomCount()}
}

// Handler serves the edge's HTTP endpoints.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+WSPath, s.serveWS)
	mux.HandleFunc("GET "+DeviceWSPath, s.serveDeviceWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	devices := s.withCORS(devicesapi.New(s.directory, s.userClaims).Handler())
	for _, path := range []string{devicesapi.DevicesPath, devicesapi.GroupsPath} {
		mux.Handle("GET "+path, devices)
		mux.Handle("OPTIONS "+path, devices) // CORS preflights
	}
	// Everything else a browser asks for is the dashboard's.
	mux.Handle("GET /", dashboard.Handler())
	return mux
}

func (s *Service) serveReady(w http.ResponseWriter, _ *http.Request) {
	if err := s.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Ready is nil when the pod should get new connections.
func (s *Service) Ready() error {
	if s.draining.Load() {
		return errors.New("draining")
	}
	for _, nc := range s.conns {
		if !nc.IsConnected() {
			return errors.New("nats disconnected")
		}
	}
	if s.catalog != nil && !s.catalog.Ready() {
		return errors.New("device registry not loaded yet")
	}
	return nil
}

// Run serves HTTP on ln until ctx ends, then drains: it turns not-ready,
// stops accepting, closes connections with 1012 spread over the drain
// period so clients reconnect elsewhere without a storm, and returns.
func (s *Service) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	trackerCtx, stopTracker := context.WithCancel(context.Background())
	defer stopTracker()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("edge http server: %w", err)
		}
		return nil
	})
	g.Go(func() error { s.tracker.Run(trackerCtx); return nil })
	g.Go(func() error { s.watcher.Run(gctx); return nil })
	g.Go(func() error { s.verifier.Run(gctx); return nil })
	g.Go(func() error { s.shedLoop(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		s.drain(srv)
		stopTracker()
		s.hub.Close()
		s.commands.Close()
		return nil
	})
	s.logger.Info("edge listening", "addr", ln.Addr().String(), "pod", s.cfg.PodName)
	return g.Wait()
}

func (s *Service) drain(srv *http.Server) {
	// Not ready at once, but keep answering: probes and load balancers must
	// see the 503 while connections move away. New upgrades get 503 too.
	// Under mu, so that no session registers (and joins wg) after the
	// snapshot below: serveWS checks draining under mu too.
	s.mu.Lock()
	s.draining.Store(true)
	open := make([]connection, 0, len(s.sessions))
	for sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()
	s.logger.Info("draining", "connections", len(open), "period", s.cfg.DrainPeriod)
	if len(open) > 0 {
		interval := s.cfg.DrainPeriod / time.Duration(len(open))
		for i, sess := range open {
			sess.Close(session.CloseServiceRestart, "server draining, reconnect", "drain")
			if interval > 0 && i < len(open)-1 {
				time.Sleep(interval)
			}
		}
	}
	// Sessions end within their close grace; anything still open then is cut.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cancelSessions()
		<-done
	}
	s.cancelSessions()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	s.logger.Info("drained")
}

func (s *Service) serveWS(w http.ResponseWriter, r *http.Request) {
	exposeTo(w, r) // the refusals below; an upgrade ignores it
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "server is draining; reconnect", Code: "unavailable"})
		return
	}
	claims, err := s.userClaims(r)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, apiError{Error: err.Error(), Code: "unauthorized"})
		return
	}
	if !s.originAllowed(r) {
		writeJSON(w, http.StatusForbidden, apiError{Error: "origin not allowed", Code: "forbidden_origin"})
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	sess := session.New(nuid.Next(), conn, claims, s.cfg.Session, session.Deps{
		Rooms:    s.hub,
		Presence: s.tracker,
		Watcher:  s.watcher,
		Commands: s.commands,
		Catalog:  s.catalog,
		Metrics:  s.metrics,
		Logger:   s.logger.With("user_id", claims.Subject),
	})
	// The drain may have begun during the upgrade.
	if !s.track(sess, conn) {
		return
	}
	// A fresh goroutine (rather than this handler's, whose stack grew while
	// parsing HTTP) keeps each idle connection's footprint small.
	go func() {
		defer s.wg.Done()
		sess.Run(s.sessionsCtx)
		s.forget(sess)
	}()
}

// requestToken is a request's token: ?token= (browsers cannot set headers
// on a WebSocket), else an Authorization: Bearer header.
func requestToken(r *http.Request) string {
	if token := r.URL.Query().Get("token"); token != "" {
		return token
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// userClaims verifies the token of a dashboard user's request; a device's
// token (no sub) is refused.
func (s *Service) userClaims(r *http.Request) (*auth.Claims, error) {
	claims, err := s.verifier.Verify(requestToken(r))
	if err == nil && claims.Subject == "" {
		err = errors.New("token has no sub claim")
	}
	return claims, err
}

// track registers an upgraded connection for the drain, unless the drain
// has begun, in which case it sends the client elsewhere and returns
// false.
func (s *Service) track(c connection, ws *websocket.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(session.CloseServiceRestart, "server draining, reconnect"), time.Now().Add(time.Second))
		_ = ws.Close()
		return false
	}
	s.sessions[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Service) forget(c connection) {
	s.mu.Lock()
	delete(s.sessions, c)
	s.mu.Unlock()
}

// originAllowed protects browsers from cross-site WebSocket hijacking:
// requests without an Origin (non-browser clients) pass; browsers must come
// from the same host or an allowed origin.
func (s *Service) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || s.anyOrigin {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	origin = strings.ToLower(strings.TrimSuffix(origin, "/"))
	for _, allowed := range s.origins {
		if origin == allowed {
			return true
		}
	}
	return false
}

type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
