package configs

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unit parses a systemd unit file: section -> key -> values (in order).
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	sec := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			sec = line[1 : len(line)-1]
			out[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			out[sec][k] = append(out[sec][k], v)
		}
	}
	return out
}

// The shipped systemd units start the right daemon with flags it has, as a
// dedicated user, confined to its state directory, and give the ordered
// shutdown time to finish. systemd-analyze verify checks them when present.
func TestSystemdUnits(t *testing.T) {
	files, _ := filepath.Glob("*.service")
	want := map[string]bool{"serialine-edge.service": false, "serialine-central.service": false}
	for _, f := range files {
		name := strings.TrimSuffix(f, ".service")
		if _, ok := want[f]; !ok {
			t.Errorf("%s: unexpected unit", f)
			continue
		}
		want[f] = true
		u := unit(t, f)
		svc := u["Service"]
		one := func(k string) string {
			t.Helper()
			if len(svc[k]) != 1 {
				t.Fatalf("%s: [Service] %s set %d times, want once", f, k, len(svc[k]))
			}
			return svc[k][0]
		}
		cmdline := strings.Fields(one("ExecStart"))
		if cmdline[0] != "/usr/local/bin/"+name {
			t.Errorf("%s: ExecStart runs %s, want /usr/local/bin/%s", f, cmdline[0], name)
		}
		// Every flag given exists in the daemon's main.go.
		src, err := os.ReadFile(filepath.Join("..", "cmd", name, "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		hasConfig := false
		for _, a := range cmdline[1:] {
			if !strings.HasPrefix(a, "--") {
				continue
			}
			flag := strings.TrimPrefix(strings.SplitN(a, "=", 2)[0], "--")
			if !regexp.MustCompile(`fs\.\w+\("` + regexp.QuoteMeta(flag) + `"`).Match(src) {
				t.Errorf("%s: %s has no flag --%s", f, name, flag)
			}
			hasConfig = hasConfig || flag == "config"
		}
		if !hasConfig {
			t.Errorf("%s: ExecStart gives no --config", f)
		}
		for k, v := range map[string]string{"User": "serialine", "Group": "serialine", "Restart": "on-failure", "NoNewPrivileges": "yes",
			"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "StateDirectory": name, "ReadWritePaths": "/var/lib/" + name,
			"KillSignal": "SIGTERM", "TimeoutStopSec": "30s", "CapabilityBoundingSet": "", "UMask": "0077"} {
			if got := one(k); got != v {
				t.Errorf("%s: %s=%q, want %q", f, k, got, v)
			}
		}
		if u["Install"]["WantedBy"][0] != "multi-user.target" {
			t.Errorf("%s: WantedBy %v", f, u["Install"]["WantedBy"])
		}
	}
	for f, seen := range want {
		if !seen {
			t.Errorf("configs/%s missing", f)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: units checked by the table above only")
		return
	}
	// systemd-analyze verify wants the executable to exist: check a copy
	// that runs /bin/true instead, and take any complaint as a failure.
	dir := t.TempDir()
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		name := strings.TrimSuffix(f, ".service")
		os.WriteFile(filepath.Join(dir, f), []byte(strings.Replace(string(raw), "ExecStart=/usr/local/bin/"+name, "ExecStart=/bin/true", 1)), 0o644)
		out, err := exec.Command(sa, "verify", filepath.Join(dir, f)).CombinedOutput()
		if err != nil || strings.Contains(string(out), f) {
			t.Errorf("systemd-analyze verify %s: %v\n%s", f, err, out)
		}
	}
}
