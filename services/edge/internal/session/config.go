// Package session runs one dashboard WebSocket: its read loop (client
// messages, limits, heartbeat) and its write loop, which coalesces every
// queued frame into one vectored write.
package session

import (
	"fmt"
	"time"
)

// Config holds the per-connection limits of the contract. Defaults() gives
// the contract's defaults.
type Config struct {
	// PingInterval is how often the server pings; PongTimeout is how long a
	// connection may stay silent (no frame, no pong) before it is dropped.
	// PingInterval < PongTimeout leaves a client one ping to answer.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout bounds one write; a peer that accepts nothing for that
	// long is gone or hopelessly slow.
	WriteTimeout time.Duration
	// MaxMessageBytes is the largest client frame; larger closes with 1009.
	MaxMessageBytes int64
	// SendQueue is how many frames may wait for a slow client before it is
	// closed with 1013 so that it never holds back anyone else.
	SendQueue int
	// RateLimit (messages per second) and RateBurst bound client messages;
	// excess ones get `rate_limited` errors.
	RateLimit float64
	RateBurst int
	// MaxRooms bounds the rooms one connection may be in.
	MaxRooms int
	// LatestDevices caps how many devices' latest state a `latest`
	// subscribe sends per room.
	LatestDevices int
	// CommandRate (per second) and CommandBurst bound the commands one
	// connection sends; CommandTimeout is a command's default TTL, and
	// MaxCommandTimeout the longest a client may ask for.
	CommandRate       float64
	CommandBurst      int
	CommandTimeout    time.Duration
	MaxCommandTimeout time.Duration
}

// Defaults returns the contract's defaults.
func Defaults() Config {
	return Config{
		PingInterval:      54 * time.Second,
		PongTimeout:       60 * time.Second,
		WriteTimeout:      10 * time.Second,
		MaxMessageBytes:   8192,
		SendQueue:         256,
		RateLimit:         20,
		RateBurst:         40,
		MaxRooms:          256,
		LatestDevices:     1000,
		CommandRate:       2,
		CommandBurst:      10,
		CommandTimeout:    30 * time.Second,
		MaxCommandTimeout: time.Hour,
	}
}

// Validate names the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.PingInterval <= 0 || c.PongTimeout <= 0 || c.WriteTimeout <= 0:
		return fmt.Errorf("ping interval, pong timeout and write timeout must be positive")
	case c.PingInterval >= c.PongTimeout:
		return fmt.Errorf("ping interval (%s) must be shorter than pong timeout (%s)", c.PingInterval, c.PongTimeout)
	case c.MaxMessageBytes < 256:
		return fmt.Errorf("max message bytes must be at least 256, got %d", c.MaxMessageBytes)
	case c.SendQueue < 1:
		return fmt.Errorf("send queue must be at least 1, got %d", c.SendQueue)
	case c.RateLimit <= 0 || c.RateBurst < 1:
		return fmt.Errorf("rate limit must be positive and rate burst at least 1")
	case c.MaxRooms < 1:
		return fmt.Errorf("max rooms must be at least 1, got %d", c.MaxRooms)
	case c.CommandRate <= 0 || c.CommandBurst < 1:
		return fmt.Errorf("command rate must be positive and command burst at least 1")
	case c.CommandTimeout <= 0 || c.MaxCommandTimeout < c.CommandTimeout:
		return fmt.Errorf("command timeout must be positive and at most the max command timeout")
	case c.LatestDevices < 0:
		return fmt.Errorf("latest devices must not be negative, got %d", c.LatestDevices)
	}
	return nil
}
