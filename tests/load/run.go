package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// RoomName is the room of client i's global index modulo rooms.
func RoomName(i, rooms int) string {
	w := max(4, len(strconv.Itoa(rooms-1)))
	return fmt.Sprintf("device:load-%0*d", w, i%rooms)
}

// MintToken signs an HS256 dashboard token granting device rooms and global.
func MintToken(secret, sub string, ttl time.Duration) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   sub,
		"exp":   time.Now().Add(ttl).Unix(),
		"rooms": []string{"device:*", "global"},
	}).SignedString([]byte(secret))
}

// Coordination between generator processes, on NATS subjects outside the
// room namespace so the edge never sees them:
//
//	peer → publisher  <base>.ready   {"id", "ready", "conns"}   (repeated until start)
//	publisher → peers <base>.start   schedule
//	publisher → peers <base>.final   finalCounts                (after the last publish)
//	peer → publisher  <base>.result  partial
func subjectBase(runID string) string { return "sensorcastload." + runID }

type readyMsg struct {
	ID    string `json:"id"`
	Ready int    `json:"ready"`
	Conns int    `json:"conns"`
}

// finalCounts are the publisher's totals: per room, the last sequence
// number; per step and room, the messages sent in the measurement window.
type finalCounts struct {
	Seq      []uint64   `json:"seq"`
	InWindow [][]uint64 `json:"in_window"`
}

// partial is one process's client-side measurements; processes merge them.
type partial struct {
	ID             string         `json:"id"`
	Conns          int            `json:"conns"`
	Ready          int            `json:"ready"`
	DialFailed     int            `json:"dial_failed"`
	ConnectPhaseNs int64          `json:"connect_phase_ns"`
	Connect        HistogramData  `json:"connect"`
	Expected       uint64         `json:"expected"`
	Delivered      uint64         `json:"delivered"`
	Dups           uint64         `json:"dups"`
	Gaps           uint64         `json:"gaps"`
	Bad            uint64         `json:"bad"`
	Closes         map[string]int `json:"closes"`
	Errors         []string       `json:"errors,omitempty"`
	Steps          []partialStep  `json:"steps"`
}

type partialStep struct {
	Expected  uint64        `json:"expected"`
	Delivered uint64        `json:"delivered"`
	Received  uint64        `json:"received"`
	Closes    int           `json:"closes"`
	Latency   HistogramData `json:"latency"`
}

// Result is the report of one generator run (all processes merged).
type Result struct {
	Label          string         `json:"label,omitempty"`
	Edge           string         `json:"edge"`
	Processes      int            `json:"processes"`
	Conns          int            `json:"conns"`
	Rooms          int            `json:"rooms"`
	MembersPerRoom float64        `json:"members_per_room"`
	Connect        ConnectResult  `json:"connect"`
	EdgeRSS        RSSResult      `json:"edge_rss"`
	Steps          []StepResult   `json:"steps"`
	Published      uint64         `json:"published"`
	Expected       uint64         `json:"expected_deliveries"`
	Delivered      uint64         `json:"delivered"`
	Lost           int64          `json:"lost"`
	Duplicates     uint64         `json:"duplicates"`
	SeqGaps        uint64         `json:"seq_gaps"`
	Unreadable     uint64         `json:"unreadable"`
	Closes         map[string]int `json:"closes_by_edge"`
	Errors         []string       `json:"errors,omitempty"`
	Notes          []string       `json:"notes,omitempty"`
}

// ConnectResult covers the connect phase: dial, upgrade, subscribe.
type ConnectResult struct {
	Ready     int     `json:"ready"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	// CPU use during this process's connect phase.
	EdgeCPUPercent float64 `json:"edge_cpu_percent,omitempty"`
	GenCPUPercent  float64 `json:"generator_cpu_percent"`
}

// RSSResult is the edge's resident memory around the connect phase.
type RSSResult struct {
	BeforeMB  float64 `json:"before_mb"`
	AfterMB   float64 `json:"after_subscribe_mb"`
	PerConnKB float64 `json:"per_conn_kb"`
	Measured  bool    `json:"measured"`
}

// StepResult is one rate step's steady state (after its warm-up).
type StepResult struct {
	RoomMsgsPerSec   float64   `json:"room_msgs_per_s"`
	OfferedPerSec    float64   `json:"offered_deliveries_per_s"`
	DeliveredPerSec  float64   `json:"delivered_per_s"`
	ExpectedInWindow uint64    `json:"expected_in_window"`
	DeliveredWindow  uint64    `json:"delivered_in_window"`
	LostInWindow     int64     `json:"lost_in_window"`
	Latency          LatencyMs `json:"latency_ms"`
	EdgeCPUPercent   float64   `json:"edge_cpu_percent,omitempty"`
	EdgeCPUPer1000Ms float64   `json:"edge_cpu_ms_per_1000,omitempty"`
	EdgeRSSMB        float64   `json:"edge_rss_mb,omitempty"`
	// EdgeCoreBusy is how busy the edge's (pinned) core was, whoever used
	// it: the loopback TCP receive path of the edge's writes runs there as
	// softirq time that /proc/<pid>/stat does not charge to the edge.
	EdgeCoreBusyPercent    float64 `json:"edge_core_busy_percent,omitempty"`
	EdgeCoreSoftirqPercent float64 `json:"edge_core_softirq_percent,omitempty"`
	GenCoreBusyPercent     float64 `json:"generator_core_busy_percent,omitempty"`
	GenCPUPercent          float64 `json:"generator_cpu_percent"`
	NATSCPUPercent         float64 `json:"nats_cpu_percent,omitempty"`
	Closes                 int     `json:"closes_by_edge"`
	// NATSHop is publish -> NATS delivery latency to a subscriber in the
	// generator (a few rooms sampled): what the edge adds is the rest.
	NATSHop *LatencyMs `json:"nats_hop_latency_ms,omitempty"`
}

// LatencyMs is publish-to-deliver latency in milliseconds.
type LatencyMs struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func latencyOf(h *Histogram) LatencyMs {
	ms := func(v uint64) float64 { return float64(v) / 1e6 }
	return LatencyMs{
		Count: h.Count(), Mean: h.Mean() / 1e6,
		P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}

// Run runs one generator process and returns the merged result (for a
// peer process: its own part). Progress goes to logw.
func Run(ctx context.Context, cfg Config, logw io.Writer) (*Result, error) {
	logf := func(format string, a ...any) {
		fmt.Fprintf(logw, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, a...)...)
	}
	u, err := url.Parse(cfg.EdgeURL)
	if err != nil {
		return nil, err
	}
	rooms := make([]string, cfg.Rooms)
	for i := range rooms {
		rooms[i] = RoomName(i, cfg.Rooms)
	}
	id := nuid.Next()
	base := subjectBase(cfg.RunID)
	res := &Result{Label: cfg.Label, Edge: cfg.EdgeURL, Processes: 1 + cfg.Peers, Conns: cfg.TotalConns,
		Rooms: cfg.Rooms, MembersPerRoom: float64(cfg.TotalConns) / float64(cfg.Rooms), Closes: map[string]int{}}

	var nc *nats.Conn
	nc, err = nats.Connect(cfg.NATSURL, nats.Name("sensorcast-load-"+id), nats.MaxReconnects(-1),
		nats.ReconnectBufSize(64<<20))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	if cfg.Publish {
		if err := checkRoomStream(ctx, nc); err != nil {
			return nil, err
		}
	}

	var before ProcSample
	if cfg.EdgePID > 0 {
		if before, err = SampleProc(cfg.EdgePID); err != nil {
			return nil, fmt.Errorf("--edge-pid: %w", err)
		}
		res.EdgeRSS.BeforeMB = mb(before.RSSBytes)
	}

	// Subscribe to the coordination subjects before anyone can publish on them.
	startCh := make(chan *nats.Msg, 4)
	finalCh := make(chan *nats.Msg, 4)
	readyCh := make(chan *nats.Msg, 1024)
	resultCh := make(chan *nats.Msg, 1024)
	if cfg.Publish {
		if cfg.Peers > 0 {
			if _, err := nc.ChanSubscribe(base+".ready", readyCh); err != nil {
				return nil, err
			}
			if _, err := nc.ChanSubscribe(base+".result", resultCh); err != nil {
				return nil, err
			}
		}
	} else {
		if _, err := nc.ChanSubscribe(base+".start", startCh); err != nil {
			return nil, err
		}
		if _, err := nc.ChanSubscribe(base+".final", finalCh); err != nil {
			return nil, err
		}
	}
	if err := nc.Flush(); err != nil {
		return nil, err
	}

	// Connect phase.
	env := &clientEnv{host: u.Host, path: u.RequestURI(), readBuf: cfg.ReadBuffer}
	clients := make([]*client, cfg.Conns)
	dialErrs := make([]error, cfg.Conns)
	var dialWG, runWG sync.WaitGroup
	sem := make(chan struct{}, cfg.DialConc)
	logf("connecting %d clients (offset %d) to %s, %d rooms", cfg.Conns, cfg.ClientOffset, cfg.EdgeURL, cfg.Rooms)
	// Tokens are minted before the clock starts: the connect rate is the edge's.
	for i := range clients {
		g := cfg.ClientOffset + i
		tok, err := MintToken(cfg.JWTSecret, "load-"+strconv.Itoa(g), 24*time.Hour)
		if err != nil {
			return nil, err
		}
		c := &client{idx: g, room: RoomName(g, cfg.Rooms), token: tok}
		if len(cfg.SourceIPs) > 0 {
			c.source = cfg.SourceIPs[g%len(cfg.SourceIPs)]
		}
		clients[i] = c
	}
	var loops []*epollLoop
	if cfg.Reader == "epoll" {
		for range runtime.GOMAXPROCS(0) {
			l, err := newEpollLoop(env)
			if err != nil {
				return nil, err
			}
			loops = append(loops, l)
		}
	}
	genBefore, _ := SampleProc(os.Getpid())
	connStart := time.Now()
	for i := range clients {
		if cfg.ConnectRate > 0 {
			if d := time.Until(connStart.Add(time.Duration(float64(i) / cfg.ConnectRate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		c := clients[i]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		dialWG.Add(1)
		runWG.Add(1)
		go func() {
			defer runWG.Done()
			err := c.dial(ctx, env)
			if err == nil && loops != nil {
				if err = loops[i%len(loops)].add(c); err != nil {
					c.conn.Close()
				}
			}
			dialErrs[i] = err
			<-sem
			dialWG.Done()
			if err == nil && loops == nil {
				c.run(env)
			}
		}()
	}
	dialWG.Wait()
	connectPhase := time.Since(connStart)
	if genAfter, err := SampleProc(os.Getpid()); err == nil && connectPhase > 0 {
		res.Connect.GenCPUPercent = 100 * (genAfter.CPU - genBefore.CPU).Seconds() / connectPhase.Seconds()
	}
	if cfg.EdgePID > 0 {
		if edgeAfter, err := SampleProc(cfg.EdgePID); err == nil && connectPhase > 0 {
			res.Connect.EdgeCPUPercent = 100 * (edgeAfter.CPU - before.CPU).Seconds() / edgeAfter.At.Sub(before.At).Seconds()
		}
	}
	part := &partial{ID: id, Conns: cfg.Conns, ConnectPhaseNs: int64(connectPhase), Closes: map[string]int{}}
	var connectHist Histogram
	for i, c := range clients {
		if dialErrs[i] != nil {
			part.DialFailed++
			if len(part.Errors) < 5 {
				part.Errors = append(part.Errors, fmt.Sprintf("client %d: %v", c.idx, dialErrs[i]))
			}
			continue
		}
		part.Ready++
		connectHist.RecordNanos(int64(c.connectDur))
	}
	part.Connect = connectHist.Export()
	logf("%d/%d clients subscribed in %.2fs (%.0f/s), %d failed", part.Ready, cfg.Conns, connectPhase.Seconds(),
		float64(part.Ready)/connectPhase.Seconds(), part.DialFailed)
	for _, e := range part.Errors {
		logf("  %s", e)
	}
	stopClients := func() {
		env.stopping.Store(true)
		for _, l := range loops {
			l.stop()
		}
		if loops == nil {
			for i, c := range clients {
				if dialErrs[i] == nil {
					_ = c.conn.Close()
				}
			}
		}
		runWG.Wait()
	}
	defer func() {
		if !env.stopping.Load() {
			stopClients()
		}
	}()

	var sched *schedule
	var final finalCounts
	totalReady := part.Ready
	var pub *publisher

	if cfg.Publish {
		// Wait for the peers' clients.
		if cfg.Peers > 0 {
			logf("waiting for %d peer processes", cfg.Peers)
			peers := map[string]readyMsg{}
			deadline := time.After(cfg.PeerTimeout)
			for len(peers) < cfg.Peers {
				select {
				case m := <-readyCh:
					var r readyMsg
					if json.Unmarshal(m.Data, &r) == nil && r.ID != "" {
						peers[r.ID] = r
					}
				case <-deadline:
					return nil, fmt.Errorf("only %d of %d peers ready after %s", len(peers), cfg.Peers, cfg.PeerTimeout)
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			for _, r := range peers {
				totalReady += r.Ready
			}
		}
		if cfg.Settle > 0 {
			time.Sleep(cfg.Settle)
		}
		if cfg.EdgePID > 0 {
			after, err := SampleProc(cfg.EdgePID)
			if err == nil {
				res.EdgeRSS.AfterMB = mb(after.RSSBytes)
				if totalReady > 0 {
					res.EdgeRSS.PerConnKB = float64(after.RSSBytes-before.RSSBytes) / 1024 / float64(totalReady)
				}
				res.EdgeRSS.Measured = true
			}
		}
		// The schedule: every process reads send times against it.
		sched = &schedule{}
		t := time.Now().Add(200 * time.Millisecond).UnixNano()
		for _, rate := range cfg.Rates {
			w := stepWindow{Rate: rate, WarmFrom: t, From: t + int64(cfg.Warmup), To: t + int64(cfg.Warmup+cfg.Duration)}
			sched.Steps = append(sched.Steps, w)
			t = w.To + int64(cfg.StepGap)
		}
		env.sched.Store(sched)
		if cfg.Peers > 0 {
			b, _ := json.Marshal(sched)
			if err := nc.Publish(base+".start", b); err != nil {
				return nil, err
			}
			_ = nc.Flush()
		}
		var probe *natsProbe
		if cfg.ProbeRooms > 0 {
			if probe, err = startProbe(nc, rooms, cfg.ProbeRooms); err != nil {
				return nil, err
			}
			probe.start(sched)
		}
		samples := startSampler(cfg, sched)
		pub = newPublisher(nc, rooms, len(sched.Steps))
		for i, w := range sched.Steps {
			logf("step %d: %.0f room msgs/s (≈%.0f deliveries/s) for %s + %s warm-up", i+1, w.Rate,
				w.Rate*res.MembersPerRoom, cfg.Duration, cfg.Warmup)
			if err := pub.runStep(ctx, i, w); err != nil {
				return nil, err
			}
			logf("step %d done: %d published in total, %d deliveries received here", i+1, pub.sent, env.received.Load())
		}
		res.Published = pub.sent
		final = finalCounts{Seq: pub.seq, InWindow: pub.inWindow}
		if cfg.Peers > 0 {
			b, _ := json.Marshal(final)
			if err := nc.Publish(base+".final", b); err != nil {
				return nil, err
			}
			_ = nc.Flush()
		}
		time.Sleep(cfg.Drain)
		stopClients()
		sampled := <-samples
		var hops []*LatencyMs
		if probe != nil {
			hops = probe.results()
		}
		collect(part, clients, dialErrs, sched, final, rooms)
		merged := []*partial{part}
		if cfg.Peers > 0 {
			deadline := time.After(cfg.PeerTimeout)
			for len(merged) < 1+cfg.Peers {
				select {
				case m := <-resultCh:
					var p partial
					if err := json.Unmarshal(m.Data, &p); err == nil {
						merged = append(merged, &p)
					}
				case <-deadline:
					res.Notes = append(res.Notes, fmt.Sprintf("only %d of %d peers reported", len(merged)-1, cfg.Peers))
					goto report
				}
			}
		}
	report:
		finishResult(res, cfg, merged, sched, sampled)
		for k := range res.Steps {
			if k < len(hops) {
				res.Steps[k].NATSHop = hops[k]
			}
		}
		return res, nil
	}

	// Peer process: announce readiness until the publisher starts.
	rb, _ := json.Marshal(readyMsg{ID: id, Ready: part.Ready, Conns: cfg.Conns})
	announce := time.NewTicker(500 * time.Millisecond)
	defer announce.Stop()
	_ = nc.Publish(base+".ready", rb)
	for sched == nil {
		select {
		case m := <-startCh:
			var s schedule
			if err := json.Unmarshal(m.Data, &s); err != nil {
				return nil, fmt.Errorf("bad start message: %w", err)
			}
			sched = &s
		case <-announce.C:
			_ = nc.Publish(base+".ready", rb)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	env.sched.Store(sched)
	logf("publisher started: %d steps", len(sched.Steps))
	last := sched.Steps[len(sched.Steps)-1].To
	select {
	case m := <-finalCh:
		if err := json.Unmarshal(m.Data, &final); err != nil {
			return nil, fmt.Errorf("bad final message: %w", err)
		}
	case <-time.After(time.Until(time.Unix(0, last)) + cfg.PeerTimeout):
		return nil, errors.New("no final message from the publisher")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	time.Sleep(cfg.Drain)
	stopClients()
	collect(part, clients, dialErrs, sched, final, rooms)
	b, _ := json.Marshal(part)
	if err := nc.Publish(base+".result", b); err != nil {
		return nil, err
	}
	_ = nc.Flush()
	res.Processes = 1
	res.Conns = cfg.Conns
	finishResult(res, cfg, []*partial{part}, sched, nil)
	res.Notes = append(res.Notes, "peer process: its own clients only; the publisher's report merges all processes")
	return res, nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// collect adds up this process's clients after they stopped.
func collect(p *partial, clients []*client, dialErrs []error, sched *schedule, final finalCounts, rooms []string) {
	roomIdx := map[string]int{}
	for i, r := range rooms {
		roomIdx[r] = i
	}
	p.Steps = make([]partialStep, len(sched.Steps))
	lat := make([]Histogram, len(sched.Steps))
	runErrs := 0
	for i, c := range clients {
		if dialErrs[i] != nil {
			continue
		}
		ri := roomIdx[c.room]
		if ri < len(final.Seq) {
			p.Expected += final.Seq[ri]
		}
		p.Delivered += c.distinct
		p.Dups += c.dups
		p.Gaps += c.gaps
		p.Bad += c.bad
		for k := range sched.Steps {
			if k < len(final.InWindow) && ri < len(final.InWindow[k]) {
				p.Steps[k].Expected += final.InWindow[k][ri]
			}
			if k < len(c.steps) && c.steps[k] != nil {
				p.Steps[k].Delivered += c.steps[k].delivered
				p.Steps[k].Received += c.steps[k].received
				lat[k].Merge(&c.steps[k].lat)
			}
		}
		switch {
		case c.closeCode != 0:
			key := strconv.Itoa(c.closeCode)
			if c.closeText != "" {
				key += " " + c.closeText
			}
			p.Closes[key]++
			if k := stepOfClose(sched, c.closedAt); k >= 0 {
				p.Steps[k].Closes++
			}
		case c.err != nil:
			p.Closes["dropped: "+shortErr(c.err)]++
			if runErrs < 3 && len(p.Errors) < 8 {
				p.Errors = append(p.Errors, fmt.Sprintf("client %d: %v", c.idx, c.err))
				runErrs++
			}
			if k := stepOfClose(sched, c.closedAt); k >= 0 {
				p.Steps[k].Closes++
			}
		}
	}
	for k := range lat {
		p.Steps[k].Latency = lat[k].Export()
	}
}

// stepOfClose attributes a close to the step (warm-up included) it fell in.
func stepOfClose(s *schedule, t int64) int {
	if t == 0 {
		return -1
	}
	for i, w := range s.Steps {
		end := w.To
		if i+1 < len(s.Steps) {
			end = s.Steps[i+1].WarmFrom
		}
		if t < end {
			return i
		}
	}
	return len(s.Steps) - 1
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 60 {
		s = s[len(s)-60:]
	}
	return s
}

// stepSamples are the /proc readings at each step's window edges.
type stepSamples struct {
	edge, gen, nats   [][2]ProcSample // per step: at From, at To
	ok                []bool
	edgeCore, genCore [][2]CoreSample
	edgeCPU, genCPU   int // pinned cores, -1: not pinned
}

// startSampler reads the edge's, the generator's and NATS's CPU time at
// the edges of every measurement window.
func startSampler(cfg Config, s *schedule) <-chan *stepSamples {
	out := make(chan *stepSamples, 1)
	go func() {
		ss := &stepSamples{
			edge: make([][2]ProcSample, len(s.Steps)), gen: make([][2]ProcSample, len(s.Steps)),
			nats: make([][2]ProcSample, len(s.Steps)), ok: make([]bool, len(s.Steps)),
			edgeCore: make([][2]CoreSample, len(s.Steps)), genCore: make([][2]CoreSample, len(s.Steps)),
			edgeCPU: -1, genCPU: SingleCPU(os.Getpid()),
		}
		if cfg.EdgePID > 0 {
			ss.edgeCPU = SingleCPU(cfg.EdgePID)
		}
		self := os.Getpid()
		sample := func(k, j int) {
			ok := true
			if cfg.EdgePID > 0 {
				var err error
				if ss.edge[k][j], err = SampleProc(cfg.EdgePID); err != nil {
					ok = false
				}
			}
			ss.gen[k][j], _ = SampleProc(self)
			if ss.edgeCPU >= 0 {
				ss.edgeCore[k][j], _ = SampleCore(ss.edgeCPU)
			}
			if ss.genCPU >= 0 {
				ss.genCore[k][j], _ = SampleCore(ss.genCPU)
			}
			if cfg.NATSPID > 0 {
				ss.nats[k][j], _ = SampleProc(cfg.NATSPID)
			}
			if j == 0 {
				ss.ok[k] = ok
			} else {
				ss.ok[k] = ss.ok[k] && ok
			}
		}
		for k, w := range s.Steps {
			time.Sleep(time.Until(time.Unix(0, w.From)))
			sample(k, 0)
			time.Sleep(time.Until(time.Unix(0, w.To)))
			sample(k, 1)
		}
		out <- ss
	}()
	return out
}

func finishResult(res *Result, cfg Config, parts []*partial, sched *schedule, ss *stepSamples) {
	var connect Histogram
	var phase int64
	lat := make([]Histogram, len(sched.Steps))
	res.Steps = make([]StepResult, len(sched.Steps))
	for _, p := range parts {
		res.Connect.Ready += p.Ready
		res.Connect.Failed += p.DialFailed
		phase = max(phase, p.ConnectPhaseNs)
		connect.Merge(ImportHistogram(p.Connect))
		res.Expected += p.Expected
		res.Delivered += p.Delivered
		res.Duplicates += p.Dups
		res.SeqGaps += p.Gaps
		res.Unreadable += p.Bad
		for k, v := range p.Closes {
			res.Closes[k] += v
		}
		res.Errors = append(res.Errors, p.Errors...)
		for k := range res.Steps {
			if k >= len(p.Steps) {
				continue
			}
			st := &res.Steps[k]
			st.ExpectedInWindow += p.Steps[k].Expected
			st.DeliveredWindow += p.Steps[k].Delivered
			st.DeliveredPerSec += float64(p.Steps[k].Received)
			st.Closes += p.Steps[k].Closes
			lat[k].Merge(ImportHistogram(p.Steps[k].Latency))
		}
	}
	res.Lost = int64(res.Expected) - int64(res.Delivered)
	res.Connect.Seconds = float64(phase) / 1e9
	if phase > 0 {
		res.Connect.PerSecond = float64(res.Connect.Ready) / res.Connect.Seconds
	}
	res.Connect.P50Ms = float64(connect.Quantile(0.5)) / 1e6
	res.Connect.P99Ms = float64(connect.Quantile(0.99)) / 1e6
	res.Connect.MaxMs = float64(connect.Max()) / 1e6
	for k := range res.Steps {
		st := &res.Steps[k]
		dur := float64(sched.Steps[k].To-sched.Steps[k].From) / 1e9 // the publisher's, also in peers
		st.RoomMsgsPerSec = sched.Steps[k].Rate
		st.OfferedPerSec = float64(st.ExpectedInWindow) / dur
		st.DeliveredPerSec /= dur
		st.LostInWindow = int64(st.ExpectedInWindow) - int64(st.DeliveredWindow)
		st.Latency = latencyOf(&lat[k])
		if ss == nil || !ss.ok[k] {
			continue
		}
		wall := ss.edge[k][1].At.Sub(ss.edge[k][0].At).Seconds()
		if cfg.EdgePID > 0 && wall > 0 {
			cpu := (ss.edge[k][1].CPU - ss.edge[k][0].CPU).Seconds()
			st.EdgeCPUPercent = 100 * cpu / wall
			if recv := st.DeliveredPerSec * dur; recv > 0 {
				st.EdgeCPUPer1000Ms = cpu * 1000 / recv * 1000
			}
			st.EdgeRSSMB = mb(ss.edge[k][1].RSSBytes)
		}
		if ss.edgeCPU >= 0 {
			if t := ss.edgeCore[k][1].Total - ss.edgeCore[k][0].Total; t > 0 {
				st.EdgeCoreBusyPercent = 100 * float64(ss.edgeCore[k][1].Busy-ss.edgeCore[k][0].Busy) / float64(t)
				st.EdgeCoreSoftirqPercent = 100 * float64(ss.edgeCore[k][1].Softirq-ss.edgeCore[k][0].Softirq) / float64(t)
			}
		}
		if ss.genCPU >= 0 {
			if t := ss.genCore[k][1].Total - ss.genCore[k][0].Total; t > 0 {
				st.GenCoreBusyPercent = 100 * float64(ss.genCore[k][1].Busy-ss.genCore[k][0].Busy) / float64(t)
			}
		}
		if w := ss.gen[k][1].At.Sub(ss.gen[k][0].At).Seconds(); w > 0 {
			st.GenCPUPercent = 100 * (ss.gen[k][1].CPU - ss.gen[k][0].CPU).Seconds() / w
		}
		if cfg.NATSPID > 0 {
			if w := ss.nats[k][1].At.Sub(ss.nats[k][0].At).Seconds(); w > 0 {
				st.NATSCPUPercent = 100 * (ss.nats[k][1].CPU - ss.nats[k][0].CPU).Seconds() / w
			}
		}
	}
	if cfg.EdgePID > 0 {
		res.Notes = append(res.Notes, "edge CPU is sampled from /proc at 10 ms resolution (USER_HZ=100) over each measurement window")
	}
	sort.Strings(res.Errors)
}

// WriteSummary prints a human-readable report.
func WriteSummary(w io.Writer, r *Result) {
	fmt.Fprintf(w, "== %s: %d conns, %d rooms (%.1f members/room), %d process(es)\n", orDefault(r.Label, "sensorcast-load"),
		r.Conns, r.Rooms, r.MembersPerRoom, r.Processes)
	fmt.Fprintf(w, "connect: %d ready, %d failed in %.2fs = %.0f conns/s (per client p50 %.1f ms, p99 %.1f ms, max %.1f ms; CPU edge %s, generator %s)\n",
		r.Connect.Ready, r.Connect.Failed, r.Connect.Seconds, r.Connect.PerSecond, r.Connect.P50Ms, r.Connect.P99Ms, r.Connect.MaxMs,
		pct(r.Connect.EdgeCPUPercent), pct(r.Connect.GenCPUPercent))
	if r.EdgeRSS.Measured {
		fmt.Fprintf(w, "edge RSS: %.1f MB before, %.1f MB after connect+subscribe = %.2f KB per connection\n",
			r.EdgeRSS.BeforeMB, r.EdgeRSS.AfterMB, r.EdgeRSS.PerConnKB)
	}
	fmt.Fprintf(w, "%-8s %-9s %-9s %-8s %-8s %-8s %-8s %-8s %-8s %-7s %-8s %-9s %-7s %-7s %-5s %-7s %-6s\n",
		"room/s", "offered/s", "deliv/s", "lost", "p50ms", "p90ms", "p99ms", "p999ms", "maxms",
		"edgeCPU", "ms/1000", "edgeCore", "(sirq)", "genCPU", "nats", "genCore", "closes")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "%-8.0f %-9.0f %-9.0f %-8d %-8.2f %-8.2f %-8.2f %-8.2f %-8.1f %-7s %-8.3f %-9s %-7s %-7s %-5s %-7s %-6d\n",
			s.RoomMsgsPerSec, s.OfferedPerSec, s.DeliveredPerSec, s.LostInWindow, s.Latency.P50, s.Latency.P90,
			s.Latency.P99, s.Latency.P999, s.Latency.Max, pct(s.EdgeCPUPercent), s.EdgeCPUPer1000Ms,
			pct(s.EdgeCoreBusyPercent), pct(s.EdgeCoreSoftirqPercent), pct(s.GenCPUPercent), pct(s.NATSCPUPercent),
			pct(s.GenCoreBusyPercent), s.Closes)
	}
	fmt.Fprintln(w, "(edgeCPU: the edge's utime+stime; edgeCore: its whole pinned core busy, incl. softirq (sirq) and other tenants; ms/1000: edge CPU ms per 1000 deliveries)")
	fmt.Fprintf(w, "totals: published %d, expected %d deliveries, delivered %d, lost %d, duplicates %d, sequence gaps %d, unreadable %d\n",
		r.Published, r.Expected, r.Delivered, r.Lost, r.Duplicates, r.SeqGaps, r.Unreadable)
	if len(r.Closes) > 0 {
		keys := make([]string, 0, len(r.Closes))
		for k := range r.Closes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "connections ended by the edge: %d × %s\n", r.Closes[k], k)
		}
	}
	for i, s := range r.Steps {
		if h := s.NATSHop; h != nil {
			fmt.Fprintf(w, "step %d NATS hop alone (publisher -> NATS -> generator, %d samples): p50 %.2f ms, p99 %.2f ms, max %.1f ms\n",
				i+1, h.Count, h.P50, h.P99, h.Max)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func pct(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "%"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
