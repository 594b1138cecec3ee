// Package registryclient connects to the device registry's gRPC API
// (registryv1.DeviceRegistry) with a bearer token: the services that follow
// the registry (ingest, edge) and the operator CLI (sensorcast devices,
// sensorcast groups) all dial it here.
package registryclient

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/internal/auth"
)

// Config says where the registry is and how to call it.
type Config struct {
	// URL is the registry's gRPC target (host:port, or any gRPC target
	// such as dns:///registry:9091); empty turns the registry off.
	URL string
	// Token is the bearer token sent with every call.
	Token string
	// TokenSecret, when set, is the registry's HS256 secret: the client mints
	// its own short-lived admin tokens with it, so a long-running service
	// needs no token that expires under it.
	TokenSecret string
	// Metrics, when set, gets the client's call latency histogram
	// (sensorcast_registry_client_request_duration_seconds).
	Metrics prometheus.Registerer
}

// RegisterFlags declares the registry client settings on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "registry-url", "", "gRPC address of the device registry (empty: no registry; every well-formed device is accepted)")
	fs.StringVar(&c.Token, "registry-token", "", "bearer token for the device registry")
	fs.StringVar(&c.TokenSecret, "registry-token-secret", "", "the registry's HS256 token secret: mint short-lived admin tokens with it instead of --registry-token")
}

// Dial opens a client connection to the registry; the caller closes it.
// The connection is plaintext: inside a cluster it runs over the pod
// network (or a mesh that adds TLS).
func Dial(cfg Config) (*grpc.ClientConn, registryv1.DeviceRegistryClient, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Calls join the caller's trace (the global provider's: Setup's).
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	}
	if cfg.Metrics != nil {
		m, err := newMetrics(cfg.Metrics)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, grpc.WithChainUnaryInterceptor(m.unary), grpc.WithChainStreamInterceptor(m.stream))
	}
	switch {
	case cfg.TokenSecret != "":
		opts = append(opts, grpc.WithPerRPCCredentials(newMinter([]byte(cfg.TokenSecret), time.Now)))
	case cfg.Token != "":
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(cfg.Token)))
	}
	conn, err := grpc.NewClient(cfg.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("registry-url (SENSORCAST_REGISTRY_URL) %q: %w", cfg.URL, err)
	}
	return conn, registryv1.NewDeviceRegistryClient(conn), nil
}

// bearer sends a static token as "authorization: Bearer ...".
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the registry is reached over the
// cluster network, like NATS and Redis.
func (bearer) RequireTransportSecurity() bool { return false }

const (
	// mintedTTL is how long a minted token is valid; it is replaced once
	// less than mintedRenew of it is left, so a call never carries a token
	// about to expire (clocks between pods may differ by a little).
	mintedTTL   = 10 * time.Minute
	mintedRenew = 5 * time.Minute
)

// minter mints admin tokens with the registry's secret, one at a time.
type minter struct {
	secret []byte
	now    func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newMinter(secret []byte, now func() time.Time) *minter {
	return &minter{secret: secret, now: now}
}

func (m *minter) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if m.token == "" || m.expires.Sub(now) < mintedRenew {
		token, err := auth.MintHS256(m.secret, auth.Claims{Subject: "sensorcast-service", Role: auth.RegistryAdminRole}, mintedTTL, now)
		if err != nil {
			return nil, fmt.Errorf("mint registry token: %w", err)
		}
		m.token, m.expires = token, now.Add(mintedTTL)
	}
	return map[string]string{"authorization": "Bearer " + m.token}, nil
}

func (*minter) RequireTransportSecurity() bool { return false }
