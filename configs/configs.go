// Package configs embeds the example line and central configurations, so
// that `serialine demo` runs from any directory, and a test checks every file
// here.
package configs

import "embed"

// FS holds every *.yaml file of this folder.
//
//go:embed *.yaml
var FS embed.FS

// Read returns one embedded file.
func Read(name string) ([]byte, error) { return FS.ReadFile(name) }
