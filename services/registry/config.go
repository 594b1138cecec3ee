package registry

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sensorcast/sensorcast/services/internal/envflag"
)

// Config is the registry's configuration; RegisterFlags binds it to flags
// (and through envflag to SENSORCAST_* variables).
type Config struct {
	// GRPCAddr is where the gRPC API listens.
	GRPCAddr string
	// DatabaseURL is the PostgreSQL URL; empty runs the embedded in-memory
	// store (nothing persisted, a single replica only).
	DatabaseURL string
	// JWTSecret verifies callers' HS256 bearer tokens.
	JWTSecret string
	// PollInterval is how often the change log is read for announcements
	// and for WatchChanges streams that have caught up.
	PollInterval time.Duration
	// StopTimeout bounds the graceful stop of the gRPC server.
	StopTimeout time.Duration
}

// Default values of the settings.
const (
	DefaultGRPCAddr     = ":9091"
	DefaultPollInterval = 200 * time.Millisecond
	DefaultStopTimeout  = 10 * time.Second
)

// RegisterFlags declares every registry setting on fs with working defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", DefaultGRPCAddr, "address of the registry's gRPC API")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL (empty: embedded in-memory store, nothing persisted, one replica only)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret of callers' bearer tokens (role claim admin)")
	fs.DurationVar(&c.PollInterval, "poll-interval", DefaultPollInterval, "how often the change log is read for announcements and watch streams")
	fs.DurationVar(&c.StopTimeout, "stop-timeout", DefaultStopTimeout, "on shutdown, how long calls in progress may take to finish")
}

// Validate checks the settings once at start, naming the bad one.
func (c Config) Validate() error {
	var errs []error
	if c.GRPCAddr == "" {
		errs = append(errs, settingError("grpc-addr", "must not be empty"))
	}
	if len(c.JWTSecret) < 16 {
		errs = append(errs, settingError("jwt-secret", "must be set, at least 16 bytes"))
	}
	if c.PollInterval < 10*time.Millisecond || c.PollInterval > 10*time.Second {
		errs = append(errs, settingError("poll-interval", fmt.Sprintf("must be 10ms to 10s, got %s", c.PollInterval)))
	}
	if c.StopTimeout < 0 {
		errs = append(errs, settingError("stop-timeout", "must not be negative"))
	}
	return errors.Join(errs...)
}

func settingError(flagName, problem string) error {
	return fmt.Errorf("%s (%s) %s", flagName, envflag.EnvName(flagName), problem)
}
