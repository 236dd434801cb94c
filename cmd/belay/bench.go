package main

import "errors"

// runBench is replaced by the bench harness (issue F).
func runBench(args []string) error { return errors.New("belay bench: not built yet") }
