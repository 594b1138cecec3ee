// Package envflag binds command-line flags to SENSORCAST_* environment
// variables, so every setting of a service can come from either: a flag
// given on the command line wins, then the environment, then the default.
//
// The variable of flag "nats-url" is SENSORCAST_NATS_URL.
package envflag

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// Prefix starts every environment variable that envflag reads.
const Prefix = "SENSORCAST_"

// EnvName returns the environment variable that backs a flag name.
func EnvName(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then fills every flag not set on the command
// line from its environment variable (looked up with getenv). Errors name
// the variable or flag so a bad setting is easy to find.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	setOnCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setOnCommandLine[f.Name] = true })
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if firstErr != nil || setOnCommandLine[f.Name] {
			return
		}
		name := EnvName(f.Name)
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				firstErr = fmt.Errorf("invalid %s=%q: %w", name, v, err)
			}
		}
	})
	return firstErr
}

// Usage describes every flag with its environment variable, for -h.
func Usage(fs *flag.FlagSet) func() {
	return func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage of %s (each flag may also be set by its environment variable):\n", fs.Name())
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(out, "  --%s (%s)\n    \t%s", f.Name, EnvName(f.Name), f.Usage)
			if f.DefValue != "" {
				fmt.Fprintf(out, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
}
