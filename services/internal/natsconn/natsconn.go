// Package natsconn opens the NATS connection every service shares: it
// retries the first connect, reconnects forever, and logs each change.
package natsconn

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Connect dials url (a comma-separated list of servers) and returns a
// connection that reconnects by itself for as long as it lives. It keeps
// trying the first connect until ctx ends, so services may start before NATS.
func Connect(ctx context.Context, url, name string, logger *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // our own Close
			}
			logger.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	// RetryOnFailedConnect returns at once; wait here so callers start with a
	// working connection or a clear error.
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			nc.Close()
			return nil, fmt.Errorf("connect to nats %s: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	server := nc.ConnectedUrlRedacted()
	if url == "" {
		server = "in-process" // nats.InProcessServer: no URL to show
	}
	logger.Info("nats connected", "name", name, "server", server)
	return nc, nil
}
