// Package command carries a dashboard's commands to devices and their
// results back to the connection that sent them.
//
// The edge sends each command as a NATS request to the ingest replicas
// (one of them publishes it to the device over MQTT and answers accepted or
// rejected); the device's acknowledgements come back, through whichever
// replica received them, on this edge's own result subject. The
// Dispatcher is the one place that knows each command in flight, so it
// alone decides what its requester sees: statuses only move forward
// (accepted, delivered, then one final status), a final status is sent
// once, and a command whose device has not finished within its TTL ends
// as timeout. Late or duplicate acknowledgements are dropped.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commandv1 "github.com/sensorcast/sensorcast/proto/sensorcast/command/v1"
	"github.com/sensorcast/sensorcast/services/internal/tracing"
)

// Sink receives the status changes of a command: it is the requesting
// connection. Result must not block.
type Sink interface {
	CommandResult(requestID string, r Result)
}

// Result is one status change, in the contract's terms.
type Result struct {
	CommandID string
	DeviceID  string
	Status    string // accepted, delivered, succeeded, failed, timeout, rejected
	Result    map[string]any
}

// Request is a command a connection wants sent.
type Request struct {
	UserID   string // the token's subject, for the per-user limit
	DeviceID string
	Name     string
	Params   map[string]any
	TTL      time.Duration
}

// requestTimeout bounds the wait for an ingest replica to accept a command.
const requestTimeout = 5 * time.Second

// Dispatcher sends commands and routes their results. Create it with New.
type Dispatcher struct {
	nc      *nats.Conn
	token   string
	sub     *nats.Subscription
	logger  *slog.Logger
	metrics *Metrics
	tracer  trace.Tracer

	perDevice *keyedLimiter
	perUser   *keyedLimiter

	mu       sync.Mutex
	inflight map[string]*inflight
	closed   bool
	wg       sync.WaitGroup // request goroutines
}

type inflight struct {
	sink      Sink
	requestID string
	deviceID  string
	timer     *time.Timer
	// span lasts from the command to its final status; each status the
	// requester sees is an event on it.
	span trace.Span

	mu   sync.Mutex
	rank int // the last status sent, by rank
}

// Per-device limit of commands through one pod: a device is a small
// machine, and a dashboard full of buttons should not flood it. The
// per-user limit covers all of a user's connections to the pod, above the
// per-connection limit of the session.
const (
	DeviceRate  = 2.0
	DeviceBurst = 5
	UserRate    = 5.0
	UserBurst   = 20
)

// New subscribes to this edge's result subject on nc. Commands are traced
// with tp.
func New(nc *nats.Conn, metrics *Metrics, logger *slog.Logger, tp trace.TracerProvider) (*Dispatcher, error) {
	d := &Dispatcher{
		nc: nc, token: nuid.Next(), logger: logger, metrics: metrics,
		tracer:    tp.Tracer("github.com/sensorcast/sensorcast/services/edge/command"),
		perDevice: newKeyedLimiter(DeviceRate, DeviceBurst), perUser: newKeyedLimiter(UserRate, UserBurst),
		inflight: map[string]*inflight{},
	}
	sub, err := nc.Subscribe(commandv1.ResultSubject(d.token), d.onResult)
	if err != nil {
		return nil, fmt.Errorf("subscribe to command results: %w", err)
	}
	d.sub = sub
	return d, nil
}

// Send starts a command and returns its id at once; its statuses reach
// sink, under requestID, as they happen. ctx holds the client's trace
// context, if it sent one.
func (d *Dispatcher) Send(ctx context.Context, sink Sink, requestID string, req Request) string {
	id := commandv1.NewCommandID(d.token, nuid.Next())
	ctx, span := d.startCommand(ctx, id, req)
	refuse := func(why string, counted bool) string {
		if counted {
			d.metrics.Results.WithLabelValues("rejected").Inc()
		}
		endCommand(span, "rejected")
		sink.CommandResult(requestID, Result{CommandID: id, DeviceID: req.DeviceID, Status: "rejected", Result: reason(why)})
		return id
	}
	now := time.Now()
	if !d.perUser.allow(req.UserID, now) {
		return refuse(fmt.Sprintf("too many commands from this user; at most %g per second", UserRate), true)
	}
	if !d.perDevice.allow(req.DeviceID, now) {
		return refuse("too many commands for this device; try again shortly", true)
	}
	params, err := structpb.NewStruct(req.Params)
	if err != nil {
		// Params come from decoded JSON, which always converts.
		return refuse("params are not a JSON object", false)
	}
	data, err := proto.Marshal(&commandv1.Command{
		CommandId: id, DeviceId: req.DeviceID, Name: req.Name, Params: params,
		IssuedAt: timestamppb.Now(), TtlMs: req.TTL.Milliseconds(),
	})
	if err != nil {
		return refuse("command could not be encoded", false)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return refuse("server shutting down", false)
	}
	f := &inflight{sink: sink, requestID: requestID, deviceID: req.DeviceID, span: span}
	d.inflight[id] = f
	f.timer = time.AfterFunc(req.TTL, func() {
		d.deliver(id, Result{CommandID: id, DeviceID: req.DeviceID, Status: "timeout", Result: reason("the device did not finish the command within its timeout")})
	})
	d.wg.Add(1)
	d.mu.Unlock()
	d.metrics.Sent.Inc()

	go func() {
		defer d.wg.Done()
		d.deliver(id, d.request(ctx, req.DeviceID, id, data))
	}()
	return id
}

// request hands the command to an ingest replica and returns its answer.
func (d *Dispatcher) request(ctx context.Context, deviceID, id string, data []byte) Result {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req := &nats.Msg{Subject: commandv1.SendSubject(deviceID), Data: data}
	tracing.InjectNATS(ctx, req)
	msg, err := d.nc.RequestMsgWithContext(ctx, req)
	if err != nil {
		why := "devices are unreachable right now, try again"
		if !errors.Is(err, nats.ErrNoResponders) {
			d.logger.WarnContext(ctx, "sending a command failed", "command_id", id, "device_id", deviceID, "err", err)
		}
		return Result{CommandID: id, DeviceID: deviceID, Status: "rejected", Result: reason(why)}
	}
	r, ok := decode(msg.Data)
	if !ok || r.CommandID != id {
		return Result{CommandID: id, DeviceID: deviceID, Status: "rejected", Result: reason("the answer to the command could not be read")}
	}
	return r
}

// onResult takes a device's acknowledgement relayed by ingest. Its span
// continues the relay's trace, or the command's when the relay's has none
// (a device that did not echo the command's traceparent).
func (d *Dispatcher) onResult(msg *nats.Msg) {
	r, ok := decode(msg.Data)
	if !ok {
		d.metrics.Dropped.WithLabelValues("undecodable").Inc()
		return
	}
	ctx := tracing.ExtractNATS(context.Background(), msg.Header)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		d.mu.Lock()
		if f, ok := d.inflight[r.CommandID]; ok {
			ctx = trace.ContextWithSpan(ctx, f.span)
		}
		d.mu.Unlock()
	}
	_, span := tracing.StartMessaging(ctx, d.tracer, tracing.Process,
		tracing.Destination{System: "nats", Name: msg.Subject, Template: commandv1.ResultSubject("{edge}")})
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(r.CommandID), attribute.String("sensorcast.command.status", r.Status))
	}
	d.deliver(r.CommandID, r)
	span.End()
}

// deliver forwards a status change if it moves the command forward. The
// statuses of one command come from different places (the replica that
// accepted it, the replicas that relayed the device's acknowledgements,
// the TTL timer) and may arrive in any order, so a status implies those
// before it: a device's outcome implies delivered, and delivered implies
// accepted. The requester sees every status once, in order.
func (d *Dispatcher) deliver(id string, r Result) {
	d.mu.Lock()
	f, ok := d.inflight[id]
	d.mu.Unlock()
	if !ok {
		d.metrics.Dropped.WithLabelValues("late_or_duplicate").Inc()
		return
	}
	if r.DeviceID != "" && r.DeviceID != f.deviceID {
		// Only the commanded device may report on its command.
		d.metrics.Dropped.WithLabelValues("wrong_device").Inc()
		return
	}
	r.DeviceID = f.deviceID
	rank := rankOf(r.Status)
	// f.mu orders the sink calls of this command; it is held only while
	// they queue frames.
	f.mu.Lock()
	defer f.mu.Unlock()
	if rank <= f.rank {
		d.metrics.Dropped.WithLabelValues("late_or_duplicate").Inc()
		return
	}
	if r.Status == "succeeded" || r.Status == "failed" || r.Status == "delivered" {
		for implied := f.rank + 1; implied < rank; implied++ {
			status := impliedStatus[implied]
			d.metrics.Results.WithLabelValues(status).Inc()
			f.span.AddEvent("command_result", trace.WithAttributes(attribute.String("sensorcast.command.status", status)))
			f.sink.CommandResult(f.requestID, Result{CommandID: id, DeviceID: f.deviceID, Status: status})
		}
	}
	f.rank = rank
	if rank == rankFinal {
		f.timer.Stop()
		d.mu.Lock()
		delete(d.inflight, id)
		d.mu.Unlock()
	}
	d.metrics.Results.WithLabelValues(r.Status).Inc()
	f.sink.CommandResult(f.requestID, r)
	if rank == rankFinal {
		endCommand(f.span, r.Status)
	} else {
		f.span.AddEvent("command_result", trace.WithAttributes(attribute.String("sensorcast.command.status", r.Status)))
	}
}

// Forget drops the commands of a sink that went away: nobody is left to
// tell how they end.
func (d *Dispatcher) Forget(sink Sink) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, f := range d.inflight {
		if f.sink == sink {
			f.timer.Stop()
			endCommand(f.span, "abandoned")
			delete(d.inflight, id)
		}
	}
}

// Close stops taking commands, waits for requests under way and drops the
// result subscription.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	d.closed = true
	for id, f := range d.inflight {
		f.timer.Stop()
		endCommand(f.span, "abandoned")
		delete(d.inflight, id)
	}
	d.mu.Unlock()
	d.wg.Wait()
	if err := d.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		d.logger.Warn("unsubscribing from command results failed", "err", err)
	}
}

// Ranks: statuses only move forward.
const (
	rankAccepted  = 1
	rankDelivered = 2
	rankFinal     = 3
)

// impliedStatus names the statuses a later one implies, by rank.
var impliedStatus = map[int]string{rankAccepted: "accepted", rankDelivered: "delivered"}

func rankOf(status string) int {
	switch status {
	case "accepted":
		return rankAccepted
	case "delivered":
		return rankDelivered
	default:
		return rankFinal
	}
}

var statusNames = map[commandv1.Status]string{
	commandv1.Status_STATUS_ACCEPTED:  "accepted",
	commandv1.Status_STATUS_DELIVERED: "delivered",
	commandv1.Status_STATUS_SUCCEEDED: "succeeded",
	commandv1.Status_STATUS_FAILED:    "failed",
	commandv1.Status_STATUS_TIMEOUT:   "timeout",
	commandv1.Status_STATUS_REJECTED:  "rejected",
}

func decode(data []byte) (Result, bool) {
	var r commandv1.Result
	if err := proto.Unmarshal(data, &r); err != nil {
		return Result{}, false
	}
	status, ok := statusNames[r.GetStatus()]
	if !ok || r.GetCommandId() == "" {
		return Result{}, false
	}
	var result map[string]any
	if r.GetResult() != nil {
		result = r.GetResult().AsMap()
	}
	return Result{CommandID: r.GetCommandId(), DeviceID: r.GetDeviceId(), Status: status, Result: result}, true
}

func reason(why string) map[string]any { return map[string]any{"reason": why} }

// startCommand starts the span of a command: a send to ingest that lasts
// until the command's final status.
func (d *Dispatcher) startCommand(ctx context.Context, id string, req Request) (context.Context, trace.Span) {
	ctx, span := tracing.StartMessaging(ctx, d.tracer, tracing.Send,
		tracing.Destination{System: "nats", Name: commandv1.SendSubject(req.DeviceID), Template: commandv1.SendSubject("{device_id}")})
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(id), tracing.DeviceID(req.DeviceID), attribute.String("sensorcast.command.name", req.Name))
	}
	return ctx, span
}

// endCommand ends a command's span with its final status; anything but
// success is an error there.
func endCommand(span trace.Span, status string) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("sensorcast.command.status", status))
		if status != "succeeded" {
			span.SetStatus(codes.Error, status)
		}
	}
	span.End()
}
