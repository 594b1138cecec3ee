package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
)

// clientConfig configures autopaho; handlers run with ctx, the service's
// lifetime.
func (s *Service) clientConfig(ctx context.Context) autopaho.ClientConfig {
	return autopaho.ClientConfig{
		ServerUrls: s.urls,
		KeepAlive:  uint16(s.cfg.MQTTKeepAlive / time.Second),
		// Never start clean: resuming the session of our client id gets back
		// the messages a previous run of this instance had not acknowledged.
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(s.cfg.MQTTSessionExpiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(250*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectTimeout:                connectTimeout,
		ConnectUsername:               s.cfg.MQTTUsername,
		ConnectPassword:               []byte(s.cfg.MQTTPassword),
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			rm := uint16(receiveMaximum)
			cp.Properties.ReceiveMaximum = &rm
			// Ask for reason strings on failures. paho otherwise sends
			// "no problem information", which some brokers (mochi) take as
			// licence to strip user properties, and so traceparent, from
			// every PUBLISH.
			cp.Properties.RequestProblemInfo = true
			return cp, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			s.logger.Info("mqtt connected", "client_id", s.cfg.MQTTClientID, "session_present", ack.SessionPresent)
			s.metrics.mqttConnected.Set(1)
			subCtx := s.mqtt.up(ctx)
			s.subscribers.Go(func() { s.subscribe(subCtx, cm) })
		},
		OnConnectionDown: func() bool {
			s.mqtt.down()
			s.commands.down()
			s.metrics.mqttConnected.Set(0)
			s.logger.Warn("mqtt connection lost; reconnecting")
			return true
		},
		OnConnectError: func(err error) {
			s.logger.Warn("mqtt connect failed", "err", err)
		},
		Errors:     pahoLogger{s.logger, slog.LevelWarn},
		PahoErrors: pahoLogger{s.logger, slog.LevelDebug},
		ClientConfig: paho.ClientConfig{
			ClientID: s.cfg.MQTTClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					s.handle(ctx, pr)
					return true, nil
				},
			},
			// These two only log: autopaho calls them on goroutines of their
			// own, possibly after the next connection is up, so the state
			// follows OnConnectionUp and OnConnectionDown alone.
			OnClientError: func(err error) {
				s.logger.Warn("mqtt client error", "err", err)
			},
			OnServerDisconnect: func(d *paho.Disconnect) {
				s.logger.Warn("mqtt broker disconnected us", "reason_code", d.ReasonCode)
			},
			EnableManualAcknowledgment: true,
			SendAcksInterval:           sendAcksInterval,
		},
	}
}

// subscribe (re)establishes the shared subscriptions on a new connection,
// retrying until it succeeds or ctx (the connection's) ends. A resumed
// session may still have them, and subscribing again is harmless. It runs
// on its own goroutine because autopaho's callbacks must not block, and it
// retries because a broker may refuse for a while: mochi, for one, refuses
// a SUBSCRIBE whose packet id matches one of the messages it is
// redelivering to a resumed session, until those are acknowledged.
func (s *Service) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	var subs []paho.SubscribeOptions
	for _, k := range []devicemsg.Kind{devicemsg.KindTelemetry, devicemsg.KindStatus} {
		subs = append(subs, paho.SubscribeOptions{Topic: "$share/" + s.cfg.MQTTShareGroup + "/" + k.Filter(), QoS: s.subQoS})
	}
	subs = append(subs, paho.SubscribeOptions{Topic: "$share/" + s.cfg.MQTTShareGroup + "/" + devicemsg.AckFilter, QoS: s.subQoS})
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
		_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
		cancel()
		if err == nil {
			s.mqtt.subscribed(ctx)
			s.commands.up(ctx, cm)
			s.logger.Info("mqtt subscribed", "share_group", s.cfg.MQTTShareGroup)
			return
		}
		if ctx.Err() != nil {
			return
		}
		wait := min(subscribeRetryMin<<min(attempt, 16), subscribeRetryMax)
		s.logger.Warn("mqtt subscribe failed; retrying", "share_group", s.cfg.MQTTShareGroup, "attempt", attempt+1, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// Subscribe retries back off from subscribeRetryMin to subscribeRetryMax.
const (
	subscribeRetryMin = 100 * time.Millisecond
	subscribeRetryMax = 30 * time.Second
)

// mqttState is the readiness of the MQTT side. Each connection gets a
// context that its going down cancels, so a late subscribe of an old
// connection cannot mark the new one subscribed.
type mqttState struct {
	mu           sync.Mutex
	connected    bool
	isSubscribed bool
	cancel       context.CancelFunc
}

// up records a new connection and returns its context, derived from parent.
func (m *mqttState) up(parent context.Context) context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
	}
	ctx, cancel := context.WithCancel(parent)
	m.connected, m.isSubscribed, m.cancel = true, false, cancel
	return ctx
}

// subscribed records that the connection of ctx is subscribed, unless it
// is already gone.
func (m *mqttState) subscribed(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ctx.Err() == nil {
		m.isSubscribed = true
	}
}

func (m *mqttState) down() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
	m.connected, m.isSubscribed = false, false
}

func (m *mqttState) ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.connected:
		return errors.New("mqtt not connected")
	case !m.isSubscribed:
		return errors.New("mqtt subscriptions not established")
	}
	return nil
}

// pahoLogger passes paho's Println/Printf logging to slog.
type pahoLogger struct {
	logger *slog.Logger
	level  slog.Level
}

func (l pahoLogger) Println(v ...any) {
	l.logger.Log(context.Background(), l.level, "paho", "msg", fmt.Sprint(v...))
}

func (l pahoLogger) Printf(format string, v ...any) {
	l.logger.Log(context.Background(), l.level, "paho", "msg", fmt.Sprintf(format, v...))
}
