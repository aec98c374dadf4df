package main

import (
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI's tests are scripts in testdata/script, run with the ktls
// command built into the test binary.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ktls": func() { os.Exit(run(os.Args[1:])) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup:               setupScript,
		Condition:           scriptCondition,
		Cmds:                scriptCmds,
	})
}
