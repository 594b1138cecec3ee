package load

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServeNATS runs an embedded NATS server on addr (loopback only) until ctx
// ends, so a benchmark needs no nats-server binary. It runs JetStream,
// storing in a temporary directory removed at the end, with the room stream
// ingest would create: edges receive room messages as the stream
// republishes them.
func ServeNATS(ctx context.Context, addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--serve-nats %q: %w", addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("--serve-nats %q: loopback addresses only", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--serve-nats %q: bad port", addr)
	}
	storeDir, err := os.MkdirTemp("", "sensorcast-load-nats-")
	if err != nil {
		return fmt.Errorf("jetstream store directory: %w", err)
	}
	defer os.RemoveAll(storeDir)
	s, err := server.NewServer(&server.Options{
		ServerName: "sensorcast-load-nats",
		Host:       host,
		Port:       port,
		NoSigs:     true,
		Logtime:    true,
		JetStream:  true,
		StoreDir:   storeDir,
		// Room traffic in a saturation sweep is bursty; give subscribers
		// (the edge) the default 64 MB of pending data and a long write deadline.
		WriteDeadline: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	s.ConfigureLogger() // info and errors to stderr; a taken port is fatal
	go s.Start()
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	if !s.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("embedded NATS server did not start on %s", addr)
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		return fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	err = ensureRoomStream(ctx, nc)
	nc.Close()
	if err != nil {
		return err
	}
	// run-bench.sh waits for this line: the stream is ready once it is out.
	fmt.Printf("nats listening on nats://%s (JetStream in %s)\n", s.Addr(), storeDir)
	<-ctx.Done()
	return nil
}
