package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sensorcast/sensorcast/services/internal/envflag"
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
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return err
	}
	if sim.Devices < 1 || sim.Interval <= 0 {
		return &usageError{fmt.Errorf("devices must be at least 1 and interval positive")}
	}
	logger, err := c.logger(stderr, "simulate")
	if err != nil {
		return err
	}
	// Run returns once every device has sent its offline status and left.
	return simulator.Run(ctx, sim, logger)
}
