package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sensorcast/sensorcast/services/edge"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/registry"
)

func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", stderr)
	var (
		secret   string
		subject  string
		rooms    string
		commands string
		role     string
		deviceID string
		ttl      time.Duration
	)
	fs.StringVar(&secret, "jwt-secret", "", "HS256 secret (default: the public development secret)")
	fs.StringVar(&subject, "sub", "dev", "user id (the sub claim)")
	fs.StringVar(&rooms, "rooms", "global,device:*,group:*", "comma-separated room patterns the token may watch")
	fs.StringVar(&commands, "commands", "", "comma-separated device/group room patterns the token may command")
	fs.StringVar(&role, "role", "", "mint a device-registry API token with this role claim (admin) instead of a dashboard token; --rooms and --commands are then ignored")
	fs.StringVar(&deviceID, "device-id", "", "mint a device token (the device_id claim) for the device WebSocket instead of a dashboard token; --sub, --rooms and --commands are then ignored")
	fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return err
	}
	if secret == "" {
		secret = edge.DevSecret
		fmt.Fprintln(stderr, "sensorcast token: SENSORCAST_JWT_SECRET is not set; signing with the public development secret")
	}
	var token string
	var err error
	switch {
	case deviceID != "":
		token, err = deviceTokens(secret)(deviceID)
	case role != "":
		token, err = registry.MintToken(secret, subject, role, ttl)
	default:
		token, err = edge.MintToken(secret, subject, list(rooms), list(commands), ttl)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

func list(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
