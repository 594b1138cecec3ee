package load

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServeNATS runs an embedded NATS server on addr (loopback only) until ctx
// ends, so a benchmark needs no nats-server binary.
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
	s, err := server.NewServer(&server.Options{
		ServerName: "sensorcast-load-nats",
		Host:       host,
		Port:       port,
		NoSigs:     true,
		Logtime:    true,
		// Room traffic in a saturation sweep is bursty; give subscribers
		// (the edge) the default 64 MB of pending data and a long write deadline.
		WriteDeadline: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	s.ConfigureLogger() // info and errors to stderr; a taken port is fatal
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("embedded NATS server did not start on %s", addr)
	}
	fmt.Printf("nats listening on nats://%s\n", s.Addr())
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
