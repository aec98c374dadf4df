// Package job is the contract between the lab's host runner and the init
// program inside the guest: what to run, and what came of it.
//
// The host writes a Job as JSON into a directory it shares with the guest
// over 9p; the guest's init runs the steps chrooted into the host's root
// and writes a Result beside it. The guest's console carries the programs'
// output, never the result, so nothing a test prints can fake a pass.
package job

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Files in the shared job directory.
const (
	JobFile    = "job.json"
	ResultFile = "result.json"
)

// Mount tags of the 9p shares QEMU exports.
const (
	HostRootTag = "hostroot" // the host's /, read-only
	JobTag      = "labjob"   // the job directory, writable
)

// ShareTag is the 9p mount tag of the i-th writable share.
func ShareTag(i int) string { return fmt.Sprintf("share%d", i) }

// EnvLab is set in every program the lab runs, to the name of the kernel
// ("6.1", "6.12", "7"). Tests use it to fail, rather than skip, when a
// kernel feature they need is missing.
const EnvLab = "KTLS_LAB"

// A Job is what the guest runs, in order.
type Job struct {
	Kernel string   `json:"kernel"` // the lab's name for the kernel
	Env    []string `json:"env"`    // the environment of every step
	// Binds are host paths that must stay visible in the guest at the same
	// path even where the guest mounts a tmpfs over a parent, as it does
	// on /tmp (go test builds its binaries there).
	Binds []string `json:"binds,omitempty"`
	// Shares are host directories the guest mounts writable, at the same
	// path, for what a program wants to keep (benchmark reports, say).
	// QEMU exports them with the tags ShareTag(0), ShareTag(1), ...
	Shares []string `json:"shares,omitempty"`
	// StopOnFailure ends the job at the first step that fails.
	StopOnFailure bool   `json:"stop_on_failure,omitempty"`
	Steps         []Step `json:"steps"`
}

// A Step is one program to run.
type Step struct {
	Name string   `json:"name"`
	Argv []string `json:"argv"`
	Dir  string   `json:"dir"` // working directory, a host path
}

// A Result is written by the guest's init when the job ends.
type Result struct {
	Release string        `json:"release"`        // uname -r in the guest
	Boot    time.Duration `json:"boot"`           // kernel start to init ready
	Init    string        `json:"init,omitempty"` // why init failed, if it did
	Modules ModuleResult  `json:"modules"`        // what was loaded
	Steps   []StepResult  `json:"steps"`          // one per step that ran
	Done    bool          `json:"done"`           // init reached the end
}

// ModuleResult says which modules loaded.
type ModuleResult struct {
	Loaded int      `json:"loaded"`
	CPU    []string `json:"cpu,omitempty"` // of those, the ones the CPU's features asked for
	Failed []string `json:"failed,omitempty"`
}

// StepResult is the outcome of one step.
type StepResult struct {
	Name     string        `json:"name"`
	ExitCode int           `json:"exit_code"` // -1 if it could not start or died by a signal
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Write stores v as JSON in dir/name, synced to disk so it survives the
// guest powering off right after.
func Write(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read loads dir/name into v.
func Read(dir, name string, v any) error {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("job: %s: %w", name, err)
	}
	return nil
}
