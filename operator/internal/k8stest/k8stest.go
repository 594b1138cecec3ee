// Package k8stest starts a real Kubernetes control plane for a test:
// kube-apiserver and etcd (by envtest), kube-controller-manager (Deployments
// make ReplicaSets make pods), kube-scheduler (pods get a node) and KWOK (a
// fake node whose pods go Running and Ready, and go away when deleted), all
// built by scripts/k8s-tools.sh into KUBEBUILDER_ASSETS.
package k8stest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/controller"
	"github.com/sensorcast/sensorcast/operator/internal/edgeload"
)

// Cluster is a running control plane.
type Cluster struct {
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
	// Kubeconfig is a file for tools (kubectl, helm) with admin rights.
	Kubeconfig string
	// Assets is the directory of the binaries (KUBEBUILDER_ASSETS).
	Assets string
}

// FakeNode is the KWOK node; pods schedule onto it.
const FakeNode = "kwok-node-0"

// Start runs a control plane until the test ends, with the CRDs in crdDirs
// installed.
func Start(t *testing.T, crdDirs ...string) *Cluster {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test-operator` (it builds the control plane binaries)")
	}
	for _, bin := range []string{"kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages.yaml"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Fatalf("%s is missing from KUBEBUILDER_ASSETS (%s): run `make k8s-tools`", bin, assets)
		}
	}
	// SENSORCAST_TEST_LOG=1 shows the operator's logs.
	logger := logr.Discard()
	if os.Getenv("SENSORCAST_TEST_LOG") != "" {
		logger = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil))
	}
	ctrl.SetLogger(logger)
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, autoscalingv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	env := &envtest.Environment{
		Scheme:                scheme,
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop kube-apiserver and etcd: %v", err)
		}
	})
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// Registered after env.Stop's cleanup, so they stop first.
	startProcess(t, dir, filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--controllers=deployment-controller,replicaset-controller,garbage-collector-controller,node-lifecycle-controller",
		// Scale-down decisions must not wait on the ReplicaSet sync backoff.
		"--concurrent-deployment-syncs=2", "--concurrent-replicaset-syncs=2")
	startProcess(t, dir, filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig="+kubeconfig, "--leader-elect=false", "--secure-port=0")
	startProcess(t, dir, filepath.Join(assets, "kwok"),
		"--kubeconfig="+kubeconfig, "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40", "-c", filepath.Join(assets, "kwok-stages.yaml"))

	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        FakeNode,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels:      map[string]string{"type": "kwok"},
	}}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 60*time.Second, "the KWOK node is Ready", func() error {
		var n corev1.Node
		if err := c.Get(ctx, client.ObjectKey{Name: FakeNode}, &n); err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", n.Status.Conditions)
	})
	return &Cluster{Config: cfg, Client: c, Scheme: scheme, Kubeconfig: kubeconfig, Assets: assets}
}

// startProcess runs a control plane component until the test ends; its
// output is shown if the test fails.
func startProcess(t *testing.T, dir, bin string, args ...string) {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", filepath.Base(bin), err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("--- %s output (last 4 KiB):\n%s", filepath.Base(bin), out.tail(4096))
		}
	})
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Eventually polls check until it passes, or fails the test after within.
func Eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s: %v", within, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// OperatorOptions tune StartOperator.
type OperatorOptions struct {
	// Namespace limits the operator to one namespace (empty: all), so tests
	// sharing one API server can each run their own.
	Namespace string
	// Interval between rounds; 500ms when zero.
	Interval time.Duration
}

// StartOperator runs the operator's manager in the test process, out of
// cluster, as the binary does, with cfg's credentials, until the test ends.
// It returns the registry of the operator's metrics.
func StartOperator(t *testing.T, cfg *rest.Config, scheme *runtime.Scheme, rdb *redis.Client, opts OperatorOptions) *prometheus.Registry {
	t.Helper()
	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Several managers in one test binary register the same controller.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if opts.Namespace != "" {
		mgrOpts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{opts.Namespace: {}}}
	}
	if opts.Interval == 0 {
		opts.Interval = 500 * time.Millisecond
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := controller.NewEdgeAutoscalerReconciler(mgr.GetClient(), edgeload.NewStore(rdb),
		mgr.GetEventRecorder("sensorcast-operator"), controller.NewMetrics(reg),
		controller.Options{Interval: opts.Interval})
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})
	return reg
}
