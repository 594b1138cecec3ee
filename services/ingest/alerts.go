package ingest

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"

	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/ingest/internal/alerting"
	"github.com/sensorcast/sensorcast/services/ingest/internal/natspub"
	"github.com/sensorcast/sensorcast/services/internal/devicecache"
)

// Evaluation runs beside intake, on a few workers, so that the state
// store's round trips never slow the MQTT path. A device always goes to the
// same worker, which keeps its readings in order within this replica;
// across replicas, alerting.Step ignores readings older than the state.
const (
	alertWorkers    = 4
	alertQueueDepth = 256
)

// alertJob is one reading of a device that has rules.
type alertJob struct {
	deviceID string
	groups   []string
	rules    []devicecache.Rule
	reading  *envelopev1.Telemetry
	// trace is the reading's span: an alert it raises is sent in its trace.
	trace trace.SpanContext
}

// evaluator evaluates alert rules and publishes the alerts they raise.
type evaluator struct {
	store   *alerting.Store
	pub     *natspub.Publisher
	logger  *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	seed    maphash.Seed
	queues  [alertWorkers]chan alertJob
}

func newEvaluator(store *alerting.Store, pub *natspub.Publisher, logger *slog.Logger, m *metrics, tracer trace.Tracer) *evaluator {
	e := &evaluator{store: store, pub: pub, logger: logger, metrics: m, tracer: tracer, seed: maphash.MakeSeed()}
	for i := range e.queues {
		e.queues[i] = make(chan alertJob, alertQueueDepth)
	}
	return e
}

// submit queues a reading for evaluation. It blocks while the device's
// worker is full (back-pressure on intake) and gives up when ctx ends.
func (e *evaluator) submit(ctx context.Context, job alertJob) {
	q := e.queues[maphash.String(e.seed, job.deviceID)%alertWorkers]
	select {
	case q <- job:
	case <-ctx.Done():
	}
}

// run evaluates until ctx ends.
func (e *evaluator) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range e.queues {
		wg.Go(func() {
			for {
				select {
				case job := <-q:
					e.evaluate(ctx, job)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
}

func (e *evaluator) evaluate(ctx context.Context, job alertJob) {
	at := job.reading.GetTimestamp().AsTime()
	for _, rule := range job.rules {
		value, ok := numericField(job.reading, rule.Field)
		if !ok {
			continue // the rule watches a field this reading lacks
		}
		r := alerting.Rule{Operator: rule.Operator, Threshold: rule.Threshold, Hold: rule.Hold, Cooldown: rule.Cooldown}
		state, tr, err := e.store.Apply(ctx, alerting.Key(rule.ID, job.deviceID), func(s alerting.State) (alerting.State, alerting.Transition) {
			return alerting.Step(r, s, value, at, nuid.Next)
		})
		if err != nil {
			if ctx.Err() == nil {
				e.metrics.alertErrors.Inc()
				e.logger.Warn("evaluating an alert rule failed", "rule_id", rule.ID, "device_id", job.deviceID, "err", err)
			}
			continue
		}
		if tr == alerting.None {
			continue
		}
		if err := e.publish(ctx, job, rule, state, tr, value); err != nil && ctx.Err() == nil {
			e.logger.Error("publishing an alert failed", "rule_id", rule.ID, "device_id", job.deviceID, "err", err)
		}
	}
}

// publish sends a firing or resolution to the device's rooms. Its
// de-duplication id names the firing and the transition, so a replica that
// publishes it again after a lost acknowledgement stores it once.
func (e *evaluator) publish(ctx context.Context, job alertJob, rule devicecache.Rule, state alerting.State, tr alerting.Transition, value float64) error {
	alertState, label := envelopev1.AlertState_ALERT_STATE_FIRING, "firing"
	if tr == alerting.Resolved {
		alertState, label = envelopev1.AlertState_ALERT_STATE_RESOLVED, "resolved"
	}
	id := state.AlertID + "-" + label
	env := &envelopev1.Envelope{
		Id:         id,
		IngestedAt: timestamppb.Now(),
		Body: &envelopev1.Envelope_Alert{Alert: &envelopev1.Alert{
			AlertId:   state.AlertID,
			DeviceId:  job.deviceID,
			RuleId:    rule.ID,
			RuleName:  rule.Name,
			Severity:  alertSeverity(rule.Severity),
			Field:     rule.Field,
			Value:     value,
			Threshold: rule.Threshold,
			State:     alertState,
			Timestamp: job.reading.GetTimestamp(),
		}},
	}
	data, err := proto.Marshal(env)
	if err != nil {
		return fmt.Errorf("marshal alert: %w", err)
	}
	msgs, rooms := roomMsgs(data, id, envelopev1.KindAlert, job.deviceID, job.groups)
	endSends := startSends(trace.ContextWithSpanContext(ctx, job.trace), e.tracer, msgs, rooms)
	return e.pub.Publish(ctx, msgs, func() {
		endSends()
		e.metrics.alerts.WithLabelValues(label).Inc()
	})
}

// numericField reads a rule's field the way the registry documents rules:
// numbers as they are, booleans as 1 and 0, anything else not at all.
func numericField(t *envelopev1.Telemetry, field string) (float64, bool) {
	switch v := t.GetFields()[field].GetKind().(type) {
	case *envelopev1.FieldValue_Number:
		return v.Number, true
	case *envelopev1.FieldValue_Flag:
		if v.Flag {
			return 1, true
		}
		return 0, true
	default:
		return 0, false
	}
}

func alertSeverity(s registryv1.Severity) envelopev1.AlertSeverity {
	switch s {
	case registryv1.Severity_SEVERITY_INFO:
		return envelopev1.AlertSeverity_ALERT_SEVERITY_INFO
	case registryv1.Severity_SEVERITY_WARNING:
		return envelopev1.AlertSeverity_ALERT_SEVERITY_WARNING
	case registryv1.Severity_SEVERITY_CRITICAL:
		return envelopev1.AlertSeverity_ALERT_SEVERITY_CRITICAL
	default:
		return envelopev1.AlertSeverity_ALERT_SEVERITY_UNSPECIFIED
	}
}
