//go:build !linux

package main

import "errors"

// promptTerminal: password prompts are implemented for Linux terminals.
func promptTerminal(label string) (string, error) {
	return "", errors.New("no password prompt on this system")
}
