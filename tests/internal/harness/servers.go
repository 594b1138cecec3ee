//go:build unix

package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startTimeout bounds how long a server may take to become ready; on a busy
// machine that is seconds, not milliseconds.
const startTimeout = 20 * time.Second

// LookBinary finds a program in PATH or in the sbin directories Debian
// installs servers into, and fails t with the install hint when it is
// missing.
func LookBinary(t testing.TB, name string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		path := filepath.Join(dir, name)
		if info, err := os.Stat(path); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return path
		}
	}
	t.Fatalf("%s is not installed: %s", name, installHint)
	return ""
}

// FreeAddr returns a loopback address with a port that no one listens on,
// for a server process that binds it later (or again, after a restart).
//
// The port comes from below the kernel's ephemeral range when there is
// room (ip_local_port_range starts at 32768 by default). A port from that
// range (what listening on port 0 gives) may be taken by any outgoing
// connection as its source port before the server binds it, and the
// server fails with "address already in use"; below it, only another
// listener can take it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	if span := ephemeralStart - lowestPort; span > 0 {
		for range 64 {
			port := lowestPort + int(nextPort.Add(1)%uint32(span))
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			if ln, err := net.Listen("tcp", addr); err == nil {
				_ = ln.Close()
				return addr
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lowestPort is the first port FreeAddr hands out; below it are the ports
// of well-known services.
const lowestPort = 15000

var (
	ephemeralStart = readEphemeralStart()
	nextPort       atomic.Uint32 // from a random start, so parallel test processes rarely meet
)

func init() { nextPort.Store(rand.Uint32()) }

func readEphemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 32768
}

func dialCheck(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Redis is a redis-server process without persistence.
type Redis struct {
	*Process
	Addr string
	URL  string // redis://host:port/0
}

// StartRedis starts redis-server on a free loopback port and waits until it
// answers PING.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := LookBinary(t, "redis-server")
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p := StartProcess(t, "redis-server", nil, bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	p.WaitReady(t, startTimeout, func() error { return redisPing(addr) })
	return &Redis{Process: p, Addr: addr, URL: "redis://" + addr + "/0"}
}

// redisPing speaks just enough RESP to ask a Redis server whether it serves.
func redisPing(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redis answered PING with %q", line)
	}
	return nil
}

// Mosquitto is a mosquitto MQTT broker process.
type Mosquitto struct {
	*Process
	Addr string
	URL  string // mqtt://host:port

	pubBin string
	pubs   atomic.Int64
}

// StartMosquitto starts mosquitto on a free loopback port (anonymous, no
// persistence) and waits until it accepts connections. It also checks that
// mosquitto_pub is there, which Publish runs.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin := LookBinary(t, "mosquitto")
	pubBin := LookBinary(t, "mosquitto_pub")
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	// Run as the test's own user: started as root, mosquitto would switch to
	// the mosquitto user, and a change of user clears the parent-death
	// signal that stops it when the test process dies.
	//
	// max_queued_messages: mosquitto queues at most 1000 QoS 1 messages for
	// a subscriber that is behind and drops the rest. Ingest falls behind
	// on purpose while NATS is unavailable (it acknowledges a message only
	// once JetStream has stored it), so the tests size the queue the way a
	// production broker must be sized: for the longest NATS outage to ride
	// out at the peak message rate.
	config := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nuser %s\nmax_queued_messages 1000000\n",
		port, currentUser(t))
	if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
		t.Fatalf("write mosquitto config: %v", err)
	}
	p := StartProcess(t, "mosquitto", nil, bin, "-c", conf)
	p.WaitReady(t, startTimeout, func() error { return dialCheck(addr) })
	return &Mosquitto{Process: p, Addr: addr, URL: "mqtt://" + addr, pubBin: pubBin}
}

func currentUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	return u.Username
}

// Publish publishes payload to topic as a device would, with the real
// mosquitto_pub over MQTT v5 at QoS 1, and returns once the broker has
// acknowledged it. retain marks the message retained, as device status is.
func (m *Mosquitto) Publish(t testing.TB, topic string, payload []byte, retain bool) {
	t.Helper()
	var args []string
	if retain {
		args = append(args, "-r")
	}
	m.publish(t, topic, payload, args...)
}

// PublishWithUserProperties publishes like Publish (not retained), with
// MQTT v5 user properties such as a traceparent, given as key, value pairs.
func (m *Mosquitto) PublishWithUserProperties(t testing.TB, topic string, payload []byte, kv ...string) {
	t.Helper()
	var args []string
	for i := 0; i+1 < len(kv); i += 2 {
		args = append(args, "-D", "publish", "user-property", kv[i], kv[i+1])
	}
	m.publish(t, topic, payload, args...)
}

func (m *Mosquitto) publish(t testing.TB, topic string, payload []byte, extra ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(m.Addr)
	args := []string{"-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-i", "e2e-device-" + strconv.FormatInt(m.pubs.Add(1), 10), "-t", topic, "-s"}
	args = append(args, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.pubBin, args...)
	cmd.Stdin = bytes.NewReader(payload) // -s: the whole of stdin is the message
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -t %s: %v\n%s", topic, err, out)
	}
}

// NATS is a NATS server with JetStream (file storage) running inside the
// test process. Restart brings it back on the same port with the same
// store directory, as a restarted pod with a persistent volume would come
// back: clients reconnect to the address they know and the streams are
// still there.
type NATS struct {
	opts natsserver.Options // Port is the one the first server got

	mu  sync.Mutex
	srv *natsserver.Server
}

// StartNATS starts a NATS server with JetStream storing files in a
// temporary directory, on a free loopback port. It shuts down when t ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{opts: natsserver.Options{
		ServerName: "sensorcast-e2e",
		Host:       "127.0.0.1",
		Port:       -1,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   t.TempDir(),
	}}
	srv, err := n.start()
	if err != nil {
		t.Fatalf("%v", err)
	}
	n.srv = srv
	n.opts.Port = srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
			n.srv = nil
		}
	})
	return n
}

// start runs a server with n's options and waits until it serves clients
// and JetStream.
func (n *NATS) start() (*natsserver.Server, error) {
	opts := n.opts // NewServer keeps and changes the options it is given
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(startTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats server on port %d not ready after %s", opts.Port, startTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats server on port %d started without JetStream", opts.Port)
	}
	return srv, nil
}

// ClientURL is the URL clients connect to; it stays the same across
// restarts.
func (n *NATS) ClientURL() string {
	return fmt.Sprintf("nats://%s:%d", n.opts.Host, n.opts.Port)
}

// Server returns the server running now (a new one after each Restart).
func (n *NATS) Server() *natsserver.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Restart shuts the server down, waits until it has stopped, and starts a
// new one on the same port with the same JetStream store, waiting until it
// is ready. Connected clients see the connection drop and reconnect.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
	// The port was just released; another process could take it in
	// between, so retry briefly rather than fail on the first bind error.
	var srv *natsserver.Server
	err := Poll(startTimeout, func() error {
		var err error
		srv, err = n.start()
		return err
	})
	if err != nil {
		t.Fatalf("restart nats on port %d: %v", n.opts.Port, err)
	}
	n.srv = srv
}

// ConnectNATS connects a client to url; it is closed when t ends.
func ConnectNATS(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("sensorcast-e2e"))
	if err != nil {
		t.Fatalf("connect to nats %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
