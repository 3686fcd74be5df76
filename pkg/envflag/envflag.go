// Package envflag binds the flags of Strata's services to environment
// variables: every flag --foo-bar is also STRATA_FOO_BAR. A flag given on
// the command line wins over the environment.
//
// It is the one place the rule is written; the broker, the replicator and
// strata-admin's serve and healthcheck parse their flags with Parse.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Prefix starts the environment variable of every flag.
const Prefix = "STRATA_"

// Name is the environment variable of the flag named flagName:
// "data-dir" is STRATA_DATA_DIR.
func Name(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag args did not set from
// its environment variable, read through getenv (os.Getenv in a service;
// an empty value counts as unset). An explicit flag therefore wins, and
// the variable of a flag given on the command line is not read at all.
//
// The errors of args are fs.Parse's, unchanged (flag.ErrHelp after -h).
// Every environment value a flag refuses is reported, each naming its
// variable and flag.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	explicit := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if explicit[f.Name] {
			return
		}
		name := Name(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s=%q (flag --%s): %w", name, v, f.Name, err))
		}
	})
	return errors.Join(errs...)
}
