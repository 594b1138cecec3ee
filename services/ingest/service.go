// Package ingest is the service that carries device messages from MQTT to
// NATS: it validates every message on devices/<id>/telemetry and
// devices/<id>/status (protocol.md section 2), wraps the good ones in a
// protobuf envelope and publishes it to the device's room, its groups'
// rooms and the global room, and counts and drops the bad ones.
//
// Room messages are stored in the JetStream room stream (package
// roomstream), which republishes them live to the edges. Ingest owns the
// stream: it creates it, or updates it to the configured retention, before
// it takes any message, and again if JetStream loses it.
//
// Delivery is at least once. Instances share one MQTT shared subscription,
// so the broker splits the stream among them; each keeps a persistent
// session and acknowledges a QoS 1 message only after JetStream has stored
// its envelopes, so a message is redelivered rather than lost when an
// instance dies or NATS is away. While NATS is away, intake stops: the
// unacknowledged messages fill the MQTT receive window and the broker holds
// the rest.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensorcast/sensorcast/services/ingest/internal/alerting"
	"github.com/sensorcast/sensorcast/services/ingest/internal/natspub"
	"github.com/sensorcast/sensorcast/services/internal/commandqueue"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
	"github.com/sensorcast/sensorcast/services/internal/roomstream"
	"go.opentelemetry.io/otel/trace"
)

const (
	// receiveMaximum bounds the QoS 1 messages the broker sends before we
	// acknowledge; it is also the NATS confirmation queue, so memory stays
	// bounded however long NATS is away.
	receiveMaximum = 1000
	// sendAcksInterval is how often paho sends the acknowledgements marked
	// since the last time (it sends them in order, in batches).
	sendAcksInterval = 20 * time.Millisecond
	// subscribeTimeout bounds a SUBSCRIBE round trip on a fresh connection.
	subscribeTimeout = 10 * time.Second
	// disconnectTimeout bounds a clean MQTT disconnect at shutdown.
	disconnectTimeout = 5 * time.Second
	// connectTimeout bounds one attempt to connect to a broker.
	connectTimeout = 10 * time.Second
	// streamWarnInterval is how often ingest warns while JetStream does
	// not take the room stream's configuration.
	streamWarnInterval = 10 * time.Second
)

// Devices tells which devices may send and which groups they are in;
// devicecache.Cache implements it from the registry.
type Devices interface {
	Lookup(id string) (devicecache.Device, bool)
	// Loaded is closed once the devices are known.
	Loaded() <-chan struct{}
	// RulesFor returns the enabled alert rules that watch a device.
	RulesFor(deviceID string, groups []string) []devicecache.Rule
}

// Option configures a Service.
type Option func(*Service)

// WithDevices admits only known, enabled devices and publishes each message
// to the device's group rooms too. Without it every well-formed device is
// admitted and published to its device room and global only.
func WithDevices(d Devices) Option { return func(s *Service) { s.devices = d } }

// WithSubscriptionQoS sets the QoS of ingest's subscriptions (default 1).
// Only `sensorcast run` lowers it to 0, for its embedded broker: broker and
// ingest share one process, so QoS 1 between them guards against nothing,
// and with QoS 1 deliveries to ingest mochi-mqtt v2.7.9 deadlocks under
// load (Inflight.NextImmediate read-locks its mutex twice, so a writer
// waiting in between blocks both). Devices still publish at QoS 1. The
// broker bug remains for its other QoS 1 deliveries, the commands sent to
// devices, whose rate is far lower; the fix belongs in mochi-mqtt (no
// release has it yet).
func WithSubscriptionQoS(qos byte) Option { return func(s *Service) { s.subQoS = qos } }

// Service is one ingest instance. Create it with New and run it once.
type Service struct {
	cfg     Config
	subQoS  byte
	urls    []*url.URL
	nc      *nats.Conn
	logger  *slog.Logger
	metrics *metrics
	pub     *natspub.Publisher
	devices Devices    // nil: no admission
	alerts  *evaluator // nil: no rules to evaluate (no registry)
	// commands carries dashboards' commands to devices.
	commands *commandRelay
	// Warnings about bad messages and NATS failures each have their own
	// budget, so one kind cannot hide the other.
	rejectLog  *throttledLog
	publishLog *throttledLog
	tracer     trace.Tracer

	// streamReady is set once the room stream is configured.
	streamReady atomic.Bool
	// streamLost asks for the room stream to be configured again: JetStream
	// answered that no stream stores room subjects.
	streamLost chan struct{}

	started atomic.Bool
	mqtt    mqttState
	// subscribers tracks the subscribe goroutine of each connection.
	subscribers sync.WaitGroup
}

// New checks cfg and returns a service that publishes on nc, which stays
// the caller's to close. Metrics are registered with reg (none if nil).
func New(cfg Config, nc *nats.Conn, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, errors.New("ingest: nil NATS connection")
	}
	urls, err := cfg.serverURLs()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:        cfg,
		urls:       urls,
		nc:         nc,
		logger:     logger,
		metrics:    m,
		rejectLog:  newThrottledLog(logger),
		publishLog: newThrottledLog(logger),
		streamLost: make(chan struct{}, 1),
		tracer:     defaultTracer(),
		subQoS:     1,
	}
	for _, opt := range opts {
		opt(s)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("ingest: jetstream: %w", err)
	}
	s.commands = newCommandRelay(nc, js, s.devices, logger, m, s.tracer)
	s.pub = natspub.New(nc, natspub.Options{
		QueueSize: receiveMaximum,
		OnError:   s.publishFailed,
	})
	return s, nil
}

// Run connects to the broker and moves messages until ctx ends, then
// confirms what it can, disconnects cleanly and returns nil. Messages not
// yet confirmed stay unacknowledged in the session, for redelivery.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("ingest: Run called twice")
	}
	// The stream first: publishing before it exists would only fail.
	if err := s.ensureStream(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before NATS could take the configuration
		}
		return err
	}
	if err := commandqueue.Ensure(ctx, s.commands.js); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if s.devices != nil {
		if err := s.openAlerts(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	// Everything stops with ctx, or when the publisher fails, which it
	// does only if the NATS connection was closed under it.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// The connection outlives runCtx so that shutdown can end it with a
	// DISCONNECT after the last acknowledgements, instead of dropping it.
	connCtx, cancelConn := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConn()
	cm, err := autopaho.NewConnection(connCtx, s.clientConfig(runCtx))
	if err != nil {
		return fmt.Errorf("start mqtt connection: %w", err)
	}
	// Messages that arrive before the publisher starts wait in Publish.
	var pubErr error
	var workers sync.WaitGroup
	workers.Go(func() {
		if pubErr = s.pub.Run(runCtx); pubErr != nil {
			stop()
		}
	})
	workers.Go(func() { s.keepStream(runCtx) })
	workers.Go(func() { s.commands.run(runCtx) })
	workers.Go(func() {
		if err := s.takeIngress(runCtx); err != nil {
			s.logger.Error("device messages from the edge cannot be taken", "err", err)
		}
	})
	if s.alerts != nil {
		workers.Go(func() { s.alerts.run(runCtx) })
	}

	<-runCtx.Done()
	workers.Wait()
	// Give paho one round of its acknowledgement loop for what the
	// publisher confirmed last, so a clean restart redelivers nothing.
	time.Sleep(2 * sendAcksInterval)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), disconnectTimeout)
	defer cancel()
	err = cm.Disconnect(dctx)
	// No callback can start another subscriber now, and ctx has stopped
	// the last one.
	s.subscribers.Wait()
	s.mqtt.down()
	s.metrics.mqttConnected.Set(0)
	if pubErr != nil {
		return fmt.Errorf("publish to nats: %w", pubErr)
	}
	if err != nil {
		return fmt.Errorf("disconnect from mqtt: %w", err)
	}
	s.logger.Info("ingest stopped")
	return nil
}

// ensureStream configures the room stream, retrying until JetStream takes
// the configuration or ctx ends. It warns every streamWarnInterval while it
// waits: NATS without JetStream would otherwise leave ingest waiting in
// silence.
func (s *Service) ensureStream(ctx context.Context) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, streamWarnInterval)
		err := roomstream.Ensure(attempt, s.nc, s.cfg.Retention)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err // stopping, or a configuration JetStream refuses
		}
		s.logger.Warn("room stream not configured yet (is JetStream enabled on NATS?); still trying", "err", err)
	}
	s.streamReady.Store(true)
	r := s.cfg.Retention
	s.logger.Info("room stream configured", "max_age", r.MaxAge, "max_per_room", r.MaxPerRoom,
		"max_bytes", r.MaxBytes, "replicas", r.Replicas, "memory", r.Memory)
	return nil
}

// keepStream configures the room stream again each time publishFailed
// finds it gone: a stream in memory, or on a server whose storage was
// wiped, does not survive a NATS restart, and nothing else recreates it.
func (s *Service) keepStream(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.streamLost:
		}
		s.streamReady.Store(false)
		s.logger.Warn("room stream missing; configuring it again")
		if err := s.ensureStream(ctx); err != nil && ctx.Err() == nil {
			// A configuration JetStream refuses: publishes keep failing,
			// and the next failure tries again.
			s.logger.Error("configure room stream", "err", err)
		}
	}
}

// Ready returns nil while the service can move messages: connected and
// subscribed to MQTT, connected to NATS, with the room stream configured.
func (s *Service) Ready() error {
	if !s.streamReady.Load() {
		return errors.New("room stream not configured yet")
	}
	if err := s.mqtt.ready(); err != nil {
		return err
	}
	if !s.nc.IsConnected() {
		return errors.New("nats not connected")
	}
	if s.devices != nil {
		select {
		case <-s.devices.Loaded():
		default:
			return errors.New("device registry not loaded yet")
		}
	}
	return nil
}

// alertStateIdle is how long a rule's state for a device outlives the
// device's last reading. Holds and cooldowns are at most 24 hours, so a
// state idle for longer has nothing left to remember.
const alertStateIdle = 25 * time.Hour

// openAlerts opens the alert state store that every replica shares.
func (s *Service) openAlerts(ctx context.Context) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("alert state: %w", err)
	}
	store, err := alerting.OpenStore(ctx, js, alertStateIdle)
	if err != nil {
		return err
	}
	s.alerts = newEvaluator(store, s.pub, s.logger, s.metrics, s.tracer)
	return nil
}
