package chart

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	autoscalingv1alpha1 "github.com/sensorcast/sensorcast/operator/api/v1alpha1"
	"github.com/sensorcast/sensorcast/operator/internal/k8stest"
	"github.com/sensorcast/sensorcast/operator/internal/redistest"
)

const namespace = "sensorcast"

func TestInstallUpgradeAndUninstallOnASimulatedCluster(t *testing.T) {
	helm := tool(t, "helm")
	c := k8stest.Start(t)
	ctx := t.Context()
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	helmRun := func(args ...string) {
		t.Helper()
		args = append(args, "--kubeconfig", c.Kubeconfig, "--namespace", namespace)
		start := time.Now()
		if out, err := run(t, helm, args...); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("helm %s: %v", args[0], time.Since(start).Round(100*time.Millisecond))
	}
	values := filepath.Join(chartDir, "ci", "defaults-values.yaml")

	helmRun("install", "sc", chartDir, "-f", values, "--wait", "--timeout", "3m")
	deployments := []string{"sc-sensorcast-edge", "sc-sensorcast-ingest", "sc-sensorcast-registry", "sc-sensorcast-operator"}
	for _, name := range deployments {
		if err := available(t, c, name); err != nil {
			t.Errorf("after install: %v", err)
		}
	}

	// The operator's pod is simulated; run the operator itself here, as
	// the chart's ServiceAccount would, and see it take the chart's autoscaler.
	k8stest.StartOperator(t, c.Config, c.Scheme, redistest.Client(t, redistest.Start(t)), k8stest.OperatorOptions{})
	k8stest.Eventually(t, 60*time.Second, "the operator reconciles the chart's EdgeAutoscaler and scales the edges to its minimum", func() error {
		var eas autoscalingv1alpha1.EdgeAutoscaler
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "sc-sensorcast-edge"}, &eas); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(eas.Status.Conditions, autoscalingv1alpha1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready: %+v", cond)
		}
		var d appsv1.Deployment
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "sc-sensorcast-edge"}, &d); err != nil {
			return err
		}
		if got := ptr.Deref(d.Spec.Replicas, 1); got != 2 {
			return fmt.Errorf("edge replicas %d, want the autoscaler's minimum 2", got)
		}
		return available(t, c, "sc-sensorcast-edge")
	})

	helmRun("upgrade", "sc", chartDir, "-f", values, "--set", "edge.drainPeriodSeconds=20", "--wait", "--timeout", "3m")
	var edge appsv1.Deployment
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "sc-sensorcast-edge"}, &edge); err != nil {
		t.Fatal(err)
	}
	if got := ptr.Deref(edge.Spec.Replicas, 1); got != 2 {
		t.Errorf("the upgrade reset the operator's edge replicas to %d", got)
	}
	if got := ptr.Deref(edge.Spec.Template.Spec.TerminationGracePeriodSeconds, 0); got != 35 {
		t.Errorf("terminationGracePeriodSeconds %d after the upgrade, want the 20 s drain plus 15", got)
	}
	if ru := edge.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("edge rollout %+v: want one new pod at a time and none unavailable", edge.Spec.Strategy)
	}
	for _, name := range deployments {
		if err := available(t, c, name); err != nil {
			t.Errorf("after upgrade: %v", err)
		}
	}

	helmRun("uninstall", "sc", "--wait", "--timeout", "3m")
	k8stest.Eventually(t, 60*time.Second, "nothing of the release is left", func() error {
		return leftovers(t, c, "sc")
	})
}

// available says whether the Deployment has all its replicas updated and
// available.
func available(t *testing.T, c *k8stest.Cluster, name string) error {
	var d appsv1.Deployment
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, &d); err != nil {
		return err
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want || d.Status.AvailableReplicas != want {
		return fmt.Errorf("deployment %s: %d/%d updated, %d available", name, d.Status.UpdatedReplicas, want, d.Status.AvailableReplicas)
	}
	return nil
}

// leftovers lists what still carries the release's instance label, or is
// named for it cluster-wide.
func leftovers(t *testing.T, c *k8stest.Cluster, release string) error {
	ctx := t.Context()
	sel := client.MatchingLabels{"app.kubernetes.io/instance": release}
	lists := map[string]client.ObjectList{
		"deployments": &appsv1.DeploymentList{}, "pods": &corev1.PodList{}, "services": &corev1.ServiceList{},
		"serviceaccounts": &corev1.ServiceAccountList{}, "secrets": &corev1.SecretList{},
		"roles": &rbacv1.RoleList{}, "rolebindings": &rbacv1.RoleBindingList{},
		"edgeautoscalers":      &autoscalingv1alpha1.EdgeAutoscalerList{},
		"poddisruptionbudgets": &policyv1.PodDisruptionBudgetList{}, "networkpolicies": &networkingv1.NetworkPolicyList{},
	}
	var left []string
	for kind, list := range lists {
		if err := c.Client.List(ctx, list, client.InNamespace(namespace), sel); err != nil {
			return err
		}
		if n := meta.LenList(list); n > 0 {
			left = append(left, fmt.Sprintf("%d %s", n, kind))
		}
	}
	for kind, list := range map[string]client.ObjectList{"clusterroles": &rbacv1.ClusterRoleList{}, "clusterrolebindings": &rbacv1.ClusterRoleBindingList{}} {
		if err := c.Client.List(ctx, list, sel); err != nil {
			return err
		}
		if n := meta.LenList(list); n > 0 {
			left = append(left, fmt.Sprintf("%d %s", n, kind))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("left behind: %v", left)
	}
	return nil
}
