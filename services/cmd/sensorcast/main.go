// Command sensorcast runs every Sensorcast service from one binary, so one
// container image serves every Deployment:
//
//	sensorcast run      the whole system in one process (embedded NATS and MQTT, simulator)
//	sensorcast ingest   MQTT -> NATS ingest replica
//	sensorcast edge     WebSocket edge pod
//	sensorcast registry device registry (gRPC API)
//	sensorcast devices  manage devices through the registry's API (operator CLI)
//	sensorcast groups   manage device groups through the registry's API
//	sensorcast token    mint a development dashboard token
//	sensorcast version  print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "sensorcast:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a command called the wrong way (the usage text has
// been printed), 1 for any other failure.
func exitCode(err error) int {
	var usageErr *usageError
	if errors.As(err, &usageErr) {
		return 2
	}
	return 1
}

const usage = `Usage: sensorcast <command> [flags]

Commands:
  run       the whole system in one process: embedded NATS and MQTT broker,
            ingest, edge, device registry and a device simulator (for
            development and demos)
  ingest    MQTT -> NATS ingest replica
  edge      WebSocket edge pod
  registry  device registry: gRPC API for devices, groups and alert rules
  simulate  simulated devices against an MQTT broker (telemetry, status,
            answers to commands)
  devices   manage devices through the registry: create, get, list, update,
            delete, import --csv, set-secret
  groups    manage device groups through the registry: create, get, list,
            delete, members
  token     mint an HS256 dashboard token (--role admin: a registry token)
  version   print the version

Every flag can also be set by its SENSORCAST_* environment variable;
run 'sensorcast <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runStandalone(ctx, rest, getenv, stdout, stderr)
	case "ingest":
		return runIngest(ctx, rest, getenv, stderr)
	case "edge":
		return runEdge(ctx, rest, getenv, stderr)
	case "registry":
		return runRegistry(ctx, rest, getenv, stderr)
	case "simulate":
		return runSimulate(ctx, rest, getenv, stderr)
	case "devices":
		return runDevices(ctx, rest, cliIO{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "groups":
		return runGroups(ctx, rest, cliIO{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr})
	case "token":
		return runToken(rest, getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "sensorcast", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return &usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}
