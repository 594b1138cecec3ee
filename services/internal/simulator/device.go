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

// sessionExpiry is how long the broker keeps a simulated device's session
// (and so the commands sent to it) while it is away: a device that comes
// back within a command's TTL still gets the command.
const sessionExpiry = 3600 // seconds

// commandBacklog is how many received commands a device holds before it
// answers them; more are logged and left to time out, as on a busy device.
const commandBacklog = 16

// run connects, sends readings and answers commands until ctx ends, then
// says offline and disconnects.
func (d *device) run(ctx context.Context) {
	statusTopic := devicemsg.Topic(d.id, devicemsg.KindStatus)
	// paho's callbacks must not block, so they only hand work to this loop.
	connected := make(chan struct{}, 1)
	commands := make(chan command, commandBacklog)
	// The connection outlives ctx so that shutdown can still publish
	// offline; it ends with the Disconnect below.
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	cm, err := autopaho.NewConnection(connCtx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{d.broker},
		KeepAlive:  keepAlive,
		// A persistent session keeps the device's command subscription and
		// queues commands while it is offline.
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         sessionExpiry,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(500*time.Millisecond, 30*time.Second, 2*time.Second, 2),
		// The broker announces the device offline if it vanishes.
		WillMessage: &paho.WillMessage{Topic: statusTopic, QoS: 1, Retain: true, Payload: []byte(offlinePayload)},
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			select {
			case connected <- struct{}{}:
			default: // already signalled
			}
		},
		OnConnectError: func(err error) {
			d.connectWarn.Do(func() { d.logger.Warn("simulated device cannot connect; retrying", "err", err) })
		},
		ClientConfig: paho.ClientConfig{
			ClientID: d.id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					if pr.Packet.Topic != devicemsg.CommandTopic(d.id) {
						return false, nil
					}
					select {
					case commands <- command{payload: pr.Packet.Payload, props: echoedTraceContext(pr.Packet.Properties)}:
					default:
						d.logger.Warn("simulated device busy; command left to time out")
					}
					return true, nil
				},
			},
		},
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
		case <-connected:
			// Subscribed before it says online, so a dashboard that
			// commands it the moment it shows online reaches it.
			d.subscribeCommands(ctx, cm)
			d.publish(ctx, cm, statusTopic, []byte(onlinePayload), true)
		case c := <-commands:
			for _, ack := range answer(c.payload) {
				d.send(ctx, cm, &paho.Publish{Topic: devicemsg.AckTopic(d.id), QoS: 1, Payload: ack, Properties: c.props})
			}
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

// subscribeCommands subscribes to the device's command topic; a resumed
// session has the subscription already, and subscribing again is harmless.
func (d *device) subscribeCommands(ctx context.Context, cm *autopaho.ConnectionManager) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: devicemsg.CommandTopic(d.id), QoS: 1}}}); err != nil {
		d.logger.Warn("simulated device cannot subscribe to its commands", "err", err)
	}
}

// nextInterval is the interval ±20%, so devices drift apart like real ones.
func (d *device) nextInterval() time.Duration {
	return time.Duration(float64(d.interval) * (0.8 + 0.4*d.jitter.Float64()))
}

// command is a received command, with the trace context its
// acknowledgements echo.
type command struct {
	payload []byte
	props   *paho.PublishProperties
}

// echoedTraceContext keeps a command's traceparent and tracestate user
// properties: a device that sends them back on its acknowledgements puts
// those in the command's trace, as the protocol suggests devices do.
func echoedTraceContext(p *paho.PublishProperties) *paho.PublishProperties {
	if p == nil {
		return nil
	}
	echo := &paho.PublishProperties{}
	for _, u := range p.User {
		if u.Key == "traceparent" || u.Key == "tracestate" {
			echo.User = append(echo.User, u)
		}
	}
	return echo
}

// publish sends one QoS 1 message.
func (d *device) publish(ctx context.Context, cm *autopaho.ConnectionManager, topic string, payload []byte, retain bool) {
	d.send(ctx, cm, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: payload})
}

// send publishes p; failures (mostly: not connected right now) only skip
// that message.
func (d *device) send(ctx context.Context, cm *autopaho.ConnectionManager, p *paho.Publish) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := cm.Publish(ctx, p); err != nil {
		d.logger.Debug("simulated publish failed", "topic", p.Topic, "err", err)
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
