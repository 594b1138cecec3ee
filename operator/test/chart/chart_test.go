// Package chart checks charts/sensorcast with the real tools: helm lint and
// helm template over a matrix of values, every rendered object validated by a
// real kube-apiserver (kubectl apply --dry-run=server), and bad values
// refused with the schema's message. (It lives in the operator module, which
// already carries envtest and the Kubernetes dependencies.)
package chart

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

var chartDir = filepath.Join("..", "..", "..", "charts", "sensorcast")

// tool returns the path of helm or kubectl, built by scripts/k8s-tools.sh.
func tool(t *testing.T, name string) string {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test-operator` (it builds helm, kubectl and the control plane)")
	}
	path := filepath.Join(assets, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing from KUBEBUILDER_ASSETS (%s): run `make k8s-tools`", name, assets)
	}
	return path
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

// moduleDir downloads a module version (once: the module cache keeps it) and
// returns its directory.
func moduleDir(t *testing.T, moduleAtVersion string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", moduleAtVersion).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", moduleAtVersion, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", moduleAtVersion, mod.Error, err)
	}
	return mod.Dir
}

func valuesFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in %s/ci: %v", chartDir, err)
	}
	return files
}

func TestEveryValuesFileLintsRendersAndIsAcceptedByTheAPIServer(t *testing.T) {
	helm, kubectl := tool(t, "helm"), tool(t, "kubectl")
	// The chart's optional objects are other projects' kinds: install their
	// CRDs, at pinned versions, from the Go module proxy.
	gatewayAPI := moduleDir(t, "sigs.k8s.io/gateway-api@v1.6.3")
	promOperator := moduleDir(t, "github.com/prometheus-operator/prometheus-operator@v0.92.1")
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{
			filepath.Join(chartDir, "crds"),
			filepath.Join(gatewayAPI, "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"),
			filepath.Join(promOperator, "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml"),
			filepath.Join(promOperator, "example", "prometheus-operator-crd", "monitoring.coreos.com_prometheusrules.yaml"),
		},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, kubectl, "--kubeconfig", kubeconfig, "create", "namespace", "sensorcast"); err != nil {
		t.Fatalf("create namespace: %v\n%s", err, out)
	}

	t.Run("the plain manifests in deploy/manifests", func(t *testing.T) {
		manifest := filepath.Join("..", "..", "..", "deploy", "manifests", "sensorcast.yaml")
		out, err := run(t, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--namespace", "sensorcast", "-f", manifest)
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server refused %s: %v\n%s", manifest, err, out)
		}
	})

	for _, values := range valuesFiles(t) {
		t.Run(filepath.Base(values), func(t *testing.T) {
			if out, err := run(t, helm, "lint", "--strict", chartDir, "-f", values); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			rendered, err := run(t, helm, "template", "sc", chartDir, "-f", values, "--namespace", "sensorcast")
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, rendered)
			}
			// kubectl lets a duplicated key pass (the last one wins); it is
			// always a template bug.
			for i, doc := range strings.Split(rendered, "\n---\n") {
				var obj map[string]any
				if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
					t.Errorf("rendered document %d: %v\n%s", i, err, doc)
				}
			}
			manifest := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(manifest, []byte(rendered), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, kubectl, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "--namespace", "sensorcast", "-f", manifest)
			if err != nil {
				t.Fatalf("kubectl apply --dry-run=server refused the rendered chart: %v\n%s", err, out)
			}
			if n := strings.Count(out, "(server dry run)"); n != strings.Count(rendered, "\nkind: ") {
				t.Errorf("the API server checked %d objects of %d:\n%s", n, strings.Count(rendered, "\nkind: "), out)
			}
		})
	}
}

func TestBadValuesAreRefusedWithAClearMessage(t *testing.T) {
	helm := tool(t, "helm")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no token secret", nil, "set auth.existingSecret (a Secret with key jwt-secret) or auth.jwtSecret"},
		{"a short token secret", []string{"--set", "auth.jwtSecret=short"}, "/auth/jwtSecret"},
		{"negative replicas", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "ingest.replicas=-1"}, "at '/ingest/replicas': minimum: got -1, want 1"},
		{"an unknown key", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "edge.replica=3"}, "additional properties 'replica' not allowed"},
		{"a misspelt top-level key", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "natsUrl=x"}, "additional properties 'natsUrl' not allowed"},
		{"a NATS URL that is not one", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "nats.url=http://nats"}, "/nats/url"},
		{"public keys without their names", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "auth.publicKeys.existingSecret=keys"}, "list the keys of the Secret"},
		{"an HTTPRoute without a Gateway", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "edge.httpRoute.enabled=true"}, "edge.httpRoute: set parentRefs"},
		{"a bad scrape interval", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "metrics.serviceMonitor.interval=often"}, "/metrics/serviceMonitor/interval"},
		{"registry replicas without PostgreSQL", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "registry.replicas=2"}, "only works with registry.replicas: 1"},
		{"an unknown tracing protocol", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "tracing.protocol=http/json"}, "at '/tracing/protocol': value must be one of 'grpc', 'http/protobuf'"},
		{"a sampler ratio that is not one", []string{"--set", "auth.jwtSecret=0123456789abcdef", "--set", "tracing.samplerArg=1.5"}, "/tracing/samplerArg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, helm, append([]string{"template", "sc", chartDir}, tc.args...)...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("helm template: %v, want a failure saying %q:\n%.2000s", err, tc.want, out)
			}
		})
	}
}
