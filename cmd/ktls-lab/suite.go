package main

import "github.com/spf13/cobra"

func newSuiteCmd() *cobra.Command { return &cobra.Command{Use: "suite", Hidden: true} }
