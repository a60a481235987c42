// Package hostinfo reads what the bench reports say about the machine and
// the tools they ran: CPU model, load average, version lines.
package hostinfo

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
)

// ReadFile returns the file's contents, or "" when it cannot be read.
func ReadFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// Output runs a version command; some tools print to stderr or exit
// non-zero (nginx -v, wrk --version), so both streams are taken and
// errors ignored.
func Output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return string(out)
}

// FirstLine is s's first line, trimmed.
func FirstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// CPUModel is /proc/cpuinfo's model name.
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// LoadAvg is /proc/loadavg's three averages.
func LoadAvg() string {
	if f := strings.Fields(ReadFile("/proc/loadavg")); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
