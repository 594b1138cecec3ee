package simulator

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/time/rate"

	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
)

const (
	// publishTimeout bounds one QoS 1 publish; a reading that misses it is
	// skipped, as a real device on a bad link would.
	publishTimeout = 5 * time.Second
	// stopTimeout bounds the offline message and DISCONNECT at shutdown.
	stopTimeout = 3 * time.Second
	// keepAlive is short enough that the broker notices a killed simulator
	// (and publishes the wills) within a minute.
	keepAlive = 30
)

// device is one simulated device and its MQTT connection.
type device struct {
	id          string
	broker      *url.URL
	interval    time.Duration
	sensors     *sensors
	jitter      *rand.Rand // used only by run's goroutine
	logger      *slog.Logger
	connectWarn *rate.Sometimes
}

func newDevice(id string, n int, broker *url.URL, interval time.Duration, logger *slog.Logger, connectWarn *rate.Sometimes) *device {
	return &device{
		id:          id,
		broker:      broker,
		interval:    interval,
		sensors:     newSensors(n),
		jitter:      rand.New(rand.NewPCG(uint64(n), 0x717e4)),
		logger:      logger.With("device_id", id),
		connectWarn: connectWarn,
	}
}

// run connects, sends readings until ctx ends, then says offline and
// disconnects.
func (d *device) run(ctx context.Context) {
	statusTopic := devicemsg.Topic(d.id, devicemsg.KindStatus)
	// The connection outlives ctx so that shutdown can still publish
	// offline; it ends with the Disconnect below.
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	cm, err := autopaho.NewConnection(connCtx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{d.broker},
		KeepAlive:  keepAlive,
		// Devices start clean: they have no state worth resuming.
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(500*time.Millisecond, 30*time.Second, 2*time.Second, 2),
		// The broker announces the device offline if it vanishes.
		WillMessage: &paho.WillMessage{Topic: statusTopic, QoS: 1, Retain: true, Payload: []byte(offlinePayload)},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			d.publish(ctx, cm, statusTopic, []byte(onlinePayload), true)
		},
		OnConnectError: func(err error) {
			d.connectWarn.Do(func() { d.logger.Warn("simulated device cannot connect; retrying", "err", err) })
		},
		ClientConfig: paho.ClientConfig{ClientID: d.id},
	})
	if err != nil {
		d.logger.Error("simulated device not started", "err", err)
		return
	}

	telemetryTopic := devicemsg.Topic(d.id, devicemsg.KindTelemetry)
	// The first reading comes at a random point of the first interval, so
	// a fleet started together does not publish in lockstep.
	timer := time.NewTimer(time.Duration(d.jitter.Int64N(int64(d.interval) + 1)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			d.stop(cm, statusTopic)
			return
		case now := <-timer.C:
			timer.Reset(d.nextInterval())
			payload, err := d.sensors.reading(now)
			if err != nil {
				d.logger.Error("encode reading", "err", err)
				continue
			}
			d.publish(ctx, cm, telemetryTopic, payload, false)
		}
	}
}

// nextInterval is the interval ±20%, so devices drift apart like real ones.
func (d *device) nextInterval() time.Duration {
	return time.Duration(float64(d.interval) * (0.8 + 0.4*d.jitter.Float64()))
}

// publish sends one QoS 1 message; failures (mostly: not connected right
// now) only skip that message.
func (d *device) publish(ctx context.Context, cm *autopaho.ConnectionManager, topic string, payload []byte, retain bool) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: payload}); err != nil {
		d.logger.Debug("simulated publish failed", "topic", topic, "err", err)
	}
}

// stop publishes offline (a clean DISCONNECT does not trigger the will)
// and disconnects, within stopTimeout.
func (d *device) stop(cm *autopaho.ConnectionManager, statusTopic string) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if _, err := cm.Publish(ctx, &paho.Publish{Topic: statusTopic, QoS: 1, Retain: true, Payload: []byte(offlinePayload)}); err != nil {
		d.logger.Debug("offline status not published", "err", err)
	}
	if err := cm.Disconnect(ctx); err != nil {
		d.logger.Debug("disconnect", "err", err)
	}
}
