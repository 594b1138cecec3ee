// Command sensorcast-load drives an edge with N WebSocket clients over R
// rooms and a NATS publisher, and reports throughput, latency, loss and
// the edge's RSS and CPU. `sensorcast-load --serve-nats 127.0.0.1:4222`
// runs an embedded NATS server (JetStream, with the room stream) instead,
// `--serve-otlp` a trace sink for benchmarks with tracing on.
// See tests/load.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/sensorcast/sensorcast/tests/load"
)

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sensorcast-load:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := load.ParseFlags("sensorcast-load", os.Args[1:], os.Stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.ServeNATS != "" {
		return load.ServeNATS(ctx, cfg.ServeNATS)
	}
	if cfg.ServeOTLP != "" {
		return load.ServeOTLP(ctx, cfg.ServeOTLP, os.Stdout)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := load.Run(ctx, cfg, os.Stderr)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	if cfg.JSON {
		load.WriteSummary(os.Stderr, res)
		fmt.Println(string(b))
	} else {
		load.WriteSummary(os.Stdout, res)
	}
	if cfg.Out != "" {
		f, err := os.OpenFile(cfg.Out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}
