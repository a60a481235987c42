package metric

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// userHZ is the unit of the clock ticks in /proc/self/stat (USER_HZ, 100
// on every Linux architecture Go supports; client_golang assumes it too).
const userHZ = 100

type processCollector struct {
	// mu guards startTime, read once from /proc/stat (its btime) and
	// /proc/self/stat.
	mu        sync.Mutex
	startTime float64
}

func (pc *processCollector) collect(dst []Family) []Family {
	if st, err := readStat(); err == nil {
		dst = append(dst,
			withSample(procCPU, Sample{Value: float64(st.utime+st.stime) / userHZ}),
			withSample(procVSize, Sample{Value: float64(st.vsize)}),
			withSample(procRSS, Sample{Value: float64(st.rss * uint64(os.Getpagesize()))}))
		if t, err := pc.start(st); err == nil {
			dst = append(dst, withSample(procStartTime, Sample{Value: t}))
		}
	}
	if n, err := openFDs(); err == nil {
		dst = append(dst, withSample(procOpenFDs, Sample{Value: float64(n)}))
	}
	var fds, as syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &fds) == nil && syscall.Getrlimit(syscall.RLIMIT_AS, &as) == nil {
		dst = append(dst, withSample(procMaxFDs, Sample{Value: float64(fds.Cur)}), withSample(procVSizeMax, Sample{Value: float64(as.Cur)}))
	}
	if in, out, err := netOctets(); err == nil {
		dst = append(dst, withSample(procNetIn, Sample{Value: in}), withSample(procNetOut, Sample{Value: out}))
	}
	return dst
}

// procStat holds the fields of /proc/self/stat the collector uses.
type procStat struct {
	utime, stime, starttime uint64 // clock ticks
	vsize                   uint64 // bytes
	rss                     uint64 // pages
}

var errFormat = errors.New("metric: unexpected /proc format")

// readStat parses /proc/self/stat (proc(5)): fields after the command,
// which is in parentheses and may contain spaces.
func readStat() (procStat, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errFormat
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, state
	if len(f) < 22 {
		return procStat{}, errFormat
	}
	var st procStat
	for _, p := range []struct {
		dst   *uint64
		field int
	}{{&st.utime, 14}, {&st.stime, 15}, {&st.starttime, 22}, {&st.vsize, 23}, {&st.rss, 24}} {
		if *p.dst, err = strconv.ParseUint(string(f[p.field-3]), 10, 64); err != nil {
			return procStat{}, err
		}
	}
	return st, nil
}

// start returns the process start time in Unix seconds: the boot time plus
// the start in ticks since boot.
func (pc *processCollector) start(st procStat) (float64, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.startTime != 0 {
		return pc.startTime, nil
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			boot, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, err
			}
			pc.startTime = float64(boot) + float64(st.starttime)/userHZ
			return pc.startTime, nil
		}
	}
	return 0, errFormat
}

// openFDs counts the entries of /proc/self/fd (the one reading it
// included, as client_golang counts).
func openFDs() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	return len(names), err
}

// netOctets reads IpExt InOctets and OutOctets from /proc/self/net/netstat:
// a header line and a value line per protocol. Like client_golang's, these
// are the counters of the process's network namespace.
func netOctets() (in, out float64, err error) {
	b, err := os.ReadFile("/proc/self/net/netstat")
	if err != nil {
		return 0, 0, err
	}
	var header [][]byte
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "IpExt:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		in, out = math.NaN(), math.NaN()
		for i := 1; i < len(f) && i < len(header); i++ {
			switch string(header[i]) {
			case "InOctets":
				in, _ = strconv.ParseFloat(string(f[i]), 64)
			case "OutOctets":
				out, _ = strconv.ParseFloat(string(f[i]), 64)
			}
		}
		if math.IsNaN(in) || math.IsNaN(out) {
			return 0, 0, errFormat
		}
		return in, out, nil
	}
	return 0, 0, errFormat
}
