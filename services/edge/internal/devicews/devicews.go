// Package devicews serves devices that speak WebSocket instead of MQTT
// (protocol.md section 3): an ESP32 with a socket to the edge.
//
// The edge does not judge what the device sends: each telemetry and status
// message goes to ingest as a NATS request (envelopev1.IngressSubject) and
// takes the very path of an MQTT message there (validation, admission,
// rooms, alert rules); ingest's verdict comes back, and a rejection
// reaches the device as an `error`. Waiting for that answer before reading
// the next frame is the device's back-pressure. Connecting and
// disconnecting send the device's online and offline status the same way.
//
// While connected, the device's commands come to this edge on
// commandv1.DeviceSubject: ingest tries that first, and falls back to MQTT
// when no edge answers. The device's command_ack frames go straight back
// to the edge that sent the command.
package devicews

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	"github.com/sensorcast/sensorcast/services/edge/internal/ratelimit"
	"github.com/sensorcast/sensorcast/services/internal/commandqueue"
	"github.com/sensorcast/sensorcast/services/internal/devicemsg"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// Config bounds one device connection.
type Config struct {
	// ReadLimit is the largest frame a device may send; larger closes
	// with 1009.
	ReadLimit int64
	// PingInterval is how often the edge pings; IdleTimeout how long a
	// device may send nothing (no pong either) before it is dropped.
	PingInterval time.Duration
	IdleTimeout  time.Duration
	WriteTimeout time.Duration
	// Rate (frames per second) and Burst bound what a device sends;
	// excess frames get `error` rate_limited.
	Rate  float64
	Burst int
	// Tracer traces device messages into ingest; nil: not at all, though
	// a device's traceparent is still passed on.
	Tracer trace.Tracer
}

// sendQueue bounds the frames waiting for the device; a device that
// cannot take its commands and replies is closed with 1013.
const sendQueue = 64

// ingressTimeout bounds ingest's verdict on one message.
const ingressTimeout = 5 * time.Second

// Close codes.
const (
	CloseServiceRestart = websocket.CloseServiceRestart // 1012: draining
	closeTryAgainLater  = websocket.CloseTryAgainLater  // 1013: too slow
)

// Conn is one device's WebSocket. Create it with New and Run it once.
type Conn struct {
	deviceID string
	ws       *websocket.Conn
	nc       *nats.Conn
	js       jetstream.JetStream // the command queue: commands held while it was away
	cfg      Config
	logger   *slog.Logger
	metrics  *Metrics
	tracer   trace.Tracer
	limiter  ratelimit.Bucket

	out  chan []byte   // frames for the writer; never closed
	done chan struct{} // closed when the connection is ending

	closeOnce sync.Once
	mu        sync.Mutex
	closeMsg  []byte // the close frame to send, once chosen
	reason    string // why it ended, for the metric
}

// New wraps an upgraded connection of an authenticated device.
func New(deviceID string, ws *websocket.Conn, nc *nats.Conn, js jetstream.JetStream, cfg Config, metrics *Metrics, logger *slog.Logger) *Conn {
	tracer := cfg.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	return &Conn{
		deviceID: deviceID, ws: ws, nc: nc, js: js, cfg: cfg, metrics: metrics, tracer: tracer,
		logger:  logger.With("device_id", deviceID),
		limiter: ratelimit.New(cfg.Rate, cfg.Burst, time.Now()),
		out:     make(chan []byte, sendQueue), done: make(chan struct{}),
	}
}

// Close ends the connection with a close frame; it does not wait. The
// signature matches the dashboard session's, so the drain treats both
// alike.
func (c *Conn) Close(code int, text, reason string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closeMsg = websocket.FormatCloseMessage(code, text)
		c.reason = reason
		c.mu.Unlock()
		close(c.done)
	})
}

// Run serves the device until it goes away, the connection fails, Close
// is called or ctx ends, and then reports the device offline.
func (c *Conn) Run(ctx context.Context) {
	c.metrics.Connections.Inc()
	defer c.metrics.Connections.Dec()
	sub, err := c.nc.Subscribe(commandv1.DeviceSubject(c.deviceID), c.onCommand)
	if err != nil {
		c.logger.Warn("device connection refused: cannot take its commands", "err", err)
		c.Close(websocket.CloseTryAgainLater, "server unavailable, reconnect", "nats")
	}
	// The device is online once ingest has stored its status, so that no
	// reading of it overtakes the online status in its rooms.
	if err == nil {
		if perr := c.ingest(ctx, devicemsg.KindStatus, []byte(`{"status":"online"}`)); perr != nil {
			c.logger.Warn("online status not stored", "err", perr)
		}
	}

	var writer sync.WaitGroup
	writer.Go(c.write)
	if err == nil {
		// Subscribed to its commands first, then the held ones: a command
		// is either held before the first take or notified after.
		waiting := make(chan struct{}, 1)
		notify, nerr := c.nc.Subscribe(commandqueue.NotifySubject(c.deviceID), func(*nats.Msg) {
			select {
			case waiting <- struct{}{}:
			default: // a take is due already
			}
		})
		if nerr != nil {
			c.logger.Warn("held commands will not be noticed", "err", nerr)
		} else {
			defer func() { _ = notify.Unsubscribe() }()
		}
		waiting <- struct{}{}
		writer.Go(func() { c.takeHeld(ctx, waiting) })
	}
	go func() {
		select {
		case <-ctx.Done():
			c.Close(CloseServiceRestart, "server shutting down, reconnect", "shutdown")
		case <-c.done:
		}
	}()
	c.read(ctx)
	c.Close(websocket.CloseNormalClosure, "", "client_closed")
	writer.Wait()
	_ = c.ws.Close()

	if sub != nil {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			c.logger.Warn("unsubscribing from the device's commands failed", "err", err)
		}
	}
	// The device is gone even if the edge is stopping: say so.
	offCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ingressTimeout)
	defer cancel()
	if perr := c.ingest(offCtx, devicemsg.KindStatus, []byte(`{"status":"offline"}`)); perr != nil {
		c.logger.Warn("offline status not stored", "err", perr)
	}
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	c.metrics.Closes.WithLabelValues(reason).Inc()
}

// frame is a message of the device protocol, either way.
type frame struct {
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Timestamp string          `json:"timestamp,omitempty"`
	// Traceparent continues a trace the device started; on a command,
	// the command's, which the device may echo on its command_ack.
	Traceparent string `json:"traceparent,omitempty"`
}

// read handles the device's frames, one at a time, until the connection
// fails or is closed.
func (c *Conn) read(ctx context.Context) {
	c.ws.SetReadLimit(c.cfg.ReadLimit)
	extend := func() { _ = c.ws.SetReadDeadline(time.Now().Add(c.cfg.IdleTimeout)) }
	extend()
	c.ws.SetPongHandler(func(string) error { extend(); return nil })
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.Close(websocket.CloseMessageTooBig, "message too big", "too_big")
			}
			return
		}
		extend()
		select {
		case <-c.done:
			return
		default:
		}
		if kind != websocket.TextMessage {
			c.reply("error", "", errorPayload("invalid_json", "frames must be JSON text"))
			continue
		}
		c.handle(ctx, data)
	}
}

func (c *Conn) handle(ctx context.Context, data []byte) {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil || f.Type == "" {
		c.metrics.Messages.WithLabelValues("invalid").Inc()
		c.reply("error", f.RequestID, errorPayload("invalid_json", `a frame is a JSON object with a "type"`))
		return
	}
	if !c.limiter.Allow(time.Now()) {
		c.metrics.Messages.WithLabelValues("rate_limited").Inc()
		c.reply("error", f.RequestID, errorPayload("rate_limited", fmt.Sprintf("at most %g messages per second", c.cfg.Rate)))
		return
	}
	switch f.Type {
	case "telemetry", "device_status":
		kind := devicemsg.KindTelemetry
		if f.Type == "device_status" {
			kind = devicemsg.KindStatus
		}
		c.metrics.Messages.WithLabelValues(f.Type).Inc()
		if perr := c.ingest(tracing.ExtractTraceparent(ctx, f.Traceparent), kind, f.Payload); perr != nil {
			c.reply("error", f.RequestID, perr)
		}
	case "command_ack":
		c.metrics.Messages.WithLabelValues(f.Type).Inc()
		if perr := c.relayAck(tracing.ExtractTraceparent(ctx, f.Traceparent), f.Payload); perr != nil {
			c.reply("error", f.RequestID, perr)
		}
	case "ping":
		c.reply("pong", f.RequestID, nil)
	default:
		c.metrics.Messages.WithLabelValues("invalid").Inc()
		c.reply("error", f.RequestID, errorPayload("unknown_type", fmt.Sprintf("unknown message type %q", truncate(f.Type))))
	}
}

// ingest hands one device message to ingest and returns its rejection as
// the error payload for the device, or nil once it is stored. ctx holds
// the device's trace context, if it sent one: its span is the parent of
// ingest's.
func (c *Conn) ingest(ctx context.Context, kind devicemsg.Kind, payload []byte) *ErrorPayload {
	msg := &nats.Msg{Subject: envelopev1.IngressSubject(c.deviceID, kind.String()), Data: payload}
	ctx, span := tracing.StartMessaging(ctx, c.tracer, tracing.Send,
		tracing.Destination{System: "nats", Name: msg.Subject, Template: envelopev1.IngressSubject("{device_id}", kind.String())})
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageBodySize(len(payload)), tracing.DeviceID(c.deviceID))
	}
	tracing.InjectNATS(ctx, msg)
	rctx, cancel := context.WithTimeout(ctx, ingressTimeout)
	defer cancel()
	reply, err := c.nc.RequestMsgWithContext(rctx, msg)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return errorPayload("unavailable", "the platform cannot take device messages right now; send it again")
	}
	if len(reply.Data) == 0 {
		return nil
	}
	var ie envelopev1.IngressError
	if err := json.Unmarshal(reply.Data, &ie); err != nil {
		return errorPayload("unavailable", "the platform's answer could not be read")
	}
	code := "invalid_payload"
	switch ie.Reason {
	case string(devicemsg.ReasonInvalidJSON):
		code = "invalid_json"
	case "unavailable":
		code = "unavailable"
	}
	c.metrics.Rejected.WithLabelValues(code).Inc()
	return errorPayload(code, ie.Error)
}

// relayAck passes the device's acknowledgement to the edge that sent the
// command. ctx holds the trace context the device sent with it (the
// command's, when the device echoes it), which the result carries on.
func (c *Conn) relayAck(ctx context.Context, payload []byte) *ErrorPayload {
	res, err := devicemsg.ParseCommandAck(c.deviceID, payload)
	if err != nil {
		return errorPayload("invalid_payload", err.Error())
	}
	subject, ok := commandv1.ResultSubjectOf(res.GetCommandId())
	if !ok {
		return errorPayload("invalid_payload", fmt.Sprintf("command id %q was not issued by the platform", res.GetCommandId()))
	}
	ctx, span := tracing.StartMessaging(ctx, c.tracer, tracing.Send,
		tracing.Destination{System: "nats", Name: subject, Template: commandv1.ResultSubject("{edge}")})
	defer span.End()
	data, err := proto.Marshal(res)
	if err == nil {
		msg := &nats.Msg{Subject: subject, Data: data}
		tracing.InjectNATS(ctx, msg)
		err = c.nc.PublishMsg(msg)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return errorPayload("unavailable", "the acknowledgement could not be relayed; send it again")
	}
	return nil
}

// onCommand takes a command for the device (on a NATS goroutine) and
// answers accepted once it is queued for the socket. The command frame
// carries the trace context of its span, for the device to echo.
func (c *Conn) onCommand(m *nats.Msg) {
	ctx, span := tracing.StartMessaging(tracing.ExtractNATS(context.Background(), m.Header), c.tracer, tracing.Process,
		tracing.Destination{System: "nats", Name: m.Subject, Template: commandv1.DeviceSubject("{device_id}")})
	defer span.End()
	var cmd commandv1.Command
	answer := func(status commandv1.Status, why string) {
		res := &commandv1.Result{CommandId: cmd.GetCommandId(), DeviceId: c.deviceID, Status: status}
		if why != "" {
			res.Result, _ = structpb.NewStruct(map[string]any{"reason": why})
		}
		data, _ := proto.Marshal(res)
		_ = m.Respond(data)
	}
	if err := proto.Unmarshal(m.Data, &cmd); err != nil || cmd.GetDeviceId() != c.deviceID {
		answer(commandv1.Status_STATUS_REJECTED, "the command could not be read")
		return
	}
	payload, err := devicemsg.EncodeCommand(&cmd)
	if err != nil {
		answer(commandv1.Status_STATUS_REJECTED, "the command could not be encoded")
		return
	}
	if !c.enqueue(encodeTraced(ctx, "command", payload)) {
		answer(commandv1.Status_STATUS_REJECTED, "the device is not taking commands right now")
		return
	}
	c.metrics.Commands.Inc()
	answer(commandv1.Status_STATUS_ACCEPTED, "")
}

// takeHeld sends the device the commands held for it while it was away,
// and those held later, until the connection ends.
func (c *Conn) takeHeld(ctx context.Context, waiting <-chan struct{}) {
	for {
		select {
		case <-c.done:
			return
		case <-waiting:
		}
		err := commandqueue.Take(ctx, c.js, c.deviceID, time.Now, func(cmd *commandv1.Command, _ []byte) bool {
			payload, err := devicemsg.EncodeCommand(cmd)
			if err != nil {
				return true // unreadable: drop it
			}
			if !c.enqueue(encode("command", "", payload)) {
				return false
			}
			c.metrics.Commands.Inc()
			return true
		})
		if err != nil && ctx.Err() == nil {
			c.logger.Warn("held commands not taken", "err", err)
		}
	}
}

// reply queues a frame for the device; a device too slow to read its
// replies is closed rather than waited for.
func (c *Conn) reply(typ, requestID string, payload any) {
	var raw json.RawMessage
	if payload != nil {
		raw, _ = json.Marshal(payload)
	}
	c.enqueue(encode(typ, requestID, raw))
}

func (c *Conn) enqueue(data []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.out <- data:
		return true
	default:
		c.Close(closeTryAgainLater, "slow consumer", "slow_consumer")
		return false
	}
}

// write sends queued frames and pings until the connection ends, then
// the close frame.
func (c *Conn) write() {
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case data := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
				c.Close(websocket.CloseAbnormalClosure, "", "write_failed")
				_ = c.ws.Close() // ends the reader
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.cfg.WriteTimeout)); err != nil {
				c.Close(websocket.CloseAbnormalClosure, "", "write_failed")
				_ = c.ws.Close()
				return
			}
		case <-c.done:
			c.mu.Lock()
			msg := c.closeMsg
			c.mu.Unlock()
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			// The reader sees the peer's close, or this deadline.
			_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
			return
		}
	}
}

// ErrorPayload is the contract's `error` payload.
type ErrorPayload struct {
	Code  string `json:"code"`
	Error string `json:"error"`
}

func errorPayload(code, text string) *ErrorPayload { return &ErrorPayload{Code: code, Error: text} }

func encode(typ, requestID string, payload json.RawMessage) []byte {
	data, _ := json.Marshal(frame{Type: typ, Payload: payload, RequestID: requestID, Timestamp: time.Now().UTC().Format(time.RFC3339Nano)})
	return data
}

// encodeTraced encodes a frame that carries ctx's trace context.
func encodeTraced(ctx context.Context, typ string, payload json.RawMessage) []byte {
	data, _ := json.Marshal(frame{Type: typ, Payload: payload, Timestamp: time.Now().UTC().Format(time.RFC3339Nano), Traceparent: tracing.Traceparent(ctx)})
	return data
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
