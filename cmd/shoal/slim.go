//go:build shoal_slim

package main

import "github.com/spf13/cobra"

// fullCommands is empty in the slim sidecar build (see full.go).
func fullCommands() []*cobra.Command { return nil }
