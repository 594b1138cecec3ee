// Package natstest runs an embedded NATS server, with JetStream on file
// storage, on a loopback port for a test, the way nats-server's own tests do.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Start runs a NATS server with JetStream on a random port until the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartOnPort(t, -1, t.TempDir())
}

// StartOnPort runs a NATS server with JetStream storing in storeDir on a
// given loopback port (-1: random) until the test ends. A test brings a
// server back after shutting the first one down by passing the same port,
// which its clients reconnect to, and the same storeDir, which keeps the
// streams.
func StartOnPort(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: storeDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server on port %d did not start", port)
	}
	return ns
}

// Connect opens a client connection to ns, closed when the test ends.
func Connect(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
