// Command argocd-health evaluates the operator's Argo CD health checks with
// Argo CD's own code (github.com/argoproj/argo-cd/v3): deploy/argocd/argocd-cm.yaml
// is read by Argo CD's settings manager (util/settings, from a fake clientset
// holding that ConfigMap, as the application controller reads argocd-cm), and
// every sample named in deploy/argocd/health_test.yaml is evaluated twice:
//
//   - "lua": the script alone, through Argo CD's Lua VM
//     (util/lua ResourceHealthOverrides.GetResourceHealth: the default sandbox,
//     the script cache, the status-code validation);
//   - "controller": what the application controller shows, gitops-engine's
//     health.GetResourceHealth with those overrides (controller/health.go),
//     which answers some cases (a deletionTimestamp) before any Lua runs.
//
// Usage: argocd-health ARGOCD_DIR  (the directory holding argocd-cm.yaml,
// health_test.yaml and testdata/). Prints one JSON object per sample on
// stdout: {"inputPath", "lua": {status, message} | {error}, "controller": ...}.
// tests/packaging/argocd_health.rs builds it (tests/argocd/build) and checks the output.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

type testFile struct {
	Tests []struct {
		InputPath string `json:"inputPath"`
		// What tests/packaging/argocd_health.rs compares the answers with.
		HealthStatus map[string]any `json:"healthStatus"`
	} `json:"tests"`
}

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
	// None: Argo CD has no health for the object (no script, or nil returned).
	None bool `json:"none,omitempty"`
}

type line struct {
	InputPath  string `json:"inputPath"`
	Lua        result `json:"lua"`
	Controller result `json:"controller"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(1)
}

func toResult(hs *health.HealthStatus, err error) result {
	switch {
	case err != nil:
		return result{Error: err.Error()}
	case hs == nil:
		return result{None: true}
	default:
		return result{Status: string(hs.Status), Message: hs.Message}
	}
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: argocd-health ARGOCD_DIR")
	}
	dir := os.Args[1]
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fail("%v", err)
		}
		return b
	}

	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(read("argocd-cm.yaml"), &cm); err != nil {
		fail("argocd-cm.yaml: %v", err)
	}
	const namespace = "argocd"
	cm.Namespace = namespace
	clientset := fake.NewClientset(&cm, &corev1.Secret{})
	mgr := settings.NewSettingsManager(context.Background(), clientset, namespace)
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		fail("Argo CD's settings manager refused argocd-cm.yaml: %v", err)
	}
	healthOverrides := lua.ResourceHealthOverrides(overrides)

	var tests testFile
	if err := yaml.UnmarshalStrict(read("health_test.yaml"), &tests); err != nil {
		fail("health_test.yaml: %v", err)
	}
	if len(tests.Tests) == 0 {
		fail("health_test.yaml lists no tests")
	}
	out := json.NewEncoder(os.Stdout)
	for _, t := range tests.Tests {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(read(t.InputPath), &obj.Object); err != nil {
			fail("%s: %v", t.InputPath, err)
		}
		l := line{InputPath: t.InputPath}
		l.Lua = toResult(healthOverrides.GetResourceHealth(obj))
		l.Controller = toResult(health.GetResourceHealth(obj, healthOverrides))
		if err := out.Encode(l); err != nil {
			fail("%v", err)
		}
	}
}
