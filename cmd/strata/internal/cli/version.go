package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// buildVersion is what `strata version` reports.
type buildVersion struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// readVersion is the version given at link time (-ldflags "-X
// main.version=..."), else the main module's version and VCS stamp from
// the binary's build info; "(devel)" when neither says more.
func readVersion(linked string) buildVersion {
	v := buildVersion{Version: linked, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func runVersion(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.flagSet(), args, 0, 0); err != nil {
		return err
	}
	v := readVersion(e.io.Version)
	if e.g.json {
		return printJSON(e.io.Out, v)
	}
	line := "strata " + v.Version
	if v.Revision != "" {
		line += " " + v.Revision
		if v.Modified {
			line += "+dirty"
		}
	}
	_, err := fmt.Fprintf(e.io.Out, "%s (%s %s)\n", line, v.Go, v.Platform)
	return err
}
