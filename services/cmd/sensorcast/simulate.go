package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sensorcast/sensorcast/services/internal/auth"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/internal/room"
	"github.com/sensorcast/sensorcast/services/internal/simulator"
)

// runSimulate runs simulated devices against an MQTT broker: the same
// devices `run` embeds, for trying a deployment or feeding a test.
func runSimulate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("simulate", stderr)
	var c common
	c.registerLog(fs, "text")
	var sim simulator.Config
	fs.StringVar(&sim.BrokerURL, "mqtt-url", "mqtt://127.0.0.1:1883", "MQTT broker the devices connect to")
	fs.IntVar(&sim.Devices, "devices", simulator.DefaultDevices, "simulated devices")
	fs.DurationVar(&sim.Interval, "interval", simulator.DefaultInterval, "how often each device publishes telemetry")
	fs.StringVar(&sim.Prefix, "prefix", simulator.DefaultPrefix, "device id prefix (ids are the prefix and a 3-digit number)")
	fs.IntVar(&sim.WebSocketDevices, "ws-devices", 0, "more devices that speak WebSocket to the edge at ws-url instead of MQTT (ids: prefix, ws- and a number)")
	fs.StringVar(&sim.WebSocketURL, "ws-url", "ws://127.0.0.1:8080/api/v1/device/ws", "the edge's device WebSocket endpoint")
	var jwtSecret string
	fs.StringVar(&jwtSecret, "jwt-secret", "", "HS256 secret the edge checks tokens with, to mint the WebSocket devices' tokens")
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return err
	}
	if sim.Devices < 0 || sim.WebSocketDevices < 0 || sim.Devices+sim.WebSocketDevices < 1 || sim.Interval <= 0 {
		return &usageError{fmt.Errorf("simulate at least 1 device, with a positive interval")}
	}
	if sim.WebSocketDevices > 0 && jwtSecret == "" {
		return &usageError{fmt.Errorf("ws-devices need jwt-secret (SENSORCAST_JWT_SECRET) to mint their tokens")}
	}
	sim.Token = deviceTokens(jwtSecret)
	logger, err := c.logger(stderr, "simulate")
	if err != nil {
		return err
	}
	// Run returns once every device has sent its offline status and left.
	return simulator.Run(ctx, sim, logger)
}

// deviceTokens mints day-long device tokens with an HS256 secret.
func deviceTokens(secret string) func(deviceID string) (string, error) {
	return func(deviceID string) (string, error) {
		if err := room.CheckID(deviceID); err != nil {
			return "", fmt.Errorf("device id %q: %w", deviceID, err)
		}
		return auth.MintHS256([]byte(secret), auth.Claims{DeviceID: deviceID}, 24*time.Hour, time.Now())
	}
}
