//go:build unix

package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
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

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
	config := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nuser %s\n",
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
	host, port, _ := net.SplitHostPort(m.Addr)
	args := []string{"-h", host, "-p", port, "-V", "mqttv5", "-q", "1",
		"-i", "e2e-device-" + strconv.FormatInt(m.pubs.Add(1), 10), "-t", topic, "-s"}
	if retain {
		args = append(args, "-r")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.pubBin, args...)
	cmd.Stdin = bytes.NewReader(payload) // -s: the whole of stdin is the message
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -t %s: %v\n%s", topic, err, out)
	}
}

// StartNATS starts a NATS server inside the test process on a free loopback
// port, without JetStream. It shuts down when t ends.
func StartNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host:   "127.0.0.1",
		Port:   -1,
		NoLog:  true,
		NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(startTimeout) {
		t.Fatalf("nats server not ready after %s", startTimeout)
	}
	return s
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
