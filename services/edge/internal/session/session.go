package session

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/services/edge/internal/command"
	"github.com/sensorcast/sensorcast/services/edge/internal/hub"
	"github.com/sensorcast/sensorcast/services/edge/internal/presence"
	"github.com/sensorcast/sensorcast/services/edge/internal/ratelimit"
	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
	"github.com/sensorcast/sensorcast/services/internal/auth"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
)

// Rooms is the part of the hub a session uses.
type Rooms interface {
	Hold(room string) (*hub.Held, error)
	Resume(ctx context.Context, room string, sub hub.Replayer, from hub.From) error
	ResumePoint(ctx context.Context, room string, since uint64) (start uint64, recovered bool, err error)
	Position(ctx context.Context, room string) (uint64, error)
	Leave(room string, sub hub.Subscriber)
}

// Presence records who is in which room, across pods.
type Presence interface {
	Join(room, userID string)
	Leave(room, userID string)
	Members(ctx context.Context, room string) ([]wire.Member, error)
}

// PresenceWatcher tells a session when users join or leave a room whose
// presence it asked for; presence.Watcher implements it.
type PresenceWatcher interface {
	Watch(room string, sink presence.Sink, members []wire.Member)
	Unwatch(room string, sink presence.Sink)
}

// Catalog says which device and group rooms exist (the registry's devices
// and groups) and which devices are in them; devicecache.Cache implements it.
type Catalog interface {
	Lookup(deviceID string) (devicecache.Device, bool)
	GroupExists(groupID string) bool
	GroupMembers(groupID string, limit int) []string
	DeviceIDs(limit int) []string
	Ready() bool
}

// Commands sends commands to devices and reports their results back.
type Commands interface {
	Send(ctx context.Context, sink command.Sink, requestID string, req command.Request) string
	Forget(sink command.Sink)
}

// Deps are what every session of a pod shares.
type Deps struct {
	Rooms    Rooms
	Presence Presence
	Commands Commands
	// Catalog, when set, rejects rooms of devices and groups that do not
	// exist; nil accepts every well-formed room.
	Catalog Catalog
	// Watcher, when set, sends presence_join and presence_leave for rooms a
	// client is in and asked the presence of.
	Watcher PresenceWatcher
	Metrics *Metrics
	Logger  *slog.Logger
}

// Close codes the edge sends (RFC 6455 §7.4.1).
const (
	CloseNormal         = websocket.CloseNormalClosure
	CloseTooLarge       = websocket.CloseMessageTooBig
	CloseServiceRestart = websocket.CloseServiceRestart
	CloseTryAgainLater  = websocket.CloseTryAgainLater
)

// closeGrace is how long a closing session waits for the client's close
// reply before dropping the TCP connection.
const closeGrace = 2 * time.Second

// presenceTimeout bounds a presence lookup so a slow Redis cannot stall a
// client's read loop for long.
const presenceTimeout = 3 * time.Second

// Session is one dashboard connection. Deliver and Close may be called from
// any goroutine; everything else belongs to Run's read loop.
type Session struct {
	id       string
	conn     *websocket.Conn
	netConn  net.Conn
	claims   *auth.Claims
	rooms    Rooms
	presence Presence
	commands Commands
	catalog  Catalog
	watcher  PresenceWatcher
	cfg      Config
	metrics  *Metrics
	logger   *slog.Logger

	// Owned by the read loop.
	joined         []string
	watching       []string // joined rooms whose presence changes the client gets
	limiter        ratelimit.Bucket
	commandLimiter ratelimit.Bucket

	// pinger enqueues a WebSocket ping every PingInterval.
	pinger *time.Timer

	// mu guards the outbound queue and the close state. The queue holds
	// shared, read-only frames; the flusher swaps it out whole.
	mu    sync.Mutex
	queue [][]byte
	spare [][]byte // the flusher's emptied batch, reused as the next queue
	// flushing is true while a flush goroutine runs. There is at most one,
	// started by whoever queues into an idle session and ended when the
	// queue is empty, so an idle connection costs no writer goroutine.
	flushing    bool
	closeFrame  []byte // set once: the close frame to send after the queue
	closeSent   bool   // the close frame has been handed to the socket
	closeReason string
	// drained is broadcast (on mu) when the flusher takes the queue, stops,
	// or the session closes; replies and Run wait on it.
	drained *sync.Cond
}

// New wraps an upgraded connection. Run must be called to serve it.
func New(id string, conn *websocket.Conn, claims *auth.Claims, cfg Config, deps Deps) *Session {
	s := &Session{
		id:             id,
		conn:           conn,
		netConn:        conn.NetConn(),
		claims:         claims,
		rooms:          deps.Rooms,
		presence:       deps.Presence,
		commands:       deps.Commands,
		catalog:        deps.Catalog,
		watcher:        deps.Watcher,
		cfg:            cfg,
		metrics:        deps.Metrics,
		logger:         deps.Logger,
		limiter:        ratelimit.New(cfg.RateLimit, cfg.RateBurst, time.Now()),
		commandLimiter: ratelimit.New(cfg.CommandRate, cfg.CommandBurst, time.Now()),
	}
	s.drained = sync.NewCond(&s.mu)
	return s
}

// A session takes its presence_join and presence_leave frames through
// Deliver.
var _ presence.Sink = (*Session)(nil)

// ID is the connection id sent in `connected`.
func (s *Session) ID() string { return s.id }

// Deliver queues a frame for the client without blocking. A client whose
// queue is full is closed with 1013 "slow consumer" and its queue dropped:
// it reconnects and resumes, and no one else waits for it.
func (s *Session) Deliver(frame []byte) bool {
	s.mu.Lock()
	if s.closeFrame != nil {
		s.mu.Unlock()
		return false
	}
	queued := len(s.queue) < s.cfg.SendQueue
	if queued {
		s.queue = append(s.queue, frame)
	} else {
		clear(s.queue)
		s.queue = s.queue[:0]
		s.closeFrame = wire.CloseFrame(CloseTryAgainLater, "slow consumer")
		s.closeReason = "slow_consumer"
		s.drained.Broadcast()
	}
	start := s.startFlushLocked()
	s.mu.Unlock()
	if start {
		go s.flush()
	}
	return queued
}

// Close asks the session to send what it has queued, then a close frame
// with code and reason, and to end. It does not wait; later calls are no-ops.
func (s *Session) Close(code int, reason, metricReason string) {
	s.closeWithFrame(wire.CloseFrame(code, reason), metricReason)
}

// alreadySent marks a close whose frame someone else wrote (or that must
// not be written): the session ends without sending one.
var alreadySent = []byte{}

func (s *Session) closeWithFrame(frame []byte, metricReason string) {
	s.mu.Lock()
	if s.closeFrame == nil {
		s.closeFrame = frame
		s.closeReason = metricReason
	}
	s.drained.Broadcast()
	start := s.startFlushLocked()
	s.mu.Unlock()
	if start {
		go s.flush()
	}
}

// send queues a direct reply from the read loop. Replies share the queue
// with room messages, so they keep their order, but instead of counting
// against the slow-consumer limit they wait while the queue is half full:
// a client that floods us without reading its replies is simply read no
// further (TCP back-pressure), while room messages are never held up.
// It reports whether the frame was queued (false: the session is closing).
func (s *Session) send(frame []byte) bool {
	s.mu.Lock()
	for len(s.queue) >= s.cfg.SendQueue/2+1 && s.closeFrame == nil {
		s.drained.Wait()
	}
	if s.closeFrame != nil {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, frame)
	start := s.startFlushLocked()
	s.mu.Unlock()
	if start {
		go s.flush()
	}
	return true
}

// errClosed is what Replay returns once the session is closing.
var errClosed = errors.New("session closed")

// Replay queues a replayed room message with the back-pressure of a reply:
// a replay goes only as fast as the client reads.
func (s *Session) Replay(frame []byte) error {
	if !s.send(frame) {
		return errClosed
	}
	return nil
}

// startFlushLocked reports whether the caller must start the flusher: there
// is something to write and no flusher runs. s.mu must be held.
func (s *Session) startFlushLocked() bool {
	if s.flushing || s.closeSent || (len(s.queue) == 0 && s.closeFrame == nil) {
		return false
	}
	s.flushing = true
	return true
}

func (s *Session) ping() {
	s.Deliver(wire.PingFrame)
	s.mu.Lock()
	open := s.closeFrame == nil
	s.mu.Unlock()
	if open {
		s.pinger.Reset(s.cfg.PingInterval)
	}
}

// Run serves the connection until it closes or ctx ends (then it closes
// with 1012), and leaves every room on the way out.
func (s *Session) Run(ctx context.Context) {
	s.metrics.Connections.Inc()
	defer s.metrics.Connections.Dec()

	stop := context.AfterFunc(ctx, func() {
		s.Close(CloseServiceRestart, "server shutting down", "shutdown")
	})
	defer stop()
	// Armed only after the field is set, so the callback can re-arm it.
	s.pinger = time.AfterFunc(time.Hour, s.ping)
	s.pinger.Reset(s.cfg.PingInterval)
	defer s.pinger.Stop()

	s.send(wire.ReplyFrame(wire.TypeConnected, "", wire.ConnectedPayload{
		ConnectionID: s.id,
		ServerTime:   wire.Timestamp(time.Now()),
		HeartbeatS:   int(s.cfg.PingInterval / time.Second),
	}, time.Now()))

	reason := s.readLoop()
	s.finish()
	if s.commands != nil {
		s.commands.Forget(s)
	}

	for _, r := range s.joined {
		s.rooms.Leave(r, s)
		s.presence.Leave(r, s.claims.Subject)
	}
	for _, r := range s.watching {
		s.watcher.Unwatch(r, s)
	}
	s.mu.Lock()
	if s.closeReason != "" {
		reason = s.closeReason
	}
	s.queue = nil
	s.mu.Unlock()
	s.metrics.Closes.WithLabelValues(reason).Inc()
}

// readLoop reads client frames until the connection fails or closes and
// returns the reason for the metrics.
func (s *Session) readLoop() string {
	s.conn.SetReadLimit(s.cfg.MaxMessageBytes)
	extend := func() { _ = s.conn.SetReadDeadline(time.Now().Add(s.cfg.PongTimeout)) }
	extend()
	s.conn.SetPongHandler(func(string) error { extend(); return nil })
	s.conn.SetPingHandler(func(data string) error {
		extend()
		s.send(wire.PongFrame([]byte(data)))
		return nil
	})
	s.conn.SetCloseHandler(func(code int, text string) error {
		// Echo the client's close; the write loop sends it after the queue.
		if code == websocket.CloseNoStatusReceived {
			code = CloseNormal
		}
		s.Close(code, "", "client")
		return nil
	})
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				// gorilla has already sent the 1009 close frame itself.
				s.closeWithFrame(alreadySent, "too_large")
				return "too_large"
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
				return "client"
			}
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				return "timeout"
			}
			return "client"
		}
		extend()
		s.handle(data)
	}
}
