package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/cel-go/cel"
	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"

	"github.com/imagecleanup/image-cleanup-operator/internal/testenv"
)

// argoHealth runs the shipped Argo CD health check (config/gitops) on an
// object as Argo CD does: the object is the global obj, the script returns
// a table with status and message.
func argoHealth(t *testing.T, obj map[string]any) (string, string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "gitops", "argocd-health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	state := lua.NewState()
	defer state.Close()
	state.SetGlobal("obj", toLua(state, obj))
	fn, err := state.LoadString(string(script))
	if err != nil {
		t.Fatalf("argocd-health.lua: %v", err)
	}
	state.Push(fn)
	if err := state.PCall(0, 1, nil); err != nil {
		t.Fatalf("argocd-health.lua: %v", err)
	}
	hs, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("argocd-health.lua returned %v, want a table", state.Get(-1))
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

// toLua converts decoded JSON as Argo CD does: objects to tables, arrays to
// 1-based tables.
func toLua(state *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := state.NewTable()
		for k, x := range v {
			t.RawSetString(k, toLua(state, x))
		}
		return t
	case []any:
		t := state.NewTable()
		for _, x := range v {
			t.Append(toLua(state, x))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// fluxHealth evaluates the shipped Flux healthCheckExprs on an object as
// kustomize-controller does: the object's fields are the variables, and
// inProgress, failed and current are tried in that order (none: InProgress).
func fluxHealth(t *testing.T, obj map[string]any) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "gitops", "flux-kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Spec struct {
			HealthCheckExprs []struct {
				Kind, InProgress, Failed, Current string
			} `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil || len(k.Spec.HealthCheckExprs) != 1 {
		t.Fatalf("flux-kustomization.yaml: %v %+v", err, k)
	}
	env, err := cel.NewEnv(cel.OptionalTypes(), cel.Variable("apiVersion", cel.DynType), cel.Variable("kind", cel.DynType),
		cel.Variable("metadata", cel.DynType), cel.Variable("spec", cel.DynType), cel.Variable("status", cel.DynType))
	if err != nil {
		t.Fatal(err)
	}
	exprs := k.Spec.HealthCheckExprs[0]
	for _, check := range []struct{ status, expr string }{
		{"InProgress", exprs.InProgress}, {"Failed", exprs.Failed}, {"Current", exprs.Current},
	} {
		ast, iss := env.Compile(check.expr)
		if iss.Err() != nil {
			t.Fatalf("%s expression: %v", check.status, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(obj)
		if err != nil {
			t.Fatalf("%s expression on %v: %v", check.status, obj["status"], err)
		}
		if out.Value() == true {
			return check.status
		}
	}
	return "InProgress"
}
