// Command demo shows the operator's main job on one machine, end to end:
// a local control plane (envtest's etcd and kube-apiserver) with the CRDs, a
// Node for this machine, the private Docker engine seeded with the article's
// error, two sample policies applied, the agent (bin/manager) run against
// both, and the before and after of the engine and of the API. Run it with
// `make demo`; it leaves no process behind.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	dockerclient "github.com/moby/moby/client"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/controllers"
	"github.com/imagecleanup/image-cleanup-operator/internal/seed"
)

const demoLabel = "imagecleanup.demo"

func main() {
	dockerHost := flag.String("docker-host", os.Getenv("TEST_DOCKER_HOST"), "the private engine")
	manager := flag.String("manager", "bin/manager", "the agent binary")
	baseline := flag.String("baseline", "bin/demo-baseline", "a bare controller-runtime manager (hack/demo/baseline), the agent's memory baseline")
	smallHost := flag.String("small-docker-host", os.Getenv("TEST_SMALL_DOCKER_HOST"), "a private engine whose data root is a small disk")
	smallRoot := flag.String("small-data-root", os.Getenv("TEST_SMALL_DATA_ROOT"), "that engine's data root")
	flag.Parse()
	d := &demo{start: time.Now(), dockerHost: *dockerHost, manager: *manager, baseline: *baseline, small: smallEngine{host: *smallHost, dataRoot: *smallRoot}}
	err := d.run()
	d.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	d.step("done in %.1fs; no process left running", time.Since(d.start).Seconds())
}

type demo struct {
	start      time.Time
	dockerHost string
	manager    string
	baseline   string

	env        *envtest.Environment
	docker     *dockerclient.Client
	agent      *exec.Cmd
	agentLog   *os.File
	aggregator *exec.Cmd
	bare       *exec.Cmd // the baseline manager
	workDir    string

	small smallEngine
}

func (d *demo) step(format string, args ...any) {
	fmt.Printf("\n==> [%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run() error {
	c, cfg, kubeconfig, err := d.setUp()
	if err != nil {
		return err
	}
	ctx := context.Background()
	nodeName, err := d.createNode(ctx, c)
	if err != nil {
		return err
	}
	d.step("seeding the engine")
	if err := d.seed(ctx); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	d.step("the article's error, by hand:")
	d.dockerCLI("rmi", "busybox:1.35")
	d.showEngine("engine before")

	d.step("kubectl apply -f config/samples/article-stopped-containers.yaml -f config/samples/ci-runner-cleanup.yaml")
	fmt.Println("    (the demo's images and containers are seconds old, so it sets minImageAge and minStoppedAge to 0s;")
	fmt.Println("     the samples ship with dryRun: true, which it turns off, as you would once their reports look right)")
	for _, f := range []string{"config/samples/article-stopped-containers.yaml", "config/samples/ci-runner-cleanup.yaml"} {
		if err := d.applySample(ctx, c, f); err != nil {
			return err
		}
	}
	d.step("starting the agent: %s --node-name %s --docker-host %s, and the aggregator: %s --role=aggregator", d.manager, nodeName, d.dockerHost, d.manager)
	if err := d.startAgent(kubeconfig, nodeName); err != nil {
		return err
	}
	d.step("waiting for the node's reports and the policies' status")
	if err := d.waitReady(ctx, c, "remove-old-busybox", "ci-runner-cleanup"); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	pid, bare := d.agent.Process.Pid, d.bare.Process.Pid
	agentRSS, bareRSS := statusSize(pid, "VmRSS"), statusSize(bare, "VmRSS")
	d.step("the agent, idle now: resident memory %s (VmRSS of pid %d; at its peak, after its sweeps, %s: VmHWM)\n    %s\n"+
		"    baseline, a bare controller-runtime manager started with it (%s: one controller, on ConfigMaps): %s resident, %.2fx of it the agent's\n    %s",
		statusField(pid, "VmRSS"), pid, statusField(pid, "VmHWM"), memoryBreakdown(pid, agentPprofAddress),
		d.baseline, statusField(bare, "VmRSS"), ratio(agentRSS, bareRSS), memoryBreakdown(bare, baselinePprofAddress))
	d.showEngine("engine after")
	if err := d.showResults(ctx, c, cfg, nodeName); err != nil {
		return err
	}
	return d.diskDemo(ctx, c, kubeconfig, nodeName+"-small")
}

// setUp opens the private engine and starts a control plane with the CRDs.
func (d *demo) setUp() (client.Client, *rest.Config, string, error) {
	if d.dockerHost == "" {
		return nil, nil, "", errors.New("no private Docker engine: run it through `make demo`")
	}
	var err error
	if d.workDir, err = os.MkdirTemp("", "imagecleanup-demo-"); err != nil {
		return nil, nil, "", err
	}
	d.docker, err = dockerclient.New(dockerclient.WithHost(d.dockerHost))
	if err != nil {
		return nil, nil, "", err
	}
	d.step("private Docker engine at %s", d.dockerHost)
	d.removeDemoObjects() // what an interrupted earlier run left

	d.step("starting a local control plane (etcd and kube-apiserver, from envtest) with the CRDs")
	d.env = &envtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true}
	cfg, err := d.env.Start()
	if err != nil {
		return nil, nil, "", fmt.Errorf("control plane: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controllers.Scheme()})
	if err != nil {
		return nil, nil, "", err
	}
	kubeconfig, err := d.kubeconfig(cfg)
	return c, cfg, kubeconfig, err
}

// createNode makes a Node for this machine, in the CI runners' pool.
func (d *demo) createNode(ctx context.Context, c client.Client) (string, error) {
	nodeName, _ := os.Hostname()
	nodeName = strings.ToLower(nodeName)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{
		"kubernetes.io/hostname": nodeName, "node.kubernetes.io/pool": "ci-runners"}}}
	if err := c.Create(ctx, node); err != nil {
		return "", err
	}
	d.step("created Node %s (labels kubernetes.io/hostname=%s, node.kubernetes.io/pool=ci-runners)", nodeName, nodeName)
	return nodeName, nil
}

func (d *demo) showEngine(title string) {
	d.step("%s", title)
	d.dockerCLI("images")
	d.dockerCLI("ps", "-a", "--format", "table {{.Names}}\t{{.Image}}\t{{.Status}}")
}

// showResults prints what kubectl would: the policies, the reports, one
// report's status.
func (d *demo) showResults(ctx context.Context, c client.Client, cfg *rest.Config, nodeName string) error {
	d.step("kubectl get icp")
	if err := printTable(cfg, "imagecleanuppolicies"); err != nil {
		return err
	}
	d.step("kubectl get icr")
	if err := printTable(cfg, "imagecleanupreports"); err != nil {
		return err
	}
	var report v1alpha1.ImageCleanupReport
	if err := c.Get(ctx, client.ObjectKey{Name: v1alpha1.ReportName("ci-runner-cleanup", nodeName)}, &report); err != nil {
		return err
	}
	d.step("kubectl get icr %s -o yaml (status)", report.Name)
	out, _ := yaml.Marshal(report.Status)
	fmt.Print(indent(string(out)))
	return nil
}

// seed reproduces the article's situation and a CI runner's.
func (d *demo) seed(ctx context.Context) error {
	type seedImage struct {
		refs                     []string
		exited, created, running int
		note                     string
	}
	seeds := []seedImage{
		{[]string{"busybox:1.35"}, 2, 1, 0, "the article's case: blocked by 3 stopped containers"},
		{[]string{"busybox:1.36"}, 0, 0, 1, "in use by a running container; no policy selects it"},
		{[]string{"registry.example.com/ci/build:1042", "registry.example.com/ci/build:latest"}, 3, 0, 0, "CI build image, two tags, 3 stopped jobs"},
		{[]string{"registry.example.com/ci/build:1041"}, 1, 0, 0, "older CI build, 1 stopped job"},
		{[]string{"registry.example.com/ci/base:2"}, 1, 0, 0, "excluded by the CI policy"},
		{[]string{"myapp:pr-7"}, 0, 0, 1, "pull-request image, a job still running"},
		{nil, 0, 0, 0, "dangling (untagged, unused)"},
	}
	seeder := &seed.Docker{Client: d.docker, Labels: map[string]string{demoLabel: "true"}}
	for _, s := range seeds {
		id, err := seeder.Image(ctx, s.refs...)
		if err != nil {
			return err
		}
		name := strings.Join(s.refs, ", ")
		if name == "" {
			name = id[7:19]
		}
		fmt.Printf("    %-72s %s\n", name, s.note)
		for state, n := range map[seed.State]int{seed.Exited: s.exited, seed.Created: s.created, seed.Running: s.running} {
			for range n {
				if _, err := seeder.Container(ctx, id, state, seed.ContainerOptions{}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// dockerCLI runs a docker command against the private engine and prints it.
func (d *demo) dockerCLI(args ...string) {
	fmt.Printf("    $ docker %s\n", strings.Join(args, " "))
	cmd := exec.Command("docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.dockerHost)
	out, _ := cmd.CombinedOutput()
	fmt.Print(indent(string(out)))
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "    " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func (d *demo) applySample(ctx context.Context, c client.Client, file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var p v1alpha1.ImageCleanupPolicy
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	zero := v1alpha1.Duration("0s")
	p.Spec.MinImageAge = &zero
	p.Spec.StoppedContainers.MinStoppedAge = &zero
	p.Spec.DryRun = false // the samples ship as previews
	if err := c.Create(ctx, &p); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	fmt.Printf("    imagecleanuppolicy.imagecleanup.io/%s created\n", p.Name)
	return nil
}

func (d *demo) kubeconfig(cfg *rest.Config) (string, error) {
	user, err := d.env.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.workDir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

func (d *demo) startAgent(kubeconfig, node string) error {
	var err error
	if d.agent, d.agentLog, err = d.agentProcess(kubeconfig, node, d.dockerHost, "agent", "--pprof-bind-address", agentPprofAddress); err != nil {
		return err
	}
	// The aggregator writes the policies' status: its own Deployment in a
	// cluster, a second process of the same binary here.
	logFile, err := os.Create(filepath.Join(d.workDir, "aggregator.log"))
	if err != nil {
		return err
	}
	d.aggregator = exec.Command(d.manager, "--role=aggregator", "--kubeconfig", kubeconfig,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--leader-election-namespace", "default", "--status-interval", "1s")
	d.aggregator.Stdout, d.aggregator.Stderr = logFile, logFile
	if err := d.aggregator.Start(); err != nil {
		return err
	}
	// The memory baseline, idle as long as the agent.
	bareLog, err := os.Create(filepath.Join(d.workDir, "baseline.log"))
	if err != nil {
		return err
	}
	d.bare = exec.Command(d.baseline, "--kubeconfig", kubeconfig, "--pprof-bind-address", baselinePprofAddress)
	d.bare.Stdout, d.bare.Stderr = bareLog, bareLog
	return d.bare.Start()
}

// agentProcess starts bin/manager for one node and engine; name names its
// log and state folder.
func (d *demo) agentProcess(kubeconfig, node, dockerHost, name string, extra ...string) (*exec.Cmd, *os.File, error) {
	logFile, err := os.Create(filepath.Join(d.workDir, name+".log"))
	if err != nil {
		return nil, nil, err
	}
	args := append([]string{"--kubeconfig", kubeconfig, "--node-name", node, "--docker-host", dockerHost,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--state-dir", filepath.Join(d.workDir, name+"-state")}, extra...)
	cmd := exec.Command(d.manager, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	return cmd, logFile, cmd.Start()
}

func (d *demo) waitReady(ctx context.Context, c client.Client, names ...string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		allReady := true
		for _, n := range names {
			var p v1alpha1.ImageCleanupPolicy
			if err := c.Get(ctx, client.ObjectKey{Name: n}, &p); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ConditionReady)
			if p.Status.ObservedGeneration != p.Generation || cond == nil || cond.Status != metav1.ConditionTrue || p.Status.NodesReported == 0 {
				allReady = false
			}
		}
		if allReady {
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(d.agentLog.Name())
			return fmt.Errorf("policies not Ready after 60s; agent log:\n%s", log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// statusField reads one size of a process's /proc status (VmRSS: its
// resident set size; VmHWM: the largest it has been).
func statusField(pid int, field string) string {
	if v := statusSize(pid, field); v > 0 {
		return mib(v)
	}
	return "unknown"
}

// statusSize is one size of a process's /proc status, in bytes (0: unknown).
func statusSize(pid int, field string) int64 {
	return kibFields(fmt.Sprintf("/proc/%d/status", pid))[field]
}

// printTable prints what `kubectl get` shows: the API server's own table,
// built from the CRD's printer columns.
func printTable(cfg *rest.Config, resource string) error {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &v1alpha1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(runtime.NewScheme()).WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return err
	}
	raw, err := rc.Get().Resource(resource).SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	if err != nil {
		return err
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	var cols []int
	var header []string
	for i, col := range table.ColumnDefinitions {
		if col.Priority == 0 {
			cols = append(cols, i)
			header = append(header, strings.ToUpper(col.Name))
		}
	}
	fmt.Fprintln(tw, "    "+strings.Join(header, "\t"))
	for _, row := range table.Rows {
		var cells []string
		for _, i := range cols {
			cells = append(cells, fmt.Sprint(row.Cells[i]))
		}
		fmt.Fprintln(tw, "    "+strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// removeDemoObjects removes every container and image the demo seeds.
func (d *demo) removeDemoObjects() { removeLabelled(d.docker) }

// stopProcess ends an agent: SIGTERM, then SIGKILL after 10 s.
func stopProcess(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// removeLabelled removes the demo's containers and images from an engine.
func removeLabelled(cli *dockerclient.Client) {
	ctx := context.Background()
	ctrs, _ := cli.ContainerList(ctx, dockerclient.ContainerListOptions{All: true})
	for _, c := range ctrs.Items {
		if c.Labels[demoLabel] == "true" {
			_, _ = cli.ContainerRemove(ctx, c.ID, dockerclient.ContainerRemoveOptions{Force: true})
		}
	}
	imgs, _ := cli.ImageList(ctx, dockerclient.ImageListOptions{All: true})
	for _, img := range imgs.Items {
		if img.Labels[demoLabel] == "true" {
			_, _ = cli.ImageRemove(ctx, img.ID, dockerclient.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
}

func (d *demo) cleanup() {
	d.step("cleaning up: agents, control plane, demo images and containers")
	stopProcess(d.agent)
	stopProcess(d.aggregator)
	stopProcess(d.bare)
	d.small.cleanup()
	if d.agentLog != nil {
		d.agentLog.Close()
	}
	if d.env != nil {
		if err := d.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}
	if d.docker != nil {
		d.removeDemoObjects()
		d.docker.Close()
	}
	if d.workDir != "" {
		os.RemoveAll(d.workDir)
	}
}
