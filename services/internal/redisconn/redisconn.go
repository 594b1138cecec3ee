// Package redisconn opens the Redis client of a service: traced with
// OpenTelemetry (redisotel) and counting its dials, which is how a Redis
// outage and the reconnects after it show in the metrics.
package redisconn

import (
	"context"
	"fmt"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// Open parses a redis:// or rediss:// URL and returns its client; the
// caller closes it. Dials are counted in reg (nil: not at all).
func Open(url string, reg prometheus.Registerer) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis-url (SENSORCAST_REDIS_URL): %w", err)
	}
	rdb := redis.NewClient(opts)
	// The global tracer provider (tracing.Setup's): commands become spans
	// of the caller's trace when tracing is on, and cost nothing when off.
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false)); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redis tracing: %w", err)
	}
	if reg != nil {
		dials := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sensorcast_redis_dials_total",
			Help: "Connections the Redis client opened, by result (ok, error): beyond the pool's first ones, each is a reconnect.",
		}, []string{"result"})
		if err := reg.Register(dials); err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("redis metrics: %w", err)
		}
		rdb.AddHook(dialCounter{dials})
	}
	return rdb, nil
}

// dialCounter is a redis.Hook that counts dials and passes everything on.
type dialCounter struct{ dials *prometheus.CounterVec }

func (h dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		result := "ok"
		if err != nil {
			result = "error"
		}
		h.dials.WithLabelValues(result).Inc()
		return conn, err
	}
}

func (dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
