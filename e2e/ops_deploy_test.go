package e2e

// Shipping the gateway: the Dockerfile builds what CI builds, and its
// runtime stage runs the way the image promises; the Kubernetes manifests
// parse, agree with each other and with the gateway's configuration, and
// their config.yaml is one the gateway accepts. There is no Docker engine
// or cluster here, so the image is checked by reading it and by running the
// same binary with the same environment.

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bffgate/edge/config"
	"github.com/bffgate/edge/gateway/daemon"
	"go.yaml.in/yaml/v3"
)

// ---------------------------------------------------------------------------
// The Dockerfile

// The image's build command is the one TestMain runs (so CI catches a build
// the image would fail), and the runtime stage is minimal, non-root, with
// the default config, its listeners opened to the pod network, a
// HEALTHCHECK and the binary as entrypoint.
func TestOpsDockerfileBuildsWhatCIBuilds(t *testing.T) {
	df := opsParseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	if len(df.stages) != 2 {
		t.Fatalf("want a two-stage build, got %d stages", len(df.stages))
	}
	build, runtime := df.stages[0], df.stages[1]

	// The build stage: the Go of go.mod, modules cached.
	goVersion := opsGoModVersion(t)
	if want := "golang:" + goVersion; build.from != want && !strings.HasPrefix(build.from, want+"-") && !strings.HasPrefix(build.from, want+".") {
		t.Errorf("build stage FROM %q, want golang:%s (go.mod says go %s)", build.from, goVersion, goVersion)
	}
	run := build.find("RUN", "go build")
	if run == nil {
		t.Fatal("no RUN ... go build in the build stage")
	}
	if !strings.Contains(run.args, "--mount=type=cache,target=/go/pkg/mod") {
		t.Errorf("the go build does not use a module cache mount: %s", run.args)
	}
	docker := opsParseGoBuild(t, opsShellWords(t, run.args))
	ci := opsHarnessBuild(t)
	if docker.env["CGO_ENABLED"] != "0" || ci.env["CGO_ENABLED"] != "0" {
		t.Errorf("CGO_ENABLED: Dockerfile %q, TestMain %q; both must build static binaries", docker.env["CGO_ENABLED"], ci.env["CGO_ENABLED"])
	}
	if !slices.Equal(docker.flags, ci.flags) {
		t.Errorf("go build flags differ: Dockerfile %q, TestMain %q", docker.flags, ci.flags)
	}
	// The version is the only thing that may differ: the image's build
	// argument, the tests' "e2e".
	versionRE := regexp.MustCompile(`(daemon\.Version=)\S+`)
	dl, cl := versionRE.ReplaceAllString(docker.ldflags, "${1}V"), versionRE.ReplaceAllString(ci.ldflags, "${1}V")
	if dl != cl {
		t.Errorf("-ldflags differ: Dockerfile %q, TestMain %q", docker.ldflags, ci.ldflags)
	}
	if !strings.Contains(docker.ldflags, "github.com/bffgate/edge/gateway/daemon.Version=${VERSION}") {
		t.Errorf("the image does not stamp its VERSION build argument: %q", docker.ldflags)
	}
	if !slices.Equal(docker.packages, []string{"./cmd/gateway"}) || !slices.Contains(ci.packages, "./cmd/gateway") {
		t.Errorf("packages: Dockerfile %q, TestMain %q", docker.packages, ci.packages)
	}
	// The stamp lands: the binary TestMain built reports its version.
	out, err := exec.Command(bins.gateway, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "e2e" {
		t.Errorf("gateway version = %q, %v; the -X path does not name daemon.Version", out, err)
	}

	// The runtime stage.
	if runtime.from != "gcr.io/distroless/static-debian12:nonroot" && runtime.from != "scratch" {
		t.Errorf("runtime stage FROM %q, want distroless static (nonroot) or scratch", runtime.from)
	}
	user := runtime.last("USER")
	if user == nil {
		t.Fatal("the runtime stage sets no USER: it would run as root")
	}
	if name, _, _ := strings.Cut(user.args, ":"); name == "root" || name == "0" || name == "" {
		t.Errorf("USER %q runs as root", user.args)
	}
	// Numeric: the kubelet can check runAsNonRoot only against a number,
	// and refuses to start an image whose USER is a name unless the pod
	// also sets runAsUser.
	for _, id := range strings.Split(user.args, ":") {
		if _, err := strconv.Atoi(id); err != nil {
			t.Errorf("USER %q is not numeric: a pod with runAsNonRoot and no runAsUser would not start", user.args)
			break
		}
	}
	if c := runtime.find("COPY", "--from=build"); c == nil || !strings.HasSuffix(c.args, " /gateway") {
		t.Errorf("the binary is not copied to /gateway: %v", c)
	}
	if c := runtime.find("COPY", "config.yaml"); c == nil || strings.Fields(c.args)[1] != "/etc/gateway/config.yaml" {
		t.Errorf("the default config.yaml is not at /etc/gateway/config.yaml: %v", c)
	}
	env := runtime.env()
	wantEnv := map[string]string{
		"GATEWAY_CONFIG":         "/etc/gateway/config.yaml",
		"GATEWAY_SERVER__LISTEN": "0.0.0.0:8080",
		"GATEWAY_OPS__LISTEN":    "0.0.0.0:9090",
	}
	for k, v := range wantEnv {
		if env[k] != v {
			t.Errorf("ENV %s = %q, want %q", k, env[k], v)
		}
	}
	if e := runtime.last("EXPOSE"); e == nil || !slices.Equal(strings.Fields(e.args), []string{"8080", "9090"}) {
		t.Errorf("EXPOSE %v, want 8080 9090", e)
	}
	hc := runtime.last("HEALTHCHECK")
	if hc == nil || !strings.HasSuffix(hc.args, `CMD ["/gateway", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %v, want the exec form of /gateway healthcheck", hc)
	}
	if ep := runtime.last("ENTRYPOINT"); ep == nil || ep.args != `["/gateway"]` {
		t.Errorf("ENTRYPOINT %v, want [\"/gateway\"]", ep)
	}
	if runtime.find("RUN", "") != nil {
		t.Errorf("the runtime stage runs commands; it has no shell")
	}

	// .dockerignore keeps out what the build does not need and nothing it
	// does.
	ignore := opsDockerignore(t)
	for _, needed := range append([]string{"go.mod", "go.sum", "config.yaml"}, opsGatewaySources(t)...) {
		if ignore(needed) {
			t.Errorf(".dockerignore leaves %s out of the build context", needed)
		}
	}
	for _, junk := range []string{".git", "gateway.test", "bench/results/x.json"} {
		if !ignore(junk) {
			t.Errorf(".dockerignore sends %s to the daemon", junk)
		}
	}
}

// The container as the image runs it: the environment of the Dockerfile,
// no flags, the configuration found through GATEWAY_CONFIG (here a copy,
// as a mount would replace it). With the ops listener open to the pod
// network it refuses to start without an ops token; with one it serves,
// and the HEALTHCHECK command (`gateway healthcheck`, same environment)
// exits 0 while it runs and non-zero once it is gone.
func TestOpsContainerHealthcheck(t *testing.T) {
	store := StartStore(t, nil)
	idp := StartIdP(t)
	df := opsParseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	imageEnv := df.stages[len(df.stages)-1].env()

	mounted := filepath.Join(t.TempDir(), "config.yaml")
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mounted, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	pubPort, opsPort := opsFreePort(t), opsFreePort(t)
	env := map[string]string{
		// The image's addresses on ports free on this machine.
		"GATEWAY_SERVER__LISTEN":                imageEnv["GATEWAY_SERVER__LISTEN"][:strings.LastIndex(imageEnv["GATEWAY_SERVER__LISTEN"], ":")+1] + pubPort,
		"GATEWAY_OPS__LISTEN":                   imageEnv["GATEWAY_OPS__LISTEN"][:strings.LastIndex(imageEnv["GATEWAY_OPS__LISTEN"], ":")+1] + opsPort,
		"GATEWAY_CONFIG":                        mounted,
		"GATEWAY_AUTH__JWKSURLS":                idp.JWKSURL,
		"GATEWAY_AUTH__ISSUER":                  idp.URL,
		"GATEWAY_UPSTREAMS__USERSTORE__BASEURL": store.URL,
	}
	if !strings.HasPrefix(env["GATEWAY_OPS__LISTEN"], "0.0.0.0:") {
		t.Fatalf("the image's ops listener %q is not open to the pod network", imageEnv["GATEWAY_OPS__LISTEN"])
	}
	for k, v := range imageEnv {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}

	// No token: refused, with the variable to set.
	out, err := opsRun(t, env, 10*time.Second)
	if err == nil || !strings.Contains(out, "GATEWAY_OPS__TOKEN") {
		t.Fatalf("the image started with an open ops listener and no token: %v\n%s", err, out)
	}

	env["GATEWAY_OPS__TOKEN"] = opsSecret(t)
	if _, err := opsHealthcheck(t, env); err == nil {
		t.Fatal("healthcheck passed before the gateway started")
	}
	cmd := exec.Command(bins.gateway)
	cmd.Env = opsEnviron(env)
	logs := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(logs, pw), logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); pw.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addr, err := awaitAddr(pr, 30*time.Second, func(l map[string]any) (string, bool) {
		a, ok := l["ops"].(string)
		return a, ok && l["msg"] == "listening"
	})
	go io.Copy(io.Discard, pr)
	if err != nil {
		t.Fatalf("the container did not start: %v\n%s", err, logs.String())
	}
	if !strings.HasSuffix(addr, ":"+opsPort) {
		t.Fatalf("ops listener on %s, want port %s", addr, opsPort)
	}
	eventually(t, 10*time.Second, func() error {
		_, err := opsHealthcheck(t, env)
		return err
	})
	if out, _ := opsHealthcheck(t, env); strings.TrimSpace(out) != "healthy" {
		t.Errorf("healthcheck says %q", out)
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", exitErr, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit 20 s after SIGTERM")
	}
	out, err = opsHealthcheck(t, env)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("healthcheck of a stopped gateway: %v %q", err, out)
	}
	if !strings.Contains(out, "healthcheck:") {
		t.Errorf("healthcheck failure does not say what failed: %q", out)
	}
}

// ---------------------------------------------------------------------------
// The Kubernetes manifests

// Measured for docs/operations.md with the ConfigMap's settings (VmHWM):
// a warm pod, its read cache full (100,000 entries) and a few thousand
// users' tokens cached; and the worst case, the token cache full as well
// (100,000 distinct tokens). A pod must be scheduled for the first and
// allowed the second, with the Go runtime's limit between them.
const (
	opsMeasuredWarmMiB  = 148
	opsMeasuredWorstMiB = 270
)

// The manifests are the documented way to run many replicas; they must
// hold together: the ConfigMap's config.yaml is one the gateway accepts
// with the environment the Deployment gives it, the probes reach the right
// paths on the ops port, a draining pod is never killed, every secret comes
// from the Secret and every key it names exists in the template.
func TestOpsKubernetesManifests(t *testing.T) {
	dir := filepath.Join(repoRoot, "deploy", "kubernetes")
	m := opsLoadManifests(t, dir)

	// The kustomization lists every manifest but the Secret template.
	var kust struct {
		Resources []string `yaml:"resources"`
		Namespace string   `yaml:"namespace"`
	}
	opsDecodeFile(t, filepath.Join(dir, "kustomization.yaml"), &kust)
	var want []string
	for file := range m.files {
		if file != "kustomization.yaml" && file != "secret.example.yaml" {
			want = append(want, file)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(kust.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want %v", got, want)
	}
	if kust.Namespace != "" {
		t.Errorf("the kustomization pins namespace %q", kust.Namespace)
	}
	for file, docs := range m.files {
		for _, d := range docs {
			if d.Metadata.Namespace != "" {
				t.Errorf("%s: %s %s pins namespace %q", file, d.Kind, d.Metadata.Name, d.Metadata.Namespace)
			}
		}
	}

	var dep opsDeployment
	m.decode(t, "Deployment", &dep)
	var svc, opsSvc opsService
	m.decodeNamed(t, "Service", "edge-gateway", &svc)
	m.decodeNamed(t, "Service", "edge-gateway-ops", &opsSvc)
	var pdb opsPDB
	m.decode(t, "PodDisruptionBudget", &pdb)
	var hpa opsHPA
	m.decode(t, "HorizontalPodAutoscaler", &hpa)
	var cm opsConfigMap
	m.decode(t, "ConfigMap", &cm)
	var secret opsSecretManifest
	m.decode(t, "Secret", &secret)

	// Replicas, selectors, autoscaling, disruption budget. The autoscaler
	// owns the replica count: one written in the Deployment would be
	// applied again by every `kubectl apply`, scaling a Deployment the
	// autoscaler grew back down to it (Kubernetes' HPA documentation:
	// remove spec.replicas from the manifests).
	if dep.Spec.Replicas != 0 {
		t.Errorf("the Deployment sets replicas: %d; every kubectl apply would undo the autoscaler's count", dep.Spec.Replicas)
	}
	podLabels := dep.Spec.Template.Metadata.Labels
	for name, sel := range map[string]map[string]string{
		"Deployment selector": dep.Spec.Selector.MatchLabels, "Service selector": svc.Spec.Selector,
		"ops Service selector":         opsSvc.Spec.Selector,
		"PodDisruptionBudget selector": pdb.Spec.Selector.MatchLabels,
	} {
		if len(sel) == 0 {
			t.Errorf("%s is empty", name)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s %s=%s does not match the pods' labels %v", name, k, v, podLabels)
			}
		}
	}
	if pdb.Spec.MaxUnavailable != 1 && pdb.Spec.MinAvailable < 2 {
		t.Errorf("the PodDisruptionBudget allows too much at once: %+v", pdb.Spec)
	}
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Metadata.Name {
		t.Errorf("the autoscaler scales %+v, not the Deployment %s", hpa.Spec.ScaleTargetRef, dep.Metadata.Name)
	}
	if hpa.Spec.MinReplicas != 3 || hpa.Spec.MaxReplicas <= hpa.Spec.MinReplicas {
		t.Errorf("autoscaler replicas %d..%d, want 3 at least", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	cpu := false
	for _, mt := range hpa.Spec.Metrics {
		cpu = cpu || mt.Type == "Resource" && mt.Resource.Name == "cpu" && mt.Resource.Target.Type == "Utilization" &&
			mt.Resource.Target.AverageUtilization > 0 && mt.Resource.Target.AverageUtilization <= 90
	}
	if !cpu {
		t.Errorf("the autoscaler does not scale on CPU utilization: %+v", hpa.Spec.Metrics)
	}

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want the gateway alone", len(pod.Containers))
	}
	c := pod.Containers[0]
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["ops"] != 9090 {
		t.Errorf("container ports %v, want http 8080 and ops 9090", ports)
	}
	for _, p := range append(svc.Spec.Ports, opsSvc.Spec.Ports...) {
		if _, ok := ports[p.TargetPort]; !ok {
			t.Errorf("Service port %s targets %q, which the container does not name", p.Name, p.TargetPort)
		}
	}
	// Each pod has its own cache: the user store's invalidation must reach
	// every pod, which a headless Service's DNS (one address per ready pod)
	// gives, and the load-balanced one does not.
	if opsSvc.Spec.ClusterIP != "None" || len(opsSvc.Spec.Ports) != 1 || opsSvc.Spec.Ports[0].TargetPort != "ops" {
		t.Errorf("edge-gateway-ops is not a headless Service of the ops port alone: %+v", opsSvc.Spec)
	}

	// The environment: plain values, and secrets only from the Secret.
	plain := map[string]string{}
	secretEnv := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secret.Metadata.Name {
				t.Errorf("%s comes from Secret %q; the template is %q", e.Name, ref.Name, secret.Metadata.Name)
			}
			if _, ok := secret.StringData[ref.Key]; !ok {
				t.Errorf("%s reads key %q, which the Secret template does not have", e.Name, ref.Key)
			}
			secretEnv[e.Name] = ref.Key
		case e.ValueFrom != nil:
			t.Errorf("%s: unexpected valueFrom", e.Name)
		default:
			plain[e.Name] = e.Value
		}
	}
	for _, name := range []string{"GATEWAY_OPS__TOKEN", "GATEWAY_UPSTREAMS__USERSTORE__SERVICETOKEN", "GATEWAY_CACHE__INVALIDATIONTOKEN"} {
		if _, ok := secretEnv[name]; !ok {
			t.Errorf("%s does not come from the Secret", name)
		}
	}
	for k, v := range secret.StringData {
		if len(v) >= 16 || !strings.Contains(v, "CHANGE") {
			t.Errorf("the Secret template's %s is %q: templates hold placeholders, never secrets", k, v)
		}
	}
	if plain["GATEWAY_SERVER__SHUTDOWNDELAY"] != "5s" {
		t.Errorf("GATEWAY_SERVER__SHUTDOWNDELAY = %q, want 5s", plain["GATEWAY_SERVER__SHUTDOWNDELAY"])
	}

	// The configuration: the ConfigMap mounted as a directory at the path
	// GATEWAY_CONFIG names, so its updates reach the pod (no subPath).
	if plain["GATEWAY_CONFIG"] != "/etc/gateway/config.yaml" {
		t.Errorf("GATEWAY_CONFIG = %q", plain["GATEWAY_CONFIG"])
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name && vm.MountPath == "/etc/gateway" {
				mounted = true
				if vm.SubPath != "" {
					t.Errorf("the config is mounted with subPath %q: ConfigMap updates would never reach the pod", vm.SubPath)
				}
			}
		}
	}
	if !mounted {
		t.Errorf("ConfigMap %s is not mounted at /etc/gateway", cm.Metadata.Name)
	}
	configYAML, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", cm.Metadata.Name)
	}
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	// What an operator puts in the Secret.
	withSecrets := map[string]string{}
	for k, v := range plain {
		withSecrets[k] = v
	}
	for name := range secretEnv {
		withSecrets[name] = opsSecret(t)
	}
	if out, err := opsValidate(t, cfgPath, withSecrets); err != nil || !strings.HasSuffix(strings.TrimSpace(out), ": valid") {
		t.Fatalf("gateway validate refuses the ConfigMap's config.yaml with the Deployment's environment: %v\n%s", err, out)
	}
	// The template's placeholders as they are: refused, not run.
	withPlaceholders := map[string]string{}
	for k, v := range plain {
		withPlaceholders[k] = v
	}
	for name, key := range secretEnv {
		withPlaceholders[name] = secret.StringData[key]
	}
	if out, err := opsValidate(t, cfgPath, withPlaceholders); err == nil || !strings.Contains(out, "ops.token") {
		t.Errorf("the Secret template's placeholders pass validation: %v\n%s", err, out)
	}
	cfg, _, err := daemon.Load(cfgPath, func(k string) string { return withSecrets[k] })
	if err != nil {
		t.Fatal(err)
	}
	// The cluster runs the repository's policies but for the web app's
	// origin (the admin platform's stricter rate limits were once added
	// to one file only).
	repo, _, err := daemon.Load(filepath.Join(repoRoot, "config.yaml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range config.Diff(repo, cfg) {
		if strings.HasPrefix(c.Path, "policies.") && c.Path != "policies.web.cors.allowOrigins" {
			t.Errorf("the ConfigMap's policies differ from config.yaml's: %s", c)
		}
	}

	// Listeners and probes agree with the configuration.
	if _, p, _ := net.SplitHostPort(cfg.Server.Listen); p != strconv.Itoa(ports["http"]) {
		t.Errorf("server.listen %s is not the http port %d", cfg.Server.Listen, ports["http"])
	}
	if h, p, _ := net.SplitHostPort(cfg.Ops.Listen); p != strconv.Itoa(ports["ops"]) || h != "0.0.0.0" {
		t.Errorf("ops.listen %s: the kubelet cannot reach it on port %d", cfg.Ops.Listen, ports["ops"])
	}
	for name, probe := range map[string]*opsProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		wantPath := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		port := probe.HTTPGet.Port
		if n, err := strconv.Atoi(port); err == nil {
			port = map[int]string{8080: "http", 9090: "ops"}[n]
		}
		if probe.HTTPGet.Path != wantPath || port != "ops" {
			t.Errorf("%s probe %s on port %s, want %s on the ops port", name, probe.HTTPGet.Path, probe.HTTPGet.Port, wantPath)
		}
		if probe.TimeoutSeconds < 1 || probe.PeriodSeconds < 1 {
			t.Errorf("%s probe timing %+v", name, probe)
		}
	}

	// Draining: the preStop sleep is the shutdown delay, and the grace
	// period covers sleep, delay and drain, so the kubelet never kills a
	// pod that is finishing requests.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	if preStop != cfg.Server.ShutdownDelay {
		t.Errorf("preStop sleeps %v, server.shutdownDelay is %v", preStop, cfg.Server.ShutdownDelay)
	}
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	if need := preStop + cfg.Server.ShutdownDelay + cfg.Server.DrainTimeout + daemon.AfterDrain; grace <= need {
		t.Errorf("terminationGracePeriodSeconds %v, not more than preStop %v + shutdownDelay %v + drainTimeout %v + the clean-up after it %v",
			grace, preStop, cfg.Server.ShutdownDelay, cfg.Server.DrainTimeout, daemon.AfterDrain)
	}

	// Resources: both requests and limits, memory above what was measured,
	// and the Go runtime told to collect before the limit.
	req, lim := c.Resources.Requests, c.Resources.Limits
	for _, k := range []string{"cpu", "memory"} {
		if req[k] == "" || lim[k] == "" {
			t.Errorf("resources: %s request %q, limit %q", k, req[k], lim[k])
		}
	}
	reqMem, limMem := opsQuantity(t, req["memory"]), opsQuantity(t, lim["memory"])
	if reqMem > limMem || opsQuantity(t, req["cpu"]) > opsQuantity(t, lim["cpu"]) {
		t.Errorf("requests %v above limits %v", req, lim)
	}
	if reqMem < opsMeasuredWarmMiB<<20 {
		t.Errorf("memory request %s is below the %d MiB a warm pod holds", req["memory"], opsMeasuredWarmMiB)
	}
	if limMem < opsMeasuredWorstMiB<<20*5/4 {
		t.Errorf("memory limit %s leaves less than a quarter above the %d MiB measured with both caches full", lim["memory"], opsMeasuredWorstMiB)
	}
	gml := plain["GOMEMLIMIT"]
	if gml == "" {
		t.Errorf("GOMEMLIMIT is not set: the Go runtime does not know the memory limit")
	} else if g := opsQuantity(t, strings.TrimSuffix(gml, "B")); g >= limMem || g <= opsMeasuredWorstMiB<<20 {
		t.Errorf("GOMEMLIMIT %s must lie between the worst case measured (%d MiB) and the limit %s", gml, opsMeasuredWorstMiB, lim["memory"])
	} else if plain["GOGC"] != "" && plain["GOGC"] != "100" && reqMem < g {
		// With GOGC above the default the heap grows towards GOMEMLIMIT
		// between collections: that is what the pod uses, and a request
		// below it puts the pod first in line when a node evicts.
		t.Errorf("memory request %s is below GOMEMLIMIT %s, which GOGC=%s lets the heap reach", req["memory"], gml, plain["GOGC"])
	}

	// Security: non-root, read-only root file system, no capabilities.
	sc := c.SecurityContext
	nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
		(pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot)
	if !nonRoot {
		t.Error("runAsNonRoot is not set")
	}
	if pod.SecurityContext != nil && pod.SecurityContext.RunAsUser != nil && *pod.SecurityContext.RunAsUser == 0 {
		t.Error("runAsUser 0")
	}
	// The image's tag is whatever an overlay sets, "latest" included: left
	// unset, the pull policy is Always for "latest" and IfNotPresent for a
	// version, while IfNotPresent written here would keep every node on the
	// first "latest" it pulled, whatever was pushed since.
	if c.ImagePullPolicy != "" {
		t.Errorf("imagePullPolicy %s: leave it to Kubernetes' default for the tag the overlay sets", c.ImagePullPolicy)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the root file system is writable")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("privilege escalation is allowed")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("capabilities are not all dropped")
	}
}

// The Prometheus Operator resource docs/operations.md gives scrapes each
// pod's ops port once, with the Secret's ops token: the runbook's alerts
// count pods (a breaker open "on more than one pod" is a count of
// series), so a pod scraped twice pages as two. A ServiceMonitor selecting
// the app's label matched both Services, edge-gateway and the headless
// edge-gateway-ops, each with an ops port: two targets per pod.
func TestOpsDocumentedScrapeConfigScrapesEachPodOnce(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		if strings.Contains(b[1], "monitoring.coreos.com/") {
			block = b[1]
		}
	}
	if block == "" {
		t.Fatal("docs/operations.md has no Prometheus Operator resource")
	}
	type endpoint struct {
		Port          string `yaml:"port"`
		Path          string `yaml:"path"`
		Authorization struct {
			Credentials struct{ Name, Key string } `yaml:"credentials"`
		} `yaml:"authorization"`
	}
	var mon struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Selector            opsSelector `yaml:"selector"`
			Endpoints           []endpoint  `yaml:"endpoints"`
			PodMetricsEndpoints []endpoint  `yaml:"podMetricsEndpoints"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal([]byte(block), &mon); err != nil {
		t.Fatalf("the documented %s does not parse: %v", mon.Kind, err)
	}
	m := opsLoadManifests(t, filepath.Join(repoRoot, "deploy", "kubernetes"))
	var dep opsDeployment
	m.decode(t, "Deployment", &dep)
	var secret opsSecretManifest
	m.decode(t, "Secret", &secret)
	matches := func(labels map[string]string) bool {
		for k, v := range mon.Spec.Selector.MatchLabels {
			if labels[k] != v {
				return false
			}
		}
		return len(mon.Spec.Selector.MatchLabels) > 0
	}

	var eps []endpoint
	targetsPerPod := 0
	switch mon.Kind {
	case "PodMonitor":
		eps = mon.Spec.PodMetricsEndpoints
		if matches(dep.Spec.Template.Metadata.Labels) {
			targetsPerPod = len(eps)
		}
	case "ServiceMonitor":
		eps = mon.Spec.Endpoints
		// Each Service the selector matches gives a target per pod for
		// each endpoint whose port it names.
		for _, docs := range m.files {
			for _, d := range docs {
				if d.Kind != "Service" || !matches(d.Metadata.Labels) {
					continue
				}
				var svc opsService
				if err := d.node.Decode(&svc); err != nil {
					t.Fatal(err)
				}
				for _, ep := range eps {
					for _, p := range svc.Spec.Ports {
						if p.Name == ep.Port {
							targetsPerPod++
						}
					}
				}
			}
		}
	default:
		t.Fatalf("the documented resource is a %q", mon.Kind)
	}
	if targetsPerPod != 1 {
		t.Errorf("the documented %s scrapes each pod %d times, want once", mon.Kind, targetsPerPod)
	}
	for _, ep := range eps {
		if ep.Port != "ops" || ep.Path != "/metrics" {
			t.Errorf("the documented %s scrapes port %q path %q, want ops /metrics", mon.Kind, ep.Port, ep.Path)
		}
		if c := ep.Authorization.Credentials; c.Name != secret.Metadata.Name || c.Key != "ops-token" {
			t.Errorf("the documented %s's credentials are %+v, want the Secret %s's ops-token", mon.Kind, c, secret.Metadata.Name)
		}
	}
	if _, ok := secret.StringData["ops-token"]; !ok {
		t.Error("the Secret template has no ops-token")
	}
}

// ---------------------------------------------------------------------------
// Dockerfile parsing

type opsDockerfile struct{ stages []*opsStage }

type opsStage struct {
	from         string
	name         string
	instructions []opsInstruction
}

type opsInstruction struct{ cmd, args string }

func (s *opsStage) find(cmd, contains string) *opsInstruction {
	for i := range s.instructions {
		if in := &s.instructions[i]; in.cmd == cmd && strings.Contains(in.args, contains) {
			return in
		}
	}
	return nil
}

func (s *opsStage) last(cmd string) *opsInstruction {
	for i := len(s.instructions) - 1; i >= 0; i-- {
		if s.instructions[i].cmd == cmd {
			return &s.instructions[i]
		}
	}
	return nil
}

// env is the stage's ENV, in the KEY=VALUE form (values without spaces).
func (s *opsStage) env() map[string]string {
	out := map[string]string{}
	for _, in := range s.instructions {
		if in.cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				out[k] = strings.Trim(v, `"`)
			}
		}
	}
	return out
}

// opsParseDockerfile reads instructions, joining continuation lines and
// dropping comments, and resolves ARG defaults in FROM lines.
func opsParseDockerfile(t *testing.T, file string) opsDockerfile {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(trimmed)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	args := map[string]string{}
	var df opsDockerfile
	for _, l := range lines {
		cmd, rest, _ := strings.Cut(l, " ")
		cmd, rest = strings.ToUpper(cmd), strings.TrimSpace(rest)
		switch {
		case cmd == "ARG" && len(df.stages) == 0:
			if k, v, ok := strings.Cut(rest, "="); ok {
				args[k] = v
			}
		case cmd == "FROM":
			f := strings.Fields(rest)
			st := &opsStage{from: os.Expand(f[0], func(k string) string { return args[k] })}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			t.Fatalf("Dockerfile: %s before FROM", cmd)
		default:
			st := df.stages[len(df.stages)-1]
			st.instructions = append(st.instructions, opsInstruction{cmd: cmd, args: rest})
		}
	}
	if len(df.stages) > 0 && df.stages[0].name != "build" {
		t.Errorf("the first stage is %q; the runtime stage copies --from=build", df.stages[0].name)
	}
	return df
}

// opsShellWords splits a RUN line as sh would, for the simple quoting a
// Dockerfile uses (double quotes, no escapes inside).
func opsShellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// opsGoBuild is one go build command: environment, flags, -ldflags,
// packages (the output path is left out: it is where each puts it).
type opsGoBuild struct {
	env      map[string]string
	flags    []string
	ldflags  string
	packages []string
}

func opsParseGoBuild(t *testing.T, words []string) opsGoBuild {
	t.Helper()
	b := opsGoBuild{env: map[string]string{}}
	i := 0
	for ; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, "--mount=") {
			continue
		}
		if k, v, ok := strings.Cut(w, "="); ok && !strings.HasPrefix(w, "-") {
			b.env[k] = v
			continue
		}
		break
	}
	if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
		t.Fatalf("not a go build command: %q", words)
	}
	for i += 2; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-ldflags":
			i++
			b.ldflags = words[i]
		case w == "-o":
			i++
		case strings.HasPrefix(w, "-"):
			b.flags = append(b.flags, w)
		default:
			b.packages = append(b.packages, w)
		}
	}
	return b
}

// opsHarnessBuild reads the go build command out of TestMain's source, so
// this test and TestMain cannot drift apart unnoticed.
func opsHarnessBuild(t *testing.T) opsGoBuild {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(repoRoot, "e2e", "harness_test.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	env := ""
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		var lits []string
		for _, a := range call.Args {
			if bl, ok := a.(*ast.BasicLit); ok && bl.Kind == token.STRING {
				s, _ := strconv.Unquote(bl.Value)
				lits = append(lits, s)
			} else if _, ok := a.(*ast.BinaryExpr); ok {
				// "-o", dir+string(os.PathSeparator): the output path.
				lits = append(lits, "<out>")
			}
		}
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Command" && len(lits) > 1 && lits[0] == "go" && lits[1] == "build" {
			words = lits
		}
		for _, l := range lits {
			if strings.HasPrefix(l, "CGO_ENABLED=") {
				env = l
			}
		}
		return true
	})
	if words == nil {
		t.Fatal("no exec.Command(\"go\", \"build\", ...) in harness_test.go")
	}
	if env == "" {
		t.Fatal("TestMain does not set CGO_ENABLED")
	}
	return opsParseGoBuild(t, append([]string{env}, words...))
}

// opsGatewaySources lists the files of this module that go build
// ./cmd/gateway compiles or embeds, relative to the repository's root.
func opsGatewaySources(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if and .Module .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}
{{end}}{{end}}`, "./cmd/gateway")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(repoRoot, f)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.ToSlash(rel))
	}
	if !slices.Contains(files, "cmd/gateway/main.go") || !slices.Contains(files, "gateway/daemon/daemon.go") {
		t.Fatalf("go list -deps ./cmd/gateway does not list the gateway's sources: %q", files)
	}
	return files
}

func opsGoModVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// opsDockerignore returns a matcher for .dockerignore's patterns (the
// subset this repository uses: paths, globs and **/ prefixes).
func opsDockerignore(t *testing.T) func(string) bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			t.Fatalf(".dockerignore exceptions are not understood by this test: %q", l)
		}
		patterns = append(patterns, strings.Trim(l, "/"))
	}
	return func(p string) bool {
		for _, pat := range patterns {
			// A pattern matches the path or any directory above it.
			for q := p; q != "." && q != "/"; q = path.Dir(q) {
				if ok, _ := path.Match(pat, q); ok {
					return true
				}
				if rest, ok := strings.CutPrefix(pat, "**/"); ok {
					if ok, _ := path.Match(rest, path.Base(q)); ok {
						return true
					}
				}
			}
		}
		return false
	}
}

// ---------------------------------------------------------------------------
// Manifest decoding: the fields the test reads, nothing more.

type opsMeta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type opsDoc struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   opsMeta `yaml:"metadata"`
	node       *yaml.Node
}

type opsManifests struct {
	files map[string][]opsDoc
}

func opsLoadManifests(t *testing.T, dir string) opsManifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	m := opsManifests{files: map[string][]opsDoc{}}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s does not parse: %v", p, err)
			}
			var d opsDoc
			if err := n.Decode(&d); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if filepath.Base(p) != "kustomization.yaml" && (d.APIVersion == "" || d.Kind == "" || d.Metadata.Name == "") {
				t.Errorf("%s: a document without apiVersion, kind or name", p)
			}
			d.node = &n
			m.files[filepath.Base(p)] = append(m.files[filepath.Base(p)], d)
		}
	}
	return m
}

// decode finds the one document of kind and decodes it into v.
func (m opsManifests) decode(t *testing.T, kind string, v any) {
	t.Helper()
	var found []*yaml.Node
	for _, docs := range m.files {
		for _, d := range docs {
			if d.Kind == kind {
				found = append(found, d.node)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s manifests, want 1", len(found), kind)
	}
	if err := found[0].Decode(v); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// decodeNamed finds the document of kind named name and decodes it into v.
func (m opsManifests) decodeNamed(t *testing.T, kind, name string, v any) {
	t.Helper()
	for _, docs := range m.files {
		for _, d := range docs {
			if d.Kind == kind && d.Metadata.Name == name {
				if err := d.node.Decode(v); err != nil {
					t.Fatalf("%s %s: %v", kind, name, err)
				}
				return
			}
		}
	}
	t.Fatalf("no %s named %s", kind, name)
}

func opsDecodeFile(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

type opsSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type opsProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds  int `yaml:"periodSeconds"`
	TimeoutSeconds int `yaml:"timeoutSeconds"`
}

type opsSecurityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	RunAsUser                *int  `yaml:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	Capabilities             *struct {
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type opsDeployment struct {
	Metadata opsMeta `yaml:"metadata"`
	Spec     struct {
		Replicas int         `yaml:"replicas"`
		Selector opsSelector `yaml:"selector"`
		Template struct {
			Metadata opsMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds int                 `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               *opsSecurityContext `yaml:"securityContext"`
				Containers                    []struct {
					Name            string `yaml:"name"`
					ImagePullPolicy string `yaml:"imagePullPolicy"`
					Ports           []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom *struct {
							SecretKeyRef *struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
					ReadinessProbe *opsProbe `yaml:"readinessProbe"`
					LivenessProbe  *opsProbe `yaml:"livenessProbe"`
					Lifecycle      *struct {
						PreStop *struct {
							Sleep *struct {
								Seconds int `yaml:"seconds"`
							} `yaml:"sleep"`
						} `yaml:"preStop"`
					} `yaml:"lifecycle"`
					Resources struct {
						Requests map[string]string `yaml:"requests"`
						Limits   map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					SecurityContext *opsSecurityContext `yaml:"securityContext"`
					VolumeMounts    []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
						SubPath   string `yaml:"subPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type opsService struct {
	Spec struct {
		ClusterIP string            `yaml:"clusterIP"`
		Selector  map[string]string `yaml:"selector"`
		Ports     []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type opsPDB struct {
	Spec struct {
		MaxUnavailable int         `yaml:"maxUnavailable"`
		MinAvailable   int         `yaml:"minAvailable"`
		Selector       opsSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type opsHPA struct {
	Spec struct {
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
		Metrics     []struct {
			Type     string `yaml:"type"`
			Resource struct {
				Name   string `yaml:"name"`
				Target struct {
					Type               string `yaml:"type"`
					AverageUtilization int    `yaml:"averageUtilization"`
				} `yaml:"target"`
			} `yaml:"resource"`
		} `yaml:"metrics"`
	} `yaml:"spec"`
}

type opsConfigMap struct {
	Metadata opsMeta           `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

type opsSecretManifest struct {
	Metadata   opsMeta           `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
}

// opsQuantity reads a Kubernetes quantity (cpu in cores, memory in bytes):
// the suffixes these manifests use.
func opsQuantity(t *testing.T, q string) float64 {
	t.Helper()
	for suffix, mult := range map[string]float64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "m": 0.001} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return v * mult
		}
	}
	v, err := strconv.ParseFloat(q, 64)
	if err != nil {
		t.Fatalf("quantity %q: %v", q, err)
	}
	return v
}

// ---------------------------------------------------------------------------
// Running the binary as the image and the kubelet would.

func opsEnviron(env map[string]string) []string {
	// A clean environment: only what the image or the pod would set, and
	// what the system needs.
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// opsRun runs the gateway with env and no flags, expecting it to exit.
func opsRun(t *testing.T, env map[string]string, within time.Duration) (string, error) {
	t.Helper()
	cmd := exec.Command(bins.gateway)
	cmd.Env = opsEnviron(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("still running after %v", within)
	}
}

func opsHealthcheck(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	cmd := exec.Command(bins.gateway, "healthcheck")
	cmd.Env = opsEnviron(env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func opsValidate(t *testing.T, file string, env map[string]string) (string, error) {
	t.Helper()
	cmd := exec.Command(bins.gateway, "validate", "-config", file)
	cmd.Env = opsEnviron(env)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// opsFreePort is a loopback port free a moment ago.
func opsFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
