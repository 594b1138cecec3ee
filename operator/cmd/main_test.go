package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sensorcast/sensorcast/operator/internal/redistest"
)

func TestBadSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"interval too short", []string{"--interval", "10ms"}, nil, "interval (SENSORCAST_INTERVAL)"},
		{"interval from the environment", nil, map[string]string{"SENSORCAST_INTERVAL": "soon"}, `interval (SENSORCAST_INTERVAL) "soon"`},
		{"leader-elect not a bool", nil, map[string]string{"SENSORCAST_LEADER_ELECT": "maybe"}, `SENSORCAST_LEADER_ELECT "maybe"`},
		{"redis url", nil, map[string]string{"SENSORCAST_REDIS_URL": "http://x"}, "redis-url (SENSORCAST_REDIS_URL)"},
		{"log level", []string{"--log-level", "loud", "--kubeconfig", "/nonexistent"}, nil, "log-level (SENSORCAST_LOG_LEVEL)"},
		{"stray argument", []string{"extra"}, nil, `unexpected arguments ["extra"]`},
		{"no cluster", []string{"--kubeconfig", "/nonexistent/kubeconfig"}, nil, "kubeconfig /nonexistent/kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			err := run(t.Context(), tc.args, getenv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestTheOperatorServesProbesAndMetricsAndStopsOnCancel(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test-operator`")
	}
	cluster := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, cluster.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	redisAddr := redistest.Start(t)
	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)

	env := map[string]string{"SENSORCAST_REDIS_URL": "redis://" + redisAddr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--kubeconfig", kubeconfig, "--metrics-bind-address", metricsAddr,
			"--health-probe-bind-address", probeAddr, "--leader-elect", "--leader-election-namespace", "default",
		}, func(k string) string { return env[k] }, io.Discard)
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := get("http://" + probeAddr + "/readyz")
		if code == http.StatusOK {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200 (last %d)", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// With --leader-elect it holds the Lease before it acts.
	c, err := client.New(cluster.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lease coordinationv1.Lease
	for {
		err := c.Get(t.Context(), client.ObjectKey{Namespace: "default", Name: "sensorcast-operator.autoscaling.sensorcast.io"}, &lease)
		if err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader election Lease held: %v, %+v", err, lease.Spec)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := get("http://" + probeAddr + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
		t.Errorf("/metrics = %d:\n%.500s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
