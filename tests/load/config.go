// Package load is Sensorcast's load generator: N WebSocket dashboard
// clients spread over R device rooms of one edge process, a publisher that
// sends telemetry envelopes to the rooms' NATS subjects at a fixed rate, and
// a report of connect speed, delivered messages per second, publish-to-
// deliver latency, loss, and the edge's RSS per connection and CPU per 1000
// deliveries (read from /proc). The clients are cheap on purpose, so that
// one generator core can take about a million deliveries per second: each
// is one goroutine with its own frame parser and a byte scan for the two
// tags it needs, no JSON decoding, no locks on the hot path.
//
// cmd/sensorcast-load is the binary; run-bench.sh beside this file runs
// the benchmark scenarios of the issue.
package load

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is one generator process's settings (see RegisterFlags).
type Config struct {
	EdgeURL      string
	NATSURL      string
	JWTSecret    string
	Conns        int // clients in this process
	TotalConns   int // clients over all generator processes (default Conns)
	ClientOffset int
	Rooms        int
	Broadcast    bool
	Rates        []float64 // room messages per second, one measurement step each
	Deliveries   []float64 // alternatively: deliveries per second (rate = d / members per room)
	Duration     time.Duration
	Warmup       time.Duration
	StepGap      time.Duration
	Drain        time.Duration
	ConnectRate  float64
	DialConc     int
	SourceIPs    []net.IP
	Publish      bool
	Peers        int
	RunID        string
	EdgePID      int
	NATSPID      int
	JSON         bool
	Out          string
	Label        string
	ReadBuffer   int
	Settle       time.Duration
	ServeNATS    string
	ServeOTLP    string
	PeerTimeout  time.Duration
	ProbeRooms   int
	Reader       string
	CPUProfile   string
}

// RegisterFlags binds c to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.EdgeURL, "edge", "ws://127.0.0.1:8080/api/v1/ws", "edge WebSocket URL (loopback only)")
	fs.StringVar(&c.NATSURL, "nats", "nats://127.0.0.1:4222", "NATS URL the edge listens to")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "the edge's HS256 secret (SENSORCAST_JWT_SECRET); tokens grant device:* and global")
	fs.IntVar(&c.Conns, "conns", 1000, "WebSocket clients in this process")
	fs.IntVar(&c.TotalConns, "total-conns", 0, "clients over all generator processes (default --conns); sets members per room and RSS per connection")
	fs.IntVar(&c.ClientOffset, "client-offset", 0, "global index of this process's first client (client i joins room i%rooms)")
	fs.IntVar(&c.Rooms, "rooms", 100, "rooms device:load-0000..rooms-1")
	fs.BoolVar(&c.Broadcast, "broadcast", false, "put every client in one room (same as --rooms 1)")
	fs.Func("rate", "room messages per second published in total, round-robin over the rooms; a comma list runs one step per rate (a sweep)", func(s string) (err error) {
		c.Rates, err = parseFloats(s)
		return err
	})
	fs.Func("deliveries", "instead of --rate: target deliveries per second (room messages × members per room); comma list for a sweep", func(s string) (err error) {
		c.Deliveries, err = parseFloats(s)
		return err
	})
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time of each step")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "unmeasured publishing before each step's measurement")
	fs.DurationVar(&c.StepGap, "step-gap", time.Second, "pause between sweep steps")
	fs.DurationVar(&c.Drain, "drain", 2*time.Second, "wait for in-flight deliveries after the last publish")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "new connections per second (0: as fast as --dial-concurrency allows)")
	fs.IntVar(&c.DialConc, "dial-concurrency", 128, "connections being set up at once")
	fs.Func("source-ips", "comma list of 127.x.y.z addresses to bind clients to, round-robin (more than ~28k ephemeral ports)", func(s string) error {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			ip := net.ParseIP(part)
			if ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("%q is not a loopback address", part)
			}
			c.SourceIPs = append(c.SourceIPs, ip)
		}
		return nil
	})
	fs.BoolVar(&c.Publish, "publish", true, "publish room messages and coordinate (false: a client-only peer process; run exactly one publisher with --peers)")
	fs.IntVar(&c.Peers, "peers", 0, "publisher only: client-only generator processes (--publish=false) to wait for and merge results from")
	fs.StringVar(&c.RunID, "run-id", "default", "names this run's coordination subjects on NATS, shared by its processes")
	fs.IntVar(&c.EdgePID, "edge-pid", 0, "edge process id: sample its VmRSS and utime+stime from /proc")
	fs.IntVar(&c.NATSPID, "nats-pid", 0, "NATS server process id, to report its CPU too")
	fs.BoolVar(&c.JSON, "json", false, "print the result as JSON on stdout (the human summary goes to stderr)")
	fs.StringVar(&c.Out, "out", "", "append the JSON result as one line to this file")
	fs.StringVar(&c.Label, "label", "", "scenario name in the report")
	fs.IntVar(&c.ReadBuffer, "read-buffer", 4096, "read buffer per client, bytes")
	fs.DurationVar(&c.Settle, "settle", time.Second, "pause after all clients subscribed before sampling the edge's RSS")
	fs.StringVar(&c.ServeNATS, "serve-nats", "", "instead of generating load: run an embedded NATS server, with JetStream and the room stream, on this host:port until interrupted")
	fs.StringVar(&c.ServeOTLP, "serve-otlp", "", "instead of generating load: run an OTLP/gRPC trace sink that counts and discards spans, on this host:port until interrupted")
	fs.StringVar(&c.Reader, "reader", "epoll", "how clients read: epoll (event loops, one read(2) per event; cheapest) or goroutine (one goroutine per connection)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the generator's own CPU profile to this file")
	fs.IntVar(&c.ProbeRooms, "probe-rooms", 4, "publisher: also subscribe to this many rooms on NATS directly and report the NATS hop's latency (0: off)")
	fs.DurationVar(&c.PeerTimeout, "peer-timeout", 2*time.Minute, "how long to wait for peer processes")
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mult := 1.0
		switch {
		case strings.HasSuffix(part, "k"):
			mult, part = 1e3, strings.TrimSuffix(part, "k")
		case strings.HasSuffix(part, "M"):
			mult, part = 1e6, strings.TrimSuffix(part, "M")
		}
		v, err := strconv.ParseFloat(part, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", part)
		}
		out = append(out, v*mult)
	}
	return out, nil
}

// ParseFlags parses the command line into a Config.
func ParseFlags(name string, args []string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.ServeNATS != "" || c.ServeOTLP != "" {
		return c, nil
	}
	return c, c.finish()
}

// finish fills defaults and validates.
func (c *Config) finish() error {
	var errs []error
	if c.Broadcast {
		c.Rooms = 1
	}
	if c.TotalConns == 0 {
		c.TotalConns = c.Conns + c.ClientOffset
	}
	if c.Conns < 0 || c.Rooms < 1 || c.TotalConns < c.Conns {
		errs = append(errs, errors.New("need --conns ≥ 0, --rooms ≥ 1 and --total-conns ≥ --conns"))
	}
	if c.Conns > 0 && c.JWTSecret == "" {
		errs = append(errs, errors.New("--jwt-secret is required"))
	}
	if len(c.Deliveries) > 0 {
		if len(c.Rates) > 0 {
			errs = append(errs, errors.New("give --rate or --deliveries, not both"))
		}
		members := float64(max(c.TotalConns, 1)) / float64(c.Rooms)
		for _, d := range c.Deliveries {
			c.Rates = append(c.Rates, d/members)
		}
	}
	if len(c.Rates) == 0 {
		c.Rates = []float64{float64(c.Rooms)} // one message per room per second
	}
	if c.Duration <= 0 || c.Warmup < 0 || c.Drain < 0 {
		errs = append(errs, errors.New("--duration must be positive, --warmup and --drain not negative"))
	}
	if c.Reader != "epoll" && c.Reader != "goroutine" {
		errs = append(errs, fmt.Errorf("--reader %q: want epoll or goroutine", c.Reader))
	}
	if c.DialConc < 1 {
		c.DialConc = 1
	}
	if !c.Publish && c.Peers > 0 {
		errs = append(errs, errors.New("--peers is for the publishing process"))
	}
	u, err := url.Parse(c.EdgeURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "http") {
		errs = append(errs, fmt.Errorf("--edge %q: want ws://host:port/path", c.EdgeURL))
	} else if !isLoopbackHost(u.Hostname()) {
		errs = append(errs, fmt.Errorf("--edge %q: the generator only targets 127.0.0.0/8", c.EdgeURL))
	}
	if u, err := url.Parse(c.NATSURL); err != nil || !isLoopbackHost(u.Hostname()) {
		errs = append(errs, fmt.Errorf("--nats %q: the generator only targets 127.0.0.0/8", c.NATSURL))
	}
	return errors.Join(errs...)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
