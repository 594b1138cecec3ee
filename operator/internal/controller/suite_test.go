package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/k8stest"
	"github.com/sensorcast/sensorcast/operator/internal/redistest"
	"github.com/sensorcast/sensorcast/proto/edgestats"
)

// One real kube-apiserver and etcd for the package (envtest). The operator
// under test runs as a user holding only the generated ClusterRole, so a
// missing RBAC marker fails these tests.
var (
	scheme      = runtime.NewScheme()
	adminCfg    *rest.Config
	operatorCfg *rest.Config
	admin       client.Client
)

const operatorUser = "system:serviceaccount:sensorcast:sensorcast-operator"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: these tests need a real kube-apiserver and etcd.\n"+
			"Run them with `make test-operator` (it builds the binaries), or\n"+
			"  bash scripts/k8s-tools.sh build && KUBEBUILDER_ASSETS=$(bash scripts/k8s-tools.sh dir) go test ./...")
		return 1
	}
	// SENSORCAST_TEST_LOG=1 shows the operator's logs.
	logger := logr.Discard()
	if os.Getenv("SENSORCAST_TEST_LOG") != "" {
		logger = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil))
	}
	ctrl.SetLogger(logger)
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, autoscalingv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	env := &envtest.Environment{
		Scheme:                scheme,
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	if adminCfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}()
	if admin, err = client.New(adminCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := bindGeneratedRole(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bind generated role:", err)
		return 1
	}
	user, err := env.AddUser(envtest.User{Name: operatorUser}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "add operator user:", err)
		return 1
	}
	operatorCfg = user.Config()
	return m.Run()
}

// bindGeneratedRole installs config/rbac/role.yaml and binds it to the
// operator's user.
func bindGeneratedRole(ctx context.Context) error {
	f, err := os.Open(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		return err
	}
	defer f.Close()
	var role rbacv1.ClusterRole
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&role); err != nil {
		return fmt.Errorf("decode role.yaml: %w", err)
	}
	if err := admin.Create(ctx, &role); err != nil {
		return err
	}
	return admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: operatorUser}},
	})
}

// fixture is one test's world: its own namespace, Redis and running operator.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	ns    string
	redis *redis.Client
	// metrics is the registry of the operator's metrics.
	metrics *prometheus.Registry
}

// testInterval keeps the rounds quick; the decision logic does not care.
const testInterval = 200 * time.Millisecond

// newFixture starts an operator (watching only the test's namespace, so tests
// run in parallel) against its own Redis, as the user holding only the
// generated role.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{t: t, ctx: ctx, redis: redistest.Client(t, redistest.Start(t))}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "eas-"}}
	if err := admin.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	f.ns = nsObj.Name

	f.metrics = k8stest.StartOperator(t, operatorCfg, scheme, f.redis,
		k8stest.OperatorOptions{Namespace: f.ns, Interval: testInterval})
	t.Cleanup(func() {
		cancel()
		_ = admin.Delete(context.Background(), nsObj)
	})
	return f
}

// deployment creates a Deployment of replicas edge pods; envtest runs no
// controllers, so the test makes the pods itself (pod).
func (f *fixture) deployment(name string, replicas int32) *appsv1.Deployment {
	f.t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "edge", Image: "sensorcast:test"}}},
			},
		},
	}
	if err := admin.Create(f.ctx, d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

// pod creates a running, ready pod of the deployment.
func (f *fixture) pod(deploy, name string) {
	f.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name, Labels: map[string]string{"app": deploy}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "edge", Image: "sensorcast:test"}}},
	}
	if err := admin.Create(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
	p.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if err := admin.Status().Update(f.ctx, p); err != nil {
		f.t.Fatal(err)
	}
}

// report writes a pod's connection count the way an edge does, at time at.
func (f *fixture) report(pod string, connections int, at time.Time) {
	f.t.Helper()
	err := f.redis.HSet(f.ctx, edgestats.PodKey(pod), edgestats.FieldConnections, connections,
		edgestats.FieldRooms, 1, edgestats.FieldUpdatedMs, strconv.FormatInt(at.UnixMilli(), 10)).Err()
	if err != nil {
		f.t.Fatal(err)
	}
}

// autoscaler creates an EdgeAutoscaler for target with the spec's defaults
// plus what change sets.
func (f *fixture) autoscaler(name, target string, change func(*autoscalingv1alpha1.EdgeAutoscalerSpec)) *autoscalingv1alpha1.EdgeAutoscaler {
	f.t.Helper()
	eas := &autoscalingv1alpha1.EdgeAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec: autoscalingv1alpha1.EdgeAutoscalerSpec{
			TargetRef:   autoscalingv1alpha1.TargetReference{Name: target},
			MaxReplicas: 10, TargetConnectionsPerPod: 100,
		},
	}
	if change != nil {
		change(&eas.Spec)
	}
	if err := admin.Create(f.ctx, eas); err != nil {
		f.t.Fatal(err)
	}
	return eas
}

// eventually polls check until it passes or 20 seconds are up.
func (f *fixture) eventually(what string, check func() error) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fixture) replicas(name string) int32 {
	f.t.Helper()
	var d appsv1.Deployment
	if err := admin.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: name}, &d); err != nil {
		f.t.Fatal(err)
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

func (f *fixture) status(name string) autoscalingv1alpha1.EdgeAutoscalerStatus {
	f.t.Helper()
	var eas autoscalingv1alpha1.EdgeAutoscaler
	if err := admin.Get(f.ctx, client.ObjectKey{Namespace: f.ns, Name: name}, &eas); err != nil {
		f.t.Fatal(err)
	}
	return eas.Status
}
