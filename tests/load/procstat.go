package load

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat; it
// is 100 on every Linux architecture Go runs on.
const clockTicks = 100

// ProcSample is one reading of a process's memory and CPU time.
type ProcSample struct {
	At       time.Time
	RSSBytes int64
	CPU      time.Duration // utime + stime
}

// SampleProc reads /proc/<pid>/status (VmRSS) and /proc/<pid>/stat.
func SampleProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	rss, err := parseVmRSS(status)
	if err != nil {
		return s, err
	}
	s.RSSBytes = rss
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return s, err
	}
	s.CPU = cpu
	return s, nil
}

func parseVmRSS(status []byte) (int64, error) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 1 {
			break
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS in /proc status")
}

// parseStatCPU returns utime+stime (fields 14 and 15 of /proc/<pid>/stat).
// The command name (field 2) may hold spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat")
	}
	f := bytes.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat utime/stime")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// CoreSample is one reading of a CPU's counters from /proc/stat, in ticks.
type CoreSample struct {
	Busy, Softirq, Total int64
}

// SampleCore reads cpu<n>'s line of /proc/stat.
func SampleCore(n int) (CoreSample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CoreSample{}, err
	}
	return parseCoreStat(b, n)
}

func parseCoreStat(stat []byte, n int) (CoreSample, error) {
	prefix := []byte("cpu" + strconv.Itoa(n) + " ")
	for line := range bytes.SplitSeq(stat, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		var v []int64
		for _, f := range bytes.Fields(rest) {
			x, err := strconv.ParseInt(string(f), 10, 64)
			if err != nil {
				return CoreSample{}, fmt.Errorf("/proc/stat cpu%d: %w", n, err)
			}
			v = append(v, x)
		}
		if len(v) < 8 {
			return CoreSample{}, fmt.Errorf("/proc/stat cpu%d: %d fields", n, len(v))
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]
		var s CoreSample
		for i, x := range v[:8] {
			s.Total += x
			if i != 3 && i != 4 {
				s.Busy += x
			}
		}
		s.Softirq = v[6]
		return s, nil
	}
	return CoreSample{}, fmt.Errorf("no cpu%d in /proc/stat", n)
}

// SingleCPU returns the one CPU a process is pinned to (taskset -c N), or -1.
func SingleCPU(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("Cpus_allowed_list:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSpace(rest)))
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
