package load

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	envelopev1 "github.com/sensorcast/sensorcast/proto/sensorcast/envelope/v1"
)

// natsProbe subscribes to a few rooms' live subjects next to the edge and
// measures publish -> NATS delivery latency (stream included), so a report
// can tell the NATS hop (and the generator core it shares) from the edge's
// own share.
type natsProbe struct {
	mu    sync.Mutex
	sched *schedule
	lat   []Histogram
	subs  []*nats.Subscription
}

func startProbe(nc *nats.Conn, rooms []string, n int) (*natsProbe, error) {
	p := &natsProbe{}
	for i := 0; i < len(rooms) && i < n; i++ {
		s, err := nc.Subscribe(envelopev1.LiveFilter(rooms[i]), p.handle)
		if err != nil {
			p.stop()
			return nil, err
		}
		_ = s.SetPendingLimits(-1, -1)
		p.subs = append(p.subs, s)
	}
	return p, nc.Flush()
}

func (p *natsProbe) start(s *schedule) {
	p.mu.Lock()
	p.sched = s
	p.lat = make([]Histogram, len(s.Steps))
	p.mu.Unlock()
}

func (p *natsProbe) handle(m *nats.Msg) {
	now := time.Now().UnixNano()
	var env envelopev1.Envelope
	if proto.Unmarshal(m.Data, &env) != nil {
		return
	}
	sent, ok := parseDecimal(env.GetTelemetry().GetTags()["sent_ns"])
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sched == nil {
		return
	}
	if k := p.sched.stepOf(int64(sent)); k >= 0 {
		p.lat[k].RecordNanos(now - int64(sent))
	}
}

// results stops the probe and returns one latency summary per step.
func (p *natsProbe) results() []*LatencyMs {
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*LatencyMs, len(p.lat))
	for k := range p.lat {
		if p.lat[k].Count() > 0 {
			l := latencyOf(&p.lat[k])
			out[k] = &l
		}
	}
	return out
}

func (p *natsProbe) stop() {
	for _, s := range p.subs {
		_ = s.Unsubscribe()
	}
	p.subs = nil
}

func parseDecimal(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
