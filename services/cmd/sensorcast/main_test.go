package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenMintsAVerifiableToken(t *testing.T) {
	var out, errOut bytes.Buffer
	env := map[string]string{"SENSORCAST_JWT_SECRET": "a-secret-of-enough-length"}
	err := run(context.Background(), []string{"token", "--sub", "alice", "--rooms", "global, device:*", "--commands", "device:d1"}, func(k string) string { return env[k] }, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(strings.TrimSpace(out.String()), claims, func(*jwt.Token) (any, error) { return []byte(env["SENSORCAST_JWT_SECRET"]), nil }); err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "alice" || len(claims["rooms"].([]any)) != 2 || claims["commands"].([]any)[0] != "device:d1" {
		t.Errorf("claims = %v", claims)
	}
	if errOut.Len() != 0 {
		t.Errorf("unexpected warning: %s", errOut.String())
	}
}

func TestMistakesAreReportedClearly(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no command":                         {nil, nil, "no command"},
		"an unknown command":                 {[]string{"frobnicate"}, nil, `unknown command "frobnicate"`},
		"an edge without token keys":         {[]string{"edge"}, nil, "SENSORCAST_JWT_SECRET"},
		"a bad duration in the env":          {[]string{"edge"}, map[string]string{"SENSORCAST_PING_INTERVAL": "often"}, "SENSORCAST_PING_INTERVAL"},
		"a bad log level":                    {[]string{"edge", "--log-level", "loud", "--jwt-secret", "0123456789abcdef"}, nil, "SENSORCAST_LOG_LEVEL"},
		"a simulator of no devices":          {[]string{"simulate", "--devices", "0"}, nil, "at least 1 device"},
		"WebSocket devices without a secret": {[]string{"simulate", "--ws-devices", "1"}, nil, "need jwt-secret"},
		"a misspelt trace sampler":           {[]string{"ingest"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		"an unknown trace exporter for run":  {[]string{"run"}, map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestSettingsFromFlagsAreValidatedAfterParsing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the edge must get past validation, then stop at once
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"edge", "--jwt-secret", "0123456789abcdef", "--http-addr", "127.0.0.1:0", "--nats-url", "nats://127.0.0.1:1"}, func(string) string { return "" }, &out, &errOut)
	if err != nil && strings.Contains(err.Error(), "token keys") {
		t.Fatalf("a secret given as a flag was not seen by validation: %v", err)
	}
}

func TestRegistryHelpListsItsFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"registry", "--help"}, func(string) string { return "" }, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-grpc-addr", "-database-url", "-jwt-secret", "-admin-addr", "-nats-url", "SENSORCAST_DATABASE_URL"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help does not mention %s:\n%s", want, errOut.String())
		}
	}
}

func TestTokenWithARoleIsARegistryToken(t *testing.T) {
	var out, errOut bytes.Buffer
	env := map[string]string{"SENSORCAST_JWT_SECRET": "a-secret-of-enough-length"}
	if err := run(context.Background(), []string{"token", "--sub", "ops", "--role", "admin"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(strings.TrimSpace(out.String()), claims, func(*jwt.Token) (any, error) { return []byte(env["SENSORCAST_JWT_SECRET"]), nil }); err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "ops" || claims["role"] != "admin" {
		t.Errorf("claims = %v", claims)
	}
}
