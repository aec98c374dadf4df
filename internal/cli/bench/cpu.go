package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the kernel's USER_HZ, 100 on every Linux that Go runs on
// (sysconf(_SC_CLK_TCK) is a constant in the ABI).
const clockTick = 100

// processCPU returns a process's user and system CPU time so far, from
// /proc/PID/stat, its own threads and those already gone included.
func processCPU(pid int) (user, sys time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	user, sys, err = parseStat(string(data))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
	}
	return user, sys, nil
}

// parseStat reads utime and stime from a /proc/PID/stat line (stat(5)),
// in clock ticks, and returns them as durations.
func parseStat(s string) (user, sys time.Duration, err error) {
	// The command name is in parentheses and may hold spaces and
	// parentheses of its own: fields count from after the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed: no command name")
	}
	f := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15 of stat(5); f[0] is field 3.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short: %d fields after the command name", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("malformed: utime %q, stime %q", f[11], f[12])
	}
	return ticks(ut), ticks(st), nil
}

// ticks is a duration of n clock ticks.
func ticks(n int64) time.Duration { return time.Duration(n) * (time.Second / clockTick) }
