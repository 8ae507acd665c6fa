package e2e

// .ci/run on the machines it meets: the real script, run by bash, with go,
// apt-get, sudo and id replaced by stand-ins that record what they were
// asked and play a fresh Debian machine (nothing installed, root or not,
// apt busy or failing). The stand-in go ends the script where the README's
// test command would run.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ciMachine is one fake machine: a PATH of stand-ins and a log of what ran.
type ciMachine struct {
	dir string
	env map[string]string
}

// The stand-ins. gcc compiles only once libc6-dev is "installed" (the
// headers are what a bare gcc lacks); apt-get refuses a non-root caller as
// the real one does, and answers "Could not get lock" to the first
// $CI_LOCKED_UPDATES updates.
var ciStandIns = map[string]string{
	"go": `#!/bin/sh
echo "go $*" >>"$CI_LOG"
case "$1" in
version) echo "go version go1.26.0 linux/amd64" ;;
env) echo gcc ;;
test)
  if [ "$CGO_ENABLED" = 0 ]; then
    echo "go: -race requires cgo; enable cgo by setting CGO_ENABLED=1" >&2
    exit 2
  fi
  exit "${CI_GO_TEST_EXIT:-0}" ;;
esac
`,
	"id": `#!/bin/sh
echo "$CI_UID"
`,
	"sudo": `#!/bin/sh
echo "sudo $*" >>"$CI_LOG"
[ "$1" = -n ] && shift
CI_UID=0 exec "$@"
`,
	"sleep": `#!/bin/sh
echo "sleep $*" >>"$CI_LOG"
`,
	"apt-get": `#!/bin/sh
echo "apt-get uid=$CI_UID DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >>"$CI_LOG"
if [ "$CI_UID" != 0 ]; then
  echo "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)" >&2
  exit 100
fi
if [ -n "$CI_APT_FAILS" ]; then
  echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease" >&2
  exit 100
fi
for a in "$@"; do
  case "$a" in
  update)
    n=$(cat "$CI_DIR/locked" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ]; then
      echo $((n - 1)) >"$CI_DIR/locked"
      case "${LC_ALL:-${LC_MESSAGES:-$LANG}}" in
      de*) echo "E: Sperre /var/lib/apt/lists/lock konnte nicht erlangt werden. Sie wird von Prozess 4242 (apt-get) gehalten." >&2 ;;
      *) echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2 ;;
      esac
      exit 100
    fi ;;
  gcc) printf '#!/bin/sh\nwhile read -r l; do :; done\n[ -e "%s/libc6-dev" ]\n' "$CI_DIR" >"$CI_DIR/bin/gcc"; chmod +x "$CI_DIR/bin/gcc" ;;
  libc6-dev) : >"$CI_DIR/libc6-dev" ;;
  nghttp2-client) printf '#!/bin/sh\n' >"$CI_DIR/bin/h2load"; chmod +x "$CI_DIR/bin/h2load" ;;
  python3) printf '#!/bin/sh\n' >"$CI_DIR/bin/python3"; chmod +x "$CI_DIR/bin/python3" ;;
  esac
done
`,
}

func newCIMachine(t *testing.T, uid string, sudo bool) *ciMachine {
	t.Helper()
	m := &ciMachine{dir: t.TempDir()}
	bin := filepath.Join(m.dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, script := range ciStandIns {
		if name == "sudo" && !sudo {
			continue
		}
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The real tools the script and the stand-ins need, and nothing else
	// of this machine's (its gcc, h2load and python3 above all).
	for _, tool := range []string{"bash", "env", "dirname", "cat", "chmod"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	m.env = map[string]string{"PATH": bin, "CI_LOG": filepath.Join(m.dir, "log"), "CI_DIR": m.dir, "CI_UID": uid, "HOME": m.dir}
	return m
}

// install puts a stand-in for what a machine already has.
func (m *ciMachine) install(t *testing.T, pkgs ...string) {
	t.Helper()
	env := map[string]string{}
	for k, v := range m.env {
		env[k] = v
	}
	env["CI_UID"] = "0"
	cmd := exec.Command(filepath.Join(m.dir, "bin", "apt-get"), append([]string{"install"}, pkgs...)...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	_ = os.Remove(m.env["CI_LOG"])
}

// run runs .ci/run and returns its output, the log of what it called and
// its exit error.
func (m *ciMachine) run(t *testing.T) (string, []string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, ".ci", "run"))
	for k, v := range m.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	raw, rerr := os.ReadFile(m.env["CI_LOG"])
	if rerr != nil && !os.IsNotExist(rerr) {
		t.Fatal(rerr)
	}
	_ = os.Remove(m.env["CI_LOG"])
	return string(out), strings.Split(strings.TrimSpace(string(raw)), "\n"), err
}

func ciCalls(log []string, prefix string) []string {
	var out []string
	for _, l := range log {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// A fresh machine gets the C toolchain, h2load and python3 from one
// apt-get update, without questions and waiting for apt's lock, then the
// README's test command runs, last; a second run installs nothing.
func TestOpsCIRunFreshMachine(t *testing.T) {
	for _, tc := range []struct {
		name string
		uid  string
		sudo bool
	}{{"root", "0", false}, {"sudo", "1000", true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newCIMachine(t, tc.uid, tc.sudo)
			out, log, err := m.run(t)
			if err != nil {
				t.Fatalf(".ci/run: %v\n%s\n%s", err, out, strings.Join(log, "\n"))
			}
			apt := ciCalls(log, "apt-get")
			if len(ciCalls(apt, "apt-get uid=0 DEBIAN_FRONTEND=noninteractive")) != len(apt) {
				t.Errorf("apt-get not as root or may ask questions:\n%s", strings.Join(apt, "\n"))
			}
			updates := 0
			var installed []string
			for _, a := range apt {
				if !strings.Contains(a, "-o DPkg::Lock::Timeout=") {
					t.Errorf("apt-get fails at once when another apt holds the lock: %s", a)
				}
				if strings.HasSuffix(a, " update -qq") {
					updates++
				}
				if _, pkgs, ok := strings.Cut(a, " install -y -qq --no-install-recommends "); ok {
					installed = append(installed, strings.Fields(pkgs)...)
				}
			}
			if updates != 1 {
				t.Errorf("%d apt-get updates, want 1:\n%s", updates, strings.Join(apt, "\n"))
			}
			if strings.Join(installed, " ") != "gcc libc6-dev nghttp2-client python3" {
				t.Errorf("installed %q, want gcc libc6-dev nghttp2-client python3", installed)
			}
			if tc.sudo && len(ciCalls(log, "sudo -n ")) != len(apt) {
				t.Errorf("not every apt-get went through sudo -n:\n%s", strings.Join(log, "\n"))
			}
			if last := log[len(log)-1]; last != "go test -race ./..." {
				t.Errorf("the last command is %q, want the README's go test -race ./...", last)
			}

			out, log, err = m.run(t)
			if err != nil || len(ciCalls(log, "apt-get")) != 0 || log[len(log)-1] != "go test -race ./..." {
				t.Errorf("second run: %v\n%s\n%s", err, out, strings.Join(log, "\n"))
			}
		})
	}
}

// gcc without the C library's headers (installed without recommends)
// cannot build cgo: libc6-dev is installed too.
func TestOpsCIRunGCCWithoutHeaders(t *testing.T) {
	m := newCIMachine(t, "0", false)
	m.install(t, "gcc", "nghttp2-client", "python3")
	out, log, err := m.run(t)
	if err != nil {
		t.Fatalf(".ci/run: %v\n%s", err, out)
	}
	if len(ciCalls(log, "apt-get uid=0 DEBIAN_FRONTEND=noninteractive -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends gcc libc6-dev")) != 1 {
		t.Errorf("the C headers were not installed:\n%s", strings.Join(log, "\n"))
	}
}

// Another apt holding the package lists' lock (apt-get update does not
// wait for it by itself): the script waits and goes on.
func TestOpsCIRunAptBusy(t *testing.T) {
	m := newCIMachine(t, "0", false)
	if err := os.WriteFile(filepath.Join(m.dir, "locked"), []byte("3"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, log, err := m.run(t)
	if err != nil {
		t.Fatalf(".ci/run with apt busy: %v\n%s\n%s", err, out, strings.Join(log, "\n"))
	}
	if len(ciCalls(log, "sleep")) != 3 || log[len(log)-1] != "go test -race ./..." {
		t.Errorf("did not wait out the lock:\n%s", strings.Join(log, "\n"))
	}
}

// apt speaks the machine's language (libapt-pkg's catalogs translate its
// lock message: German above, as apt 2.6 says it): the script still knows
// the message for one and waits, rather than stopping at once as if apt
// had failed. The language may be set by any of the variables that choose
// it, LC_ALL, which overrides the others, included.
func TestOpsCIRunAptBusyInAnotherLanguage(t *testing.T) {
	for _, name := range []string{"LANG", "LC_MESSAGES", "LC_ALL"} {
		t.Run(name, func(t *testing.T) {
			m := newCIMachine(t, "1000", true)
			m.env[name] = "de_DE.UTF-8"
			if err := os.WriteFile(filepath.Join(m.dir, "locked"), []byte("2"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, log, err := m.run(t)
			if err != nil {
				t.Fatalf(".ci/run with apt busy, %s=de_DE.UTF-8: %v\n%s\n%s", name, err, out, strings.Join(log, "\n"))
			}
			if len(ciCalls(log, "sleep")) != 2 || log[len(log)-1] != "go test -race ./..." {
				t.Errorf("did not wait out the lock:\n%s", strings.Join(log, "\n"))
			}
		})
	}
}

// A machine whose environment turns cgo off (CGO_ENABLED=0, as container
// images for Go builds often set) still runs the README's test command:
// the race detector needs cgo, and go test would stop at once.
func TestOpsCIRunCgoTurnedOff(t *testing.T) {
	m := newCIMachine(t, "0", false)
	m.install(t, "gcc", "libc6-dev", "nghttp2-client", "python3")
	m.env["CGO_ENABLED"] = "0"
	out, log, err := m.run(t)
	if err != nil || log[len(log)-1] != "go test -race ./..." {
		t.Fatalf(".ci/run with CGO_ENABLED=0: %v\n%s\n%s", err, out, strings.Join(log, "\n"))
	}
}

// Whatever cannot be installed stops the script with a non-zero status
// and says why, before any test runs; a failing test fails it.
func TestOpsCIRunFailsLoudly(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		setup      func(*ciMachine)
	}{
		{"not root, no sudo", "gcc libc6-dev", func(m *ciMachine) {}},
		{"apt fails", "Failed to fetch", func(m *ciMachine) { m.env["CI_APT_FAILS"] = "1" }},
		{"tests fail", "", func(m *ciMachine) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "0"
			if tc.name == "not root, no sudo" {
				uid = "1000"
			}
			m := newCIMachine(t, uid, false)
			tc.setup(m)
			if tc.name == "tests fail" {
				m.install(t, "gcc", "libc6-dev", "nghttp2-client", "python3")
				m.env["CI_GO_TEST_EXIT"] = "1"
			}
			out, log, err := m.run(t)
			if err == nil {
				t.Fatalf(".ci/run succeeded:\n%s\n%s", out, strings.Join(log, "\n"))
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("the output does not say %q:\n%s", tc.want, out)
			}
			if tc.name != "tests fail" && len(ciCalls(log, "go test")) != 0 {
				t.Errorf("tests ran without their tools:\n%s", strings.Join(log, "\n"))
			}
		})
	}
}
