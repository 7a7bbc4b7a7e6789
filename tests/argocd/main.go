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
//
// argocd-health ARGOCD_DIR actions: the resource actions instead, as the API
// server's action endpoints run them (util/lua VM: GetResourceActionDiscovery
// and ExecuteResourceActionDiscovery to list them, GetResourceAction and
// ExecuteResourceAction to run one) over actions_test.yaml; one JSON object
// per test: {"inputPath", "discovery": [{name, disabled}]} or {"inputPath",
// "action", "operation", "annotations", "spec", "error"}.
// tests/packaging/argocd_health.rs builds it (tests/argocd/build) and checks the output.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
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
	if len(os.Args) != 2 && (len(os.Args) != 3 || os.Args[2] != "actions") {
		fail("usage: argocd-health ARGOCD_DIR [actions]")
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
	if len(os.Args) == 3 {
		runActions(lua.VM{ResourceOverrides: overrides}, read)
		return
	}

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

type actionsFile struct {
	DiscoveryTests []struct {
		InputPath string `json:"inputPath"`
		// What tests/packaging/argocd_actions.rs compares the answers with.
		Result []map[string]any `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action    string `json:"action"`
		InputPath string `json:"inputPath"`
		// The annotation the action must set (checked by the Rust test).
		Annotation string `json:"annotation"`
	} `json:"actionTests"`
}

type discovered struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled,omitempty"`
}

type actionLine struct {
	InputPath   string            `json:"inputPath"`
	Discovery   []discovered      `json:"discovery,omitempty"`
	Action      string            `json:"action,omitempty"`
	Operation   string            `json:"operation,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Spec        any               `json:"spec,omitempty"`
	Error       string            `json:"error,omitempty"`
}

func runActions(vm lua.VM, read func(string) []byte) {
	var tests actionsFile
	if err := yaml.UnmarshalStrict(read("actions_test.yaml"), &tests); err != nil {
		fail("actions_test.yaml: %v", err)
	}
	load := func(path string) *unstructured.Unstructured {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(read(path), &obj.Object); err != nil {
			fail("%s: %v", path, err)
		}
		return obj
	}
	out := json.NewEncoder(os.Stdout)
	emit := func(l actionLine) {
		if err := out.Encode(l); err != nil {
			fail("%v", err)
		}
	}
	for _, t := range tests.DiscoveryTests {
		l := actionLine{InputPath: t.InputPath}
		obj := load(t.InputPath)
		scripts, err := vm.GetResourceActionDiscovery(obj)
		if err == nil {
			var actions []appv1.ResourceAction
			actions, err = vm.ExecuteResourceActionDiscovery(obj, scripts)
			for _, a := range actions {
				l.Discovery = append(l.Discovery, discovered{Name: a.Name, Disabled: a.Disabled})
			}
			sort.Slice(l.Discovery, func(i, j int) bool { return l.Discovery[i].Name < l.Discovery[j].Name })
		}
		if err != nil {
			l.Error = err.Error()
		}
		emit(l)
	}
	for _, t := range tests.ActionTests {
		l := actionLine{InputPath: t.InputPath, Action: t.Action}
		obj := load(t.InputPath)
		def, err := vm.GetResourceAction(obj, t.Action)
		if err == nil {
			var impacted []lua.ImpactedResource
			impacted, err = vm.ExecuteResourceAction(obj, def.ActionLua, nil)
			if err == nil && len(impacted) != 1 {
				err = fmt.Errorf("%d impacted resources, want 1", len(impacted))
			}
			if err == nil {
				l.Operation = string(impacted[0].K8SOperation)
				l.Annotations = impacted[0].UnstructuredObj.GetAnnotations()
				l.Spec = impacted[0].UnstructuredObj.Object["spec"]
			}
		}
		if err != nil {
			l.Error = err.Error()
		}
		emit(l)
	}
}
