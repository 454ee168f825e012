package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot is the checkout this package was built from.
func RepoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..")
}

// CRDDir holds the generated CRDs the API server is started with.
func CRDDir() string { return filepath.Join(RepoRoot(), "config", "crd", "bases") }

var (
	apiConfig    *rest.Config
	errAPIServer = errors.New("the API server was not started: call testenv.RunWithAPIServer from TestMain")
)

// RunWithAPIServer is a TestMain body: it starts envtest's kube-apiserver and
// etcd with the project's CRDs (when KUBEBUILDER_ASSETS is set), runs the
// tests, and stops them again so no process outlives the test binary.
func RunWithAPIServer(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		errAPIServer = errors.New("no envtest control plane: KUBEBUILDER_ASSETS is not set (hack/envtest-assets.sh builds it)")
		return m.Run()
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{CRDDir()},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		errAPIServer = fmt.Errorf("envtest did not start: %w", err)
		// The tests report it; stop whatever half started.
		_ = env.Stop()
		return m.Run()
	}
	apiConfig, errAPIServer = cfg, nil
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
	}
	return code
}

// APIServer returns a rest config of the running envtest API server, or skips
// (fails in CI) when there is none.
func APIServer(t testing.TB) *rest.Config {
	t.Helper()
	if errAPIServer != nil {
		Unavailable(t, "%v", errAPIServer)
	}
	return rest.CopyConfig(apiConfig)
}
