//go:build shoal_slim

package main

// fullCommands is empty in the slim sidecar build (see full.go).
func fullCommands() []command { return nil }
